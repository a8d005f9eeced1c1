"""tfcourse.lab, `tfcourse lab` and `tfcourse board`: the learner's workspace and its start page.

tests/test_browser.py opens all of this in JupyterLab; these tests need no browser.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tfcourse import cli, lab
from tfcourse._paths import notebooks_dir, repo_root
from tfcourse.notebooks._structure import BEGIN


def tfcourse(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "tfcourse.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def course_names():
    return [path.name for path in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))]


def test_first_launch_copies_every_chapter_and_writes_the_start_page(tmp_path):
    workspace = tmp_path / "work"
    done = lab.prepare(workspace)
    assert done[0] == f"made the workspace {workspace}"
    assert sorted(p.name for p in workspace.glob("*.ipynb")) == course_names()
    assert (workspace / lab.START_PAGE).is_file()
    assert lab.recorded_edition(workspace) == "full"


def test_full_copies_keep_solutions_and_their_outputs(tmp_path):
    lab.prepare(tmp_path, edition="full")
    name = course_names()[0]
    copy = nbformat.read(tmp_path / name, as_version=4)
    original = nbformat.read(notebooks_dir() / name, as_version=4)
    assert [c.source for c in copy.cells] == [c.source for c in original.cells]
    assert [c.get("outputs") for c in copy.cells] == [c.get("outputs") for c in original.cells]


def test_copies_carry_the_metadata_the_kernel_reports_so_opening_changes_nothing(tmp_path):
    lab.prepare(tmp_path)
    metadata = nbformat.read(tmp_path / course_names()[0], as_version=4).metadata
    assert metadata.kernelspec.name == "python3"
    assert metadata.language_info.version == ".".join(map(str, sys.version_info[:3]))
    assert metadata.language_info.codemirror_mode == {"name": "ipython", "version": 3}


def test_student_copies_have_no_solutions(tmp_path):
    lab.prepare(tmp_path, edition="student")
    for name in course_names():
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert BEGIN not in text and "NotImplementedError" in text, name


def test_a_later_launch_never_overwrites_the_learners_work(tmp_path):
    lab.prepare(tmp_path)
    mine = tmp_path / course_names()[0]
    mine.write_text("my answers", encoding="utf-8")
    assert lab.prepare(tmp_path) == []
    assert mine.read_text(encoding="utf-8") == "my answers"


def test_a_later_launch_adds_a_chapter_the_workspace_lacks(tmp_path):
    lab.prepare(tmp_path)
    missing = tmp_path / course_names()[-1]
    missing.unlink()
    assert lab.prepare(tmp_path) == [f"added {missing.name} (full edition)"]
    assert missing.is_file()


def test_reset_keeps_the_old_copy_in_backups_and_puts_a_fresh_one_back(tmp_path):
    lab.prepare(tmp_path)
    mine = tmp_path / course_names()[0]
    mine.write_text("first try", encoding="utf-8")
    lab.reset_chapter(tmp_path, "0")
    mine.write_text("second try", encoding="utf-8")
    done = lab.reset_chapter(tmp_path, "00", edition="student")
    assert done[-1] == f"reset {mine.name} (student edition)"
    kept = sorted((tmp_path / lab.BACKUPS).iterdir())
    assert sorted(path.read_text(encoding="utf-8") for path in kept) == ["first try", "second try"]
    assert BEGIN not in mine.read_text(encoding="utf-8")
    assert lab.recorded_edition(tmp_path) == "full"  # other chapters still come full


def test_reset_explains_an_unknown_chapter(tmp_path):
    with pytest.raises(ValueError, match=r"no chapter '99'; the course has 00, 01"):
        lab.reset_chapter(tmp_path, "99")


@pytest.mark.parametrize(("first", "then"), [("full", "student"), ("student", "full")])
def test_a_workspace_is_never_relabelled_to_another_edition(tmp_path, first, then):
    lab.prepare(tmp_path, edition=first)
    page = (tmp_path / lab.START_PAGE).read_text(encoding="utf-8")
    copies = {p.name: p.read_bytes() for p in tmp_path.glob("*.ipynb")}
    with pytest.raises(
        ValueError, match=rf"holds the {first} edition.*--edition {then} --workspace"
    ):
        lab.prepare(tmp_path, edition=then)
    assert lab.recorded_edition(tmp_path) == first  # nothing was changed
    assert (tmp_path / lab.START_PAGE).read_text(encoding="utf-8") == page
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.ipynb")} == copies
    lab.prepare(tmp_path, edition=first)  # the same edition again is fine


def test_the_lab_command_refuses_another_edition_with_a_clear_message(tmp_path):
    lab.prepare(tmp_path, edition="full")
    result = tfcourse("lab", "--edition", "student", "--workspace", str(tmp_path), "--no-browser")
    assert result.returncode != 0
    assert "holds the full edition" in result.stderr and "Traceback" not in result.stderr


def test_bad_editions_and_the_course_folder_itself_are_refused(tmp_path):
    with pytest.raises(ValueError, match="edition must be one of full, student, got 'solutions'"):
        lab.prepare(tmp_path, edition="solutions")
    with pytest.raises(ValueError, match="must not be the course's own notebooks folder"):
        lab.prepare(notebooks_dir() / "work")


def test_start_page_lists_the_chapters_in_order_with_minutes_and_links(tmp_path):
    lab.prepare(tmp_path)
    page = (tmp_path / lab.START_PAGE).read_text(encoding="utf-8")
    chapters = lab.chapters()
    assert [c.path.name for c in chapters] == course_names()
    positions = [page.index(f"]({c.path.name})") for c in chapters]
    assert positions == sorted(positions)
    first = chapters[0]
    assert first.title == "Welcome and setup"
    assert first.teaching_minutes == 25 and first.exercise_minutes == 20
    assert "| 00 | [Welcome and setup](00_welcome_and_setup.ipynb) | 25 min | 20 min |" in page


def test_lab_settings_turn_off_news_and_keep_what_the_learner_changed(tmp_path):
    settings = lab.lab_settings(tmp_path) / "@jupyterlab"
    news = settings / "apputils-extension" / "notification.jupyterlab-settings"
    assert json.loads(news.read_text()) == {"fetchNews": "false", "checkForUpdates": False}
    news.write_text('{"fetchNews": "true"}')
    lab.lab_settings(tmp_path)
    assert news.read_text() == '{"fetchNews": "true"}'


def test_lab_command_serves_the_workspace_opens_the_start_page_and_fetches_no_news(tmp_path):
    command = lab.lab_command(tmp_path, port=8899, browser=False)
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command
    assert f"--LabApp.default_url=/lab/tree/{lab.START_PAGE}" in command
    assert {"--LabApp.news_url=None", "--LabApp.extension_manager=readonly"} <= set(command)
    assert any(arg.endswith("NeverCheckForUpdate") for arg in command)
    assert {"--ServerApp.port=8899", "--no-browser"} <= set(command)


def test_the_default_workspace_is_inside_the_course_and_ignored_by_git(monkeypatch):
    monkeypatch.delenv(lab.WORKSPACE_ENV, raising=False)
    workspace = lab.default_workspace()
    assert workspace == repo_root() / "workspace"
    inside = (workspace / "00_welcome_and_setup.ipynb").relative_to(repo_root())
    ignored = subprocess.run(["git", "check-ignore", "-q", str(inside)], cwd=repo_root())
    assert ignored.returncode == 0
    monkeypatch.setenv(lab.WORKSPACE_ENV, "~/course")
    assert lab.default_workspace() == Path("~/course").expanduser()


def test_tfcourse_lab_starts_jupyterlab_on_the_workspace_never_on_the_course(
    tmp_path, monkeypatch, capsys
):
    launched = []
    monkeypatch.setattr(cli.subprocess, "call", lambda *a, **k: launched.append((a, k)) or 0)
    workspace = tmp_path / "work"
    assert cli.main(["lab", "--port", "8899", "--no-browser", "--workspace", str(workspace)]) == 0
    ((command,), options) = launched[0]
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={workspace}" in command
    assert not any(str(notebooks_dir()) in argument for argument in command)
    assert {"--ServerApp.port=8899", "--no-browser"} <= set(command)
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    assert options["env"]["JUPYTER_CONFIG_PATH"].startswith(str(workspace))
    printed = capsys.readouterr().out
    assert f"Your workspace: {workspace} (full edition)" in printed  # no terminal: no question


def test_tfcourse_lab_reset_reports_what_it_did(tmp_path):
    first = tfcourse("lab", "--reset", "1", "--workspace", str(tmp_path / "w"))
    assert first.returncode == 0, first.stderr
    assert "added 01_eager_execution.ipynb (full edition)" in first.stdout
    again = tfcourse("lab", "--reset", "1", "--workspace", str(tmp_path / "w"))
    assert "kept your copy as backups/01_eager_execution." in again.stdout
    assert again.stdout.rstrip().endswith("Run `tfcourse lab` to open it.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lab", "--edition", "answers"), "invalid choice: 'answers'"),
        (("lab", "--reset", "42"), "no chapter '42'; the course has 00"),
        (("board", "no/such/logs"), "no folder no/such/logs; pass the folder your notebook"),
    ],
)
def test_bad_lab_and_board_arguments_exit_2_with_a_message(tmp_path, args, message):
    result = tfcourse(*args, "--workspace", str(tmp_path)) if args[0] == "lab" else tfcourse(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_lab_environment_puts_the_course_labs_configuration_first(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "/elsewhere")
    env = lab.lab_environment(tmp_path)
    config = tmp_path / ".jupyter" / "config"
    assert env["JUPYTER_CONFIG_PATH"] == os.pathsep.join([str(config), "/elsewhere"])
    page = json.loads((config / "labconfig" / "page_config.json").read_text())
    assert page == {"disabledExtensions": {"@jupyter/nbgrader": True}}
    server = json.loads((config / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"]["nbgrader"] is False

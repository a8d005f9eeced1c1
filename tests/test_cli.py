"""The `tfcourse` command: help, clear errors with exit status 2, and each subcommand's result."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from _cli import tfcourse
from nbformat.v4 import new_code_cell, new_notebook

from tfcourse import cli, data


def test_help_lists_the_subcommands():
    result = tfcourse("--help")
    assert result.returncode == 0
    for command in ("doctor", "lab", "run", "data", "site", "dev"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("teach",), "invalid choice: 'teach'"),
        (("run", "99"), "no notebook for chapter 99"),
        (("run", "one"), "chapter must be a number like 00 or 3, got 'one'"),
        (("run", "--timeout", "0"), "expected a whole number of seconds above 0"),
        (("data", "verify", "cifar"), "no dataset named 'cifar'; choose one of mnist5k, "),
        (("data", "prepare"), "the following arguments are required: name"),
        (("data", "shuffle"), "invalid choice: 'shuffle'"),
        (("dev", "execute", "missing.ipynb"), "no such notebook: missing.ipynb"),
        (("dev", "release", "notebooks/00_welcome_and_setup.ipynb"), "required: --out"),
        (("lab", "--port", "http"), "invalid int value: 'http'"),
        (("run", "--busy-cores", "-1"), "expected a whole number of cores (0 or more), got '-1'"),
        (("run", "--busy-cores", "999"), "this machine has"),
        (("dev", "stress", "--repeat", "0"), "expected a whole number of runs above 0, got '0'"),
        (("dev", "stress", "99"), "no notebook for chapter 99"),
        (("site",), "the following arguments are required: ACTION"),
        (("site", "build"), "the following arguments are required: OUT_DIR"),
        (("site", "serve", "no-such-site"), "no site in no-such-site; build it first with "),
        (("site", "serve", "--port", "web"), "invalid int value: 'web'"),
    ],
)
def test_bad_arguments_get_a_message_and_status_2_without_a_traceback(args, message):
    result = tfcourse(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_site_build_refuses_a_file_or_a_folder_of_other_things(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    as_file = tfcourse("site", "build", str(tmp_path / "notes.txt"))
    assert as_file.returncode == 2
    assert f"OUT_DIR {tmp_path / 'notes.txt'} is a file; pass a folder" in as_file.stderr
    full = tfcourse("site", "build", str(tmp_path))
    assert full.returncode == 2
    assert "is not empty and holds no site built before" in full.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "Traceback" not in as_file.stderr + full.stderr


def test_site_serve_on_a_taken_port_says_so_and_exits_1(tmp_path):
    (tmp_path / "index.html").write_text("<h1>site</h1>")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = tfcourse("site", "serve", str(tmp_path), "--port", port)
    assert result.returncode == 1
    assert f"error: cannot serve on port {port}: " in result.stderr
    assert "pass another with --port N (0: any free port)" in result.stderr


def test_the_command_imports_sphinx_only_to_build_the_site():
    result = tfcourse("site", "serve", "no-such-site", PYTHONPROFILEIMPORTTIME="1")
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "tfcourse.site" in imported
    assert not {name for name in imported if name.split(".")[0] in ("sphinx", "myst_nb")}


def test_data_verify_passes_intact_data_and_names_a_corrupted_file(data_copy):
    verified = tfcourse("data", "verify", TFCOURSE_DATA_DIR=str(data_copy)).stdout.split()
    assert verified == [word for name in data.names() for word in (f"{name}:", "ok")]
    (data_copy / "numwords" / "train.tsv.gz").write_bytes(b"")
    result = tfcourse("data", "verify", "numwords", TFCOURSE_DATA_DIR=str(data_copy))
    assert result.returncode == 1
    assert (
        "train.tsv.gz is corrupted" in result.stdout
        and "tfcourse data prepare numwords" in result.stdout
    )


def test_data_list_shows_every_dataset_with_its_splits():
    lines = tfcourse("data", "list").stdout.splitlines()
    assert [line.split()[0] for line in lines] == data.names()
    assert all("splits: train, validation, test" in line for line in lines)


def test_data_prepare_that_cannot_match_its_checksums_exits_1_with_the_reason(data_copy):
    (data_copy / "mnist5k" / "SHA256SUMS").write_text(f"{'0' * 64}  mnist5k.npz\n")
    result = tfcourse("data", "prepare", "mnist5k", TFCOURSE_DATA_DIR=str(data_copy))
    assert result.returncode == 1
    assert "produces different data" in result.stderr and "Traceback" not in result.stderr


def test_doctor_exits_1_when_a_check_fails(monkeypatch, capsys):
    from tfcourse import doctor

    monkeypatch.setattr(
        doctor, "run_checks", lambda: [doctor.Finding("Python", "fail", "3.8", "use 3.11")]
    )
    assert cli.main(["doctor"]) == 1
    assert "Problems that stop the course: Python" in capsys.readouterr().out
    monkeypatch.setattr(
        doctor, "run_checks", lambda: [doctor.Finding("Memory", "warn", "2 GiB", "close apps")]
    )
    assert cli.main(["doctor"]) == 0


def test_find_notebooks_by_chapter_number(tmp_path):
    for name in ("00_intro.ipynb", "03_keras.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in cli.find_notebooks([], tmp_path)] == [
        "00_intro.ipynb",
        "03_keras.ipynb",
    ]
    assert [p.name for p in cli.find_notebooks(["3", "00"], tmp_path)] == [
        "03_keras.ipynb",
        "00_intro.ipynb",
    ]


def test_record_timings_replaces_only_its_own_block(tmp_path):
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nkeep me\n")
    cli.record_timings(benchmarks, "| table 1 |")
    cli.record_timings(benchmarks, "| table 2 |")
    text = benchmarks.read_text()
    assert "keep me" in text and "| table 2 |" in text and "| table 1 |" not in text
    assert text.count(cli.TIMINGS_START) == 1


@pytest.mark.slow
def test_run_executes_notebooks_and_prints_a_timing_table(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    measure = "import tfcourse\ntfcourse.record_figure('speed-up', 3.14159, unit='x')"
    nbformat.write(new_notebook(cells=[new_code_cell(measure)]), folder / "00_ok.ipynb")
    nbformat.write(
        new_notebook(cells=[new_code_cell("raise ValueError('no')")]), folder / "01_bad.ipynb"
    )
    monkeypatch.setattr(cli, "notebooks_dir", lambda: folder)
    assert cli.main(["run", "00"]) == 0
    assert cli.main(["run", "--record", str(tmp_path / "B.md")]) == 1
    out = capsys.readouterr().out
    assert "| 00_ok.ipynb | ok |" in out and "| 01_bad.ipynb | FAILED: ValueError: no |" in out
    recorded = (tmp_path / "B.md").read_text()
    assert "| **total** |" in recorded
    assert "| 00_ok.ipynb | speed-up | 3.14 x |" in recorded
    assert (
        Path(folder / "00_ok.ipynb").read_text().count('"execution_count": null') == 1
    )  # not written


def test_busy_core_options_default_to_none_for_run_and_the_profiles_for_stress():
    parser = cli._parser()
    assert parser.parse_args(["run"]).busy_cores == 0
    assert parser.parse_args(["run", "--busy-cores", "1"]).busy_cores == 1
    stress = parser.parse_args(["dev", "stress", "02", "--record", "B.md"])
    assert (stress.chapters, stress.repeat, stress.busy_cores) == (["02"], 3, None)
    assert stress.profile == "busy-core" and stress.record == Path("B.md")


def test_stress_refuses_an_unknown_profile(capsys):
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["dev", "stress", "--profile", "two-core"])
    assert "invalid choice: 'two-core'" in capsys.readouterr().err


def test_stress_runs_each_notebook_repeat_times_and_records_a_table(tmp_path, monkeypatch, capsys):
    from tfcourse import _stress

    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("00_a.ipynb", "01_b.ipynb"):
        (folder / name).write_text("{}")
    monkeypatch.setattr(cli, "notebooks_dir", lambda: folder)
    outcomes = iter([True, True, True, False])
    profiles = []

    def fake_once(path, machine):
        profiles.append(machine.name)
        return _stress.StressRun(path, next(outcomes), 1.25, "E boom")

    monkeypatch.setattr(_stress, "stress_once", fake_once)
    record = tmp_path / "BENCHMARKS.md"
    args = ["dev", "stress", "--repeat", "2", "--busy-cores", "0", "--record", str(record)]
    assert cli.main(args) == 1
    assert profiles == ["busy-core"] * 4
    out = capsys.readouterr().out
    assert "00_a.ipynb run 2/2: ok (1.2 s)" in out and "01_b.ipynb run 2/2: FAILED" in out
    assert "    E boom" in out
    text = record.read_text()
    assert "| 00_a.ipynb | ok 1.2 s | ok 1.2 s |" in text
    assert "| 01_b.ipynb | ok 1.2 s | FAILED 1.2 s |" in text
    assert (
        "`tfcourse dev stress --profile busy-core --repeat 2 --busy-cores 0 --record BENCHMARKS.md`"
        in text
    )
    assert text.count(cli.STRESS_START) == 1 and cli.TIMINGS_START not in text


def test_each_profile_records_its_own_table(tmp_path, monkeypatch):
    from tfcourse import _stress

    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "00_a.ipynb").write_text("{}")
    monkeypatch.setattr(cli, "notebooks_dir", lambda: folder)
    monkeypatch.setattr(
        _stress, "stress_once", lambda path, machine: _stress.StressRun(path, True, 2.0)
    )
    record = tmp_path / "BENCHMARKS.md"
    for name in ("one-core", "onednn-off", "one-core"):
        assert (
            cli.main(["dev", "stress", "--profile", name, "--repeat", "1", "--record", str(record)])
            == 0
        )
    text = record.read_text()
    assert text.count("<!-- stress:one-core:start -->") == 1
    assert text.count("<!-- stress:onednn-off:start -->") == 1
    assert "nbval under the `one-core` profile (a 1-vCPU VM (`taskset -c 0`)), 1 run(s)" in text
    assert "--profile one-core --repeat 1 --busy-cores 0" in text


def test_stress_command_selects_only_the_notebook_under_nbval():
    from tfcourse import _stress

    notebook = cli.find_notebooks(["00"])[0]
    command = _stress.stress_command(notebook)
    assert command[:3] == [sys.executable, "-m", "pytest"] and "--nbval" in command
    # PYTEST_ADDOPTS from the outer run (say `-v`) would change what --collect-only prints.
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    collected = subprocess.run(
        [*command, "--collect-only"],
        cwd=cli.notebooks_dir().parent,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    items = [line for line in collected.stdout.splitlines() if "::" in line]
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert items, collected.stdout
    assert all(line.startswith(f"notebooks/{notebook.name}::") for line in items)


def test_stress_appends_each_runs_figures_with_its_profile(tmp_path, monkeypatch):
    from tfcourse import _stress

    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "00_a.ipynb").write_text("{}")
    monkeypatch.setattr(cli, "notebooks_dir", lambda: folder)
    figure = {"name": "speed-up", "value": 3.0, "unit": "x"}
    monkeypatch.setattr(
        _stress,
        "stress_once",
        lambda path, machine: _stress.StressRun(path, True, 1.0, "", (figure,)),
    )
    out = tmp_path / "figures.jsonl"
    args = ["dev", "stress", "--profile", "avx2", "--repeat", "2", "--figures", str(out)]
    assert cli.main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["profile"], r["notebook"], r["run"], r["value"]) for r in rows] == [
        ("avx2", "00_a.ipynb", 1, 3.0),
        ("avx2", "00_a.ipynb", 2, 3.0),
    ]


def test_dev_figures_tabulates_each_figure_per_profile(tmp_path, capsys):
    figure = {"notebook": "02_x.ipynb", "name": "stall", "unit": "%"}
    rows = [
        {"profile": "busy-core", "value": 6.0, **figure},
        {"profile": "busy-core", "value": 8.5, **figure},
        {"profile": "one-core", "value": 9.0, **figure},
    ]
    path = tmp_path / "figures.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert cli.main(["dev", "figures", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| notebook | figure | busy-core | one-core |" in out
    assert "| 02_x | stall | 6-8.5 % | 9 % |" in out


def test_dev_figures_names_a_missing_file_and_a_bad_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["dev", "figures", str(tmp_path / "none.jsonl")])
    assert exited.value.code == 2
    assert "write one with `tfcourse dev stress --figures`" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"profile": "idle"}\n{oops\n')
    with pytest.raises(SystemExit):
        cli.main(["dev", "figures", str(bad)])
    assert "bad.jsonl, line 2: not JSON" in capsys.readouterr().err

"""The learner's workspace: private copies of the notebooks, a start page, and JupyterLab on them.

`tfcourse lab` works here, never in the course's own `notebooks/`, so that a learner's answers,
outputs and autosaves never change a file that git tracks, and a `git pull` of course updates never
conflicts with them. The workspace is made on first launch; later launches add chapters the course
gained and leave every existing copy alone. `reset_chapter` puts a fresh copy back and keeps the old
one in ``backups/``. The `tfcourse lab` command is its only user; notebooks never import it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tfcourse._paths import notebooks_dir, repo_root

#: Puts the workspace somewhere else than ``workspace/`` in the course folder.
WORKSPACE_ENV = "TFCOURSE_WORKSPACE"
#: ``"full"``: the notebooks with their solutions collapsed. ``"student"``: solutions removed.
EDITIONS = ("full", "student")
#: The landing page JupyterLab opens; rewritten on every launch.
START_PAGE = "START_HERE.md"
BACKUPS = "backups"
_RECORD = ".tfcourse-workspace.json"
_TIME = re.compile(r"about (\d+) minutes of teaching and (\d+) minutes of exercises")


@dataclass(frozen=True)
class Chapter:
    """One notebook of the course, as the start page lists it."""

    number: str
    path: Path
    title: str
    subtitle: str
    teaching_minutes: int
    exercise_minutes: int


def default_workspace() -> Path:
    """`$TFCOURSE_WORKSPACE`, else ``workspace/`` in the course folder (which git ignores)."""
    override = os.environ.get(WORKSPACE_ENV)
    return Path(override).expanduser() if override else repo_root() / "workspace"


def chapters(folder: Path | None = None) -> list[Chapter]:
    """The course's chapters in order, with the title, subtitle and minutes of their Overview."""
    found = []
    for path in sorted((folder or notebooks_dir()).glob("[0-9][0-9]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        heading = cells[0].source.strip().splitlines() if cells else []
        title = heading[0].lstrip("# ").strip() if heading else path.stem
        subtitle = " ".join(line.strip() for line in heading[1:] if line.strip())
        minutes = next(
            (m for c in cells[:3] if (m := _TIME.search(c.source)) and c.cell_type == "markdown"),
            None,
        )
        teaching, exercises = (int(minutes[1]), int(minutes[2])) if minutes else (0, 0)
        found.append(Chapter(path.name[:2], path, title, subtitle, teaching, exercises))
    return found


def recorded_edition(workspace: Path) -> str | None:
    """The edition `workspace` was made with, or None if it is not a workspace yet."""
    record = workspace / _RECORD
    if not record.is_file():
        return None
    return json.loads(record.read_text(encoding="utf-8")).get("edition")


def _check_edition(edition: str) -> None:
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {', '.join(EDITIONS)}, got {edition!r}")


def _check_place(workspace: Path) -> None:
    course = notebooks_dir().resolve()
    place = workspace.resolve()
    if place == course or course in place.parents:
        raise ValueError(
            f"the workspace must not be the course's own notebooks folder ({course}); "
            "choose another folder"
        )


def _copy_chapter(chapter: Chapter, target: Path, edition: str) -> None:
    nb = nbformat.read(chapter.path, as_version=4)
    if edition == "student":
        from tfcourse.notebooks import release

        nb = release(nb)
    # The kernel reports this when it starts; a notebook that lacks it looks changed on opening,
    # and JupyterLab then asks to save a notebook the learner has not touched.
    nb.metadata["language_info"] = _LANGUAGE_INFO | {"version": platform.python_version()}
    nb.metadata.setdefault("kernelspec", _KERNELSPEC)
    nbformat.write(nb, target)


_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


def prepare(workspace: Path, *, edition: str | None = None) -> list[str]:
    """Make `workspace` or bring it up to date, and return what was done, one line each.

    Chapters the workspace lacks are copied in; existing copies are never touched. The start page is
    rewritten. `edition` (default: the recorded one, else ``"full"``) applies to the chapters copied
    now and to later ones.

    Raises:
        ValueError: For an unknown edition, or a workspace inside the course's notebooks folder.
    """
    recorded = recorded_edition(workspace)
    edition = edition or recorded or "full"
    _check_edition(edition)
    _check_place(workspace)
    _check_same_edition(workspace, recorded, edition)
    done = [] if workspace.is_dir() else [f"made the workspace {workspace}"]
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / _RECORD).write_text(json.dumps({"edition": edition}) + "\n", encoding="utf-8")
    course = chapters()
    for chapter in course:
        target = workspace / chapter.path.name
        if not target.exists():
            _copy_chapter(chapter, target, edition)
            done.append(f"added {target.name} ({edition} edition)")
    (workspace / START_PAGE).write_text(start_page(course, edition=edition), encoding="utf-8")
    return done


def reset_chapter(workspace: Path, number: str, *, edition: str | None = None) -> list[str]:
    """Replace the learner's copy of chapter `number` with a fresh one; keep the old in backups/.

    Returns what was done, one line each.

    Raises:
        ValueError: For a chapter the course does not have, or an unknown edition.
    """
    key = f"{int(number):02d}" if number.isdigit() else number
    chapter = next((c for c in chapters() if c.number == key), None)
    if chapter is None:
        available = ", ".join(c.number for c in chapters())
        raise ValueError(f"no chapter {number!r}; the course has {available}")
    if recorded_edition(workspace) is None:  # no workspace yet: making one copies it fresh
        return prepare(workspace, edition=edition)
    edition = edition or recorded_edition(workspace) or "full"
    _check_edition(edition)
    done = []
    target = workspace / chapter.path.name
    if target.exists():
        backups = workspace / BACKUPS
        backups.mkdir(exist_ok=True)
        kept = _unused(backups / f"{target.stem}.{time.strftime('%Y%m%d-%H%M%S')}{target.suffix}")
        target.replace(kept)
        done.append(f"kept your copy as {kept.relative_to(workspace)}")
    _copy_chapter(chapter, target, edition)
    done.append(f"reset {target.name} ({edition} edition)")
    return prepare(workspace) + done  # adds other missing chapters; rewrites the start page


def _check_same_edition(workspace: Path, recorded: str | None, edition: str) -> None:
    """Refuse to relabel a workspace whose notebooks were copied in another edition."""
    if recorded is None or recorded == edition:
        return
    copied = sorted(c.path.name for c in chapters() if (workspace / c.path.name).exists())
    if not copied:
        return
    keeps = "keep their solutions" if recorded == "full" else "stay without solutions"
    raise ValueError(
        f"{workspace} holds the {recorded} edition; its {len(copied)} notebooks would {keeps} "
        f"under a start page that says {edition}. Nothing was changed. For a {edition} "
        f"workspace, choose a new folder: tfcourse lab --edition {edition} --workspace DIR "
        "(your answers here stay where they are)."
    )


def _unused(path: Path) -> Path:
    """`path`, or ``stem-2.ipynb``, ``stem-3.ipynb``... if it exists (two resets in a second)."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def start_page(course: list[Chapter], *, edition: str) -> str:
    """The landing page: the chapters in order with their minutes and links, and how to work."""
    rows = [
        f"| {c.number} | [{c.title}]({c.path.name}) | {c.teaching_minutes} min | "
        f"{c.exercise_minutes} min | {c.subtitle} |"
        for c in course
    ]
    total = sum(c.teaching_minutes + c.exercise_minutes for c in course)
    solutions = (
        "Each solution is collapsed to its first line, such as `def count_labels(dataset): •••`. "
        "Try the exercise first, then click the ••• to see the solution."
        if edition == "full"
        else "This is the student release: each exercise has a stub for your answer, no solution."
    )
    return _START.format(
        rows="\n".join(rows), total_hours=total / 60, solutions=solutions, edition=edition
    )


_START = """\
# TensorFlow course: start here

Work through the chapters in order; each builds on the ones before. Click a title to open your copy.
The whole course takes about {total_hours:.0f} hours.

| # | chapter | teaching | exercises | what it is about |
|---|---|---|---|---|
{rows}

## How to work

- **Run a cell** with Shift+Enter, or every cell with the menu *Run → Run All Cells*.
- **Exercises** end each chapter. Write your answer in its cell, then run the check below it: it
  prints ✓ with what it verified, ✗ with what is wrong, or "not attempted yet".
- {solutions}

## Your workspace

These notebooks are your own copies ({edition} edition); the course's originals stay untouched, so
updating the course never overwrites your answers. `tfcourse lab` adds new chapters when the
course gets them. To start a chapter over, stop JupyterLab and run `tfcourse lab --reset 03` (your
copy moves to `backups/`).

Chapter 03 writes TensorBoard logs: `tfcourse board LOGDIR` opens them in TensorBoard.

This page is rewritten each time `tfcourse lab` starts.
"""


def lab_settings(workspace: Path) -> Path:
    """Write the lab's starting settings into the workspace, keeping any the learner changed.

    No news or update checks (they would reach the internet), and Markdown opens rendered. The
    course's lab keeps its settings (theme, font size...) and its layouts in the workspace's
    ``.jupyter/`` folder, apart from those of any other JupyterLab the learner runs.
    """
    settings = workspace / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
    defaults = {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "docmanager-extension/plugin": {"defaultViewers": {"markdown": "Markdown Preview"}},
    }
    for name, values in defaults.items():
        path = settings / f"{name}.jupyterlab-settings"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    return settings.parent


#: nbgrader's menus, panels and server parts serve instructors running nbgrader itself; a learner
#: in the course's lab has no use for them (the course grades with `tfcourse grade`).
_HIDDEN_SERVER_EXTENSIONS = ["nbgrader", *(f"nbgrader.server_extensions.{name}" for name in (
    "formgrader", "validate_assignment", "assignment_list", "course_list"))]  # fmt: skip
_HIDDEN_LAB_EXTENSIONS = ["@jupyter/nbgrader"]


def lab_environment(workspace: Path) -> dict[str, str]:
    """The environment for `lab_command`: this one, plus the course lab's Jupyter configuration.

    The configuration lives in the workspace and turns off extensions that would confuse a
    learner; Jupyter reads it before the configuration of this environment and the user.
    """
    config = workspace / ".jupyter" / "config"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    page = {"disabledExtensions": dict.fromkeys(_HIDDEN_LAB_EXTENSIONS, True)}
    (config / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=2) + "\n")
    server = {"ServerApp": {"jpserver_extensions": dict.fromkeys(_HIDDEN_SERVER_EXTENSIONS, False)}}
    (config / "jupyter_server_config.json").write_text(json.dumps(server, indent=2) + "\n")
    search = [str(config), *filter(None, [os.environ.get("JUPYTER_CONFIG_PATH")])]
    return {**os.environ, "JUPYTER_CONFIG_PATH": os.pathsep.join(search)}


def lab_command(workspace: Path, *, port: int | None = None, browser: bool = True) -> list[str]:
    """The ``jupyter lab`` command line that serves `workspace` and opens its start page."""
    lab_dir = workspace / ".jupyter" / "lab"
    command = [
        sys.executable, "-m", "jupyter", "lab",
        f"--ServerApp.root_dir={workspace}",
        f"--LabApp.default_url=/lab/tree/{START_PAGE}",
        f"--LabApp.user_settings_dir={lab_settings(workspace)}",
        f"--LabApp.workspaces_dir={lab_dir / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # lists extensions; never searches PyPI
    ]  # fmt: skip
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    if not browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # classroom containers often run as root
        command.append("--allow-root")
    return command

"""Write the student release of whole chapters into a folder (`tfcourse release`), or the whole
student edition of the course, ready to install (`tfcourse release --package`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import nbformat

from tfcourse._paths import repo_root
from tfcourse.notebooks._release import release
from tfcourse.notebooks._structure import BEGIN, END

#: What the student edition leaves out of the package: the judges (expected answers).
LEFT_OUT = ("exercises/judges",)
#: What an answer in the package's own source becomes in the student edition.
PACKAGE_STUB = (
    "raise NotImplementedError(\"an exercise's answer, left out of the student edition of the "
    'course")'
)
#: Files of the repository the student edition copies as they are (when present).
_TOP_FILES = ("pyproject.toml", "environment.yml", "LICENSE")


def release_chapters(paths: Sequence[Path], out: Path) -> list[Path]:
    """Write the student copy of each notebook in `paths` into `out`, under the same file name.

    A notebook named ``NN_topic.ipynb`` is marked as chapter ``NN`` in its metadata, which is how
    `tfcourse grade` finds the solution notebook to grade it against.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        chapter = path.name[:2] if path.name[:2].isdigit() else None
        student = release(nbformat.read(path, as_version=4), chapter=chapter)
        nbformat.write(student, out / path.name)
        written.append(out / path.name)
    return written


def package_edition(paths: Sequence[Path], out: Path, *, with_judges: bool = False) -> list[Path]:
    """Write the student edition of the course into `out`, which must not exist or be empty.

    It holds the `tfcourse` package without its judges (`LEFT_OUT`; kept when `with_judges`, so
    that the self-checks say right or wrong, for a class that practises rather than is graded on
    its answers) and with every answer in its
    own source (``### BEGIN SOLUTION`` blocks) replaced by a `PACKAGE_STUB`; the datasets; the
    student copies of the notebooks in `paths`; ``pyproject.toml`` and ``environment.yml``; a
    README that says how to install it; and ``EDITION.json``, what it is made from. Tests,
    solution notebooks, INSTRUCTORS.md and the CI scripts stay out.

    Raises:
        FileExistsError: If `out` exists and is not empty.
    """
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} is not empty: give a new folder for the student edition, or empty this one"
        )
    root = repo_root()
    out.mkdir(parents=True, exist_ok=True)
    _copy_package(root / "tfcourse", out / "tfcourse", () if with_judges else LEFT_OUT)
    shutil.copytree(root / "datasets", out / "datasets", ignore=shutil.ignore_patterns(".*"))
    notebooks = release_chapters(paths, out / "notebooks")
    for name in _TOP_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, out / name)
    checking = _WITH_JUDGES if with_judges else _WITHOUT_JUDGES
    readme = _README.format(chapters=len(notebooks), checking=checking)
    (out / "README.md").write_text(readme, encoding="utf-8")
    manifest = {
        "edition": "student",
        "made_from": _commit(root),
        "chapters": [path.name for path in notebooks],
        "left_out": [] if with_judges else [f"tfcourse/{part}" for part in LEFT_OUT],
    }
    manifest["left_out"] += [
        "solutions in the notebooks and in the package's source",
        "tests/",
        "INSTRUCTORS.md",
    ]
    (out / "EDITION.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return notebooks


def _copy_package(source: Path, target: Path, left_out: Sequence[str]) -> None:
    skipped = [source / part for part in left_out]
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if "__pycache__" in relative.parts or any(p == path or p in path.parents for p in skipped):
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            text = path.read_text(encoding="utf-8")
            (target / relative).write_text(strip_answers(text, path), encoding="utf-8")
        else:
            shutil.copy2(path, target / relative)


def strip_answers(source: str, path: Path) -> str:
    """`source` with each block between lines ``### BEGIN SOLUTION`` and ``### END SOLUTION``
    replaced by a `PACKAGE_STUB` at the block's indent (markers quoted in text are left alone).

    Raises:
        ValueError: If a block is not closed, which would leak or lose code.
    """
    kept, inside = [], False
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == BEGIN and not inside:
            inside = True
            kept.append(line[: len(line) - len(line.lstrip())] + PACKAGE_STUB)
        elif marker == END and inside:
            inside = False
        elif marker in (BEGIN, END):
            raise ValueError(f"{path}:{number}: {marker!r} without its pair")
        elif not inside:
            kept.append(line)
    if inside:
        raise ValueError(f"{path}: {BEGIN!r} is never closed by {END!r}")
    return "\n".join(kept)


def _commit(root: Path) -> str:
    try:
        argv = ["git", "-C", str(root), "rev-parse", "HEAD"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


_README = """\
# tfcourse: the student edition

The hands-on TensorFlow 2 course, as your instructor hands it out: {chapters} chapters in
`notebooks/`, with the exercises left for you to answer, and the small datasets they use.

## Install (Linux, macOS or Windows with Python 3.10-3.13)

```bash
python3 -m venv .venv
source .venv/bin/activate          # Windows: .venv\\Scripts\\activate
python -m pip install -e .
tfcourse doctor                    # checks that everything is in place
tfcourse lab                       # opens JupyterLab on your own copies of the notebooks
```

Install it with `-e` (editable), as above: the course finds its datasets next to the package.

## Checking your answers

{checking} Submit your notebooks as your instructor says.
"""
_WITHOUT_JUDGES = """\
Every exercise ends with a check cell. In this edition the checks run your answer on the
check's inputs and tell you when it fails, crashes or returns the wrong kind of value; your
instructor keeps the answer key, so for a value they say "→ ... not judged here", and the
grader decides whether it is right."""
_WITH_JUDGES = """\
Every exercise ends with a check cell that runs your answer on inputs of its own and says ✓ and
what it verified, or ✗ and what is wrong and how to fix it."""

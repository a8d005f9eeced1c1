"""Write the student release of whole chapters into a folder (`tfcourse release`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nbformat

from tfcourse.notebooks._release import release


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

"""Write a class of sample submissions to try the grader on: `python -m tfcourse.classroom._sample`.

Student ``k`` answers the first ``k mod (n + 1)`` of a chapter's ``n`` exercises with the reference
solution and leaves the rest as released, so a class covers every score from 0 to full marks.
Usage: ``python -m tfcourse.classroom._sample OUT_DIR NN [--students 20]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from tfcourse._paths import notebooks_dir
from tfcourse.notebooks._release import exercises, nbgrader_metadata, release
from tfcourse.notebooks._structure import BEGIN, END


def sample_class(source: Path, out: Path, *, students: int = 20) -> list[Path]:
    """Write ``out/student01/<notebook>`` ... for `students` students; returns the paths."""
    solved = nbgrader_metadata(nbformat.read(source, as_version=4))
    student = release(solved, chapter=source.name[:2])
    found = exercises(solved)
    written = []
    # by cell id: the release leaves out cells that only verify the solution, so indices shift
    released = {cell.get("id"): index for index, cell in enumerate(student.cells)}
    for k in range(1, students + 1):
        nb = nbformat.reads(nbformat.writes(student), as_version=4)
        for exercise in found[: k % (len(found) + 1)]:
            for index in exercise.answers:
                lines = solved.cells[index].source.split("\n")
                nb.cells[released[solved.cells[index].get("id")]].source = "\n".join(
                    line for line in lines if BEGIN not in line and END not in line
                )
        path = out / f"student{k:02d}" / source.name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and write the class."""
    parser = argparse.ArgumentParser(prog="python -m tfcourse.classroom._sample")
    parser.add_argument("out", type=Path)
    parser.add_argument("chapter", metavar="NN")
    parser.add_argument("--students", type=int, default=20)
    args = parser.parse_args(argv)
    matches = sorted(notebooks_dir().glob(f"{args.chapter}_*.ipynb"))
    if not matches:
        parser.error(f"no notebook for chapter {args.chapter}")
    paths = sample_class(matches[0], args.out, students=args.students)
    print(f"wrote {len(paths)} submissions of {matches[0].name} under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

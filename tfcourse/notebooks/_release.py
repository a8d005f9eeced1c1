"""Make a notebook's student release: solutions stubbed, hidden tests out, nbgrader metadata in.

The release is what nbgrader's `ClearSolutions` and `ClearHiddenTests` would make of the same
source (a test proves it), and it carries nbgrader's cell metadata, so nbgrader can import it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import nbformat

from tfcourse.notebooks._structure import BEGIN, END, _section

STUB = 'raise NotImplementedError("Write your answer here, then run the check below.")'
#: The tag of a cell that verifies the full edition's own solution (an assert that the check
#: passed): the student release leaves it out, so that a wrong answer never stops the notebook.
SOLUTION_ONLY = "solution-only"
#: nbgrader's code stub for this course (`ClearSolutions.code_stub`), before indentation.
CODE_STUB = f"# YOUR CODE HERE\n{STUB}"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
#: Points per exercise: one per star of its heading (★ apply, ★★ combine, ★★★ extend).
POINTS_PER_STAR = 1
_SOLUTION = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*$",
    re.DOTALL | re.MULTILINE,
)
_EXERCISE = re.compile(r"^### Exercise (\d+\.\d+)\s*(★{1,3})\s*(.*)$", re.MULTILINE)
CHECK_CALL = re.compile(r"\b(\w+)\.check_\w+\(")


@dataclass(frozen=True)
class Exercise:
    """One graded exercise of a notebook, found from its `### Exercise NN.M ★ Title` heading.

    Attributes:
        number: The exercise number, for example ``"00.1"``.
        title: The title after the stars.
        points: Points it is worth (one per star).
        task: Index of the markdown cell with the heading.
        answers: Indices of its solution cells (`### BEGIN SOLUTION`).
        checks: Indices of the code cells that call a ``chNN.check_...`` function.
    """

    number: str
    title: str
    points: int
    task: int
    answers: tuple[int, ...]
    checks: tuple[int, ...]

    @property
    def slug(self) -> str:
        """The number as nbgrader allows it in a grade id: ``"00_1"``."""
        return self.number.replace(".", "_")


def exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The graded exercises of a notebook, in order, with the cells that belong to each."""
    section = _section(nb, "Exercises")
    if not section:
        return []
    offset = next(i for i, cell in enumerate(nb.cells) if cell is section[0])
    starts = [
        (offset + i, match)
        for i, cell in enumerate(section)
        if cell.cell_type == "markdown"
        for match in [_EXERCISE.search(cell.source)]
        if match
    ]
    bounds = [i for i, _ in starts] + [offset + len(section)]
    found = []
    for (start, match), stop in zip(starts, bounds[1:], strict=True):
        code = [i for i in range(start, stop) if nb.cells[i].cell_type == "code"]
        found.append(
            Exercise(
                number=match.group(1),
                title=match.group(3).strip(),
                points=len(match.group(2)) * POINTS_PER_STAR,
                task=start,
                answers=tuple(i for i in code if BEGIN in nb.cells[i].source),
                checks=tuple(
                    i
                    for i in code
                    if BEGIN not in nb.cells[i].source and CHECK_CALL.search(nb.cells[i].source)
                ),
            )
        )
    return found


def strip_solutions(source: str) -> str:
    """Replace each BEGIN/END SOLUTION block with an indented `raise NotImplementedError(...)`.

    Raises:
        ValueError: If the markers are unbalanced, which would leak or lose code.
    """
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers ({BEGIN} / {END}) in:\n{source}")
    return _SOLUTION.sub(
        lambda m: f"{m.group('indent')}# YOUR CODE HERE\n{m.group('indent')}{STUB}", source
    )


def strip_hidden_tests(source: str) -> str:
    """Remove each BEGIN/END HIDDEN TESTS block, marker lines included (as nbgrader does).

    Raises:
        ValueError: If the markers are unbalanced, which would leak hidden tests.
    """
    if source.count(BEGIN_HIDDEN[4:]) != source.count(END_HIDDEN[4:]):
        raise ValueError(f"unbalanced hidden-test markers ({BEGIN_HIDDEN}) in:\n{source}")
    kept, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN[4:] in line or END_HIDDEN[4:] in line:
            hidden = BEGIN_HIDDEN[4:] in line
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def nbgrader_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` whose exercise cells carry nbgrader's metadata (schema 3).

    Solution cells become "autograded answer" cells, check cells "autograder tests" cells worth
    the exercise's points (on the first check cell), and task cells read-only.
    """
    nb = copy.deepcopy(nb)
    for exercise in exercises(nb):
        cells = [("task", exercise.task, 0)]
        cells += [("answer", i, 0) for i in exercise.answers]
        cells += [
            ("check", i, exercise.points if n == 0 else 0) for n, i in enumerate(exercise.checks)
        ]
        for kind, index, points in cells:
            position = [i for k, i, _ in cells if k == kind].index(index)
            grade_id = f"{kind}-{exercise.slug}" + (f"-{position + 1}" if position else "")
            meta: dict[str, object] = {
                "grade": kind == "check",
                "grade_id": grade_id,
                "locked": kind != "answer",
                "schema_version": 3,
                "solution": kind == "answer",
            }
            if kind == "check":
                meta["points"] = points
            nb.cells[index].metadata["nbgrader"] = meta
    return nb


def release(nb: nbformat.NotebookNode, *, chapter: str | None = None) -> nbformat.NotebookNode:
    """A copy of `nb` for students: no solutions, no hidden tests, no outputs that give them away.

    Cells tagged `SOLUTION_ONLY` are left out.

    Every code cell that held a solution, and every cell that calls a check, loses its outputs;
    solution cells are shown expanded so the stub is visible. Exercise cells carry nbgrader's
    metadata (see `nbgrader_metadata`); everything else is left as it is. Introduced in
    `00_welcome_and_setup`.
    """
    student = nbgrader_metadata(nb)
    student.cells = [
        cell for cell in student.cells if SOLUTION_ONLY not in cell.metadata.get("tags", [])
    ]
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        if BEGIN_HIDDEN[4:] in cell.source:
            cell.source = strip_hidden_tests(cell.source)
            cell.outputs, cell.execution_count = [], None
        if BEGIN in cell.source:
            cell.source = strip_solutions(cell.source)
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
            cell.outputs, cell.execution_count = [], None
        elif re.search(r"\bcheck_\w+\(", cell.source):
            cell.outputs, cell.execution_count = [], None
    if chapter is not None:
        student.metadata["tfcourse"] = {"chapter": chapter, "release": "student"}
    return student

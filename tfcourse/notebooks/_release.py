"""Make the student release of a notebook: solutions replaced by a stub, their outputs cleared."""

from __future__ import annotations

import copy
import re

import nbformat

from tfcourse.notebooks._structure import BEGIN, END

STUB = 'raise NotImplementedError("Write your answer here, then run the check below.")'
_SOLUTION = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*$",
    re.DOTALL | re.MULTILINE,
)


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


def release(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` for students: no solutions, and no outputs that would give them away.

    Every code cell that held a solution, and every cell that calls a check, loses its outputs;
    solution cells are shown expanded so the stub is visible. Introduced in `00_welcome_and_setup`.
    """
    student = copy.deepcopy(nb)
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        if BEGIN in cell.source:
            cell.source = strip_solutions(cell.source)
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
            cell.outputs, cell.execution_count = [], None
        elif re.search(r"\bcheck_\w+\(", cell.source):
            cell.outputs, cell.execution_count = [], None
    return student

"""Lint a notebook against the chapter template in STYLE.md."""

from __future__ import annotations

import re

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MIN_EXERCISES, MIN_QUESTIONS = 4, 5
_EXERCISE = re.compile(r"^### Exercise (\d+\.\d+)\b.*?(★{1,3})", re.MULTILINE)
_CHECK_CALL = re.compile(r"\bcheck_\w+\(")


def _headings(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    return [
        (index, line[3:].strip())
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]


def _section(nb: nbformat.NotebookNode, title: str) -> list[nbformat.NotebookNode]:
    """The cells from the `## title` heading up to the next `## ` heading."""
    headings = _headings(nb)
    for position, (index, text) in enumerate(headings):
        if text.lower() == title.lower():
            stop = headings[position + 1][0] if position + 1 < len(headings) else len(nb.cells)
            return nb.cells[index:stop]
    return []


def structure_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Everything that keeps a notebook from matching the chapter template; empty when it does.

    Introduced in `00_welcome_and_setup`; a test runs it over every notebook.
    """
    problems = _title_problems(nb) + _overview_problems(nb)
    for title in ("Setup", "Summary", "Exercises", "Questionnaire"):
        if not _section(nb, title):
            problems.append(f"no '## {title}' section")
    setup = "".join(c.source for c in _section(nb, "Setup") if c.cell_type == "code")
    if _section(nb, "Setup") and "tfcourse.setup(" not in setup:
        problems.append("the Setup section never calls tfcourse.setup(...)")
    problems += _exercise_problems(_section(nb, "Exercises"))
    questions = re.findall(
        r"^\d+\. ", "".join(c.source for c in _section(nb, "Questionnaire")), re.M
    )
    if _section(nb, "Questionnaire") and len(questions) < MIN_QUESTIONS:
        problems.append(
            f"the questionnaire has {len(questions)} questions; at least {MIN_QUESTIONS}"
        )
    return problems + execution_problems(nb)


def _title_problems(nb: nbformat.NotebookNode) -> list[str]:
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.startswith("# "):
        return ["the first cell is not a markdown H1 title"]
    lines = [line for line in first.source.splitlines()[1:] if line.strip()]
    return [] if lines else ["the title has no one-line subtitle under it"]


def _overview_problems(nb: nbformat.NotebookNode) -> list[str]:
    text = "".join(c.source for c in _section(nb, "Overview") if c.cell_type == "markdown")
    if not text:
        return ["no '## Overview' section"]
    problems = []
    if "what you will learn" not in text.lower():
        problems.append("the overview has no 'What you will learn' list")
    if "prerequisites" not in text.lower():
        problems.append("the overview names no prerequisites")
    if not re.search(r"\d+\s*min", text):
        problems.append("the overview gives no teaching/exercise minutes")
    return problems


def _exercise_problems(cells: list[nbformat.NotebookNode]) -> list[str]:
    starts = [
        (i, match.group(1))
        for i, cell in enumerate(cells)
        if cell.cell_type == "markdown"
        for match in [_EXERCISE.search(cell.source)]
        if match
    ]
    problems = []
    if len(starts) < MIN_EXERCISES:
        problems.append(
            f"{len(starts)} graded exercises (### Exercise N.M ... ★); at least {MIN_EXERCISES}"
        )
    bounds = [i for i, _ in starts] + [len(cells)]
    for (start, number), stop in zip(starts, bounds[1:], strict=True):
        code = [c for c in cells[start:stop] if c.cell_type == "code"]
        solutions = [c for c in code if BEGIN in c.source and END in c.source]
        if not solutions:
            problems.append(f"exercise {number} has no solution cell with {BEGIN} / {END}")
        elif not all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions):
            problems.append(f"exercise {number}'s solution cell is not collapsed (source_hidden)")
        if not any(_CHECK_CALL.search(c.source) for c in code):
            problems.append(f"exercise {number} has no check_...(...) call")
    return problems


def execution_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Unexecuted code cells, or execution counts that show it was not run top to bottom once."""
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    if any(count is None for count in counts):
        return [f"{counts.count(None)} code cell(s) were never executed"]
    if counts != list(range(1, len(counts) + 1)):
        return ["execution counts are not 1, 2, 3, ...: re-run it with `tfcourse dev execute`"]
    return []

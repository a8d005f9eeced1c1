"""Build the notebook the grader runs: the instructor's notebook with the student's answers in it.

Every cell comes from the instructor's source notebook (hidden tests included), except the
answer cells, which come from the submission, and code cells the student added, which keep their
place. A student's edits to any other cell, check cells included, are not run. Check calls in the
check cells go to private copies of the check modules, loaded fresh from disk just before the
exercises. A two-part check's probe (`tfcourse.exercises._split`) shows its observations in its
check cell, with seeds derived from a secret of this run, and the grader's judges decide on them
in the grader's own process; the results of any one-part check are reported by a last cell with a
one-time key. Whatever the submission prints, writes or redefines, the grade comes from the
grader's own judges and checks.
"""

from __future__ import annotations

import ast
import copy
import importlib
import secrets
from dataclasses import dataclass, field

import nbformat

from tfcourse.notebooks._release import (
    SOLUTION_ONLY,
    STUB,
    Exercise,
    exercises,
    nbgrader_metadata,
    strip_solutions,
)

#: The MIME type of the grader's report, in the output of the last cell.
REPORT_MIME = "application/vnd.tfcourse.grades+json"
_PRIVATE_PACKAGE = "tfcourse.exercises"

_PRELUDE = """\
def _tfcourse_load_checks():
    import importlib, sys, types
    modules, prefix = {modules!r}, {package!r}
    def ours(name):
        return name == prefix or name.startswith(prefix + ".") or name in modules.values()
    saved = {{name: module for name, module in sys.modules.items() if ours(name)}}
    for name in saved:
        del sys.modules[name]
    try:
        private = types.SimpleNamespace(
            **{{alias: importlib.import_module(name) for alias, name in modules.items()}}
        )
        private.framework = importlib.import_module(prefix + "._framework")
        private.split = importlib.import_module(prefix + "._split")
        private.split.grading({seed_base!r})
    finally:
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
        if prefix in saved and "tfcourse" in sys.modules:
            sys.modules["tfcourse"].exercises = saved[prefix]
    return private
{private} = _tfcourse_load_checks()
del _tfcourse_load_checks"""

_REPORT = """\
def _tfcourse_report():
    from IPython.display import display
    private = globals().get({private!r})
    results = None if private is None else [r.to_dict() for r in private.framework.results()]
    display({{{mime!r}: {{"key": {key!r}, "results": results}}}}, raw=True)
_tfcourse_report()"""


@dataclass(frozen=True)
class GradingNotebook:
    """The notebook to run, and what the grader needs to read its outcome.

    Attributes:
        nb: The notebook.
        key: The one-time key the last cell's report must carry.
        exercises: The exercises, as found in the instructor's notebook.
        answered: Exercise numbers whose answer cells the submission had.
        cells: For each cell of `nb`, what it is: ``"answer 00.1"``, ``"check 00.1"``, ``"added"``,
            ``"grader"`` or ``"course"``.
        seed_base: The secret from which the grader derives each two-part check's seeds.
        judged: For each check cell of `nb` that calls two-part checks, their names
            (``"tfcourse.exercises.ch00.check_draw"``): the grader judges what their probes show.
        reported: The check cells that call one-part checks, whose results come from the
            kernel's report.
    """

    nb: nbformat.NotebookNode
    key: str
    exercises: list[Exercise]
    answered: frozenset[str]
    cells: list[str]
    seed_base: str = ""
    judged: dict[int, list[str]] = field(default_factory=dict)
    reported: frozenset[int] = frozenset()


def check_modules(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The modules a notebook's check calls go to: ``{"ch00": "tfcourse.exercises.ch00"}``."""
    aliases: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for name in node.names:
                    aliases[name.asname or name.name] = f"{node.module}.{name.name}"
            elif isinstance(node, ast.Import):
                for name in node.names:
                    if name.asname:
                        aliases[name.asname] = name.name
    called = {
        node.func.value.id
        for index in _check_cells(nb)
        for node in ast.walk(ast.parse(nb.cells[index].source))
        if _is_check_call(node, set(aliases))
    }
    return {alias: aliases[alias] for alias in sorted(called)}


def _check_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [index for exercise in exercises(nb) for index in exercise.checks]


def _is_check_call(node: ast.AST, aliases: set[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in aliases
        and node.func.attr.startswith("check_")
    )


def two_part_calls(source: str, modules: dict[str, str]) -> list[str]:
    """The two-part checks that `source` calls, by name (``"<module>.check_x"``), in order.

    A check is two-part when the grader's own import of its module says so; a module the grader
    cannot import is graded from the kernel's report, as before.
    """
    from tfcourse.exercises._split import TwoPartCheck

    names = []
    for node in sorted(
        (n for n in ast.walk(ast.parse(source)) if _is_check_call(n, set(modules))),
        key=lambda n: (n.lineno, n.col_offset),
    ):
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        assert isinstance(node.func.value, ast.Name)
        try:
            module = importlib.import_module(modules[node.func.value.id])
        except ImportError:
            continue
        if isinstance(getattr(module, node.func.attr, None), TwoPartCheck):
            names.append(f"{module.__name__}.{node.func.attr}")
    return names


def redirect_checks(source: str, aliases: set[str], private: str) -> str:
    """`source` with each ``alias.check_x(...)`` call sent to ``private.alias.check_x(...)``."""
    lines = source.split("\n")
    names = [
        node.func.value
        for node in ast.walk(ast.parse(source))
        if _is_check_call(node, aliases)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
    ]
    for name in sorted(names, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        raw = lines[name.lineno - 1].encode()
        before, after = raw[: name.col_offset], raw[name.end_col_offset or 0 :]
        lines[name.lineno - 1] = (before + f"{private}.{name.id}".encode() + after).decode()
    return "\n".join(lines)


def assemble(official: nbformat.NotebookNode, submission: nbformat.NotebookNode) -> GradingNotebook:
    """The notebook that grades `submission` against the instructor's `official` notebook."""
    official = nbgrader_metadata(official)
    key, seed_base = secrets.token_hex(8), secrets.token_hex(16)
    private = f"_tfcourse_checks_{key}"
    found = exercises(official)
    modules = check_modules(official)
    roles = {i: f"answer {e.number}" for e in found for i in e.answers}
    roles |= {i: f"check {e.number}" for e in found for i in e.checks}
    answers, added = _student_cells(official, submission)
    graded, kinds = nbformat.v4.new_notebook(metadata=copy.deepcopy(official.metadata)), []
    judged: dict[int, list[str]] = {}
    reported: set[int] = set()
    first_task = found[0].task if found else len(official.cells)
    for extra in added.get(None, []):  # cells added above every cell the course has
        graded.cells.append(nbformat.v4.new_code_cell(extra.source))
        kinds.append("added")
    for index, cell in enumerate(official.cells):
        if index == first_task:
            prelude = _PRELUDE.format(
                modules=modules, package=_PRIVATE_PACKAGE, private=private, seed_base=seed_base
            )
            graded.cells.append(nbformat.v4.new_code_cell(prelude))
            kinds.append("grader")
        if SOLUTION_ONLY in cell.metadata.get("tags", []):
            continue  # verifies the official solution; the student release has no such cell
        cell = copy.deepcopy(cell)
        role = roles.get(index, "course")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if role.startswith("answer"):
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                mine = answers.get(grade_id) or answers.get(cell.get("id"))
                cell.source = mine.source if mine is not None else strip_solutions(cell.source)
            elif role.startswith("check"):
                if names := two_part_calls(cell.source, modules):
                    judged[len(graded.cells)] = names
                tree = ast.walk(ast.parse(cell.source))
                if sum(_is_check_call(n, set(modules)) for n in tree) > len(names):
                    reported.add(len(graded.cells))
                cell.source = redirect_checks(cell.source, set(modules), private)
        graded.cells.append(cell)
        kinds.append(role)
        for extra in added.get(cell.get("id"), []):
            graded.cells.append(nbformat.v4.new_code_cell(extra.source))
            kinds.append("added")
    graded.cells.append(
        nbformat.v4.new_code_cell(_REPORT.format(private=private, mime=REPORT_MIME, key=key))
    )
    kinds.append("grader")
    answered = frozenset(
        e.number
        for e in found
        for i in e.answers
        if (official.cells[i].metadata.get("nbgrader", {}).get("grade_id") in answers)
        or official.cells[i].get("id") in answers
    )
    return GradingNotebook(
        graded, key, found, answered, kinds, seed_base, judged, frozenset(reported)
    )


def _student_cells(
    official: nbformat.NotebookNode, submission: nbformat.NotebookNode
) -> tuple[dict[str, nbformat.NotebookNode], dict[str | None, list[nbformat.NotebookNode]]]:
    """The submission's answer cells by grade id (and cell id), and its added code cells by anchor.

    An added cell is a code cell whose id the official notebook lacks; it is anchored to the
    nearest cell above it that the official notebook has (None: before everything).
    """
    answer_ids = {
        key
        for cell in official.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
        for key in (cell.metadata["nbgrader"]["grade_id"], cell.get("id"))
    }
    known_ids = {cell.get("id") for cell in official.cells}
    released = {strip_solutions(c.source) for c in official.cells if c.cell_type == "code"}
    answers: dict[str, nbformat.NotebookNode] = {}
    added: dict[str | None, list[nbformat.NotebookNode]] = {}
    anchor = None
    for cell in submission.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answer_ids or cell.get("id") in answer_ids:
            answers.setdefault(grade_id or cell.get("id"), cell)
            answers.setdefault(cell.get("id"), cell)
        source = cell.get("source", "")
        if cell.get("id") in known_ids:
            anchor = cell.get("id")
        elif (
            cell.get("cell_type") == "code"
            and grade_id is None
            and source.strip()
            and source not in released
        ):
            added.setdefault(anchor, []).append(cell)
    return answers, added


__all__ = ["REPORT_MIME", "STUB", "GradingNotebook", "assemble", "check_modules"]

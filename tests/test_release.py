"""The student release: no solution survives, nbgrader agrees, and it runs to the end.

Every exercise of a released notebook reaches the grader as not attempted rather than crashing.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tfcourse.cli import main
from tfcourse.notebooks import execute, release, strip_solutions
from tfcourse.notebooks._release import (
    CODE_STUB,
    SOLUTION_ONLY,
    STUB,
    exercises,
    nbgrader_metadata,
    strip_hidden_tests,
)
from tfcourse.notebooks._structure import BEGIN, END

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_release_runs_to_the_end_with_one_wrong_answer(path, tmp_path, monkeypatch):
    """A learner's wrong answer gets its ✗ and never stops the notebook; the rest are not attempted.

    The wrong answer is the last exercise whose stub is inside a function: it raises instead. No
    worker process of a course cluster (chapter 08 starts several) outlives the notebook.
    """
    from test_distributed import worker_pids

    before = set(worker_pids())
    source = nbformat.read(path, as_version=4)
    released = release(source)
    wrong = _answer_wrongly(source, released)
    student = tmp_path / path.name
    nbformat.write(released, student)
    log = tmp_path / "grades.jsonl"
    monkeypatch.setenv("TFCOURSE_RESULTS", str(log))

    result = execute(student)

    assert result.ok, result.error
    grades = [json.loads(line) for line in log.read_text().splitlines()]
    exercises = {grade["exercise"] for grade in grades}
    chapter = path.name[:2]
    assert len(exercises) >= 4 and all(e.startswith(f"{chapter}.") for e in exercises)
    assert set(worker_pids()) - before == set()
    last_grade = {grade["exercise"]: grade["status"] for grade in grades}
    assert last_grade.pop(wrong) == "failed"
    assert set(last_grade.values()) == {"not attempted"}, last_grade


def _answer_wrongly(source_nb: nbformat.NotebookNode, nb: nbformat.NotebookNode) -> str:
    """Make the last exercise whose stub sits in a function body raise; return its number.

    The exercises are found in the source (the release has no solution markers left), and their
    answer cells in the release by cell id."""
    by_id = {cell.get("id"): index for index, cell in enumerate(nb.cells)}
    for exercise in reversed(exercises(source_nb)):
        for answer in exercise.answers:
            index = by_id[source_nb.cells[answer].get("id")]
            source = nb.cells[index].source
            indented = re.search(rf"^([ \t]+){re.escape(STUB)}", source, re.MULTILINE)
            if indented:
                wrong = f'{indented.group(1)}raise ValueError("a wrong answer, on purpose")'
                nb.cells[index].source = source.replace(indented.group(0), wrong, 1)
                return exercise.number
    raise AssertionError("no exercise has its stub inside a function")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_assert_on_a_check_result_is_left_out_of_the_student_release(path):
    source = nbformat.read(path, as_version=4)
    asserting = [
        cell.get("id")
        for cell in source.cells
        if cell.cell_type == "code"
        and re.search(r"^assert\b.*\bresult\.(passed|status)", cell.source, re.M)
    ]
    tagged = [
        cell.get("id") for cell in source.cells if SOLUTION_ONLY in cell.metadata.get("tags", [])
    ]
    assert asserting == tagged
    kept = {cell.get("id") for cell in release(source).cells}
    assert not kept & set(tagged)


def _solution_lines(source: str) -> list[str]:
    """The non-blank lines strictly inside BEGIN/END SOLUTION blocks."""
    inside, found = False, []
    for line in source.split("\n"):
        if BEGIN in line or END in line:
            inside = BEGIN in line
        elif inside and line.strip():
            found.append(line.strip())
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_text_survives_the_release(path):
    source = nbformat.read(path, as_version=4)
    student = release(source)
    outside = "\n".join(
        line.strip() for cell in source.cells for line in strip_solutions(cell.source).split("\n")
    )
    secret = {line for cell in source.cells for line in _solution_lines(cell.source)}
    secret -= set(outside.split("\n"))  # lines the notebook also shows elsewhere are no secret
    assert secret, "every solution line is shown elsewhere: the test proves nothing"
    released = {line.strip() for cell in student.cells for line in cell.source.split("\n")}
    assert not secret & released
    assert all(BEGIN not in cell.source and END not in cell.source for cell in student.cells)
    for cell in student.cells:  # nor in outputs: solution and check cells lose theirs
        if cell.cell_type == "code" and (STUB in cell.source or "check_" in cell.source):
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_release_keeps_every_other_cell_intact(path):
    source = nbformat.read(path, as_version=4)
    student = release(source, chapter=path.name[:2])
    source.cells = [c for c in source.cells if SOLUTION_ONLY not in c.metadata.get("tags", [])]
    assert [c.get("id") for c in student.cells] == [c.get("id") for c in source.cells]
    for before, after in zip(source.cells, student.cells, strict=True):
        if BEGIN not in before.source:
            assert after.source == before.source
        if BEGIN not in before.source and "check_" not in before.source:
            assert after.get("outputs") == before.get("outputs")
    assert student.metadata["tfcourse"] == {"chapter": path.name[:2], "release": "student"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_release_carries_nbgrader_metadata_with_a_point_per_star(path):
    source = nbformat.read(path, as_version=4)
    student = release(source)
    marked = [c.metadata["nbgrader"] for c in student.cells if "nbgrader" in c.metadata]
    ids = [meta["grade_id"] for meta in marked]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[\w-]+", i) for i in ids)
    found = exercises(source)
    stars = {e.number: len(re.search(r"★+", source.cells[e.task].source).group()) for e in found}
    assert {e.number: e.points for e in found} == stars
    assert sum(meta.get("points", 0) for meta in marked) == sum(stars.values())
    by_id = {cell.get("id"): cell for cell in student.cells}
    for exercise in found:
        answer = by_id[source.cells[exercise.answers[0]].get("id")].metadata["nbgrader"]
        assert answer["solution"] and not answer["locked"] and not answer["grade"]
        check = by_id[source.cells[exercise.checks[0]].get("id")].metadata["nbgrader"]
        assert check["grade"] and check["locked"] and check["points"] == exercise.points
        assert {"schema_version": 3}.items() <= check.items()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbgrader_makes_the_same_release(path):
    """nbgrader's own ClearSolutions and ClearHiddenTests find the same code as ours."""
    preprocessors = pytest.importorskip("nbgrader.preprocessors")
    source = nbformat.read(path, as_version=4)
    theirs = nbgrader_metadata(source)
    theirs, resources = preprocessors.ClearSolutions(code_stub={"python": CODE_STUB}).preprocess(
        theirs, {}
    )
    theirs, _ = preprocessors.ClearHiddenTests().preprocess(theirs, resources)
    theirs.cells = [c for c in theirs.cells if SOLUTION_ONLY not in c.metadata.get("tags", [])]
    ours = release(source)
    preprocessors.CheckCellMetadata().preprocess(ours, {})  # nbgrader's own metadata validation
    assert [c.source for c in ours.cells] == [c.source for c in theirs.cells]
    assert sum(STUB in c.source for c in ours.cells) == sum(
        len(e.answers) for e in exercises(source)
    )


def test_hidden_tests_leave_the_release_like_nbgrader_removes_them():
    preprocessors = pytest.importorskip("nbgrader.preprocessors")
    from test_grade import toy_chapter

    source = toy_chapter()
    student = release(source)
    text = "\n".join(cell.source for cell in student.cells)
    assert "check_double_negative" not in text and "HIDDEN TESTS" not in text
    assert "ch90.check_double(double)" in text
    theirs, _ = preprocessors.ClearHiddenTests().preprocess(nbgrader_metadata(source), {})
    check = exercises(source)[0].checks[0]
    assert student.cells[check].source == theirs.cells[check].source


def test_strip_hidden_tests_refuses_unbalanced_markers():
    with pytest.raises(ValueError, match="unbalanced hidden-test markers"):
        strip_hidden_tests("check()\n### BEGIN HIDDEN TESTS\nsecret()")


def test_release_command_writes_chosen_chapters_and_dev_release_still_works(tmp_path, capsys):
    assert main(["release", str(tmp_path / "all"), "00"]) == 0
    written = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert written == [NOTEBOOKS[0].name]
    student = nbformat.read(tmp_path / "all" / written[0], as_version=4)
    assert student.metadata["tfcourse"]["chapter"] == "00"
    assert main(["dev", "release", str(NOTEBOOKS[0]), "--out", str(tmp_path / "dev")]) == 0
    assert (tmp_path / "dev" / written[0]).read_bytes() == (
        tmp_path / "all" / written[0]
    ).read_bytes()


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    """The student edition of the whole course, as `tfcourse release --package` writes it."""
    out = tmp_path_factory.mktemp("edition") / "tfcourse-student"
    assert main(["release", str(out), "--package"]) == 0
    return out


def test_the_student_edition_has_no_judge_no_answer_and_no_solution(edition):
    package = edition / "tfcourse"
    assert not (package / "exercises" / "judges").exists()
    assert (Path(__file__).parents[1] / "tfcourse" / "exercises" / "judges").is_dir()
    assert not (edition / "tests").exists() and not (edition / "INSTRUCTORS.md").exists()
    for path in package.rglob("*.py"):
        lines = {line.strip() for line in path.read_text().splitlines()}
        assert BEGIN not in lines and END not in lines, path
    for path in sorted((edition / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(BEGIN in cell.source for cell in nb.cells), path
    assert sorted(p.name for p in (edition / "notebooks").glob("*.ipynb")) == sorted(
        p.name for p in NOTEBOOKS
    )
    assert (edition / "datasets" / "mnist5k").is_dir() and (edition / "pyproject.toml").is_file()
    made = json.loads((edition / "EDITION.json").read_text())
    assert made["edition"] == "student" and "tfcourse/exercises/judges" in made["left_out"]


def test_in_the_student_edition_checks_run_the_answer_and_leave_the_verdict_to_the_grader(
    edition,
):
    """With only the edition on the path: a two-part check probes and says who decides, a wrong
    kind of answer still fails there, and 08.4's answer in the package is gone."""
    code = """
import json, numpy as np
import tfcourse, tfcourse.multiworker as mw
from tfcourse.exercises import ch00
right = ch00.check_count_labels(lambda d: np.bincount([int(y) for _, y in d], minlength=10))
broken = ch00.check_count_labels(lambda d: "ten counts")
try:
    mw.write_dir("/x", "worker", 1)
    answer = "there"
except NotImplementedError as error:
    answer = str(error)
print(json.dumps({"where": tfcourse.__file__, "right": [right.status, right.message],
                  "broken": broken.status, "answer": answer}))
"""
    env = {**os.environ, "PYTHONPATH": str(edition), "TFCOURSE_ROOT": str(edition)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=edition,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["where"].startswith(str(edition)), got
    assert got["right"][0] == "not judged here" and "grader decides" in got["right"][1]
    assert got["broken"] == "failed"
    assert "left out of the student edition" in got["answer"]


def test_the_student_edition_goes_only_into_a_new_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as stopped:
        main(["release", str(tmp_path), "--package"])
    assert stopped.value.code == 2 and "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_practice_edition_keeps_the_judges_so_self_checks_say_right_or_wrong(tmp_path, capsys):
    out = tmp_path / "practice"
    assert main(["release", str(out), "00", "--package", "--with-judges"]) == 0
    assert (out / "tfcourse" / "exercises" / "judges" / "ch00.py").is_file()
    assert [p.name for p in (out / "notebooks").iterdir()] == ["00_welcome_and_setup.ipynb"]
    assert "says ✓" in (out / "README.md").read_text()
    assert (
        "tfcourse/exercises/judges"
        not in json.loads((out / "EDITION.json").read_text())["left_out"]
    )
    with pytest.raises(SystemExit):
        main(["release", str(tmp_path / "x"), "--with-judges"])
    assert "--with-judges goes with --package" in capsys.readouterr().err

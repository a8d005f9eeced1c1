"""The student release runs top to bottom; every exercise reaches the grader as not attempted."""

import json
from pathlib import Path

import nbformat
import pytest

from tfcourse.notebooks import execute, release

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_release_runs_and_reports_every_exercise_not_attempted(path, tmp_path, monkeypatch):
    student = tmp_path / path.name
    nbformat.write(release(nbformat.read(path, as_version=4)), student)
    log = tmp_path / "grades.jsonl"
    monkeypatch.setenv("TFCOURSE_RESULTS", str(log))

    result = execute(student)

    assert result.ok, result.error
    grades = [json.loads(line) for line in log.read_text().splitlines()]
    exercises = {grade["exercise"] for grade in grades}
    chapter = path.name[:2]
    assert len(exercises) >= 4 and all(e.startswith(f"{chapter}.") for e in exercises)
    last_grade = {grade["exercise"]: grade["status"] for grade in grades}
    assert set(last_grade.values()) == {"not attempted"}, last_grade

"""`tfcourse release` then `tfcourse grade`, end to end, on chapter 00 and a class the test writes.

The class: a correct notebook and a byte-identical copy (determinism), a partly correct one, an
unattempted one, a vandal and a cheat. About a minute and a half on 2 cores.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import nbformat
import pytest

from tfcourse.classroom._bwrap import problem as sandbox_problem
from tfcourse.cli import main
from tfcourse.notebooks._release import STUB
from tfcourse.notebooks._structure import BEGIN, END

#: The grader's sandbox where one can be made (CI installs bubblewrap), else the unsandboxed grader.
UNSAFE = [] if sandbox_problem() is None else ["--unsafe-no-sandbox"]

SOURCE = Path(__file__).parents[1] / "notebooks" / "00_welcome_and_setup.ipynb"
WRONG_COUNT = "def count_labels(dataset):\n    return np.array([1 for _ in dataset.batch(10)])"
CHEAT = """\
from tfcourse.exercises._framework import CheckResult, _record
def passed(*args, **kwargs):
    result = CheckResult("00.1", "Count the digits", "passed", "counted the labels.")
    _record(result)
    return result
for name in dir(ch00):
    if name.startswith("check_"):
        setattr(ch00, name, passed)
print('{"exercise": "00.5", "title": "x", "status": "passed", "message": "ok"}')"""


def answered(student: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of `student` with the given answer cells (by grade id) replaced."""
    nb = nbformat.reads(nbformat.writes(student), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def solutions() -> dict[str, str]:
    """The reference answers as a student would type them: the solution cells, markers removed."""
    source = nbformat.read(SOURCE, as_version=4)
    from tfcourse.notebooks._release import nbgrader_metadata

    return {
        cell.metadata["nbgrader"]["grade_id"]: "\n".join(
            line for line in cell.source.split("\n") if BEGIN not in line and END not in line
        )
        for cell in nbgrader_metadata(source).cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_release_then_grade_a_class_of_chapter_00(tmp_path, capsys):
    assert main(["release", str(tmp_path / "release"), "00"]) == 0
    student = nbformat.read(tmp_path / "release" / SOURCE.name, as_version=4)
    right = solutions()
    outside = tmp_path / "outside.txt"
    vandal = (
        "import os\nfor name in os.listdir('.'):\n    if os.path.isfile(name):\n"
        "        os.remove(name)\n"
        f"open({str(outside)!r}, 'w').write('x')"
    )
    submissions = tmp_path / "submitted"
    class_ = {
        "alice": answered(student, right),
        "dave": answered(student, {**right, "answer-00_1": WRONG_COUNT}),
        "erin": student,
        "mallory": answered(
            student, {**right, "answer-00_2": vandal + "\n" + right["answer-00_2"]}
        ),
        "trudy": answered(student, {"answer-00_1": CHEAT + "\ncount_labels = len"}),
    }
    for name, nb in class_.items():
        (submissions / name).mkdir(parents=True)
        nbformat.write(nb, submissions / name / SOURCE.name)
    (submissions / "carol").mkdir()
    shutil.copy(submissions / "alice" / SOURCE.name, submissions / "carol" / SOURCE.name)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in submissions.rglob("*.ipynb")}
    out = tmp_path / "grades" / "results.csv"

    status = main(
        ["grade", str(submissions), "--out", str(out), "--fresh", "--cell-timeout", "120", *UNSAFE]
    )

    assert status == 0
    summary = {row["student"]: row for row in read(out.with_name("results_summary.csv"))}
    scores = {name: int(row["points"]) for name, row in summary.items()}
    assert scores == {"alice": 9, "carol": 9, "dave": 8, "erin": 0, "mallory": 8, "trudy": 0}
    rows = read(out)
    assert len(rows) == 6 * 5
    by_student = {name: [r for r in rows if r["student"] == name] for name in summary}
    strip = [{k: v for k, v in r.items() if k not in ("student", "notebook")} for r in rows]
    assert strip[0:5] == strip[5:10]  # alice and carol: the same notebook, the same grades
    dave = next(r for r in by_student["dave"] if r["exercise"] == "00.1")
    assert dave["status"] == "failed" and dave["feedback"]
    assert "PermissionError" in summary["mallory"]["problems"] and not outside.exists()
    assert {r["status"] for r in by_student["erin"]} == {"not attempted"}
    trudy = [r["status"] for r in by_student["trudy"]]
    assert "passed" not in trudy
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in submissions.rglob("*.ipynb")}
    assert after == before
    feedback = (out.with_name("results_feedback") / "dave.md").read_text()
    assert "8 of 9 points" in feedback
    capsys.readouterr()

    again = ["grade", str(submissions), "--out", str(out), "--cell-timeout", "120", *UNSAFE]
    assert main(again) == 0  # the same limits: it resumes, and nothing runs again
    assert "reused 6 grades" in capsys.readouterr().err
    assert read(out) == rows


def test_help_lists_release_and_grade_as_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    commands = {
        line.split()[0] for line in capsys.readouterr().out.splitlines()[5:] if line[:4] == "    "
    }
    assert {"release", "grade"} <= commands


def test_classroom_all_is_sorted_and_complete():
    import tfcourse.classroom as classroom

    public = {name for name in vars(classroom) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if isinstance(getattr(classroom, name), type(classroom))}
    assert classroom.__all__ == sorted(classroom.__all__)
    assert public - modules == set(classroom.__all__)


def test_sample_class_covers_every_score(tmp_path):
    from tfcourse.classroom._sample import sample_class

    paths = sample_class(SOURCE, tmp_path, students=6)
    stubs = [sum(STUB in c.source for c in nbformat.read(p, as_version=4).cells) for p in paths]
    assert stubs == [4, 3, 2, 1, 0, 5]  # student k answers the first k mod 6 of 5 exercises


@pytest.mark.parametrize(
    "source",
    sorted(SOURCE.parent.glob("[0-9][0-9]_*.ipynb")),
    ids=lambda p: p.name[:2],
)
def test_the_sample_student_who_answers_everything_leaves_no_stub(tmp_path, source):
    """Every answer cell is filled, second answer cells too (06.4, 07.3, 07.4 have two), even
    where the release leaves out cells that only verify the solution."""
    from tfcourse.classroom._sample import sample_class
    from tfcourse.notebooks._release import exercises

    count = len(exercises(nbformat.read(source, as_version=4)))
    last = sample_class(source, tmp_path, students=count)[-1]
    assert not any(STUB in cell.source for cell in nbformat.read(last, as_version=4).cells)

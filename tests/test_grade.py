"""`tfcourse grade` on a toy chapter: correct, partial, hostile and cheating submissions.

One grading run (module fixture) covers every case; the toy chapter's checks live in
`tests/_classroom_checks.py`, so each kernel starts in about a second.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tfcourse.classroom import Limits, companion_paths, default_jobs, grade
from tfcourse.classroom._bwrap import problem as sandbox_problem
from tfcourse.classroom._cli import grade_command, merge_command
from tfcourse.classroom._grade import KERNEL_MEMORY, find_submissions, kernel_threads
from tfcourse.classroom._shard import estimate, outcomes_path, parse_shard, recorded_seconds
from tfcourse.notebooks import release

#: Grade in the sandbox where one can be made (CI installs bubblewrap); tests/test_sandbox.py is
#: skipped, with the reason, where it cannot.
SANDBOX = sandbox_problem() is None

TESTS = Path(__file__).parent
RIGHT = {"90_1": "def double(x):\n    return 2 * x", "90_2": "def add(a, b):\n    return a + b"}
FAKE_PASS = """\
from tfcourse.exercises._framework import CheckResult, _record
import tfcourse.exercises._framework as framework
def fake(*args, **kwargs):
    result = CheckResult("90.1", "Double", "passed", "double(2) is 4.")
    _record(result)
    return result
ch90.check_double = ch90.check_double_negative = ch90.check_add = fake
import _classroom_checks
_classroom_checks.check_add = fake
framework._outcome = lambda *args, **kwargs: ("passed", "faked")
def check_double(answer):
    return fake()"""
FAKE_LINES = """\
import json, os
line = json.dumps({"exercise": "90.1", "title": "Double", "status": "passed", "message": "ok"})
with open(os.environ.get("TFCOURSE_RESULTS", "results.jsonl"), "a") as handle:
    handle.write(line + "\\n")
print(line)
print('TFCOURSE_RESULTS {"exercise": "90.2", "status": "passed"}')
from IPython.display import display
display({"application/vnd.tfcourse.grades+json": {"key": "0" * 16, "results": [
    {"exercise": "90.1", "title": "Double", "status": "passed", "message": "ok"},
    {"exercise": "90.2", "title": "Add", "status": "passed", "message": "ok"}]}}, raw=True)"""


def kernel_path(toy: str) -> str:
    """PYTHONPATH for the toy chapters' kernels: `toy` (their probes) before the grader's own."""
    return os.pathsep.join(filter(None, [toy, os.environ.get("PYTHONPATH", "")]))


def toy_chapter() -> nbformat.NotebookNode:
    """A chapter with two exercises (★ and ★★), a hidden test, and checks in `_classroom_checks`."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    hidden = {"jupyter": {"source_hidden": True}}
    nb = nbformat.v4.new_notebook(
        cells=[
            md("# A toy chapter\nFor the grader's tests."),
            code("import _classroom_checks as ch90"),
            md("## Exercises"),
            md("### Exercise 90.1 ★ Double\nWrite `double(x)`."),
            code(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                metadata=hidden,
            ),
            code(
                "ch90.check_double(double)\n### BEGIN HIDDEN TESTS\n"
                "ch90.check_double_negative(double)\n### END HIDDEN TESTS"
            ),
            md("### Exercise 90.2 ★★ Add\nWrite `add(a, b)`."),
            code(
                "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
                metadata=hidden,
            ),
            code("ch90.check_add(add)"),
            md("## Questionnaire\n1. Why?"),
        ]
    )
    for number, cell in enumerate(nb.cells):
        cell.id = f"toy-{number}"  # stable, as in the course's notebooks
    return nb


def student_copy(
    student: nbformat.NotebookNode,
    answers: dict[str, str] | None = None,
    *,
    checks: dict[str, str] | None = None,
    added: list[str] = (),  # type: ignore[assignment]
    added_at_end: list[str] = (),  # type: ignore[assignment]
) -> nbformat.NotebookNode:
    """`student` with answers (by exercise slug), edited check cells, and cells of its own."""
    nb = nbformat.reads(nbformat.writes(student), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        kind, _, slug = grade_id.partition("-")
        if kind == "answer" and answers and slug in answers:
            cell.source = answers[slug]
        if kind == "check" and checks and slug in checks:
            cell.source = checks[slug]
    for source in reversed(added):
        nb.cells.insert(2, nbformat.v4.new_code_cell(source))
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in added_at_end)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, toy_kernel_path: str) -> Iterator[dict]:
    """Grade thirteen toy submissions once, two kernels at a time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", kernel_path(toy_kernel_path))
        yield _grade_toy_class(tmp_path_factory.mktemp("grading"))


def _grade_toy_class(root: Path) -> dict:
    """Write the toy chapter and its submissions under `root`, grade them, read the reports."""
    source = root / "source" / "90_toy.ipynb"
    source.parent.mkdir()
    nbformat.write(toy_chapter(), source)
    student = release(toy_chapter(), chapter="90")
    outside = root / "outside.txt"
    subs = root / "submissions"
    vandal = (
        "import os, shutil\n"
        "for name in os.listdir('.'):\n"
        "    if os.path.isfile(name):\n"
        "        os.remove(name)\n"
        "try:\n"
        f"    open({str(outside)!r}, 'w').write('pwned')\n"
        "except PermissionError as error:\n"
        "    print(error)\n"
        f"shutil.rmtree({str(subs)!r})"
    )
    loop = "while True:\n    pass\n" + RIGHT["90_1"]
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    wrong_add = "def add(a, b):\n    return a - b"
    cases = {
        "correct": student_copy(student, RIGHT),
        "partly": student_copy(student, {**RIGHT, "90_2": wrong_add}),
        "unattempted": student,
        "hidden": student_copy(student, {**RIGHT, "90_1": "def double(x):\n    return 2 * abs(x)"}),
        "import_error": student_copy(
            student, {**RIGHT, "90_1": "import no_such_module_for_grading\n" + RIGHT["90_1"]}
        ),
        "loop": student_copy(student, {**RIGHT, "90_1": loop}),
        "stubborn": student_copy(student, RIGHT, added=[stubborn]),
        "vandal": student_copy(student, RIGHT, added_at_end=[vandal]),
        "big_output": student_copy(student, RIGHT, added=["print('x' * 100_000_000)"]),
        "cheat_edit": student_copy(
            student,
            {"90_2": wrong_add},
            checks={
                "90_1": 'print("✓ Exercise 90.1 (Double): double(2) is 4.")',
                "90_2": "pass",
            },
        ),
        "cheat_redefine": student_copy(student, {"90_2": wrong_add}, added=[FAKE_PASS]),
        "cheat_lines": student_copy(student, added=[FAKE_LINES], added_at_end=[FAKE_LINES]),
    }
    for name, nb in cases.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / "90_toy.ipynb")
    (subs / "invalid_json").mkdir()
    (subs / "invalid_json" / "90_toy.ipynb").write_text('{"cells": [ this is not JSON')
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.rglob("*.ipynb")}
    out = root / "results.csv"
    start = time.perf_counter()
    status = grade_command(
        subs,
        out,
        sources={"90": source},
        jobs=2,
        timeout=30,
        cell_timeout=10,
        fresh=False,
        sandbox=SANDBOX,
    )
    wall = time.perf_counter() - start
    summary_path, feedback, cache = companion_paths(out)
    return {
        "status": status,
        "wall": wall,
        "root": root,
        "subs": subs,
        "source": source,
        "out": out,
        "before": before,
        "outside": outside,
        "rows": read_csv(out),
        "summary": {r["student"]: r for r in read_csv(summary_path)},
        "feedback": feedback,
        "cache": cache,
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def points(graded: dict, student: str) -> int:
    return int(graded["summary"][student]["points"])


def row(graded: dict, student: str, exercise: str) -> dict:
    return next(r for r in graded["rows"] if r["student"] == student and r["exercise"] == exercise)


def test_grades_come_from_the_checks_with_a_point_per_star(graded):
    assert points(graded, "correct") == 3 and graded["summary"]["correct"]["max_points"] == "3"
    assert points(graded, "unattempted") == 0
    assert {row(graded, "unattempted", e)["status"] for e in ("90.1", "90.2")} == {"not attempted"}
    assert points(graded, "partly") == 1
    partly = row(graded, "partly", "90.2")
    assert partly["status"] == "failed" and "add(2, 3) should be 5, got -1" in partly["feedback"]


def test_csv_has_one_row_per_student_and_exercise_and_feedback_files(graded):
    assert len(graded["rows"]) == 13 * 2
    assert [r["student"] for r in graded["rows"]] == sorted(r["student"] for r in graded["rows"])
    text = (graded["feedback"] / "partly.md").read_text()
    assert "1 of 3 points" in text and "add(2, 3) should be 5, got -1" in text
    assert len(list(graded["feedback"].glob("*.md"))) == 13


def test_a_hidden_test_runs_in_grading_and_can_fail_an_exercise(graded):
    hidden = row(graded, "hidden", "90.1")
    assert hidden["status"] == "failed" and "double(-3) should be -6" in hidden["feedback"]
    assert "double(2) is 4." in hidden["feedback"]  # the visible check passed
    assert points(graded, "hidden") == 2


def test_an_exception_at_import_costs_only_its_exercise(graded):
    assert row(graded, "import_error", "90.1")["status"] == "failed"
    assert points(graded, "import_error") == 2
    assert "ModuleNotFoundError" in graded["summary"]["import_error"]["problems"]


def test_an_endless_loop_is_stopped_at_the_cell_limit_and_the_rest_graded(graded):
    assert row(graded, "loop", "90.1")["status"] == "failed"
    assert points(graded, "loop") == 2
    assert "stopped after 10 s" in graded["summary"]["loop"]["problems"]


def test_a_loop_that_ignores_interrupts_is_recorded_as_timed_out(graded):
    stubborn = graded["summary"]["stubborn"]
    assert "timed out" in stubborn["problems"] and stubborn["not_graded"] == "2"
    assert points(graded, "stubborn") == 0


def test_a_vandal_deletes_only_its_scratch_copy_and_cannot_write_outside(graded):
    assert not graded["outside"].exists()
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in graded["subs"].rglob("*.ipynb")}
    assert after == graded["before"]  # every original is intact, the vandal's own included
    assert points(graded, "vandal") == 3
    assert "PermissionError" in graded["summary"]["vandal"]["problems"]


def test_invalid_json_is_recorded_with_a_reason(graded):
    broken = graded["summary"]["invalid_json"]
    assert "not a valid notebook" in broken["problems"] and broken["not_graded"] == "2"
    assert row(graded, "invalid_json", "90.1")["status"] == "not graded"


def test_a_100_mb_output_is_cut_and_the_notebook_still_graded(graded):
    assert points(graded, "big_output") == 3
    assert "characters of output beyond" in graded["summary"]["big_output"]["problems"]


@pytest.mark.parametrize("cheat", ["cheat_edit", "cheat_redefine", "cheat_lines"])
def test_cheating_gains_no_points(graded, cheat):
    assert points(graded, cheat) == 0
    assert row(graded, cheat, "90.1")["status"] == "not attempted"
    assert row(graded, cheat, "90.2")["status"] in {"failed", "not attempted"}


def test_grading_exits_1_when_a_notebook_could_not_be_graded(graded):
    assert graded["status"] == 1


def test_two_kernels_run_at_a_time_and_never_three(graded):
    windows = [json.loads(entry.read_text())["window"] for entry in graded["cache"].glob("*.json")]
    moments = sorted({start for start, _ in windows} | {end - 1e-3 for _, end in windows})
    running = [sum(start <= t < end for start, end in windows) for t in moments]
    assert max(running) == 2, running


def test_resume_reuses_finished_grades_and_retries_a_timed_out_one(graded, capsys):
    """A time-out says nothing about the submission (the machine may have been busy): it is not
    cached, and the next run grades it again. The others are reused, and the CSV is the same."""
    before = graded["out"].read_bytes()
    grade_command(graded["subs"], graded["out"], sources={"90": graded["source"]}, jobs=2,
                  timeout=30, cell_timeout=10, sandbox=SANDBOX)  # fmt: skip
    err = capsys.readouterr().err
    assert "reused 12 grades" in err and "13/13" in err  # the progress bar reached the end
    assert graded["out"].read_bytes() == before
    timed_out = [r for r in graded["rows"] if r["student"] == "stubborn"]
    assert timed_out and all("timed out" in r["feedback"] for r in timed_out)


def test_an_interrupted_run_resumes_where_it_stopped(
    graded, tmp_path, monkeypatch, toy_kernel_path
):
    monkeypatch.setenv("PYTHONPATH", kernel_path(toy_kernel_path))
    chosen = ("correct", "partly", "unattempted")
    submissions = [s for s in find_submissions(graded["subs"]) if s.student in chosen]
    cache, seen = tmp_path / "cache", []

    def interrupt(outcome, cached):
        seen.append((outcome.student, cached))
        raise KeyboardInterrupt  # Ctrl-C as soon as the first notebook is done

    with pytest.raises(KeyboardInterrupt):
        grade(
            submissions,
            {"90": graded["source"]},
            cache=cache,
            jobs=1,
            progress=interrupt,
            sandbox=SANDBOX,
        )
    assert seen == [("correct", False)] and len(list(cache.glob("*.json"))) == 1

    def record(outcome, cached):
        seen.append((outcome.student, cached))

    outcomes = grade(
        submissions, {"90": graded["source"]}, cache=cache, jobs=1, progress=record, sandbox=SANDBOX
    )
    assert sorted(seen[1:]) == [("correct", True), ("partly", False), ("unattempted", False)]
    assert [o.points for o in outcomes] == [3, 1, 0]


def test_a_change_to_any_check_module_or_judge_changes_the_cache_key(tmp_path):
    """A cached grade is redone when a check or a judge changes (06.4's judge did, 2026-12-07)."""
    from tfcourse.classroom._grade import _checks_digest

    (tmp_path / "judges").mkdir()
    (tmp_path / "ch90.py").write_text("FLOOR = 1.5\n")
    (tmp_path / "judges" / "ch90.py").write_text("def judge(): return 1\n")
    before = _checks_digest(tmp_path)
    assert _checks_digest(tmp_path) == before
    (tmp_path / "judges" / "ch90.py").write_text("def judge(): return 2\n")
    after_judge = _checks_digest(tmp_path)
    (tmp_path / "ch90.py").write_text("FLOOR = 1.2\n")
    assert len({before, after_judge, _checks_digest(tmp_path)}) == 3
    assert _checks_digest() != before  # the course's own modules by default


def test_default_jobs_is_one_kernel_per_core_that_memory_allows(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    memory = Path("/proc/meminfo").read_text()
    available = int(re.search(r"MemAvailable:\s+(\d+)", memory).group(1)) * 1024
    assert default_jobs() == max(1, min(64, available // KERNEL_MEMORY))
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert default_jobs() == 1


def test_each_kernel_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert [kernel_threads(jobs) for jobs in (1, 2, 4, 16, 32)] == [16, 8, 4, 1, 1]


def test_limits_have_sensible_defaults():
    assert Limits().timeout > Limits().cell_timeout > 0


def test_a_class_graded_in_two_shards_and_merged_gives_the_same_csv(graded, tmp_path, capsys):
    """Two processes stand in for two machines; each grades whole students (the grades come from
    the first run's cache: what is tested is the split and the merge)."""
    subs = tmp_path / "submissions"
    shutil.copytree(graded["subs"], subs, ignore=shutil.ignore_patterns("stubborn"))
    outs = {name: tmp_path / name / "results.csv" for name in ("whole", "part1", "part2", "merged")}
    for name in ("whole", "part1", "part2"):
        shutil.copytree(graded["cache"], companion_paths(outs[name])[2])
    source = {"90": graded["source"]}
    kwargs = {"jobs": 2, "timeout": 30, "cell_timeout": 10, "sandbox": SANDBOX}
    grade_command(subs, outs["whole"], sources=source, **kwargs)
    grade_command(subs, outs["part1"], sources=source, part=(1, 2), **kwargs)
    grade_command(subs, outs["part2"], sources=source, part=(2, 2), **kwargs)
    students = [{row["student"] for row in read_csv(outs[p])} for p in ("part1", "part2")]
    assert students[0] and students[1] and not students[0] & students[1]
    assert merge_command(outs["merged"], [outs["part1"], outs["part2"]]) in (0, 1)
    assert outs["merged"].read_bytes() == outs["whole"].read_bytes()
    for index in (0, 1):  # the summary and every feedback file too
        merged, whole = (
            companion_paths(outs["merged"])[index],
            companion_paths(outs["whole"])[index],
        )
        if merged.is_dir():
            assert sorted(p.name for p in merged.iterdir()) == sorted(
                p.name for p in whole.iterdir()
            )
            assert all((whole / p.name).read_bytes() == p.read_bytes() for p in merged.iterdir())
        else:
            assert merged.read_bytes() == whole.read_bytes()
    with pytest.raises(ValueError, match="given twice"):
        merge_command(tmp_path / "twice.csv", [outs["part1"], outs["part1"]])
    shutil.copy(outcomes_path(outs["part1"]), outcomes_path(outs["part2"]))
    with pytest.raises(ValueError, match="graded in both"):
        merge_command(tmp_path / "both.csv", [outs["part1"], outs["part2"]])
    with pytest.raises(ValueError, match=r"has no missing_outcomes\.json"):
        merge_command(tmp_path / "x.csv", [graded["out"].with_name("missing.csv")])
    capsys.readouterr()


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_a_bad_shard_says_what_is_expected(text):
    with pytest.raises(ValueError, match="K/N with 1 <= K <= N"):
        parse_shard(text)


def test_the_estimate_adds_each_notebooks_recorded_run_and_start_over_the_jobs(tmp_path, capsys):
    recorded = {"00": 11.0, "04": 89.0}
    assert estimate(["00", "04", "00"], 2, recorded) == pytest.approx((11 + 89 + 11 + 3 * 4) / 2)
    assert estimate(["99"], 1, recorded) == 89 + 4  # unknown: the slowest recorded chapter
    subs = tmp_path / "subs"
    for student in ("ann", "ben", "cy"):
        (subs / student).mkdir(parents=True)
        (subs / student / "00_welcome_and_setup.ipynb").write_text("{}")
    assert grade_command(subs, tmp_path / "r.csv", sources={}, jobs=1, estimate_only=True) == 0
    out = capsys.readouterr().out
    seconds = recorded_seconds(Path(__file__).parents[1] / "BENCHMARKS.md")["00"]
    assert f"about {3 * (seconds + 4) / 60:.0f} min" in out and "3 of chapter 00" in out
    assert not (tmp_path / "r.csv").exists()  # nothing graded

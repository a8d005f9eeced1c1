"""Write grades: a CSV row per student and exercise, a summary per student, and feedback files."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from tfcourse.classroom._grade import Outcome
from tfcourse.exercises._framework import ERROR, FAILED, NOT_ATTEMPTED, PASSED

ROW_FIELDS = [
    "student", "notebook", "exercise", "title", "points", "max_points", "status", "feedback",
]  # fmt: skip
SUMMARY_FIELDS = [
    "student", "notebook", "points", "max_points", "passed", "failed", "not_attempted",
    "not_graded", "problems",
]  # fmt: skip
_SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "…", ERROR: "⚠"}


def companion_paths(out: Path) -> tuple[Path, Path, Path]:
    """Where the summary CSV, the feedback folder and the cache go, next to `out`."""
    return (
        out.with_name(f"{out.stem}_summary.csv"),
        out.with_name(f"{out.stem}_feedback"),
        out.with_name(f"{out.stem}_cache"),
    )


def write_results(out: Path, outcomes: Sequence[Outcome]) -> None:
    """The results CSV, sorted by student and notebook, one row per exercise."""
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ROW_FIELDS)
        writer.writeheader()
        for outcome in _sorted(outcomes):
            for row in outcome.rows:
                row = {"student": outcome.student, "notebook": outcome.notebook, **row}
                writer.writerow({key: _cell(value) for key, value in row.items()})


def write_summary(path: Path, outcomes: Sequence[Outcome]) -> None:
    """One row per submission: points, counts per status, and its problems."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, SUMMARY_FIELDS)
        writer.writeheader()
        for outcome in _sorted(outcomes):
            statuses = [row["status"] for row in outcome.rows]
            writer.writerow(
                {
                    "student": outcome.student,
                    "notebook": outcome.notebook,
                    "points": outcome.points,
                    "max_points": outcome.max_points,
                    "passed": statuses.count(PASSED),
                    "failed": statuses.count(FAILED) + statuses.count(ERROR),
                    "not_attempted": statuses.count(NOT_ATTEMPTED),
                    "not_graded": len(statuses)
                    - sum(statuses.count(s) for s in (PASSED, FAILED, ERROR, NOT_ATTEMPTED)),
                    "problems": _cell(" | ".join(outcome.problems)),
                }
            )


def _cell(value: object) -> object:
    """A CSV value a spreadsheet shows as text: one that starts like a formula (``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return: a student's message could) gets a leading ``'``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_feedback(folder: Path, outcomes: Sequence[Outcome]) -> list[Path]:
    """One Markdown file per student, to hand back: every notebook, exercise and problem."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[Outcome]] = {}
    for outcome in _sorted(outcomes):
        by_student.setdefault(outcome.student, []).append(outcome)
    written = []
    for student, mine in by_student.items():
        lines = [f"# Feedback for {student}", ""]
        for outcome in mine:
            lines += [
                f"## {outcome.notebook}: {outcome.points} of {outcome.max_points} points",
                "",
                "| exercise | status | points | feedback |",
                "|---|---|---:|---|",
            ]
            for row in outcome.rows:
                symbol = _SYMBOLS.get(row["status"], "–")
                feedback = row["feedback"].replace("|", "\\|")
                lines.append(
                    f"| {row['exercise']} {row['title']} | {symbol} {row['status']} | "
                    f"{row['points']}/{row['max_points']} | {feedback} |"
                )
            if outcome.problems:
                lines += ["", "Problems the grader found:", ""]
                lines += [f"- {problem}" for problem in outcome.problems]
            lines.append("")
        path = folder / f"{_safe(student)}.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        written.append(path)
    return written


def _sorted(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return sorted(outcomes, key=lambda o: (o.student, o.notebook))


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "student"

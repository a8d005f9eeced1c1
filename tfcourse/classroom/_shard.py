"""Grade a class on several machines: split it by student (`--shard K/N`), then merge the parts.

Each shard grades whole students, so that each feedback file comes from one machine. Next to its
results CSV, a shard writes its outcomes as JSON (``<out>_outcomes.json``); `merge` reads them back
and writes the same CSV, summary and feedback files that one run over the whole class writes.
It works with any batch system: Slurm array jobs, Kubernetes indexed Jobs, or several laptops.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from tfcourse.classroom._grade import Outcome, Submission


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as (K, N), with 1 <= K <= N.

    Raises:
        ValueError: If `text` is not of that form.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(
            f"--shard must be K/N with 1 <= K <= N, for example 1/4 for the first of four parts; "
            f"got {text!r}"
        )
    return int(match.group(1)), int(match.group(2))


def shard(submissions: Sequence[Submission], k: int, n: int) -> list[Submission]:
    """The submissions of part `k` of `n`: every n-th student in sorted order, all their notebooks.

    The same submissions folder gives every machine the same split.
    """
    students = sorted({sub.student for sub in submissions})
    mine = {student for index, student in enumerate(students) if index % n == k - 1}
    return [sub for sub in submissions if sub.student in mine]


def outcomes_path(out: Path) -> Path:
    """Where a run writes its outcomes for `merge`: next to its results CSV."""
    return out.with_name(f"{out.stem}_outcomes.json")


def write_outcomes(out: Path, outcomes: Sequence[Outcome]) -> Path:
    """Write `outcomes` as JSON next to the results CSV `out`."""
    path = outcomes_path(out)
    path.write_text(
        json.dumps([outcome.__dict__ for outcome in outcomes], ensure_ascii=False), encoding="utf-8"
    )
    return path


def read_outcomes(results: Sequence[Path]) -> list[Outcome]:
    """The outcomes of every part, checked to share no student.

    Raises:
        ValueError: If a part has no outcomes file, or two parts graded the same student.
    """
    resolved = [Path(result).resolve() for result in results]
    twice = sorted({str(path) for path in resolved if resolved.count(path) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} is given twice: give each part once.")
    outcomes: list[Outcome] = []
    owner: dict[str, Path] = {}
    for result in results:
        path = outcomes_path(result)
        if not path.is_file():
            raise ValueError(
                f"{result} has no {path.name} beside it: give the results CSV that a "
                "`tfcourse grade --shard K/N --out CSV` run wrote."
            )
        for saved in json.loads(path.read_text(encoding="utf-8")):
            outcome = Outcome(**{**saved, "window": tuple(saved.get("window", (0.0, 0.0)))})
            if owner.setdefault(outcome.student, result) != result:
                raise ValueError(
                    f"{outcome.student} was graded in both {owner[outcome.student]} and {result}: "
                    "give each part once, from runs with the same N."
                )
            outcomes.append(outcome)
    return outcomes


#: Seconds a grading kernel needs besides its notebook: the worker, the kernel and TensorFlow.
START_SECONDS = 4.0


def recorded_seconds(benchmarks: Path) -> dict[str, float]:
    """Each chapter's seconds in BENCHMARKS.md's recorded run (`tfcourse run --record`).

    Raises:
        ValueError: If the file has no such table.
    """
    text = benchmarks.read_text(encoding="utf-8")
    start, end = "<!-- notebook-timings:start -->", "<!-- notebook-timings:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{benchmarks} has no recorded run (`tfcourse run --record {benchmarks}`)")
    table = text[text.index(start) : text.index(end)]
    rows = re.findall(r"^\| (\d\d)_\w+\.ipynb \| ok \| ([\d.]+) \|$", table, re.MULTILINE)
    return {chapter: float(seconds) for chapter, seconds in rows}


def estimate(chapters: Sequence[str | None], jobs: int, recorded: dict[str, float]) -> float:
    """Seconds to grade notebooks of these chapters, `jobs` at once, from the recorded run on an
    idle 2-core machine. A chapter with no figure counts as the slowest recorded one."""
    slowest = max(recorded.values(), default=60.0)
    total = sum(recorded.get(chapter or "", slowest) + START_SECONDS for chapter in chapters)
    return total / max(1, jobs)

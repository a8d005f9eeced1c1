"""`tfcourse grade`: find the submissions, grade them with a progress bar, write the reports."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from tqdm import tqdm

from tfcourse.classroom._bwrap import problem as sandbox_problem
from tfcourse.classroom._grade import (
    Limits,
    Outcome,
    Submission,
    chapter_of,
    default_jobs,
    find_submissions,
    grade,
)
from tfcourse.classroom._report import (
    companion_paths,
    write_feedback,
    write_results,
    write_summary,
)
from tfcourse.classroom._shard import (
    estimate,
    read_outcomes,
    recorded_seconds,
    shard,
    write_outcomes,
)


def _warn_if_changed(folder: Path, before: dict[str, str]) -> None:
    """Say so if an original changed while it was graded (the grader never writes them)."""
    for name, digest in before.items():
        path = folder / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            print(f"warning: {path} changed while it was graded", file=sys.stderr)


def _print_scores(outcomes: list[Outcome]) -> None:
    for outcome in sorted(outcomes, key=lambda o: (o.student, o.notebook)):
        flag = f"  ({outcome.problems[0]})" if outcome.problems else ""
        score = f"{outcome.points}/{outcome.max_points}"
        print(f"{outcome.student:20} {outcome.notebook:40} {score}{flag}")


def grade_command(
    folder: Path,
    out: Path,
    *,
    sources: dict[str, Path],
    jobs: int | None = None,
    timeout: int = 900,
    cell_timeout: int = 300,
    chapter: str | None = None,
    fresh: bool = False,
    sandbox: bool = True,
    part: tuple[int, int] | None = None,
    estimate_only: bool = False,
) -> int:
    """Grade every notebook under `folder` and write `out`, its summary and the feedback files.

    Returns 0, or 1 when a submission could not be graded (its rows say why).
    """
    if sandbox and not estimate_only and (why := sandbox_problem()) is not None:
        print(
            f"tfcourse grade: {why} To grade without it, pass --unsafe-no-sandbox (a submission "
            "can then read other files and reach the network: only for code you trust).",
            file=sys.stderr,
        )
        return 2
    if not sandbox:
        print(
            "warning: grading without the sandbox (--unsafe-no-sandbox): submissions can read "
            "this user's files and reach the network",
            file=sys.stderr,
        )
    submissions = find_submissions(folder)
    if not submissions:
        print(f"no notebooks (*.ipynb) under {folder}", file=sys.stderr)
        return 1
    if estimate_only:
        return _print_estimate(submissions, jobs or default_jobs(), chapter)
    if part is not None:
        submissions = shard(submissions, *part)
        print(f"part {part[0]} of {part[1]}: {len(submissions)} notebooks", file=sys.stderr)
        if not submissions:
            print("no student falls in this part; nothing to grade", file=sys.stderr)
    before = {sub.name: sub.digest for sub in submissions}
    summary, feedback, cache = companion_paths(out)
    jobs = min(jobs or default_jobs(), len(submissions))
    plural = "s" if len(submissions) != 1 else ""
    print(
        f"grading {len(submissions)} notebook{plural}, {jobs} at a time; finished grades go to "
        f"{cache}{' (not reused: --fresh)' if fresh else ''}",
        file=sys.stderr,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    reused = []
    with tqdm(total=len(submissions), unit="notebook", file=sys.stderr) as bar:

        def advance(outcome: Outcome, cached: bool) -> None:
            reused.extend([outcome.notebook] if cached else [])
            bar.set_postfix_str(f"{outcome.student} {outcome.points}/{outcome.max_points}")
            bar.update()

        outcomes = grade(
            submissions,
            sources,
            cache=cache,
            reuse=not fresh,
            limits=Limits(timeout=timeout, cell_timeout=cell_timeout),
            jobs=jobs,
            chapter=chapter,
            progress=advance,
            sandbox=sandbox,
        )
    _warn_if_changed(folder, before)
    write_results(out, outcomes)
    write_summary(summary, outcomes)
    write_feedback(feedback, outcomes)
    write_outcomes(out, outcomes)
    if reused:
        print(f"reused {len(reused)} grades from an earlier run", file=sys.stderr)
    print(f"wrote {out}, {summary} and {feedback}/ ({len(outcomes)} notebooks)")
    _print_scores(outcomes)
    ungraded = any(row["status"] == "not graded" for o in outcomes for row in o.rows)
    return 1 if ungraded else 0


def merge_command(out: Path, parts: list[Path]) -> int:
    """Merge the results of `tfcourse grade --shard K/N` runs into one CSV, summary and feedback.

    Returns 0, or 1 when a submission could not be graded (its rows say why).
    """
    outcomes = read_outcomes(parts)
    summary, feedback, _ = companion_paths(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, outcomes)
    write_summary(summary, outcomes)
    write_feedback(feedback, outcomes)
    write_outcomes(out, outcomes)
    print(
        f"merged {len(parts)} parts: {out}, {summary} and {feedback}/ ({len(outcomes)} notebooks)"
    )
    ungraded = any(row["status"] == "not graded" for o in outcomes for row in o.rows)
    return 1 if ungraded else 0


def _print_estimate(submissions: list[Submission], jobs: int, chapter: str | None) -> int:
    """Print how long grading `submissions` takes, from BENCHMARKS.md's recorded run."""
    from tfcourse import _paths

    benchmarks = _paths.repo_root() / "BENCHMARKS.md"
    try:
        recorded = recorded_seconds(benchmarks)
    except (OSError, ValueError) as error:
        print(f"no estimate: {error}", file=sys.stderr)
        return 1
    chapters = [chapter_of(sub, None) or chapter for sub in submissions]
    seconds = estimate(chapters, jobs, recorded)
    counts = {c: chapters.count(c) for c in sorted(set(chapters), key=str)}
    listed = ", ".join(f"{n} of chapter {c or '?'}" for c, n in counts.items())
    print(
        f"{len(submissions)} notebooks ({listed}), {jobs} at a time: about {seconds / 60:.0f} min "
        f"on idle cores like those of BENCHMARKS.md's recorded run (a busy machine, or submissions "
        "that run into their time limits, take longer)"
    )
    return 0

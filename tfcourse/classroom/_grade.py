"""Grade a folder of submitted notebooks: each in its own fenced kernel, two at a time, resumable.

`tfcourse grade SUBMISSIONS_DIR --out results.csv` calls `grade`. Each submission runs in a scratch
copy (the original is read once and never written), in a worker process with a time limit, and
its grade comes only from the grader's own run of the checks (see `_assemble`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from tfcourse.classroom import _bwrap
from tfcourse.classroom._assemble import GradingNotebook, assemble
from tfcourse.exercises._framework import ERROR, FAILED, NOT_ATTEMPTED, PASSED

#: Bump when a change to the grader could change a grade: cached grades are then redone.
GRADER_VERSION = "2"  # 2: the judges (exercises/judges/) are part of the cache key
#: Memory one grading kernel may need (TensorFlow, a chapter's data and models).
KERNEL_MEMORY = 3 * 2**30
NOT_GRADED = "not graded"
_STATUS_ORDER = (ERROR, FAILED, NOT_ATTEMPTED, NOT_GRADED, PASSED)
#: Workers running now, and whether the run is stopping (Ctrl-C): their grades must not be cached.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_STOPPING = threading.Event()
#: Held while the grader imports check modules or runs judges: each kernel's grading has a thread
#: of its own, and two threads importing TensorFlow at once break its import ("partially
#: initialized module"), which a first run of 02.1's judge beside another one showed.
_SERIAL = threading.RLock()


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine, and grading without one was not asked for."""


class _Stopped(Exception):
    """A worker was killed because the whole grading run is stopping."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    Attributes:
        timeout: Seconds for the whole notebook.
        cell_timeout: Seconds for one cell; a cell over it is interrupted and the rest still runs.
        output_limit: Characters of output kept in all; more is dropped and reported.
    """

    timeout: int = 900
    cell_timeout: int = 300
    output_limit: int = 1_000_000


@dataclass(frozen=True)
class _Setting:
    """How this run grades: the font cache, the sandbox on or off, TensorFlow threads per kernel."""

    fonts: Path
    sandbox: bool
    threads: int


@dataclass
class Submission:
    """One submitted notebook, read once into memory.

    Attributes:
        student: The student, from the first folder under the submissions folder (or the file name).
        name: The path under the submissions folder.
        data: The file's bytes.
    """

    student: str
    name: str
    data: bytes

    @property
    def digest(self) -> str:
        """The SHA-256 of the file."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Outcome:
    """The grade of one submission.

    Attributes:
        student: The student.
        notebook: The submission's path under the submissions folder.
        rows: One dict per exercise: exercise, title, points, max_points, status, feedback.
        problems: What went wrong with the submission as a whole, for the instructor and student.
        seconds: How long its notebook ran.
        window: When its grading started and ended (Unix time), worker and kernel start included.
    """

    student: str
    notebook: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    window: tuple[float, float] = (0.0, 0.0)

    @property
    def points(self) -> int:
        """Points earned."""
        return sum(row["points"] for row in self.rows)

    @property
    def max_points(self) -> int:
        """Points possible."""
        return sum(row["max_points"] for row in self.rows)


def find_submissions(folder: Path) -> list[Submission]:
    """Every ``*.ipynb`` under `folder` (checkpoints skipped), sorted by path.

    ``folder/alice/00_welcome_and_setup.ipynb`` is Alice's; so is ``folder/alice.ipynb``.
    """
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        student = relative.parts[0] if len(relative.parts) > 1 else path.stem
        found.append(Submission(student, relative.as_posix(), path.read_bytes()))
    return found


def default_jobs() -> int:
    """Kernels to run at once: one per core, and only as many as free memory holds."""
    available = KERNEL_MEMORY * 2
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(re.search(r"MemAvailable:\s+(\d+)", meminfo).group(1)) * 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return max(1, min(os.cpu_count() or 1, available // KERNEL_MEMORY))


def kernel_threads(jobs: int) -> int:
    """TensorFlow threads per kernel so that `jobs` kernels at once share the cores, not fight."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def chapter_of(submission: Submission, nb: nbformat.NotebookNode | None) -> str | None:
    """The chapter a submission belongs to: from the release's metadata, else its file name."""
    if nb is not None:
        chapter = nb.metadata.get("tfcourse", {}).get("chapter")
        if isinstance(chapter, str) and re.fullmatch(r"\d\d", chapter):
            return chapter
    match = re.match(r"(\d\d)_", Path(submission.name).name)
    return match.group(1) if match else None


def grade(
    submissions: Sequence[Submission],
    sources: dict[str, Path],
    *,
    cache: Path | None = None,
    reuse: bool = True,
    limits: Limits | None = None,
    jobs: int | None = None,
    chapter: str | None = None,
    progress: Callable[[Outcome, bool], None] | None = None,
    sandbox: bool = True,
) -> list[Outcome]:
    """Grade `submissions` against the instructor's notebooks `sources` (chapter -> path).

    Args:
        submissions: What `find_submissions` found.
        sources: The solution notebook of each chapter.
        cache: A folder of finished grades, written as each submission finishes. None: none.
        reuse: Take a submission's grade from `cache` when it was graded before with the same
            file, the same source notebook and the same limits, instead of running it again.
        limits: Time and output limits per submission.
        jobs: Kernels at once (default: `default_jobs`).
        chapter: The chapter of submissions whose metadata and file name do not say.
        progress: Called after each submission with its outcome and whether it came from `cache`.
        sandbox: Run each submission in the Linux sandbox of `tfcourse.classroom._bwrap`. False
            (``--unsafe-no-sandbox``) runs it with the write fence alone, as the user who grades.

    Returns:
        One outcome per submission, in the order given.

    Raises:
        SandboxUnavailable: If `sandbox` is on and no sandbox can be made on this machine.
    """
    if sandbox and (why := _bwrap.problem()) is not None:
        raise SandboxUnavailable(
            f"{why} To grade without it, pass --unsafe-no-sandbox (a submission can then read "
            "other files and reach the network: only for code you trust)."
        )
    limits = limits or Limits()
    outcomes: list[Outcome | None] = [None] * len(submissions)
    jobs = jobs or default_jobs()
    setting = _Setting(matplotlib_cache(), sandbox, kernel_threads(jobs))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(_grade_cached, sub, sources, (cache, reuse), limits, chapter, setting): i
            for i, sub in enumerate(submissions)
        }
        try:
            for future in as_completed(futures):
                outcome, cached = future.result()
                outcomes[futures[future]] = outcome
                if progress:
                    progress(outcome, cached)
        except BaseException:  # Ctrl-C or a failing callback: stop now, keep what is finished
            _stop(pool)
            raise
        finally:
            _STOPPING.clear()
    return [outcome for outcome in outcomes if outcome is not None]


def matplotlib_cache() -> Path:
    """A matplotlib config folder with its font cache built, for grading kernels to read.

    A kernel may not write outside its scratch folder, so without it each kernel would rebuild
    the cache in a temporary folder (seconds per notebook).
    """
    user = getattr(os, "getuid", lambda: "user")()  # Windows has no user ids
    folder = Path(tempfile.gettempdir()) / f"tfcourse-grader-matplotlib-{user}"
    if not list(folder.glob("fontlist-*.json")):
        folder.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-c", "import matplotlib.font_manager"],
            env={**os.environ, "MPLCONFIGDIR": str(folder)},
            check=False,
            capture_output=True,
        )
    return folder


def _stop(pool: ThreadPoolExecutor) -> None:
    """Cancel the submissions not started yet and kill the workers running now."""
    _STOPPING.set()
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in list(_RUNNING):
        with contextlib.suppress(OSError):
            os.killpg(worker.pid, signal.SIGKILL)
    pool.shutdown(wait=True)


def _grade_cached(
    sub: Submission,
    sources: dict[str, Path],
    store: tuple[Path | None, bool],
    limits: Limits,
    chapter: str | None,
    setting: _Setting,
) -> tuple[Outcome, bool]:
    cache, reuse = store
    nb, problem = _parse(sub)
    chapter = chapter_of(sub, nb) or chapter
    source = sources.get(chapter or "")
    parts = [GRADER_VERSION, sub.digest, json.dumps(limits.__dict__, sort_keys=True)]
    parts += [f"sandbox={setting.sandbox}", _checks_digest()]
    if source is not None:
        parts.append(hashlib.sha256(source.read_bytes()).hexdigest())
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
    entry = cache / f"{key}.json" if cache else None
    if entry is not None and reuse and entry.is_file():
        saved = json.loads(entry.read_text(encoding="utf-8"))
        return Outcome(sub.student, sub.name, **saved), True
    outcome = Outcome(sub.student, sub.name)
    started = time.time()
    if source is None:
        outcome.problems.append(
            f"no chapter found for this notebook (its name should start with NN_, "
            f"for one of {', '.join(sorted(sources))})"
        )
    elif problem is not None or nb is None:
        outcome.problems.append(problem or "not a notebook")
        _not_graded(outcome, nbformat.read(source, as_version=4), problem or "")
    else:
        _run(sub, nb, nbformat.read(source, as_version=4), limits, outcome, setting)
    outcome.window = (started, time.time())
    if entry is not None and not _transient(outcome):
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(".tmp")
        saved = {k: v for k, v in outcome.__dict__.items() if k not in ("student", "notebook")}
        tmp.write_text(json.dumps(saved, ensure_ascii=False), encoding="utf-8")
        tmp.replace(entry)
    return outcome, False


def _checks_digest(exercises: Path | None = None) -> str:
    """What a grade also depends on: the check modules and their judges (every `.py` under
    `tfcourse/exercises/`, or under `exercises`), TensorFlow's and Keras's versions."""
    from importlib import metadata

    exercises = exercises or Path(__file__).parents[1] / "exercises"
    digest = hashlib.sha256()
    for path in sorted(exercises.rglob("*.py")):
        name = path.relative_to(exercises).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes())
    for package in ("tensorflow", "keras"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()


#: Problems that say nothing about the submission (the machine was busy, a kernel was lost): a grade
#: with one of them is not cached, so that grading again retries it.
_TRANSIENT = ("timed out", "the kernel died", "the grader's worker stopped", "could not be run")


def _transient(outcome: Outcome) -> bool:
    return any(marker in problem for problem in outcome.problems for marker in _TRANSIENT)


def _parse(sub: Submission) -> tuple[nbformat.NotebookNode | None, str | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old or slightly off notebooks still get graded
            return nbformat.reads(sub.data.decode("utf-8"), as_version=4), None
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not UTF-8 text"
    except Exception as error:  # nbformat raises JSON, validation and version errors alike
        reason = " ".join(str(error).split())[:160]
        return None, f"not a valid notebook (invalid JSON or notebook format: {reason})"


def _not_graded(outcome: Outcome, official: nbformat.NotebookNode, reason: str) -> None:
    from tfcourse.notebooks._release import exercises

    for exercise in exercises(official):
        outcome.rows.append(_row(exercise, NOT_GRADED, 0, f"not graded: {reason}"))


def _row(exercise: Any, status: str, points: int, feedback: str) -> dict[str, Any]:
    return {
        "exercise": exercise.number,
        "title": exercise.title,
        "points": points,
        "max_points": exercise.points,
        "status": status,
        "feedback": feedback,
    }


def _run(
    sub: Submission,
    nb: nbformat.NotebookNode,
    official: nbformat.NotebookNode,
    limits: Limits,
    outcome: Outcome,
    setting: _Setting,
) -> None:
    with _SERIAL:
        graded = assemble(official, nb)
    fonts = setting.fonts
    job = {
        "notebook": nbformat.writes(graded.nb),
        "submission": {
            "name": Path(sub.name).name,
            "data": base64.b64encode(sub.data).decode("ascii"),
        },
        "key": graded.key,
        "probe_cells": sorted(graded.judged),
        "matplotlib_dir": str(fonts),
        "threads": setting.threads,
        **limits.__dict__,
    }
    private = Path(tempfile.mkdtemp(prefix="tfcourse-grade-"))
    scratch = None if setting.sandbox else Path(tempfile.mkdtemp(prefix="tfcourse-scratch-"))
    try:
        job["scratch"] = _bwrap.SCRATCH if scratch is None else str(scratch)
        result = _work(job, private, scratch, limits, fonts)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    _score(graded, result, outcome, limits)


#: The grader's environment variables a sandboxed kernel gets (by prefix); nothing else passes.
_PASSED = (
    "PATH",
    "LANG",
    "LC_",
    "TZ",
    "TF_",
    "OMP_",
    "KMP_",
    "ONEDNN_",
    "MKL_",
    "OPENBLAS_",
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "TFCOURSE_",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_",
    "VIRTUAL_ENV",
)


def _sandbox_env(fonts: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(_PASSED) and name != "TFCOURSE_RESULTS"
    }
    return {**env, "HOME": _bwrap.SCRATCH, "MPLCONFIGDIR": str(fonts)}


def _work(
    job: dict[str, Any], private: Path, scratch: Path | None, limits: Limits, fonts: Path
) -> dict[str, Any]:
    """Run the worker (in the sandbox unless `scratch` is given); if it outlives the notebook's
    limit by a minute, kill it and everything it started."""
    argv = [sys.executable, "-m", "tfcourse.classroom._worker"]
    box = _bwrap.Box(cpu_seconds=max(60, limits.timeout * (os.cpu_count() or 1)))
    read, write = os.pipe()
    job["result_fd"] = write
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read, chunks), daemon=True)
    reader.start()
    with open(private / "worker.log", "wb") as log:
        try:
            worker = subprocess.Popen(
                argv
                if scratch
                else _bwrap.command(argv, box, env=_sandbox_env(fonts), read_only=[fonts]),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                start_new_session=True,
                pass_fds=(write,),
                preexec_fn=None if scratch else lambda: _bwrap.limit(box),
            )
        finally:
            os.close(write)
        _RUNNING.add(worker)
        try:
            worker.communicate(json.dumps(job).encode(), timeout=limits.timeout + 60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        finally:
            _RUNNING.discard(worker)
            if scratch is not None:
                _kill_fenced(scratch)
    reader.join(timeout=30)
    if _STOPPING.is_set():
        raise _Stopped
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        result = json.loads(b"".join(chunks).decode("utf-8"))
        if isinstance(result, dict):
            return result
    tail = (private / "worker.log").read_text(errors="replace").strip().splitlines()[-1:]
    problem = f"the grader's worker stopped ({worker.returncode}): {' '.join(tail)[:200]}"
    if worker.returncode == -signal.SIGKILL:
        problem = f"did not finish within the grader's limit of {limits.timeout} s (timed out)"
    return {"problem": problem, "report": None, "errors": [], "dropped": 0, "seconds": 0.0}


#: The most bytes of a worker's result the grader keeps (what is past it is read and dropped).
_MAX_RESULT = 256 * 2**20


def _drain(fd: int, chunks: list[bytes]) -> None:
    """Read the worker's result pipe to its end (a full pipe would block the worker), keeping at
    most `_MAX_RESULT` bytes: a result cut there does not parse, and is reported as lost."""
    kept = 0
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            if kept + len(chunk) <= _MAX_RESULT:
                chunks.append(chunk)
            kept += len(chunk)


def _kill_fenced(scratch: Path) -> None:
    """Kill any process still fenced into `scratch` (a kernel or its children), on Linux."""
    marker = f"TFCOURSE_SANDBOX={scratch}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _score(
    graded: GradingNotebook, result: dict[str, Any], outcome: Outcome, limits: Limits
) -> None:
    outcome.seconds = float(result.get("seconds", 0.0))
    if result.get("problem"):
        outcome.problems.append(result["problem"])
    if result.get("dropped"):
        outcome.problems.append(
            f"printed {result['dropped']:,} characters of output beyond the "
            f"{limits.output_limit:,} the grader keeps; the rest was dropped"
        )
    errors = result.get("errors", [])
    for error in errors[:5]:
        role = graded.cells[error["cell"]] if error["cell"] < len(graded.cells) else "course"
        where = {"course": "a course cell", "added": "a cell you added", "grader": "the grader"}
        place = where.get(role, f"the {role.split()[0]} cell of exercise {role.split()[-1]}")
        if error["ename"] == "KeyboardInterrupt":
            outcome.problems.append(
                f"{place} was stopped after {limits.cell_timeout} s, the grader's limit per cell "
                "(an endless loop?)"
            )
        else:
            outcome.problems.append(f"{place} raised {error['ename']}: {error['evalue'][:200]}")
    if len(errors) > 5:
        outcome.problems.append(f"... and {len(errors) - 5} more cells raised an error")
    report = result.get("report")
    with _SERIAL:
        judged = _judge(graded, result.get("probes"), result.get("problem"))
    reason = result.get("problem") or "the grader's checks did not run to the end"
    for exercise in graded.exercises:
        cells = [i for i, role in enumerate(graded.cells) if role == f"check {exercise.number}"]
        if report is None and (any(cell in graded.reported for cell in cells) or not cells):
            outcome.rows.append(_row(exercise, NOT_GRADED, 0, f"not graded: {reason}"))
            continue
        reported = any(cell in graded.reported for cell in cells)
        found = [
            r
            for r in (report or [])
            if reported
            if isinstance(r, dict) and r.get("exercise") == exercise.number
        ]
        found += [r for cell in cells for r in judged.get(cell, [])]
        failed_cells = [e for e in errors if graded.cells[e["cell"]] == f"check {exercise.number}"]
        outcome.rows.append(_exercise_row(exercise, found, failed_cells, result.get("problem")))


def _judge(
    graded: GradingNotebook, probes: Any, problem: str | None
) -> dict[int, list[dict[str, str]]]:
    """The judges' verdicts on what the probes of each check cell showed, by cell.

    Each two-part check a cell calls must have shown at least one observation there, and every
    observation in the cell is judged: the worst verdict counts, so extra forged outputs only
    lose points. Seeds are the ones this run handed out (`_split.seed_for`).
    """
    from tfcourse.exercises import _split

    shown: dict[int, list[Any]] = {}
    for probe in probes if isinstance(probes, list) else []:
        if isinstance(probe, dict) and probe.get("cell") in graded.judged:
            shown.setdefault(int(probe["cell"]), []).append(probe.get("bundle"))
    verdicts: dict[int, list[dict[str, str]]] = {}
    for cell, names in graded.judged.items():
        checks = {name: _two_part_check(name) for name in names}
        rows = verdicts.setdefault(cell, [])
        counted: dict[str, int] = {}
        for bundle in shown.get(cell, []):
            name = bundle.get("check") if isinstance(bundle, dict) else None
            if not isinstance(name, str) or name not in checks:
                rows.append({"status": FAILED, "message": "an output that no check here makes"})
                continue
            counted[name] = counted.get(name, 0) + 1
            if counted[name] > _split.MAX_CALLS:  # each is judged: their number is bounded
                rows.append({"status": FAILED, "message": f"more than {_split.MAX_CALLS} outputs"})
                continue
            seeds = {_split.seed_for(graded.seed_base, name, n) for n in range(_split.MAX_CALLS)}
            try:
                status, message = checks[name].judge_bundle(bundle, seeds)
            except Exception as error:  # forged data must cost its own grade, never the run's
                status, message = FAILED, f"malformed output ({type(error).__name__})"
            rows.append({"status": status, "message": message})
        for name in checks:
            if not any(isinstance(b, dict) and b.get("check") == name for b in shown.get(cell, [])):
                short = name.rsplit(".", 1)[-1]
                if problem:  # the run stopped before the check: as a one-part check would be
                    rows.append({"status": NOT_GRADED, "message": f"not graded: {problem}"})
                else:
                    rows.append({"status": FAILED, "message": f"{short} showed no result"})
    return verdicts


def _two_part_check(name: str) -> Any:
    import importlib

    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _exercise_row(
    exercise: Any, found: list[dict[str, Any]], failed_cells: list[dict[str, Any]], problem: Any
) -> dict[str, Any]:
    messages = [str(r.get("message", "")) for r in found]
    statuses = {str(r.get("status")) for r in found}
    for error in failed_cells:
        statuses.add(FAILED)
        messages.append(f"a test of the grader failed ({error['ename']}: {error['evalue'][:200]})")
    if not found and not failed_cells:
        why = problem or "its check did not run (an earlier error or a time limit stopped it)"
        return _row(exercise, FAILED, 0, f"no result: {why}")
    status = next((s for s in _STATUS_ORDER if s in statuses), FAILED)
    points = exercise.points if status == PASSED else 0
    unique = list(dict.fromkeys(message for message in messages if message))
    return _row(exercise, status, points, " | ".join(unique))

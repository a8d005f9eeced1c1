"""Run notebooks on a busy machine: busy-loop processes, and repeated nbval runs beside them.

A learner's laptop is rarely idle, and a timing assert that passes on an idle machine can fail on a
busy one. `tfcourse run --busy-cores` and `tfcourse dev stress` use this module (for authors).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfcourse._paths import repo_root

#: One process's busy loop: `while True: pass`, which also ends itself when its parent (whose pid
#: is its argument) has died, so that a killed `tfcourse` never leaves a core spinning.
BUSY_LOOP = (
    "import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n    for _ in range(1_000_000): pass\n"
)


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run `count` busy-loop processes for the block, and stop them however the block ends.

    Args:
        count: How many processes (each keeps about one core busy); 0 starts none.

    Yields:
        The processes.

    Raises:
        ValueError: If `count` is negative, or more than the machine's cores.
    """
    cores = os.cpu_count() or 1
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= cores:
        raise ValueError(f"busy cores must be a whole number from 0 to {cores}; got {count!r}")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", BUSY_LOOP, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C reaches tfcourse, which stops them itself
                )
            )
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def stress_command(path: Path) -> list[str]:
    """The pytest command that runs one notebook under nbval, and nothing else.

    The repository's pytest configuration adds the nbval options (sanitising, the current
    environment's kernel, the cell timeout); naming only the notebook leaves the unit tests out.
    """
    return [sys.executable, "-m", "pytest", "--nbval", "-q", "--no-header", str(path)]


@dataclass(frozen=True)
class StressRun:
    """One nbval run of one notebook: whether it passed, how long it took, and pytest's output."""

    path: Path
    ok: bool
    seconds: float
    output: str = ""


def stress_once(path: Path) -> StressRun:
    """Run one notebook under nbval, from the repository root so that its configuration applies."""
    start = time.perf_counter()
    done = subprocess.run(
        stress_command(path), cwd=repo_root(), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    return StressRun(path, done.returncode == 0, seconds, done.stdout + done.stderr)


def stress_table(runs: Sequence[StressRun], *, repeat: int, busy: int) -> str:
    """A Markdown table with one row per notebook and one column per run."""
    rows = [
        f"nbval, {repeat} run(s) per notebook, {busy} core(s) kept busy by another process:",
        "",
        "| notebook | " + " | ".join(f"run {i + 1}" for i in range(repeat)) + " |",
        "|---|" + "---:|" * repeat,
    ]
    for index in range(0, len(runs), repeat):
        cells = [
            f"{'ok' if r.ok else 'FAILED'} {r.seconds:.1f} s" for r in runs[index : index + repeat]
        ]
        rows.append(f"| {runs[index].path.name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)

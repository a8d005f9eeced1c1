"""Run notebooks as other machines would: busy cores, one core, other kernels; nbval repeated.

A learner's laptop is rarely idle, and rarely this machine. A timing assert that passes here can
fail on a busy machine, on a 1-vCPU VM, or where other kernels run (oneDNN off, or capped at an
older instruction set). `tfcourse run --busy-cores` and `tfcourse dev stress --profile` use this
module (for authors).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    environment's kernel, the cell timeout); naming only the notebook leaves the unit tests out,
    and ``-n 0`` runs it in this one process, without the suite's pytest-xdist workers.
    """
    return [sys.executable, "-m", "pytest", "--nbval", "-n", "0", "-q", "--no-header", str(path)]


@dataclass(frozen=True)
class Profile:
    """A stand-in for another machine: environment variables, CPU affinity and busy cores.

    Attributes:
        name: What `--profile` takes, for example ``"one-core"``.
        stands_for: The machine it stands in for.
        env: Variables set for the nbval run, and so for its kernel and the kernel's children.
        cores: The CPUs the run may use (as `taskset -c` would set), or None for all.
        busy: How many busy-loop processes run beside it.
    """

    name: str
    stands_for: str
    env: dict[str, str] = field(default_factory=dict)
    cores: frozenset[int] | None = None
    busy: int = 0


#: The machine profiles every notebook must pass under (`tfcourse dev stress --profile NAME`).
PROFILES = {
    profile.name: profile
    for profile in (
        Profile("busy-core", "a laptop with another program keeping one core busy", busy=1),
        Profile("one-core", "a 1-vCPU VM (`taskset -c 0`)", cores=frozenset({0})),
        Profile(
            "onednn-off",
            "TensorFlow's own Eigen kernels (`TF_ENABLE_ONEDNN_OPTS=0`), as on builds "
            "without oneDNN",
            env={"TF_ENABLE_ONEDNN_OPTS": "0"},
        ),
        Profile(
            "avx2",
            "an AVX2-only CPU for oneDNN and XLA (`ONEDNN_MAX_CPU_ISA=AVX2`, "
            "`XLA_FLAGS=--xla_cpu_max_isa=AVX2`: no AVX-512, VNNI or AMX; XNNPACK is not capped)",
            env={"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
        ),
        Profile("idle", "this machine, idle"),
    )
}


def profile(name: str) -> Profile:
    """The profile called `name`.

    Raises:
        ValueError: If there is none, naming the profiles there are.
    """
    if name not in PROFILES:
        raise ValueError(f"no machine profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True)
class StressRun:
    """One nbval run of one notebook: whether it passed, how long it took, and pytest's output."""

    path: Path
    ok: bool
    seconds: float
    output: str = ""
    figures: tuple[dict[str, Any], ...] = ()


def stress_once(path: Path, machine: Profile | None = None) -> StressRun:
    """Run one notebook under nbval, from the repository root so that its configuration applies.

    With a `machine` profile, the run (and so its kernel) gets the profile's variables and cores.
    """
    from tfcourse.bench import FIGURES_ENV

    machine = machine or PROFILES["idle"]
    cores = machine.cores
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "figures.jsonl"  # what the notebook's record_figure calls measured
        start = time.perf_counter()
        done = subprocess.run(
            stress_command(path),
            cwd=repo_root(),
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **machine.env, FIGURES_ENV: str(log)},
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
        seconds = time.perf_counter() - start
        figures = tuple(
            json.loads(line) for line in (log.read_text().splitlines() if log.exists() else [])
        )
    return StressRun(path, done.returncode == 0, seconds, done.stdout + done.stderr, figures)


def stress_table(
    runs: Sequence[StressRun], *, repeat: int, busy: int, machine: Profile | None = None
) -> str:
    """A Markdown table with one row per notebook and one column per run."""
    machine = machine or PROFILES["idle"]
    rows = [
        f"nbval under the `{machine.name}` profile ({machine.stands_for}), {repeat} run(s) per "
        f"notebook, {busy} core(s) kept busy by another process:",
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


def figures_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of recorded figures: one row per figure, one column per profile (min-max).

    Args:
        rows: What `tfcourse dev stress --figures FILE` appended: dicts with ``profile``,
            ``notebook``, ``name``, ``value`` and ``unit``.

    Raises:
        ValueError: If a row lacks one of those keys (``unit`` may be absent).
    """
    values: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for number, row in enumerate(rows, start=1):
        missing = {"profile", "notebook", "name", "value"} - set(row)
        if missing:
            raise ValueError(f"figure row {number} lacks {', '.join(sorted(missing))}: {row}")
        key = (row["notebook"], row["name"], row.get("unit", ""))
        values.setdefault(key, {}).setdefault(row["profile"], []).append(float(row["value"]))
    profiles = list(dict.fromkeys(row["profile"] for row in rows))
    lines = [
        "| notebook | figure | " + " | ".join(profiles) + " |",
        "|---|---|" + "---:|" * len(profiles),
    ]
    for (notebook, name, unit), by_profile in values.items():
        cells = [_span(by_profile.get(p, []), unit) for p in profiles]
        lines.append(f"| {notebook.removesuffix('.ipynb')} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _span(values: Sequence[float], unit: str) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    text = f"{low:.3g}" if low == high else f"{low:.3g}-{high:.3g}"
    return f"{text} {unit}".strip()

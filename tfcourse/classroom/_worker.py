"""Run one grading notebook in a fenced kernel: `python -m tfcourse.classroom._worker` (internal).

The grader starts one worker process per submission, normally inside the Linux sandbox of
`_bwrap`, and hands it a job as JSON on stdin. The worker runs the notebook in a fresh kernel whose
folder, home and temporary folder are the submission's scratch folder, with the write fence of
`_sandbox/sitecustomize.py`, a time limit per cell (the cell is interrupted and the rest still
runs) and one for the whole notebook, and a cap on the output it keeps. It writes what happened as
JSON to a pipe that only it holds: errors, the kernel's report of one-part checks, and what the
probes of two-part checks observed, which the grader's judges decide on outside the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from tfcourse.classroom._assemble import REPORT_MIME
from tfcourse.exercises._split import MAX_CALLS, MAX_OBSERVATION, PROBE_MIME
from tfcourse.notebooks._execute import _CurrentEnvKernelSpecs

FENCE = Path(__file__).parent / "_sandbox"
#: The most outputs a check cell keeps (its probes' observations among them).
_MAX_PROBES = 4 * MAX_CALLS
#: The most characters of probe outputs a submission sends the grader, in all.
_MAX_PROBE_TOTAL = 64_000_000


class _CappedClient(NotebookClient):
    """A notebook client that keeps at most `output_limit` characters of output in all.

    The last cell (the grader's report) is always kept.
    """

    output_limit = 1_000_000
    kept = dropped = 0
    #: Check cells whose probes' observations are kept outside the limit (each up to a size).
    probe_cells: frozenset[int] = frozenset()

    def output(
        self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> Any:
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + sum(
            len(str(value)) for value in content.get("data", {}).values()
        )
        data = content.get("data", {})
        probe = cell_index in self.probe_cells and isinstance(data, dict) and PROBE_MIME in data
        if probe and size <= MAX_OBSERVATION and len(outs) < _MAX_PROBES:
            return super().output(outs, msg, display_id, cell_index)
        if cell_index != len(self.nb.cells) - 1:
            if self.kept + size > self.output_limit:
                self.dropped += size
                return None
            self.kept += size
        return super().output(outs, msg, display_id, cell_index)


def kernel_environment(scratch: Path, *, matplotlib_dir: str | None = None) -> dict[str, str]:
    """The environment of a grading kernel: fenced into `scratch`, results file unset.

    `matplotlib_dir` holds a font cache the grader built, which kernels read instead of
    rebuilding it in every scratch folder.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("TFCOURSE_RESULTS", "PYTHONSTARTUP")}
    if matplotlib_dir and "MPLCONFIGDIR" not in env:
        env["MPLCONFIGDIR"] = matplotlib_dir
    (scratch / "tmp").mkdir(exist_ok=True)
    path = [str(FENCE), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        TFCOURSE_SANDBOX=str(scratch),
        PYTHONPATH=os.pathsep.join(path),
        HOME=str(scratch),
        TMPDIR=str(scratch / "tmp"),
        IPYTHONDIR=str(scratch / ".ipython"),
        JUPYTER_RUNTIME_DIR=str(scratch / ".runtime"),
    )
    return env


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run the job's notebook and return what happened (see `tfcourse.classroom._grade`).

    The job carries the notebook to run (``notebook``, as JSON text) and the submission's own file
    (``submission``: its name and base64 bytes), which is copied into the scratch folder first.
    """
    scratch = Path(job["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    submission = job["submission"]
    (scratch / Path(submission["name"]).name).write_bytes(base64.b64decode(submission["data"]))
    nb = nbformat.reads(job["notebook"], as_version=4)
    env = kernel_environment(scratch, matplotlib_dir=job.get("matplotlib_dir"))
    if job.get("threads"):  # several kernels at once: each gets its share of the cores
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            env.setdefault(name, str(job["threads"]))
    os.environ.clear()
    os.environ.update(env)
    client = _CappedClient(
        nb,
        timeout=job["cell_timeout"],
        allow_errors=True,
        interrupt_on_timeout=True,
        kernel_name="python3",
        kernel_spec_manager=_CurrentEnvKernelSpecs(),
        resources={"metadata": {"path": str(scratch)}},
    )
    client.output_limit = job["output_limit"]
    client.probe_cells = frozenset(int(i) for i in job.get("probe_cells", []))
    start, problem = time.perf_counter(), None
    try:
        asyncio.run(
            asyncio.wait_for(
                client.async_execute(stderr=subprocess.DEVNULL, cwd=str(scratch)),
                timeout=job["timeout"],
            )
        )
    except (asyncio.TimeoutError, TimeoutError):
        problem = "timed out"
    except DeadKernelError:
        problem = "the kernel died (the notebook crashed Python or used too much memory)"
    except Exception as error:  # the run broke in a way the grader must report, not crash on
        problem = f"could not be run ({type(error).__name__}: {str(error)[:200]})"
    if problem and (problem == "timed out" or time.perf_counter() - start >= job["timeout"]):
        # a kernel stopped at the deadline can also surface as a dead kernel
        problem = f"did not finish within the grader's limit of {job['timeout']} s (timed out)"
    return {
        "problem": problem,
        "report": _report(nb, job["key"]),
        "probes": _probes(nb, client.probe_cells),
        "errors": _errors(nb),
        "dropped": client.dropped,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _report(nb: nbformat.NotebookNode, key: str) -> list[dict[str, Any]] | None:
    for output in nb.cells[-1].get("outputs", []):
        report = output.get("data", {}).get(REPORT_MIME)
        if isinstance(report, dict) and report.get("key") == key:
            results = report.get("results")
            return results if isinstance(results, list) else None
    return None


def _probes(nb: nbformat.NotebookNode, cells: frozenset[int]) -> list[dict[str, Any]]:
    """What the probes in the check cells `cells` showed, for the grader's judges: at most
    `_MAX_PROBES` outputs a cell, `MAX_OBSERVATION` characters each and `_MAX_PROBE_TOTAL` in all
    (an output replaced through its display id bypasses the client's cap: it is measured here).
    """
    found, total = [], 0
    for index in sorted(cells):
        if index >= len(nb.cells):
            continue
        outputs = [o for o in nb.cells[index].get("outputs", []) if PROBE_MIME in o.get("data", {})]
        for output in outputs[:_MAX_PROBES]:
            size = len(json.dumps(output["data"][PROBE_MIME]))
            if size > MAX_OBSERVATION or total + size > _MAX_PROBE_TOTAL:
                continue
            total += size
            found.append({"cell": index, "bundle": output["data"][PROBE_MIME]})
    return found


def _errors(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [
        {"cell": index, "ename": output.get("ename", ""), "evalue": str(output.get("evalue", ""))}
        for index, cell in enumerate(nb.cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def _undumpable() -> None:
    """Keep the kernel (same user) from reading this process's memory and file descriptors
    through /proc or ptrace: the result pipe stays the worker's alone."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def main() -> int:
    """Read a job from stdin, run it, and write the result to the job's pipe (``result_fd``)."""
    _undumpable()
    job = json.loads(sys.stdin.read())
    result_fd = int(job["result_fd"])
    os.set_inheritable(result_fd, False)  # the kernel and its children never get it
    result = run_job(job)
    with os.fdopen(result_fd, "w", encoding="utf-8") as pipe:
        pipe.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

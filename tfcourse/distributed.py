"""Run a cluster of TensorFlow workers on this machine: free ports, `TF_CONFIG`, logs, clean stops.

Each worker is a subprocess in its own process group, with its own `TF_CONFIG`, log file and event
file. `Cluster` waits for them with a timeout and, however its block ends (a finished run, a
timeout, an exception, a stopped cell), stops every process it started.
Introduced in `08_distributed`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tfcourse.env import child_env

#: Set to "1" in every worker's environment, so that a test can find a worker left behind.
WORKER_ENV = "TFCOURSE_CLUSTER_WORKER"
#: The process id of the process that started the worker: the worker ends itself when it is gone.
PARENT_ENV = "TFCOURSE_PARENT_PID"
#: The JSON-lines file a worker writes its events to (see `read_events`).
EVENTS_ENV = "TFCOURSE_EVENTS"


class ClusterError(RuntimeError):
    """A worker did not finish in time, or the cluster could not start."""


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports that nothing listens on right now, on any of this machine's addresses
    (TensorFlow's workers listen on all of them).

    The sockets are closed before returning, so another program could take a port in between;
    start the workers right away.

    Raises:
        ValueError: If `n` is not a positive int.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (how many ports); got {n!r}")
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(workers: Sequence[str], index: int) -> dict[str, Any]:
    """The `TF_CONFIG` of worker `index` in a cluster of `workers` (``"host:port"`` strings).

    Every worker gets the same ``cluster``; only ``task.index`` differs. Worker 0 is the chief: it
    writes the real checkpoints. Set it as ``os.environ["TF_CONFIG"] = json.dumps(...)``.

    Raises:
        ValueError: If an address is not ``"host:port"``, the list is empty or has duplicates, or
            `index` is not a position in it.
    """
    workers = list(workers) if not isinstance(workers, str) else [workers]
    if not workers:
        raise ValueError("workers must list at least one 'host:port' address")
    for address in workers:
        host, _, port = str(address).rpartition(":")
        if not isinstance(address, str) or not host or not port.isdigit():
            raise ValueError(
                f"each worker must be a 'host:port' string, like 'localhost:12345'; got {address!r}"
            )
    if len(set(workers)) != len(workers):
        raise ValueError(f"each worker needs its own address; {workers} repeats one")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise ValueError(f"index must be an int from 0 to {len(workers) - 1}; got {index!r}")
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events a worker wrote, one JSON object a line; [] when it wrote none.

    Raises:
        ValueError: If a line is not a JSON object (the message names the file and line).
    """
    path = Path(path)
    if not path.exists():
        return []
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}, line {number}, is not JSON ({error.msg}): {line[:80]!r}. A worker "
                "killed in the middle of a write leaves half a line; run the cluster again."
            ) from None
        if not isinstance(event, dict):
            raise ValueError(f"{path}, line {number}, should be a JSON object: {line[:80]!r}")
        events.append(event)
    return events


def python_module(module: str, *args: Any) -> list[str]:
    """The command that runs ``python -m module args...`` with this notebook's Python."""
    return [sys.executable, "-m", module, *(str(arg) for arg in args)]


@dataclass
class Worker:
    """One worker process of a `Cluster`."""

    index: int
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    events_path: Path

    @property
    def returncode(self) -> int | None:
        """Its exit status; negative for a signal (-9: killed); None while it runs."""
        return self.process.poll()

    def log(self) -> str:
        """What it wrote to stdout and stderr."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """Its events (see `read_events`)."""
        return read_events(self.events_path)


class Cluster:
    """Start one worker process per address, each with its own `TF_CONFIG`, and always stop them.

    Use it as ``with Cluster(command, folder=...) as cluster: codes = cluster.wait()``.

    Args:
        command: The program every worker runs, e.g. ``python_module("tfcourse.multiworker")``.
        folder: Where the workers' logs (``worker-N.log``) and events (``worker-N.jsonl``) go.
        workers: How many workers on localhost (on free ports), or their ``"host:port"`` addresses.
        timeout: Seconds `wait` gives the workers before it stops them and raises.
        grace: Seconds between SIGTERM and SIGKILL when stopping a worker.
        launcher: For worker N, a command prefix, e.g. ``["ip", "netns", "exec", "ns0"]``.
        env: Extra environment variables for every worker, on top of `tfcourse.child_env`'s
            (which hides GPUs: the workers share this machine's CPU).

    Introduced in `08_distributed`.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        folder: str | os.PathLike[str],
        workers: int | Sequence[str] = 2,
        timeout: float = 120.0,
        grace: float = 3.0,
        launcher: Callable[[int], Sequence[str]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if isinstance(command, str) or not command:
            raise ValueError(f"command must be a non-empty list of strings; got {command!r}")
        if isinstance(workers, int):
            workers = [f"localhost:{port}" for port in free_ports(workers)]
        tf_config(workers, 0)  # validates the addresses
        self.command, self.addresses = [str(part) for part in command], list(workers)
        self.folder, self.timeout, self.grace = Path(folder), timeout, grace
        self.launcher, self.env = launcher, dict(env or {})
        self.workers: list[Worker] = []

    def __enter__(self) -> Cluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            for index in range(len(self.addresses)):
                self._start(index)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self, index: int) -> Worker:
        log_path = self.folder / f"worker-{index}.log"
        events_path = self.folder / f"worker-{index}.jsonl"
        events_path.unlink(missing_ok=True)
        env = {
            # every worker computes on the CPU, with the notebook's settings (tfcourse.child_env)
            **child_env(hide_gpus=True),
            **self.env,
            "TF_CONFIG": json.dumps(tf_config(self.addresses, index)),
            WORKER_ENV: "1",
            PARENT_ENV: str(os.getpid()),
            EVENTS_ENV: str(events_path),
        }
        prefix = list(self.launcher(index)) if self.launcher else []
        # A stop (Ctrl-C, a notebook's interrupt) that came while Popen waits for the exec would
        # leave a running worker that nothing tracks; it is held back until the worker is tracked.
        with _interrupts_deferred(), open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*prefix, *self.command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopped as one, with its children
            )
            # tracked at once, so that stop() finds it even if an interrupt comes next
            self.workers.append(
                Worker(index, self.addresses[index], process, log_path, events_path)
            )
        return self.workers[-1]

    def wait(self) -> list[int]:
        """Wait for every worker to exit, and return their exit statuses in worker order.

        Raises:
            ClusterError: If they are still running after `timeout` seconds. They are stopped
                first, and the message shows the end of each unfinished worker's log.
        """
        deadline = time.monotonic() + self.timeout
        while any(worker.returncode is None for worker in self.workers):
            if time.monotonic() > deadline:
                stuck = [worker for worker in self.workers if worker.returncode is None]
                self.stop()
                raise ClusterError(self._timeout_message(stuck))
            time.sleep(0.05)
        return [worker.process.returncode for worker in self.workers]

    def _timeout_message(self, stuck: list[Worker]) -> str:
        tails = "\n".join(
            f"--- end of worker {w.index}'s log ({w.log_path}):\n{_tail(w.log())}" for w in stuck
        )
        return (
            f"worker(s) {[w.index for w in stuck]} still ran after {self.timeout:g} s and were "
            "stopped. A worker waits for all the others at start-up and in every all-reduce, so "
            "one that crashed or never started stalls the rest: read the logs below, and raise "
            f"timeout= if the machine is only slow.\n{tails}"
        )

    def stop(self) -> None:
        """Stop every worker's whole process group: SIGTERM, then SIGKILL after `grace` seconds."""
        running = [w for w in self.workers if w.returncode is None]
        for worker in running:
            _signal_group(worker.process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(w.returncode is None for w in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for worker in self.workers:
            _signal_group(worker.process, signal.SIGKILL)  # also children a worker left behind
            worker.process.wait()

    def logs(self) -> list[str]:
        """Each worker's log, in worker order."""
        return [worker.log() for worker in self.workers]

    def events(self) -> list[list[dict[str, Any]]]:
        """Each worker's events, in worker order."""
        return [worker.events() for worker in self.workers]


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT for the block, then deliver it (KeyboardInterrupt) when the block ends.

    Python runs signal handlers in the main thread only; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append((number, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty)"

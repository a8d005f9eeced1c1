"""TensorBoard logs: read back what a run wrote, and serve it with a real TensorBoard server.

`read_scalars` and `read_histograms` turn event files into NumPy arrays, so a notebook can plot what
TensorBoard's Scalars and Histograms tabs will show; `contents` lists what each run holds; `serve`
starts ``tensorboard --logdir`` on this machine's loopback address and stops it again. Introduced in
`03_keras_layers_and_models`.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Series:
    """One tag of one run: the steps it was written at and the values written.

    Attributes:
        steps: The ``step`` of each event, shape ``(n,)``.
        values: Scalars have shape ``(n,)``. Histograms have shape ``(n, buckets, 3)``: each bucket
            is ``(left edge, right edge, count)``, as `tf.summary.histogram` writes it.
    """

    steps: np.ndarray
    values: np.ndarray


def _runs(logdir: str | Path) -> dict[str, Any]:
    """Each run (a folder holding event files) under `logdir`, loaded into an accumulator."""
    from tensorboard.backend.event_processing import event_accumulator

    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a folder. Pass the log_dir you gave keras.callbacks.TensorBoard "
            "or tf.summary.create_file_writer."
        )
    folders = sorted({path.parent for path in root.rglob("events.out.tfevents.*")})
    if not folders:
        raise ValueError(
            f"{root} holds no TensorBoard event files (events.out.tfevents.*). Write some with "
            "keras.callbacks.TensorBoard(log_dir=...) or tf.summary first."
        )
    runs = {}
    for folder in folders:
        accumulator = event_accumulator.EventAccumulator(
            str(folder), size_guidance={event_accumulator.TENSORS: 0}
        )
        accumulator.Reload()
        runs[folder.relative_to(root).as_posix()] = accumulator
    return runs


def _plugin(accumulator: Any, tag: str) -> str:
    return accumulator.SummaryMetadata(tag).plugin_data.plugin_name


def contents(logdir: str | Path) -> dict[str, dict[str, str]]:
    """What each run under `logdir` holds: tag to the TensorBoard plugin (tab) that shows it.

    Runs and tags are sorted by name. A run's name is the folder of its event files relative to
    `logdir`, as TensorBoard names it (for example ``"fit/train"``). Kinds include
    ``"scalars"``, ``"histograms"``, ``"text"``, ``"graph_keras_model"`` (the layer graph that
    the Keras callback writes) and
    ``"graph_run_metadata_graph"`` (an op graph from `tf.summary.trace_export`).

    Raises:
        FileNotFoundError: If `logdir` is not a folder.
        ValueError: If it holds no event files.
    """
    return {
        name: {tag: _plugin(accumulator, tag) for tag in sorted(accumulator.Tags()["tensors"])}
        for name, accumulator in _runs(logdir).items()
    }


def _read(logdir: str | Path, kind: str) -> dict[str, dict[str, Series]]:
    import tensorflow as tf

    found: dict[str, dict[str, Series]] = {}
    for name, accumulator in _runs(logdir).items():
        for tag in accumulator.Tags()["tensors"]:
            if _plugin(accumulator, tag) != kind:
                continue
            events = accumulator.Tensors(tag)
            steps = np.array([event.step for event in events])
            values = np.stack([tf.make_ndarray(event.tensor_proto) for event in events])
            found.setdefault(name, {})[tag] = Series(steps, values)
    return found


def read_scalars(logdir: str | Path) -> dict[str, dict[str, Series]]:
    """Every scalar under `logdir`, as run name to tag to `Series` (what the Scalars tab plots).

    Example: ``read_scalars("logs")["fit/validation"]["epoch_loss"].values``.
    """
    return _read(logdir, "scalars")


def read_histograms(logdir: str | Path) -> dict[str, dict[str, Series]]:
    """Every histogram under `logdir`, as run name to tag to `Series` of bucket arrays."""
    return _read(logdir, "histograms")


def _tensorboard_command(logdir: Path, host: str, port: int) -> list[str]:
    # load_fast=false: read the logs in this process, not in a separate Rust data server.
    return [
        sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
        "--host", host, "--port", str(port), "--load_fast=false",
    ]  # fmt: skip


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@contextlib.contextmanager
def serve(
    logdir: str | Path, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0
) -> Iterator[str]:
    """Run a TensorBoard server on `logdir` for the duration of a ``with`` block.

    Args:
        logdir: The folder to serve, as with ``tensorboard --logdir``.
        host: The address to listen on; the default is reachable from this machine only.
        port: The port; 0 lets the system choose a free one.
        timeout: Seconds to wait for the server to report its address.

    Yields:
        The server's base URL, for example ``"http://127.0.0.1:40123/"``.

    Raises:
        FileNotFoundError: If `logdir` is not a folder.
        RuntimeError: If TensorBoard exits or stays silent for `timeout` seconds; the message
            ends with what it printed.
    """
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise FileNotFoundError(f"{logdir} is not a folder; pass the folder your logs are in.")
    process = subprocess.Popen(
        _tensorboard_command(logdir, host, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    try:
        yield _wait_for_url(process, reader, lines, timeout)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)  # its output is closed now, so the reader reaches the end
        process.stderr.close()


def _wait_for_url(
    process: subprocess.Popen[str],
    reader: threading.Thread,
    lines: queue.Queue[str],
    timeout: float,
) -> str:
    """Read TensorBoard's output until it prints its address; fail if it exits or stays silent."""
    printed: list[str] = []
    pattern = re.compile(r"TensorBoard \S+ at (http://\S+/)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if not reader.is_alive() and lines.empty():  # TensorBoard closed its output: it exited
                break
            continue
        printed.append(line)
        match = pattern.search(line)
        if match:
            return match.group(1)
    code = process.poll()
    status = f"exited with code {code}" if code is not None else f"gave no address in {timeout:g} s"
    raise RuntimeError(f"TensorBoard {status}. It printed:\n{''.join(printed[-20:])}")

"""Execute notebooks headless in a fresh kernel of this Python environment."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from tfcourse.notebooks._normalise import normalise


class _CurrentEnvKernelSpecs(KernelSpecManager):
    """Always start the kernel with this interpreter, whatever kernels Jupyter has installed."""

    def get_kernel_spec(self, kernel_name: str) -> object:
        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
        )


@dataclass(frozen=True)
class RunResult:
    """How one notebook's execution went.

    Attributes:
        path: The notebook.
        seconds: Wall-clock time from kernel start to the last cell.
        error: None if every cell ran, else the first line of what went wrong.
    """

    path: Path
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every cell ran without an error."""
        return self.error is None


def execute(path: Path, *, timeout: int = 600, write: bool = False) -> RunResult:
    """Run every cell of a notebook top to bottom in a fresh kernel.

    Args:
        path: The notebook file.
        timeout: Seconds allowed for any one cell.
        write: Save the executed, normalised notebook back to `path`; only when every cell ran.

    Returns:
        A `RunResult` with the time taken and the first error, if any.

    Introduced in `00_welcome_and_setup`.
    """
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=_CurrentEnvKernelSpecs())
    client = NotebookClient(
        nb, km=manager, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    error = None
    try:
        # The kernel process's own stderr carries TensorFlow's C++ start-up chatter; cell
        # outputs (stderr included) still reach the notebook through Jupyter's messages.
        client.execute(stderr=subprocess.DEVNULL)
    except CellExecutionError as failure:
        error = _last_line(str(failure))
    except (CellTimeoutError, DeadKernelError, TimeoutError) as failure:
        error = f"{type(failure).__name__}: {_last_line(str(failure))}"
    seconds = time.perf_counter() - start
    if write and error is None:
        nbformat.write(normalise(nb), path)
    return RunResult(path, seconds, error)


def _last_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # drop the traceback's terminal colours
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"

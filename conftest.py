"""Suite-wide test settings: offline enforcement, and nbval's treatment of stderr."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).parent / "tests" / "netguard"


def pytest_configure(config: pytest.Config) -> None:
    """Block non-local network access here and in every Python subprocess (kernels, the CLI)."""
    sys.path.insert(0, str(GUARD_DIR))
    import netguard

    netguard.install()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")])
    )
    # Quiet TensorFlow's C++ logs in subprocesses; they only ever reach stderr.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_collectstart(collector: pytest.Collector) -> None:
    """Don't compare stderr in notebooks: TensorFlow's C++ logging reaches it at any log level.

    This is nbval's documented route (extend the collector's `skip_compare`). Everything a cell
    prints to stdout, and every result it displays, is still compared.
    """
    if hasattr(collector, "skip_compare"):
        collector.skip_compare = (*collector.skip_compare, "stderr")

"""Suite-wide test settings: offline enforcement, nbval's treatment of stderr, and how the suite's
two pytest-xdist workers share the tests."""

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
    os.environ[SESSION_ENV] = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"


def pytest_collectstart(collector: pytest.Collector) -> None:
    """Don't compare stderr in notebooks: TensorFlow's C++ logging reaches it at any log level.

    This is nbval's documented route (extend the collector's `skip_compare`). Everything a cell
    prints to stdout, and every result it displays, is still compared.
    """
    if hasattr(collector, "skip_compare"):
        collector.skip_compare = (*collector.skip_compare, "stderr")


#: Test files that run every chapter's notebook (the student releases). Each notebook's kernel uses
#: every core, so these and nbval's notebooks run one at a time. The browser tests (notebook 00 in
#: JupyterLab, chapter 01's release) and the graded class of chapter 00 (two grading kernels at a
#: time) are scopes of their own, like chapter 08's clusters and `tests/test_grade.py`: while the
#: notebooks run, the other worker takes them. They left this scope on 2026-12-07, when the worker
#: that ran it took all 19 min of a fresh-clone run and the other worker 11 (README, "Test").
#: `tests/test_site.py` runs no notebook.
KERNEL_FILES = frozenset({"test_release.py"})
#: Set in this pytest process and inherited by everything it starts (kernels, clusters, the
#: CLI): a test that looks for processes on the machine keeps to its own
#: (`tests/test_distributed.py`'s `worker_pids`).
SESSION_ENV = "TFCOURSE_TEST_SESSION"


def scope_of(nodeid: str) -> str:
    """The scope of a test for pytest-xdist: "kernels" for the notebooks and `KERNEL_FILES`, the
    test's file for every other test."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb") or path.rsplit("/", 1)[-1] in KERNEL_FILES:
        return "kernels"
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Two workers (the suite's default, ``-n 2``), each scope in one worker, in order.

    The notebooks and `KERNEL_FILES` form one scope, so one worker runs them one at a time: a
    notebook then shares the machine with the other worker's tests, much as `tfcourse dev stress`
    makes it share the machine with one busy core (at times more: chapter 08's clusters, the browser
    tests and the graded class start processes of their own). Every other test file is a scope of
    its own, so that its module-scoped fixtures (a trained model, a graded class) are built once.
    (Written as a scheduler: ``--dist loadgroup`` marks no longer reach pytest 9's node ids.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class KernelsInOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return KernelsInOneWorker(config, log)

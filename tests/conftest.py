"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tfcourse import data


@pytest.fixture
def data_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of `datasets/` that the loader uses, safe to damage."""
    copy = tmp_path / "datasets"
    shutil.copytree(data.datasets_dir(), copy)
    monkeypatch.setenv("TFCOURSE_DATA_DIR", str(copy))
    return copy


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, set up once: seeded, deterministic and quiet."""
    import tfcourse

    tfcourse.setup(seed=0)
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def toy_kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The PYTHONPATH of the toy chapters' grading kernels: their checks' probes, and no judges.

    The judges (`tests/_toy_judges`) go on this process's path only, as the course's judges are
    in the grader but hidden from the sandbox.
    """
    tests = Path(__file__).parent
    kernel = tmp_path_factory.mktemp("toy-kernel-path")
    shutil.copy(tests / "_classroom_checks.py", kernel)
    kernel.chmod(0o755)  # a sandbox run as root reads it as a user of its own
    sys.path.insert(0, str(tests / "_toy_judges"))
    try:
        yield str(kernel)
    finally:
        sys.path.remove(str(tests / "_toy_judges"))


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> int:
    """Checks run on the inputs of `answers.SEED`, which expected messages name."""
    from answers import SEED

    monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(SEED))
    return SEED


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, with a fresh profile, kept to this machine (`_chromium`)."""
    from _chromium import launch

    with launch() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def outside_requests() -> list[str]:
    """URLs the pages asked for beyond this machine (refused); every test expects none."""
    return []

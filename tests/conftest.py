"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
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

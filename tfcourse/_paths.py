"""Where the course's folders are: the repository that holds the installed (editable) package."""

from __future__ import annotations

import os
from pathlib import Path

#: Points the course at another checkout, for example when tfcourse is installed without `-e`.
ROOT_ENV = "TFCOURSE_ROOT"


def repo_root() -> Path:
    """The course repository: `$TFCOURSE_ROOT`, else the folder above the `tfcourse` package."""
    override = os.environ.get(ROOT_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    """The folder of the course's notebooks."""
    return repo_root() / "notebooks"

"""Run the `tfcourse` command as a learner does, in a subprocess (test_cli.py, test_site.py)."""

from __future__ import annotations

import os
import subprocess
import sys


def tfcourse(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`tfcourse ARGS...` with `env` added to this environment; what it printed and its status."""
    return subprocess.run(
        [sys.executable, "-m", "tfcourse.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )

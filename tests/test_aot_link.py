"""scripts/aot_link.py: chapter 06's AOT route to the end, linked into a C++ program and run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_aot_link_script_builds_a_program_that_agrees_with_tensorflow():
    if not (shutil.which("cmake") and shutil.which("g++")):
        pytest.skip("needs cmake and g++ to build XLA's AOT runtime")
    # build/ is git-ignored: the runtime (minutes to build) is kept there for the next run.
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "aot_link.py"), str(ROOT / "build" / "aot_link")],
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "the linked program agrees with TensorFlow: True" in completed.stdout

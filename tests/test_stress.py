"""tfcourse._stress: busy-loop processes start, keep running, and always stop."""

import os
import subprocess
import sys
import time

import pytest

from tfcourse._stress import busy_cores


def test_busy_cores_runs_n_processes_and_stops_them_after_the_block():
    with busy_cores(min(2, os.cpu_count() or 1)) as processes:
        time.sleep(0.2)
        assert processes and all(process.poll() is None for process in processes)
    assert all(process.poll() is not None for process in processes)


def test_busy_cores_stops_its_processes_when_the_block_fails():
    with pytest.raises(KeyboardInterrupt), busy_cores(1) as processes:
        raise KeyboardInterrupt
    assert processes[0].poll() is not None


def test_zero_busy_cores_starts_nothing_and_bad_counts_are_refused():
    with busy_cores(0) as processes:
        assert processes == []
    for count in (-1, 10_000, True, 1.0):
        with pytest.raises(ValueError, match="busy cores must be a whole number from 0 to"):
            with busy_cores(count):
                pass


def test_a_busy_process_ends_itself_when_its_parent_dies_without_cleaning_up():
    code = (
        "import os\nfrom tfcourse._stress import busy_cores\n"
        "with busy_cores(1) as processes:\n"
        "    print(processes[0].pid, flush=True)\n"
        "    os._exit(0)  # no clean-up, like a killed tfcourse\n"
    )
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False

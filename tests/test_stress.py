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


def test_a_profile_sets_the_runs_variables_and_cores(monkeypatch):
    from tfcourse import _stress

    seen = {}

    def fake_run(command, **kwargs):
        seen.update(kwargs)
        if kwargs["preexec_fn"]:
            seen["preexec"] = kwargs["preexec_fn"]
        return subprocess.CompletedProcess(command, 0, "1 passed", "")

    monkeypatch.setattr(_stress.subprocess, "run", fake_run)
    run = _stress.stress_once(_stress.repo_root() / "x.ipynb", _stress.profile("onednn-off"))
    assert run.ok and seen["env"]["TF_ENABLE_ONEDNN_OPTS"] == "0" and seen["preexec_fn"] is None
    _stress.stress_once(_stress.repo_root() / "x.ipynb", _stress.profile("one-core"))
    assert callable(seen["preexec_fn"])


def test_the_one_core_profile_really_pins_the_run_and_its_children_to_one_core(monkeypatch):
    from tfcourse import _stress

    code = (
        "import os, subprocess, sys\n"
        "child = [sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))']\n"
        "print(subprocess.run(child, capture_output=True, text=True).stdout.strip(), "
        "os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    )
    monkeypatch.setattr(_stress, "stress_command", lambda path: [sys.executable, "-c", code])
    run = _stress.stress_once(_stress.repo_root(), _stress.profile("one-core"))
    assert run.ok and run.output.strip() == "[0] None"
    run = _stress.stress_once(_stress.repo_root(), _stress.profile("onednn-off"))
    assert run.output.strip() == f"{sorted(os.sched_getaffinity(0))} 0"  # the tests' own cores


def test_every_required_profile_exists_and_unknown_names_are_refused():
    from tfcourse import _stress

    assert {"busy-core", "one-core", "onednn-off", "avx2"} <= set(_stress.PROFILES)
    assert _stress.profile("busy-core").busy == 1
    assert _stress.profile("avx2").env == {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
    }
    with pytest.raises(ValueError, match="no machine profile 'fast'; choose one of busy-core"):
        _stress.profile("fast")


def test_a_stress_run_collects_the_figures_the_notebook_recorded(monkeypatch):
    from tfcourse import _stress

    code = (
        "import tfcourse\n"
        "tfcourse.record_figure('speed-up', 2.5, unit='x')\n"
        "tfcourse.record_figure('accuracy', 97.0, unit='%')\n"
    )
    monkeypatch.setattr(_stress, "stress_command", lambda path: [sys.executable, "-c", code])
    run = _stress.stress_once(_stress.repo_root(), _stress.profile("idle"))
    assert run.ok, run.output
    assert run.figures == (
        {"name": "speed-up", "value": 2.5, "unit": "x"},
        {"name": "accuracy", "value": 97.0, "unit": "%"},
    )

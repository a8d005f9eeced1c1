"""The grader's Linux sandbox (`tfcourse.classroom._bwrap`): what a submission's code can reach.

Each test runs a small Python program inside the sandbox exactly as the grader runs its worker, and
checks from outside that the route part B of the classroom review lists is closed: the network,
the solutions and other students' files, signals to other processes, TensorFlow's C++ file writes,
`dir_fd` writes, detached children, fork pressure, memory, disk and the grader's environment.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tfcourse import _paths
from tfcourse.classroom import _bwrap
from tfcourse.classroom._cli import grade_command

WHY = _bwrap.problem()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no sandbox here: {WHY}")


def inside(code, box=None, env=None, read_only=()):
    """Run `code` in a sandbox; return its last stdout line as JSON, and the finished process."""
    box = box or _bwrap.Box()
    env = {"PATH": os.environ["PATH"], **(env or {})}
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    command = _bwrap.command(argv, box, env=env, read_only=read_only)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=lambda: _bwrap.limit(box),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else None), done


def test_no_network_not_even_to_this_machine():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        got, done = inside(f"""
            import json, socket
            out = {{}}
            for name, address in [("grader", ("127.0.0.1", {port})), ("internet", ("1.1.1.1", 80))]:
                try:
                    socket.create_connection(address, timeout=3).close()
                    out[name] = "connected"
                except OSError as error:
                    out[name] = type(error).__name__
            print(json.dumps(out))
        """)
    finally:
        server.close()
    assert got == {"grader": "ConnectionRefusedError", "internet": "OSError"}, done.stderr


def test_solutions_other_scratch_folders_and_home_are_not_there(tmp_path):
    neighbour = tmp_path / "tfcourse-scratch-neighbour"
    neighbour.mkdir()
    (neighbour / "01_eager_execution.ipynb").write_text("{}")
    secret = Path.home() / f".tfcourse-sandbox-test-{uuid.uuid4().hex}"
    secret.write_text("the grader's own file")
    paths = {
        "notebooks": str(_paths.notebooks_dir()),
        "neighbour": str(neighbour),
        "home": str(secret),
        "tests": str(Path(__file__)),  # the course's tests (wrong answers, fixtures)
        "judges": str(Path(_bwrap.__file__).parents[1] / "exercises" / "judges" / "ch00.py"),
    }
    got, done = inside(f"""
        import json, os
        paths = {paths!r}
        print(json.dumps({{name: os.path.exists(path) for name, path in paths.items()}}))
    """)
    secret.unlink()
    assert got == dict.fromkeys(paths, False), done.stderr
    assert (_paths.notebooks_dir() / "00_welcome_and_setup.ipynb").is_file()  # there, outside
    assert Path(paths["judges"]).is_file()


def test_the_course_is_there_read_only_and_the_scratch_is_writable():
    package = Path(_bwrap.__file__).parents[1]
    got, done = inside(f"""
        import json, os
        out = {{"package": os.path.isfile({str(package / "__init__.py")!r})}}
        try:
            open({str(package / "x.txt")!r}, "w")
        except OSError as error:
            out["write"] = error.strerror
        fd = os.open({str(package)!r}, os.O_RDONLY)
        try:
            os.open("y.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        except OSError as error:
            out["dir_fd"] = error.strerror
        open("mine.txt", "w").write("ok")
        out["scratch"] = os.getcwd(), open("mine.txt").read()
        print(json.dumps(out))
    """)
    assert got == {
        "package": True,
        "write": "Read-only file system",
        "dir_fd": "Read-only file system",
        "scratch": [_bwrap.SCRATCH, "ok"],
    }, done.stderr
    assert not (package / "x.txt").exists() and not (package / "y.txt").exists()


def test_tensorflow_file_writes_do_not_reach_the_disk(tmp_path):
    """TensorFlow writes files in C++, which no Python audit hook sees: the mounts stop it."""
    targets = [tmp_path / "written_by_tf.txt", _paths.repo_root() / "written_by_tf.txt"]
    got, done = inside(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        out = {{}}
        for target in {[str(t) for t in targets]!r}:
            tf.io.gfile.makedirs(os.path.dirname(target)) if target.startswith("/tmp") else None
            for name, write in [
                ("write_file", lambda: tf.io.write_file(target, "x")),
                ("gfile", lambda: tf.io.gfile.GFile(target, "w").write("x")),
            ]:
                try:
                    write()
                    out[name + " " + target] = "done"
                except Exception as error:
                    out[name + " " + target] = type(error).__name__
        try:
            tf.io.gfile.rmtree({str(Path(_bwrap.__file__).parent)!r})
            out["rmtree"] = "done"
        except Exception as error:
            out["rmtree"] = type(error).__name__
        print(json.dumps(out))
    """)
    assert got is not None, done.stderr[-2000:]
    # Under /tmp the writes land in the sandbox's own /tmp, gone with it; elsewhere they fail.
    assert got[f"write_file {targets[1]}"] == "PermissionDeniedError", got
    assert got["rmtree"] == "PermissionDeniedError", got
    assert not any(target.exists() for target in targets)
    assert Path(_bwrap.__file__).is_file()


def test_no_signal_reaches_a_process_outside():
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        got, _ = inside(f"""
            import json, os
            try:
                os.kill({victim.pid}, 9)
                out = "sent"
            except OSError as error:
                out = type(error).__name__
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            print(json.dumps({{"kill": out, "pids": pids}}))
        """)
        time.sleep(0.5)
        assert victim.poll() is None  # alive
        assert got["kill"] in ("ProcessLookupError", "PermissionError"), got
        assert len(got["pids"]) <= 3, got  # bwrap's reaper, the program (and nothing of the host)
    finally:
        victim.kill()
        victim.wait()


def _alive_with(marker):
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_detached_child_dies_with_the_sandbox():
    marker = f"tfcourse-detached-{uuid.uuid4().hex}"
    got, done = inside(f"""
        import json, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {marker!r}],
                                 start_new_session=True, stdout=subprocess.DEVNULL)
        print(json.dumps({{"child": child.pid}}))
    """)
    assert got and got["child"], done.stderr
    deadline = time.monotonic() + 10
    while _alive_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive_with(marker) == []


def test_a_fork_bomb_stops_at_the_process_limit():
    got, done = inside(
        """
        import json, os, time
        children, error = [], None
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError as e:
                error = type(e).__name__
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        print(json.dumps({"forked": len(children), "error": error}))
        for pid in children:
            os.kill(pid, 9)
        """,
        box=_bwrap.Box(processes=40),
    )
    assert got is not None, done.stderr
    assert got["error"] == "BlockingIOError" and got["forked"] < 40, got


def test_memory_file_size_and_scratch_are_limited():
    box = _bwrap.Box(memory=1 * 2**30, file_size=2**20, scratch_size=8 * 2**20)
    got, done = inside(
        """
        import json, os
        out = {}
        try:
            block = bytearray(2 * 2**30)
            out["memory"] = "allocated"
        except MemoryError:
            out["memory"] = "MemoryError"
        try:
            with open("big.bin", "wb") as handle:
                handle.write(b"x" * 2 * 2**20)
            out["file"] = "written"
        except OSError as error:
            out["file"] = os.strerror(error.errno)
        os.remove("big.bin")
        try:
            for i in range(16):
                with open(f"part{i}.bin", "wb") as handle:
                    handle.write(b"x" * 2**20)
            out["scratch"] = "filled"
        except OSError as error:
            out["scratch"] = os.strerror(error.errno)
        print(json.dumps(out))
        """,
        box=box,
    )
    assert got == {
        "memory": "MemoryError",
        "file": "File too large",
        "scratch": "No space left on device",
    }, done.stderr


def test_the_graders_environment_stays_outside(monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_TOKEN", "secret")
    from tfcourse.classroom._grade import _sandbox_env

    env = _sandbox_env(Path("/nonexistent-fonts"))
    assert "INSTRUCTOR_TOKEN" not in env and env["HOME"] == _bwrap.SCRATCH
    got, _ = inside(
        """
        import json, os
        print(json.dumps({"token": os.environ.get("INSTRUCTOR_TOKEN"), "home": os.environ["HOME"]}))
        """,
        env=env,
    )
    assert got == {"token": None, "home": _bwrap.SCRATCH}


def test_without_bubblewrap_the_grader_refuses_and_says_how(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(_bwrap.shutil, "which", lambda name: None)
    assert "sudo apt-get install bubblewrap" in _bwrap.problem()
    (tmp_path / "subs").mkdir()
    status = grade_command(tmp_path / "subs", tmp_path / "out.csv", sources={})
    err = capsys.readouterr().err
    assert status == 2 and "--unsafe-no-sandbox" in err and "WSL2" in err


def test_a_timed_out_sandbox_is_killed_with_everything_in_it():
    marker = f"tfcourse-stuck-{uuid.uuid4().hex}"
    box = _bwrap.Box()
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {marker!r}])\n"
        "time.sleep(300)\n"
    )
    command = _bwrap.command([sys.executable, "-c", code], box, env={"PATH": os.environ["PATH"]})
    process = subprocess.Popen(
        command, start_new_session=True, preexec_fn=lambda: _bwrap.limit(box)
    )
    deadline = time.monotonic() + 20
    while not _alive_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive_with(marker)
    os.killpg(process.pid, signal.SIGKILL)  # what the grader does at its time limit
    process.wait()
    deadline = time.monotonic() + 10
    while _alive_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive_with(marker) == []


def test_semaphores_work_for_the_chapters_that_need_them():
    """tf.distribute's all-reduce on CPUs makes a multiprocessing ThreadPool: it needs /dev/shm."""
    got, done = inside(
        """
        import json, multiprocessing.pool
        with multiprocessing.pool.ThreadPool(2) as pool:
            print(json.dumps({"squares": pool.map(lambda x: x * x, [1, 2, 3])}))
        """
    )
    assert got == {"squares": [1, 4, 9]}, done.stderr[-1000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user, each sandbox has a user namespace")
def test_as_root_each_sandbox_runs_as_a_user_of_its_own():
    """RLIMIT_NPROC counts per user: sandboxes with one user id would share one process count."""
    code = "import json, os; print(json.dumps({'uid': os.getuid()}))"
    ids = [inside(code)[0]["uid"] for _ in range(3)]
    assert len(set(ids)) == 3 and all(uid >= _bwrap.FIRST_UID for uid in ids), ids


def test_a_course_installed_under_tmp_is_seen_on_top_of_the_private_tmp(tmp_path):
    """A clone under /tmp (as CI's) must show through the sandbox's own in-memory /tmp."""
    course = tmp_path / "course"
    course.mkdir()
    (course / "module.py").write_text("VALUE = 7\n")
    mine = Path("/tmp") / f"tfcourse-sandbox-{uuid.uuid4().hex}.txt"
    got, done = inside(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(course)!r})
        import module
        open({str(mine)!r}, "w").write("x")  # /tmp is still the sandbox's own, and writable
        print(json.dumps({{"value": module.VALUE, "mine": os.path.exists({str(mine)!r})}}))
        """,
        read_only=[course],
    )
    assert got == {"value": 7, "mine": True}, done.stderr[-1000:]
    assert not mine.exists()  # it was written in the sandbox's /tmp, not the machine's

"""tfcourse.distributed: ports, TF_CONFIG, event logs, and a Cluster that never leaves a process."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from jupyter_client.manager import KernelManager

import tfcourse
from tfcourse import distributed
from tfcourse.distributed import Cluster, ClusterError, free_ports, python_module, read_events

#: Set by the root conftest.py in each pytest process, and inherited by what it starts.
SESSION_ENV = "TFCOURSE_TEST_SESSION"


def worker_pids():
    """The processes alive now whose environment marks them as a course cluster's workers,
    started by this pytest process (another xdist worker's notebook may run a cluster too)."""
    session = f"{SESSION_ENV}={os.environ[SESSION_ENV]}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                zombie = handle.read().split(") ")[1][0] == "Z"
        except OSError:
            continue
        if f"{distributed.WORKER_ENV}=1".encode() in environ and session in environ and not zombie:
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def _kill_leftover_workers():
    """Whatever a test asserts, a worker it leaves behind (a failing test) is killed after it."""
    before = set(worker_pids())
    yield
    for pid in set(worker_pids()) - before:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_free_ports_refuses_a_count_that_is_not_positive(n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        free_ports(n)


def test_tf_config_lists_every_worker_and_names_this_task():
    config = distributed.tf_config(["localhost:1", "localhost:2"], 1)
    assert config == {
        "cluster": {"worker": ["localhost:1", "localhost:2"]},
        "task": {"type": "worker", "index": 1},
    }
    assert json.loads(json.dumps(config)) == config


@pytest.mark.parametrize(
    ("workers", "index", "message"),
    [
        ([], 0, "at least one"),
        (["localhost"], 0, "'host:port' string"),
        (["localhost:abc"], 0, "'host:port' string"),
        ([("localhost", 1)], 0, "'host:port' string"),
        (["a:1", "a:1"], 0, "repeats one"),
        (["a:1", "b:1"], 2, "from 0 to 1"),
        (["a:1", "b:1"], -1, "from 0 to 1"),
        (["a:1", "b:1"], "0", "from 0 to 1"),
    ],
)
def test_tf_config_explains_bad_input(workers, index, message):
    with pytest.raises(ValueError, match=message):
        distributed.tf_config(workers, index)


def test_read_events_reads_json_lines_and_a_missing_file_as_none(tmp_path):
    path = tmp_path / "w.jsonl"
    assert read_events(path) == []
    path.write_text('{"event": "step", "step": 1}\n\n{"event": "done"}\n')
    assert [e["event"] for e in read_events(path)] == ["step", "done"]


def test_read_events_names_the_file_and_line_of_a_corrupted_event(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text('{"event": "step"}\n{"event": "st')
    with pytest.raises(ValueError, match=r"line 2, is not JSON .*killed in the middle of a write"):
        read_events(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="should be a JSON object"):
        read_events(path)


def script(code):
    return [sys.executable, "-c", code]


def test_cluster_gives_each_worker_its_tf_config_and_collects_logs_and_events(tmp_path):
    code = (
        "import json, os\n"
        "config = json.loads(os.environ['TF_CONFIG'])\n"
        "print('I am worker', config['task']['index'])\n"
        "event = {'event': 'done', 'n': len(config['cluster']['worker'])}\n"
        "with open(os.environ['TFCOURSE_EVENTS'], 'a') as f:\n"
        "    f.write(json.dumps(event) + '\\n')\n"
    )
    with Cluster(script(code), folder=tmp_path, workers=3, timeout=30) as cluster:
        assert cluster.wait() == [0, 0, 0]
    assert [log.strip() for log in cluster.logs()] == [f"I am worker {i}" for i in range(3)]
    assert cluster.events() == [[{"event": "done", "n": 3}]] * 3
    assert all(address.startswith("localhost:") for address in cluster.addresses)


def test_workers_see_no_gpu_and_compute_as_the_notebook_does(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # a machine profile reaches the workers too
    names = ["CUDA_VISIBLE_DEVICES", "TF_DETERMINISTIC_OPS", "NVIDIA_TF32_OVERRIDE"]
    names += ["TF_FORCE_GPU_ALLOW_GROWTH", "TF_ENABLE_ONEDNN_OPTS", "EXTRA"]
    code = f"import os; print([os.environ.get(name) for name in {names!r}])"
    with Cluster(script(code), folder=tmp_path, workers=1, env={"EXTRA": "x"}) as cluster:
        assert cluster.wait() == [0]
    determinism = tfcourse.child_env()["TF_DETERMINISTIC_OPS"]  # follows this process's setting
    assert cluster.logs()[0].strip() == str(["", determinism, "0", "true", "0", "x"])


def test_cluster_stops_a_hung_worker_on_timeout_and_shows_its_log(tmp_path):
    code = "import sys, time\nprint('waiting for the others', flush=True)\ntime.sleep(600)"
    with pytest.raises(ClusterError, match=r"(?s)still ran after 1 s.*waiting for the others"):
        with Cluster(script(code), folder=tmp_path, timeout=1, grace=0.5) as cluster:
            cluster.wait()
    assert all(worker.returncode is not None for worker in cluster.workers)
    assert not set(worker_pids()) & {w.process.pid for w in cluster.workers}


def test_cluster_stops_workers_and_their_children_when_the_block_fails(tmp_path):
    child = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "time.sleep(600)"
    )
    before = set(worker_pids())
    with pytest.raises(KeyboardInterrupt), Cluster(script(child), folder=tmp_path, grace=1):
        time.sleep(1.5)  # the workers and their children have started
        assert len(set(worker_pids()) - before) == 4
        raise KeyboardInterrupt  # a stopped cell
    assert set(worker_pids()) - before == set()


def test_an_interrupt_while_a_worker_starts_leaves_no_worker(tmp_path, monkeypatch):
    """Ctrl-C that lands after the exec but before Popen returns (CI run of 2026-12-06)."""
    real_popen = subprocess.Popen

    def popen_then_interrupt(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # the learner presses stop now
        time.sleep(0.1)  # Python would run the handler here, before Popen returns
        return process

    monkeypatch.setattr(subprocess, "Popen", popen_then_interrupt)
    before = set(worker_pids())
    with (
        pytest.raises(KeyboardInterrupt),
        Cluster(script("import time; time.sleep(600)"), folder=tmp_path),
    ):
        pytest.fail("the block ran although the start was interrupted")
    assert set(worker_pids()) - before == set()


def test_interrupts_deferred_delivers_the_interrupt_at_the_end():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with distributed._interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_cluster_stops_a_worker_that_ignores_sigterm(tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    start = time.monotonic()
    with Cluster(script(code), folder=tmp_path, workers=1, grace=0.5) as cluster:
        time.sleep(0.5)
    assert cluster.workers[0].returncode == -9
    assert time.monotonic() - start < 10


def test_cluster_refuses_a_command_given_as_one_string(tmp_path):
    with pytest.raises(ValueError, match="list of strings"):
        Cluster("python -m tfcourse.multiworker", folder=tmp_path)


def test_python_module_runs_this_python():
    assert python_module("tfcourse.multiworker", "--steps", 3) == [
        sys.executable,
        "-m",
        "tfcourse.multiworker",
        "--steps",
        "3",
    ]


@pytest.mark.slow
def test_a_worker_ends_itself_when_the_process_that_started_it_dies(tmp_path):
    """A notebook kernel that dies without stopping its cluster leaves no worker behind."""
    code = (
        "import subprocess, sys, os, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'tfcourse.multiworker', '--checkpoint-dir', "
        f"{str(tmp_path)!r}], start_new_session=True,\n"
        f"    env={{**os.environ, 'TF_CONFIG': '', '{distributed.WORKER_ENV}': '1'}})\n"
        "print(p.pid, flush=True)\ntime.sleep(0.5)\nos._exit(0)\n"
    )
    before = set(worker_pids())
    pid = int(subprocess.run(script(code), capture_output=True, text=True, check=True).stdout)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pid in worker_pids():
        time.sleep(0.2)
    assert pid not in worker_pids()
    assert set(worker_pids()) - before == set()


# No worker outlives a notebook: tests/test_release.py runs chapter 08's student release (its
# clusters) and checks it; tests/test_ch08.py does the same for check 08.4's clusters.


@pytest.fixture
def kernel():
    """A kernel of this environment, like the notebooks', shut down afterwards."""
    from tfcourse.notebooks._execute import _CurrentEnvKernelSpecs

    manager = KernelManager(kernel_name="python3", kernel_spec_manager=_CurrentEnvKernelSpecs())
    manager.start_kernel(stderr=subprocess.DEVNULL)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def _run(client, code, *, timeout=60):
    """Run `code` in the kernel; return the reply's status and error name."""
    reply = client.execute_interactive(code, timeout=timeout, output_hook=lambda message: None)
    return reply["content"]["status"], reply["content"].get("ename")


def _new_workers(before, count, seconds=30):
    """Wait until `count` workers not in `before` run; return them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(set(worker_pids()) - before) < count:
        time.sleep(0.2)
    return set(worker_pids()) - before


def _wait_until_gone(pids, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and set(worker_pids()) & pids:
        time.sleep(0.2)
    return set(worker_pids()) & pids


@pytest.mark.slow
def test_a_cell_interrupted_inside_a_cluster_leaves_no_worker(kernel, tmp_path):
    manager, client = kernel
    before = set(worker_pids())
    code = (
        "import sys\nfrom tfcourse import distributed\n"
        "with distributed.Cluster([sys.executable, '-c', 'import time; time.sleep(600)'], "
        f"folder={str(tmp_path)!r}) as cluster:\n    cluster.wait()\n"
    )
    message_id = client.execute(code)
    started = _new_workers(before, 2)
    assert len(started) == 2
    manager.interrupt_kernel()  # the learner presses stop
    reply = client.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == message_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert _wait_until_gone(started, seconds=1) == set()
    assert _run(client, "1 + 1")[0] == "ok"  # the kernel lives on


@pytest.mark.slow
def test_workers_end_themselves_when_the_kernel_dies(kernel, tmp_path):
    manager, client = kernel
    before = set(worker_pids())
    code = (
        "from tfcourse import distributed\n"
        "command = distributed.python_module('tfcourse.multiworker', '--steps', 100000, "
        f"'--checkpoint-dir', {str(tmp_path / 'ckpt')!r})\n"
        f"cluster = distributed.Cluster(command, folder={str(tmp_path)!r}).__enter__()\n"
    )
    assert _run(client, code) == ("ok", None)
    started = _new_workers(before, 2)
    assert len(started) == 2
    manager.signal_kernel(
        signal.SIGKILL
    )  # no clean-up at all: only the workers' own watchdog can stop them
    assert _wait_until_gone(started) == set()

"""Chapter 08's two workers, each in its own network namespace: the traffic crosses a veth pair.

The notebook runs its workers on the loopback. Here each worker gets a network namespace of its own,
with one end of a virtual Ethernet (veth) pair and an address this test chooses, so the all-reduce
really leaves one network stack and enters another. It needs root (CI runs as root) and iproute2.

The suite's guard (tests/netguard) sees Python's sockets only; TensorFlow's gRPC is C++ and goes
around it. What keeps the workers in is the namespaces themselves: each has the loopback and its
end of the veth pair, and no other route, which the test checks.
"""

import os
import shutil
import subprocess

import pytest
from netguard import ALLOW_ENV

from tfcourse import distributed

pytestmark = pytest.mark.slow

#: A /30 of the private range 10.0.0.0/8 that the test gives its two namespaces.
ADDRESSES = ("10.213.0.1", "10.213.0.2")
PORT = 22_222


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=30)


@pytest.fixture
def namespaces():
    """Two namespaces joined by a veth pair, ADDRESSES on its ends; always deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root (CI runs the suite as root)")
    if shutil.which("ip") is None:
        pytest.skip("needs `ip` from iproute2 (.ci/run installs it)")
    names = [f"tfc8-{os.getpid()}-{side}" for side in "ab"]
    links = [f"tfc8{side}{os.getpid() % 100_000}" for side in "ab"]
    try:
        for name in names:
            _ip("netns", "add", name)
        _ip("link", "add", links[0], "netns", names[0], "type", "veth", "peer", "name", links[1],
            "netns", names[1])  # fmt: skip
        for name, link, address in zip(names, links, ADDRESSES, strict=True):
            _ip("-n", name, "addr", "add", f"{address}/30", "dev", link)
            _ip("-n", name, "link", "set", link, "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        _delete(names)
        pytest.skip(f"could not create network namespaces here: {getattr(error, 'stderr', error)}")
    try:
        yield names, links
    finally:
        _delete(names)


def _delete(names):
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=30)


def _sent_bytes(namespace, link):
    path = f"/sys/class/net/{link}/statistics/tx_bytes"
    return int(_ip("netns", "exec", namespace, "cat", path).stdout)


def test_two_workers_in_their_own_namespaces_train_together(namespaces, tmp_path, monkeypatch):
    names, links = namespaces
    for name in names:  # no default route: the other namespace is all a worker can reach
        assert _ip("-n", name, "route").stdout.split()[0] == "10.213.0.0/30"
        assert len(_ip("-n", name, "route").stdout.strip().splitlines()) == 1
    monkeypatch.setenv(ALLOW_ENV, ",".join(ADDRESSES))  # exactly these two, for the workers
    command = distributed.python_module(
        "tfcourse.multiworker", "--steps", 10, "--checkpoint-dir", tmp_path / "ckpt"
    )
    with distributed.Cluster(
        command,
        folder=tmp_path / "logs",
        workers=[f"{address}:{PORT}" for address in ADDRESSES],
        launcher=lambda index: ["ip", "netns", "exec", names[index]],
        timeout=240,
    ) as cluster:
        codes = cluster.wait()
    assert codes == [0, 0], cluster.logs()
    done = [next(e for e in events if e["event"] == "done") for events in cluster.events()]
    assert done[0]["step"] == done[1]["step"] == 10
    assert done[0]["loss"] == done[1]["loss"]
    # The gradients of 10 steps (25k parameters each) went over the veth, both ways.
    assert min(_sent_bytes(name, link) for name, link in zip(names, links, strict=True)) > 500_000


def test_the_namespaces_are_gone_after_the_test():
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    assert f"tfc8-{os.getpid()}-" not in listed.stdout

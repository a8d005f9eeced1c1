"""The suite runs offline: any connection beyond this machine is refused before it is made."""

import socket
import subprocess
import sys

import pytest
from netguard import ALLOW_ENV, NetworkBlockedError

TEST_NET = "192.0.2.1"  # reserved for documentation (RFC 5737): never a real host


def test_connection_to_another_host_is_blocked_in_process():
    with pytest.raises(NetworkBlockedError, match="offline"):
        socket.create_connection((TEST_NET, 80), timeout=1)


def test_name_lookup_of_another_host_is_blocked():
    with pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("pypi.org", 443)


def test_subprocesses_such_as_kernels_are_blocked_too():
    code = f"import socket; socket.create_connection(({TEST_NET!r}, 80), timeout=1)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "NetworkBlockedError" in result.stderr


def test_loopback_connections_still_work():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            connection, _ = server.accept()
            client.sendall(b"ping")
            assert connection.recv(4) == b"ping"
            connection.close()


def test_an_allowed_address_passes_the_guard_and_no_other(monkeypatch):
    """tests/test_netns.py lets its own namespaces' addresses through, and nothing else."""
    monkeypatch.setenv(ALLOW_ENV, "192.0.2.7, 192.0.2.9,not-an-address")
    with socket.socket() as sock:  # passes the guard; the address itself does not answer
        sock.setblocking(False)
        assert sock.connect_ex(("192.0.2.7", 9)) != 0
    for other in ("192.0.2.8", "10.213.0.3", "not-an-address", "example.org"):
        with pytest.raises(NetworkBlockedError):
            socket.create_connection((other, 9), timeout=0.1)
    monkeypatch.delenv(ALLOW_ENV)
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("192.0.2.7", 9), timeout=0.1)

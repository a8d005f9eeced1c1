"""Block every network connection except to this machine, in this process and in its children.

The course promises to run offline. The test suite installs this guard in its own process and puts
this folder's `sitecustomize.py` on PYTHONPATH, so notebook kernels and CLI subprocesses that the
tests start are guarded too. A blocked call raises `NetworkBlockedError` before any packet is sent.

A test that gives processes addresses of its own (tests/test_netns.py: two network namespaces joined
by a veth pair) lets exactly those through by listing them, comma-separated, in the environment
variable `TFCOURSE_NETGUARD_ALLOW`; it is read at every call, so children inherit it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

_ALLOWED_NAMES = {"localhost", "ip6-localhost", ""}
#: Addresses beyond this machine that a test let through, e.g. "10.213.0.1,10.213.0.2".
ALLOW_ENV = "TFCOURSE_NETGUARD_ALLOW"
_original: dict[str, Any] = {}


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to reach a host other than this machine."""


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host is None or str(host).lower() in _ALLOWED_NAMES:
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address in _allowed()


def _allowed() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses listed in `ALLOW_ENV`; a name or a malformed entry allows nothing."""
    allowed = set()
    for entry in os.environ.get(ALLOW_ENV, "").split(","):
        try:
            allowed.add(ipaddress.ip_address(entry.strip()))
        except ValueError:
            continue
    return allowed


def _refuse(host: Any) -> None:
    raise NetworkBlockedError(f"tfcourse tests run offline: connecting to {host!r} is blocked")


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address[0])
    return _original["connect"](self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address[0])
    return _original["connect_ex"](self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host):
        _refuse(host)
    return _original["getaddrinfo"](host, *args, **kwargs)


def install() -> None:
    """Install the guard (idempotent)."""
    if _original:
        return
    _original.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        getaddrinfo=socket.getaddrinfo,
    )
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo

"""Block every network connection except to this machine, in this process and in its children.

The course promises to run offline. The test suite installs this guard in its own process and puts
this folder's `sitecustomize.py` on PYTHONPATH, so notebook kernels and CLI subprocesses that the
tests start are guarded too. A blocked call raises `NetworkBlockedError` before any packet is sent.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_ALLOWED_NAMES = {"localhost", "ip6-localhost", ""}
_original: dict[str, Any] = {}


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to reach a host other than this machine."""


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host is None or str(host).lower() in _ALLOWED_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


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

"""A network guard for replay: only loopback can be resolved or connected to.

pytest-recording's ``blocking_context`` is not reentrant (leaving an inner one unblocks
everything, e.g. when a pytester run inside the session replays too) and patches only
``connect``, so name lookups still leave the machine. This guard counts its users: the patches go
on with the first ``offline()`` and come off with the last, and they cover ``getaddrinfo`` as well
as ``connect``/``connect_ex``. A blocked call raises ``NetworkBlockedError`` (an ``OSError``, which
clients report as a connection error) naming the host.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from contextlib import contextmanager
from typing import Any, Iterator

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

_lock = threading.Lock()
_depth = 0
_saved: dict[str, Any] = {}


class NetworkBlockedError(OSError):
    """A non-loopback resolution or connection while the guard is on."""


def is_loopback(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard / loopback
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%")[0].lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_address(address: Any) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    if isinstance(address, tuple) and address and not is_loopback(address[0]):
        raise NetworkBlockedError(f"judge_eval's network guard: connection to {address[0]}:{address[1]} blocked "
                                  "(replay is offline; only loopback is reachable)")


def _install() -> None:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo
    _saved.update(connect=original_connect, connect_ex=original_connect_ex, getaddrinfo=original_getaddrinfo)

    def connect(self: socket.socket, address: Any) -> Any:
        _check_address(address)
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        _check_address(address)
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise NetworkBlockedError(f"judge_eval's network guard: name lookup of {host!r} blocked "
                                      "(replay is offline; only loopback is reachable)")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def _uninstall() -> None:
    socket.socket.connect = _saved.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _saved.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _saved.pop("getaddrinfo")


def is_loopback_url(url: str | None) -> bool:
    """Whether ``url`` names a loopback host (our own servers: tests, llama.cpp while recording)."""
    from urllib.parse import urlsplit

    return bool(url) and is_loopback(urlsplit(url).hostname or "")


def urlopen(url: str, *, timeout: float) -> Any:
    """``urllib.request.urlopen``, except that a loopback URL never goes through a proxy from the
    environment (HTTP_PROXY/HTTPS_PROXY without NO_PROXY would send our own servers' traffic
    there); remote URLs keep honouring the proxy settings."""
    import urllib.request

    if is_loopback_url(url):
        return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout)
    return urllib.request.urlopen(url, timeout=timeout)


def active() -> bool:
    return _depth > 0


@contextmanager
def offline() -> Iterator[None]:
    """Only loopback is reachable inside; nested and overlapping uses are safe."""
    global _depth
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()

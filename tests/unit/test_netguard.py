"""The replay network guard: reentrant, loopback only, refuses before any socket call.

Nothing here reaches the network. The tests that look up or connect to a non-loopback host
first install recording fakes as the "real" ``getaddrinfo`` / ``connect`` / ``connect_ex`` (so
the guard wraps the fakes), check that the guard's wrapper is in place, and then assert that the
fake was never reached. The only real connection is to a listening socket on 127.0.0.1.
"""

from __future__ import annotations

import re
import socket
from contextlib import ExitStack
from typing import Any

import pytest

from judge_eval.recording import netguard

NON_LOOPBACK = ["example.org", "10.1.2.3", "192.0.2.1", "8.8.8.8", "::ffff:8.8.8.8", "2001:db8::1",
                "localhost.example.org", "127.0.0.1.example.org", "[2001:db8::1]", b"example.org"]
LOOPBACK = ["127.0.0.1", "127.5.5.5", "::1", "localhost", "LOCALHOST", "[::1]", b"127.0.0.1", None]


def is_guard(function: Any, name: str) -> bool:
    """Whether ``function`` is the guard's wrapper ``name`` (not the original, not a fake)."""
    return getattr(function, "__qualname__", "") == f"_install.<locals>.{name}"


@pytest.fixture
def fresh_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's counter at zero for this test, whatever the session has switched on (a
    session fixture keeps the guard on during replay); restored afterwards."""
    monkeypatch.setattr(netguard, "_depth", 0)
    monkeypatch.setattr(netguard, "_saved", {})
    yield
    assert netguard._depth == 0 and netguard._saved == {}


@pytest.fixture
def fake_network(fresh_guard: None, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Recording fakes in place of the socket functions the guard wraps; returns their calls."""
    calls: list[tuple] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        calls.append(("getaddrinfo", host))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    def connect(self: socket.socket, address: Any) -> None:
        calls.append(("connect", address))

    def connect_ex(self: socket.socket, address: Any) -> int:
        calls.append(("connect_ex", address))
        return 0

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return calls


def socket_functions() -> tuple:
    return socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex


def assert_guarded() -> None:
    assert netguard.active()
    assert is_guard(socket.getaddrinfo, "getaddrinfo")
    assert is_guard(socket.socket.connect, "connect") and is_guard(socket.socket.connect_ex, "connect_ex")


def refused(host: Any) -> bool:
    """Whether the guard refuses a lookup of ``host`` (use with ``fake_network`` only)."""
    with netguard.offline():
        assert_guarded()
        try:
            socket.getaddrinfo(host, 443)
        except netguard.NetworkBlockedError:
            return True
        return False


# --------------------------------------------------------------------------- reentrancy

def test_the_inner_exit_of_nested_guards_keeps_the_guard_on(fake_network: list) -> None:
    before = socket_functions()
    assert not netguard.active()
    with netguard.offline():
        assert_guarded()
        installed = socket_functions()
        with netguard.offline():
            assert socket_functions() == installed  # not wrapped twice
        # The inner exit must not switch the guard off.
        assert_guarded()
        assert socket_functions() == installed
        with pytest.raises(netguard.NetworkBlockedError):
            socket.getaddrinfo("example.org", 443)
    assert not netguard.active()
    assert socket_functions() == before
    assert fake_network == []


def test_overlapping_guards_and_an_exception_inside(fake_network: list) -> None:
    before = socket_functions()
    first, second = netguard.offline(), netguard.offline()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first one leaves first
    assert_guarded()
    second.__exit__(None, None, None)
    assert not netguard.active() and socket_functions() == before
    with ExitStack() as stack:
        stack.enter_context(netguard.offline())
        with pytest.raises(RuntimeError), netguard.offline():
            raise RuntimeError("inside")
        assert_guarded()
    assert not netguard.active() and socket_functions() == before


# --------------------------------------------------------------------------- what is refused

@pytest.mark.parametrize("host", NON_LOOPBACK)
def test_a_non_loopback_lookup_is_refused_before_any_socket_call(fake_network: list, host: Any) -> None:
    with netguard.offline():
        assert_guarded()
        with pytest.raises(netguard.NetworkBlockedError, match=re.escape(f"name lookup of {host!r} blocked")):
            socket.getaddrinfo(host, 443)
    assert fake_network == []
    assert issubclass(netguard.NetworkBlockedError, OSError)  # clients report it as a connection error


@pytest.mark.parametrize("address", [("192.0.2.1", 9), ("10.1.2.3", 443), ("2001:db8::1", 9, 0, 0),
                                     ("example.org", 80)])
def test_a_non_loopback_connection_is_refused_before_any_socket_call(fake_network: list, address: tuple) -> None:
    with netguard.offline(), socket.socket() as sock:
        assert_guarded()
        with pytest.raises(netguard.NetworkBlockedError, match=re.escape(f"{address[0]}:{address[1]} blocked")):
            sock.connect(address)
        with pytest.raises(netguard.NetworkBlockedError):
            sock.connect_ex(address)
    assert fake_network == []


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_names_and_addresses_are_allowed(fake_network: list, host: Any) -> None:
    with netguard.offline(), socket.socket() as sock:
        assert_guarded()
        assert socket.getaddrinfo(host, 80)
        sock.connect((host, 9))
        assert sock.connect_ex((host, 9)) == 0
    assert fake_network == [("getaddrinfo", host), ("connect", (host, 9)), ("connect_ex", (host, 9))]


def test_unix_socket_paths_are_not_network_addresses() -> None:
    netguard._check_address("/tmp/some.sock")
    netguard._check_address(b"\0abstract")


def test_a_real_loopback_connection_works_under_the_guard(fresh_guard: None) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with netguard.offline():
            assert_guarded()
            with socket.create_connection(server.getsockname(), timeout=2):
                pass
    assert not netguard.active()


# --------------------------------------------------------------------------- not widened

def test_no_non_loopback_host_counts_as_loopback() -> None:
    assert not any(netguard.is_loopback(h) for h in NON_LOOPBACK)
    assert all(netguard.is_loopback(h) for h in LOOPBACK)
    assert not netguard.is_loopback(1234)


def test_the_check_notices_when_every_host_is_allowed(fake_network: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """``refused`` is the check the tests above rely on; widening the allowed hosts to every
    host makes it report the lookups as let through (to the fake, never to the network)."""
    assert all(refused(h) for h in NON_LOOPBACK) and not any(refused(h) for h in LOOPBACK)
    assert fake_network == [("getaddrinfo", h) for h in LOOPBACK]
    monkeypatch.setattr(netguard, "is_loopback", lambda host: True)
    assert not any(refused(h) for h in NON_LOOPBACK)

"""Proxy settings: our own clients reach loopback directly, remote APIs keep the proxy; and the
loopback-client tests, run with a dead proxy in HTTP(S)_PROXY, pass without one connection to it
and without resolving or reaching any non-loopback address (socket audit hook)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from judge_eval.live.clients import http_clients
from judge_eval.recording import netguard

ROOT = Path(__file__).resolve().parents[2]

#: The tests whose clients talk to loopback servers of our own.
LOOPBACK_CLIENT_TESTS = ["tests/unit/test_faults.py", "tests/unit/test_openai_profile.py",
                         "tests/unit/test_fetch.py", "tests/unit/test_vcr_private.py",
                         "tests/unit/test_proxies.py::test_our_clients_reach_loopback_directly_and_remote_apis_through_the_proxy"]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = f"{self.server.name} {self.path}".encode()  # type: ignore[attr-defined]
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _server(name: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.name, server.hits = name, []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_our_clients_reach_loopback_directly_and_remote_apis_through_the_proxy(monkeypatch) -> None:
    target, proxy = _server("target"), _server("proxy")
    try:
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        for key in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(key, raising=False)
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(key, proxy_url)
        url = f"http://127.0.0.1:{target.server_address[1]}/v1/models"
        sync_client, async_client = http_clients()
        with sync_client:
            assert sync_client.get(url).text == "target /v1/models"
            # A remote API keeps the proxy: the request goes to the proxy (on loopback), which
            # answers it; the name is never looked up here.
            assert sync_client.get("http://api.example.invalid/v1/models").text.startswith("proxy ")

        async def get() -> str:
            async with async_client:
                return (await async_client.get(url)).text

        assert asyncio.run(get()) == "target /v1/models"
        with netguard.urlopen(url, timeout=5) as response:
            assert response.read() == b"target /v1/models"
        assert target.hits == ["/v1/models"] * 3
        assert proxy.hits == ["http://api.example.invalid/v1/models"]
    finally:
        for server in (target, proxy):
            server.shutdown()
            server.server_close()


def test_the_loopback_client_tests_pass_behind_a_dead_proxy_without_touching_it(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               JUDGE_EVAL_AUDIT_LOG=str(log))
    # --assert=plain: with an audit hook installed, CPython 3.11.7's ast.parse (which pytest's
    # assertion rewriting calls on first import) can fail with "AST constructor recursion depth
    # mismatch"; the audited run needs no rewritten asserts.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                             "--assert=plain", "-p", "tests.network_audit", *LOOPBACK_CLIENT_TESTS],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    connects = [e for e in events if e["event"] == "connect"]
    assert any(e["host"] == "127.0.0.1" for e in connects)  # the audit saw the tests' own traffic
    to_proxy = [e for e in connects if e["port"] == 9]
    assert not to_proxy, f"a client connected to the proxy: {to_proxy[:3]}"
    outside = [e for e in events if not netguard.is_loopback(e["host"])]
    assert not outside, f"non-loopback names or addresses: {outside[:5]}"


def test_the_audit_would_see_a_lookup(tmp_path: Path) -> None:
    """The audit hook is not blind: a loopback lookup in a child process is logged."""
    log = tmp_path / "audit.jsonl"
    code = ("import sys; sys.argv=['x']; import tests.network_audit as a, socket; "
            "socket.getaddrinfo('localhost', 80); a.pytest_unconfigure(None)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60,
                   env={**os.environ, "JUDGE_EVAL_AUDIT_LOG": str(log)})
    assert {"event": "getaddrinfo", "host": "localhost", "port": 80} in \
        [json.loads(line) for line in log.read_text().splitlines()]


def test_the_session_is_offline_by_construction() -> None:
    """Every test file, even run alone, runs under the one session guard (fixtures/network.py)."""
    assert netguard.active()
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(netguard.NetworkBlockedError):
        socket.getaddrinfo("example.org", 443)

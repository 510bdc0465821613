"""The shared HTTP client pair stays cheap to build and to use at high concurrency: one CA-bundle
load for the whole pair, and loopback calls spread over several connection pools by how many
calls each has in flight (one call at a time keeps reusing one connection)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from judge_eval.live.clients import LOOPBACK_POOLS, LeastBusyTransport, http_clients


def test_the_pair_loads_the_ca_bundle_once(monkeypatch) -> None:
    for key in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(key, raising=False)
    loads = []
    real = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(args or kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    sync_client, async_client = http_clients()
    sync_client.close()
    asyncio.run(async_client.aclose())
    # Two clients and six loopback transports, one TLS context: httpx alone would load it 8 times.
    assert len(loads) == 1


def _inner(log: list[int], index: int, arrived: list[int], release: asyncio.Event) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        log.append(index)
        arrived.append(index)
        await asyncio.wait_for(release.wait(), timeout=10)
        return httpx.Response(200, text=str(index))

    return httpx.MockTransport(handler)


def test_calls_in_flight_spread_evenly_and_one_at_a_time_stay_on_the_first_pool() -> None:
    async def scenario() -> tuple[list[int], list[int], list[str]]:
        release = asyncio.Event()
        log: list[int] = []
        arrived: list[int] = []
        transport = LeastBusyTransport([_inner(log, i, arrived, release) for i in range(8)])
        async with httpx.AsyncClient(transport=transport) as client:
            release.set()
            for _ in range(5):  # one at a time: the first pool each time
                await client.get("http://127.0.0.1/x")
            sequential = list(log)
            log.clear()
            release.clear()
            tasks = [asyncio.create_task(client.get("http://127.0.0.1/y")) for _ in range(32)]
            while len(arrived) < 5 + 32:
                await asyncio.sleep(0.01)
            release.set()
            texts = [r.text for r in await asyncio.gather(*tasks)]
        return sequential, list(log), texts

    sequential, concurrent, texts = asyncio.run(scenario())
    assert sequential == [0, 0, 0, 0, 0]
    # 32 calls held in flight over 8 pools: 4 each (hand count 32 / 8), in turn 0..7 four times.
    assert [concurrent.count(i) for i in range(8)] == [4] * 8
    assert concurrent == list(range(8)) * 4
    assert sorted(texts) == sorted(str(i) for i in concurrent)


def test_a_failed_call_frees_its_pool() -> None:
    calls: list[int] = []

    def transport(index: int, fail: bool) -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            calls.append(index)
            if fail:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(200)

        return httpx.MockTransport(handler)

    pools = LeastBusyTransport([transport(0, True), transport(1, False)])

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=pools) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1/")
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1/")  # pool 0 is free again, so it is chosen again

    asyncio.run(scenario())
    assert calls == [0, 0]


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        self.server.ports.append(self.client_address[1])  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def test_sequential_loopback_calls_reuse_one_connection() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    server.daemon_threads = True
    server.ports = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sync_client, async_client = http_clients()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/models"

        async def calls() -> list[str]:
            async with async_client:
                return [(await async_client.get(url)).text for _ in range(LOOPBACK_POOLS + 2)]

        assert asyncio.run(calls()) == ["ok"] * (LOOPBACK_POOLS + 2)
        # One call at a time: the same connection every time (going round the pools would have
        # opened one per pool).
        ports = server.ports  # type: ignore[attr-defined]
        assert len(ports) == LOOPBACK_POOLS + 2 and len(set(ports)) == 1
    finally:
        sync_client.close()
        server.shutdown()
        server.server_close()

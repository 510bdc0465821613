"""The judging benchmark's server, in a process of its own: tests/loopback.py's OpenAI-compatible
server answering every chat completion after LATENCY seconds, with a listen backlog of BACKLOG.

    python benchmarks/latency_server.py LATENCY BACKLOG [close] [cookie]

Prints its base URL on one line, then serves until its stdin is closed. POST .../count answers
{"count": N}, the chat completions it has answered so far (the benchmark checks every call
reached it).

It answers as a model server does (llama.cpp's, or a hosted API): HTTP/1.1 with keep-alive
(TCP_NODELAY) and no cookie. tests/loopback.py, built to test the recording, answers HTTP/1.0
(a new connection per call) and sets a session cookie (which httpx then handles on every
request); ``close`` and ``cookie`` bring either back, to measure what they cost the client.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tests.loopback as loopback  # noqa: E402


def main(latency: float, backlog: int, *, keep_alive: bool = True, cookie: bool = False) -> None:
    class Server(loopback.ThreadingHTTPServer):
        request_queue_size = backlog  # socketserver's default is 5: connections beyond it wait
        daemon_threads = True

    class Handler(loopback.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"  # every answer has a length
        # The handler writes the headers and the body separately: with Nagle's algorithm on a
        # kept-alive connection the body waits for the client's delayed ACK, 40 ms a call.
        disable_nagle_algorithm = True

    loopback.ThreadingHTTPServer = Server  # start() builds its server and handler from these names
    loopback.BaseHTTPRequestHandler = Handler
    lb = loopback.Loopback(base_url="")

    def hook(path: str, body: dict):
        if path.endswith("/count"):
            count = sum(1 for r in lb.requests if r["path"].endswith("/chat/completions"))
            return 200, {"Content-Type": "application/json"}, json.dumps({"count": count}).encode()
        time.sleep(latency)
        if cookie:
            return None  # tests/loopback's own answer, with its cookie
        # The same answer (a verdict), without the cookie and the headers the recording scrubs.
        text = loopback.default_text(body)
        return 200, {"Content-Type": "application/json"}, json.dumps(loopback.answer(path, body, text)).encode()

    lb.hook = hook
    loopback.start(lb)
    print(lb.base_url, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    flags = sys.argv[3:]
    main(float(sys.argv[1]), int(sys.argv[2]), keep_alive="close" not in flags, cookie="cookie" in flags)

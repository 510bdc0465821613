"""The judging benchmark's server, in a process of its own: tests/loopback.py's OpenAI-compatible
server answering every chat completion after LATENCY seconds, with a listen backlog of BACKLOG.

    python benchmarks/latency_server.py LATENCY BACKLOG

Prints its base URL on one line, then serves until its stdin is closed. POST .../count answers
{"count": N}, the chat completions it has answered so far (the benchmark checks every call
reached it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tests.loopback as loopback  # noqa: E402


def main(latency: float, backlog: int) -> None:
    class Server(loopback.ThreadingHTTPServer):
        request_queue_size = backlog  # socketserver's default is 5: connections beyond it wait
        daemon_threads = True

    loopback.ThreadingHTTPServer = Server  # start() builds its server from this name
    lb = loopback.Loopback(base_url="")

    def hook(path: str, body: dict):
        if path.endswith("/count"):
            count = sum(1 for r in lb.requests if r["path"].endswith("/chat/completions"))
            return 200, {"Content-Type": "application/json"}, json.dumps({"count": count}).encode()
        time.sleep(latency)
        return None  # the server's default answer (a verdict) after the delay

    lb.hook = hook
    loopback.start(lb)
    print(lb.base_url, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]))

"""A small OpenAI-compatible HTTP server of our own on 127.0.0.1, for tests only.

It answers /v1/chat/completions, /v1/completions and /v1/embeddings with deterministic JSON
derived from the request, counts every request it receives, and can be told to fail on a
schedule. Its answers never go into committed cassettes (tests write cassettes to tmp_path).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class QuietJsonHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers JSON (``_json``) or raw bytes (``_send``):
    the base of the test servers (tests/fake_apis.py, tests/batch_server.py, test_canary.py)."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())


@dataclass
class Loopback:
    """Handle on a running server: its base URL, the requests it saw, and a reply hook."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: (path, body) -> (status, headers, body bytes) or None for the default answer.
    hook: Callable[[str, dict[str, Any]], tuple[int, dict[str, str], bytes] | None] | None = None
    reply: Callable[[dict[str, Any]], str] | None = None  # text of a chat/completion answer


def default_text(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return f"Answer {digest}. Final verdict: [[A]]"


def answer(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    model = body.get("model", "loopback-model")
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    if path.endswith("/embeddings"):
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i,
                 "embedding": [((hash(str(x)) >> k) % 7) / 7.0 + 0.01 for k in range(8)]}
                for i, x in enumerate(inputs)]
        return {"object": "list", "data": data, "model": model, "usage": usage}
    if path.endswith("/chat/completions"):
        return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": 0, "model": model,
                "system_fingerprint": "fp_loopback",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}], "usage": usage}
    return {"id": "cmpl-loopback", "object": "text_completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}], "usage": usage}


def start(state: Loopback | None = None) -> tuple[Loopback, ThreadingHTTPServer]:
    holder: dict[str, Loopback] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            lb = holder["lb"]
            lb.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers), "body": {}})
            self._send(200, {"Content-Type": "application/json"},
                       json.dumps({"object": "list", "data": [{"id": "loopback-model"}]}).encode())

        def do_POST(self) -> None:
            lb = holder["lb"]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"raw": raw.decode("latin-1")}
            lb.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
            if lb.hook is not None:
                custom = lb.hook(self.path, body)
                if custom is not None:
                    self._send(*custom)
                    return
            text = (lb.reply or default_text)(body)
            self._send(200, {"Content-Type": "application/json", "Set-Cookie": "session=secret-cookie",
                             "openai-organization": "org-secret", "x-request-id": "req-1"},
                       json.dumps(answer(self.path, body, text)).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    lb = state or Loopback(base_url="")
    lb.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    holder["lb"] = lb
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return lb, server

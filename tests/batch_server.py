"""A loopback server of our own that speaks the OpenAI Batch API (and what a judging run around
it needs): POST /v1/files (multipart, purpose ``batch`` or ``fine-tune``), GET
/v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}, POST /v1/chat/completions (the
online path, for comparison) and the fine-tuning job endpoints (the distill stage between the
teacher and the students). For tests only: its answers go to tmp_path, never into committed
cassettes.

Scripted: ``statuses`` is the status each poll of a batch reports, in order (the last one
repeats); ``fault(custom_id)`` can make a line fail (``{"status": 500, "message": ...}`` in the
output file, ``{"error": ("code", "message")}`` in the error file), go ``"missing"`` or come back
``"twice"``; ``reply(body)`` is the judge's text for a request body, online and in a batch alike.
Every request is logged as (method, path, purpose of an upload or "").
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import ThreadingHTTPServer
from typing import Any, Callable

from tests.fake_apis import _judge_text
from tests.loopback import QuietJsonHandler, answer

FT_MODEL = "ft:student-m:loopback::batch1"


def judge_reply(body: dict[str, Any]) -> str:
    """The judge's text: tests/fake_apis.py's year-counting pairwise judge on the request's prompt."""
    return _judge_text("\n".join(m.get("content") or "" for m in body.get("messages", [])))


@dataclass
class BatchServer:
    base_url: str = ""
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=lambda: ["validating", "in_progress", "finalizing", "completed"])
    reply: Callable[[dict[str, Any]], str] = judge_reply
    fault: Callable[[str], Any] = lambda custom_id: None
    batch_errors: list[dict[str, Any]] = field(default_factory=list)  # errors.data of a failed batch
    missing: set[str] = field(default_factory=set)  # paths answered 404 (no Batch API)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    chat_bodies: list[dict[str, Any]] = field(default_factory=list)  # online chat requests, in order

    def count(self, method: str, path: str, purpose: str = "") -> int:
        return sum(1 for r in self.requests if r == (method, path, purpose))


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


def _results(state: BatchServer, batch: dict[str, Any]) -> None:
    """Write the batch's output and error files, as the provider does when it finalizes."""
    output, errors = [], []
    for n, raw in enumerate(state.files[batch["input_file_id"]].splitlines()):
        line = json.loads(raw)
        custom_id, body = line["custom_id"], line["body"]
        fault = state.fault(custom_id)
        if fault == "missing":
            continue
        record: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": custom_id, "response": None, "error": None}
        if isinstance(fault, dict) and "status" in fault:
            record["response"] = {"status_code": fault["status"], "request_id": f"req_{n}",
                                  "body": {"error": {"message": fault["message"], "type": "server_error"}}}
            output.append(record)
        elif isinstance(fault, dict) and "error" in fault:
            code, message = fault["error"]
            record["error"] = {"code": code, "message": message}
            errors.append(record)
        else:
            record["response"] = {"status_code": 200, "request_id": f"req_{n}",
                                  "body": answer(line["url"], body, state.reply(body))}
            output.append(record)
            if fault == "twice":
                output.append(dict(record, id=f"batch_req_{n}b"))
    for kind, lines in (("output", output), ("error", errors)):
        if lines:
            file_id = f"file-{kind}-{batch['id']}"
            state.files[file_id] = "".join(json.dumps(r) + "\n" for r in lines).encode()
            batch[f"{kind}_file_id"] = file_id
    batch["request_counts"] = {"total": len(state.files[batch["input_file_id"]].splitlines()),
                               "completed": len(output), "failed": len(errors)}


def start() -> tuple[BatchServer, ThreadingHTTPServer]:
    state = BatchServer()
    lock = threading.Lock()

    class Handler(QuietJsonHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            with lock:
                state.requests.append(("GET", path, ""))
                if any(path.startswith(p) for p in state.missing):
                    return self._json(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})
                m = re.fullmatch(r"/v1/files/([\w-]+)/content", path)
                if m and m.group(1) in state.files:
                    return self._send(200, state.files[m.group(1)], "application/octet-stream")
                m = re.fullmatch(r"/v1/batches/([\w-]+)", path)
                if m and m.group(1) in state.batches:
                    batch = state.batches[m.group(1)]
                    n = state.polls[batch["id"]] = state.polls.get(batch["id"], 0) + 1
                    status = state.statuses[min(n - 1, len(state.statuses) - 1)]
                    batch["status"] = status
                    if status in ("completed", "expired", "cancelled") and "request_counts" not in batch:
                        _results(state, batch)
                    if status == "failed":
                        batch["errors"] = {"object": "list", "data": state.batch_errors}
                    done = batch.get("request_counts") or {"total": batch["lines"], "completed": 0, "failed": 0}
                    if status == "in_progress" and "request_counts" not in batch:
                        done = {"total": batch["lines"], "completed": batch["lines"] // 2, "failed": 0}
                    return self._json(200, {**{k: v for k, v in batch.items() if k != "lines"},
                                            "request_counts": done})
                m = re.fullmatch(r"/v1/fine_tuning/jobs/([\w-]+)", path)
                if m:
                    return self._json(200, _job(m.group(1), "succeeded"))
            return self._json(404, {"error": {"message": "Not found"}})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                if path == "/v1/files":
                    parts = _multipart(self.headers.get("Content-Type", ""), raw)
                    purpose = (parts.get("purpose") or b"").decode()
                    state.requests.append(("POST", path, purpose))
                    if any(path.startswith(p) for p in state.missing):
                        return self._json(404, {"error": {"message": "Not found"}})
                    file_id = f"file-in-{len(state.files) + 1}"
                    state.files[file_id] = parts["file"]
                    return self._json(200, {"id": file_id, "object": "file", "bytes": len(parts["file"]),
                                            "created_at": 0, "filename": "input.jsonl", "purpose": purpose,
                                            "status": "processed"})
                state.requests.append(("POST", path, ""))
                if any(path.startswith(p) for p in state.missing):
                    return self._json(404, {"error": {"message": "Not found"}})
                body = json.loads(raw or b"{}")
                if path == "/v1/batches":
                    batch_id = f"batch_{len(state.batches) + 1}"
                    lines = len(state.files[body["input_file_id"]].splitlines())
                    state.batches[batch_id] = {
                        "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "lines": lines,
                        "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                        "status": "validating", "created_at": 0, "output_file_id": None, "error_file_id": None}
                    return self._json(200, {**{k: v for k, v in state.batches[batch_id].items() if k != "lines"},
                                            "request_counts": {"total": lines, "completed": 0, "failed": 0}})
                if path == "/v1/chat/completions":
                    state.chat_bodies.append(body)
                    return self._json(200, answer(path, body, state.reply(body)))
                if path == "/v1/fine_tuning/jobs":
                    return self._json(200, _job("ftjob-batch", "validating_files"))
            return self._json(404, {"error": {"message": "Not found"}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server


def _job(job_id: str, status: str) -> dict[str, Any]:
    return {"id": job_id, "object": "fine_tuning.job", "model": "student-m", "created_at": 0, "status": status,
            "training_file": "file-in-1", "hyperparameters": {"n_epochs": 3}, "organization_id": "org-loopback",
            "result_files": [], "seed": 0, "fine_tuned_model": FT_MODEL if status == "succeeded" else None,
            "error": None}

"""Small loopback servers of our own that speak the APIs the `openai` profile uses: OpenAI chat,
embeddings, files and fine-tuning jobs; the Hugging Face Inference API (text generation); and
the MediaWiki API the Wikipedia reader calls. For tests only: what they answer goes to tmp_path,
never into committed cassettes."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.loopback import QuietJsonHandler, answer

PAGES = {  # invented text, written for these tests
    "History of Alderbrook": "Alderbrook was founded in 1650 by millers. A stone bridge opened in 1701.\n\n"
                             "The railway arrived in 1866 and the mill closed in 1950.",
    "History of Brisca": "Brisca grew around a harbour in 1200. Its lighthouse was lit in 1820.\n\n"
                         "A ferry line to the islands started in 1930.",
}


@dataclass
class FakeApis:
    base_url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    job_statuses: list[str] = field(default_factory=lambda: ["validating_files", "running", "succeeded"])
    fine_tuned_model: str | None = "ft:gpt-3.5-turbo-0613:loopback::abc123"
    create_status: int = 200
    job_error: str | None = None
    polls: int = 0


def _judge_text(prompt: str) -> str:
    # Prefer the answer that mentions a year; position-consistent so the verdicts are conclusive.
    a = re.search(r"Assistant A’s Answer\]\n(.*?)\n\[The End", prompt, re.S)
    b = re.search(r"Assistant B’s Answer\]\n(.*?)\n\[The End", prompt, re.S)
    score_a = len(re.findall(r"\d{4}", a.group(1))) if a else 0
    score_b = len(re.findall(r"\d{4}", b.group(1))) if b else 0
    verdict = "A" if score_a > score_b else "B" if score_b > score_a else "C"
    return f"Counting the years each answer cites. Final verdict: [[{verdict}]]"


def start() -> tuple[FakeApis, ThreadingHTTPServer]:
    state = FakeApis()

    class Handler(QuietJsonHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/api/agent-harnesses":
                # huggingface_hub's once-per-process agent registry lookup (the tests point the Hub
                # at this fake): not an API call of the pipeline, so not counted among its requests
                return self._json(404, {"error": "not found"})
            state.requests.append(("GET", url.path))
            if url.path == "/w/api.php":
                q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                title = q.get("titles", "")
                if title not in PAGES:
                    return self._json(200, {"query": {"pages": {"-1": {"missing": "", "title": title}}}})
                page = {"pageid": 100 + sorted(PAGES).index(title), "title": title, "ns": 0,
                        "fullurl": f"https://example.invalid/{title}"}
                if "extracts" in q.get("prop", ""):
                    page.update({"extract": PAGES[title], "revisions": [{"revid": 7, "parentid": 6}]})
                return self._json(200, {"query": {"pages": {str(page["pageid"]): page}}})
            m = re.fullmatch(r"/v1/fine_tuning/jobs/([\w-]+)", url.path)
            if m:
                state.polls += 1
                status = state.job_statuses[min(state.polls - 1, len(state.job_statuses) - 1)]
                job = {"id": m.group(1), "object": "fine_tuning.job", "model": "gpt-3.5-turbo-0613",
                       "created_at": 0, "status": status, "training_file": "file-loopback",
                       "hyperparameters": {"n_epochs": 3}, "organization_id": "org-loopback",
                       "result_files": [], "seed": 0,
                       "fine_tuned_model": state.fine_tuned_model if status == "succeeded" else None,
                       "error": {"code": "bad", "message": state.job_error, "param": None}
                       if state.job_error else None}
                return self._json(200, job)
            return self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            state.requests.append(("POST", url.path))
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if url.path == "/v1/files":
                return self._json(200, {"id": "file-loopback", "object": "file", "bytes": len(raw),
                                        "created_at": 0, "filename": "train.jsonl", "purpose": "fine-tune",
                                        "status": "processed"})
            body = json.loads(raw or b"{}")
            if url.path == "/v1/fine_tuning/jobs":
                if state.create_status != 200:
                    return self._json(state.create_status, {"error": {"message": "invalid training file",
                                                                      "type": "invalid_request_error"}})
                state.polls = 0
                return self._json(200, {"id": "ftjob-loopback", "object": "fine_tuning.job",
                                        "model": body["model"], "created_at": 0, "status": "validating_files",
                                        "training_file": body["training_file"], "hyperparameters": {"n_epochs": 3},
                                        "organization_id": "org-loopback", "result_files": [], "seed": 0,
                                        "fine_tuned_model": None, "error": None})
            if url.path.startswith("/hf/"):  # Hugging Face text generation on a model URL
                prompt = body.get("inputs", "")
                years = re.findall(r"\d{4}", prompt)
                text = f" It happened in {years[-1]}." if years and "mistral" in url.path.lower() else " I do not know."
                return self._json(200, [{"generated_text": text}])
            if url.path == "/v1/chat/completions":
                prompt = "\n".join(m.get("content") or "" for m in body.get("messages", []))
                if "[User Question]" in prompt:
                    text = _judge_text(prompt)
                else:
                    years = re.findall(r"\d{4}", prompt)
                    text = f"Question: What happened in {years[0] if years else 'the town'}?"
                return self._json(200, answer(url.path, body, text))
            if url.path == "/v1/embeddings":
                return self._json(200, answer(url.path, body, ""))
            return self._json(404, {"error": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server

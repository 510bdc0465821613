"""Batch API mode for the judging stages (``pipeline.batch = true``, ``judge-eval record --batch``).

An OpenAI-compatible provider with ``/v1/files`` and ``/v1/batches`` runs a file of requests
within its 24 h completion window at a discount (OpenAI: half price) and returns an output file.
A judging stage then makes no model call of its own; it

1. builds the exact requests the online path would send, by running the real judge code of each
   item (``judge_item`` / ``score_item``, with the same llama-index client ``build_llm`` makes)
   over an HTTP transport that records each request and answers a placeholder verdict
   (``_Capture``). The placeholder parses, so the pairwise evaluator goes on to its flipped
   call: that call's prompt depends only on the pair (``PairwiseComparisonEvaluator`` swaps the
   two answers; it reads nothing of the first call's output), so both orders of every pair are
   known up front. Online, the flipped call is made only when the first one parsed; the batch
   sends both, and a flipped line whose first order did not parse is paid for and unused
   (counted as ``unused``);
2. writes them as the input file, one line per request, ``{"custom_id": "<item id>:<order>",
   "method": "POST", "url": "/v1/chat/completions", "body": <the canonical request body>}``,
   lines in the items' order, so the same items always give the same bytes (the upload then
   matches its recording);
3. uploads it (purpose ``batch``), creates the batch, and notes both ids in
   ``<name>.batch.json`` at once, so an interrupted recording resumes polling that batch and
   never submits it again;
4. polls with bounded exponential backoff, logging status and request counts; a poll answered
   from the cassette never sleeps, so a replay never sleeps;
5. downloads the output and error files and maps every line back by ``custom_id``: an unknown
   or repeated ``custom_id`` is an error; a request in neither file is an ``error`` outcome
   "missing from the batch output"; a failed line is an ``error`` outcome with its reason;
6. runs the same judge code again over a transport that answers each request with its line's
   response body (``_Answers``): the client parses it, the evaluator resolves the two orders
   and our parser reads them exactly as online, so verdicts, fine-tuning events and run files
   are those the online path gives for the same outputs. A failed line raises
   ``CallFailedError``, as a call that failed for good does online: an ``error`` verdict with
   its reason, nothing dropped. The second pass checks that every request equals the captured
   one, byte for byte in canonical form.

The files sit in ``<run dir>/batches/``: ``<name>.jsonl`` (input), ``<name>.batch.json`` (ids),
``<name>.output.jsonl`` and ``<name>.errors.jsonl`` (downloads). A stage with more than
``MAX_LINES`` requests or ``MAX_BYTES`` of input is split into several batches
(``<name>-1of3`` ...). Every HTTP call (upload, create, polls, downloads) goes through the
stage's cassette like any other, so a recorded batch run replays offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

import httpx
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata
from llama_index.core.llms.llm import LLM
from pydantic import PrivateAttr

from judge_eval.errors import ConfigError, JudgeEvalError, exception_chain
from judge_eval.live.retry import CallFailedError, NoStreaming, classify
from judge_eval.recording.cassettes import canonical_body

#: Limits of one batch (openai 2.54.0, ``BatchCreateParams.input_file_id``: "The file can
#: contain up to 50,000 requests, and can be up to 200 MB in size"); MB read as 10^6 bytes, the
#: smaller reading.
MAX_LINES = 50_000
MAX_BYTES = 200_000_000
COMPLETION_WINDOW = "24h"  # the only window the Batch API offers
#: Statuses after which a batch never changes (``completed`` is the good one).
FAILED = ("failed", "expired", "cancelled")
MISSING = "missing from the batch output"
#: What the capture transport answers: a verdict every parser of the project reads, so the
#: pairwise evaluator goes on to its flipped call.
PLACEHOLDER = "[[C]]"
#: The batch endpoints a request path may map to (``BatchCreateParams.endpoint``).
ENDPOINTS = ("/v1/chat/completions", "/v1/completions")


class BatchError(JudgeEvalError):
    """A batch failed, expired, was cancelled, timed out, or returned files we cannot map."""


class BatchMismatchError(JudgeEvalError):
    """The second pass sent a request that differs from the one captured: a bug, never a verdict."""


class _LineFailed(Exception):
    """Raised by the answering transport for a request whose batch line failed (the SDK wraps it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PollSettings:
    first_wait: float = 5.0  # seconds before the second poll
    max_wait: float = 60.0  # the wait doubles up to this
    timeout: float = 25 * 3600.0  # give up (the batch may still finish: --resume) after this long


@dataclass(frozen=True)
class Request:
    """One line of the input file."""

    custom_id: str
    item_id: str
    url: str  # the batch endpoint, e.g. /v1/chat/completions
    path: str  # the path the client posted to (base URL's path + endpoint)
    canonical: str  # the request body in canonical form (sorted keys, no spaces)

    def line(self) -> bytes:
        body = json.loads(self.canonical)
        return json.dumps({"custom_id": self.custom_id, "method": "POST", "url": self.url, "body": body},
                          sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Outcome:
    """What the batch returned for one request: a response body, or why there is none."""

    body: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Stats:
    """What run.json notes about a batch stage."""

    batches: list[str] = field(default_factory=list)
    lines: int = 0
    failed_lines: int = 0
    missing_lines: int = 0
    unused_lines: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "lines": self.lines, "failed_lines": self.failed_lines,
                "missing_lines": self.missing_lines, "unused_lines": self.unused_lines}


JudgeOne = Callable[[Any, Any], Awaitable[tuple[Any, list[Any]]]]


def check_supported(spec: Any) -> None:
    """Batch mode needs an OpenAI-compatible judge; say so before any call."""
    if spec.api not in ("openai", "openai-like"):
        raise ConfigError(f"pipeline.batch: {spec.role} {spec.model!r} uses api {spec.api!r}, which has no Batch "
                          "API; batch mode needs an OpenAI-compatible provider with /v1/files and /v1/batches. "
                          "Set pipeline.batch = false (or drop --batch)")


def safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]", "_", text)


#: A batch creation in a cassette file (vcrpy's YAML: each request's ``uri`` on its own line).
_BATCH_CREATE = re.compile(r"^\s+uri: \S*/batches$", re.M)


def recorded_as_batch(cassette_path: Path) -> bool:
    """Whether a cassette recorded a judging stage in batch mode (it created a batch)."""
    return bool(_BATCH_CREATE.search(Path(cassette_path).read_text("utf-8", errors="replace")))


# --------------------------------------------------------------------------- HTTP transports


def _placeholder(path: str, body: dict[str, Any]) -> dict[str, Any]:
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    model = body.get("model", "placeholder")
    if path.endswith("/chat/completions"):
        return {"id": "batch-capture", "object": "chat.completion", "created": 0, "model": model, "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": PLACEHOLDER}}]}
    return {"id": "batch-capture", "object": "text_completion", "created": 0, "model": model, "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop", "text": PLACEHOLDER, "logprobs": None}]}


class _Transport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Both transport interfaces over one ``_handle``. Not a subclass of httpx's network or mock
    transports (which VCR patches), so nothing it sees or answers goes into a cassette."""

    def _handle(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self._handle(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self._handle(request)


class _Capture(_Transport):
    """Notes every request (path, canonical body) and answers a placeholder verdict."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def _handle(self, request: httpx.Request) -> httpx.Response:
        canonical = canonical_body(request.content, request.headers.get("content-type", ""))
        self.requests.append((request.url.path, canonical))
        return httpx.Response(200, json=_placeholder(request.url.path, json.loads(canonical or "{}")))


class _Answers(_Transport):
    """Answers the requests of one item, in order, with their batch lines."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, str, Outcome]] = []  # (path, canonical body, outcome)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        canonical = canonical_body(request.content, request.headers.get("content-type", ""))
        if not self.queue:
            raise BatchMismatchError(f"the judge sent a request to {request.url.path} that was not captured for the "
                                     "batch (it makes more calls than when its requests were built)")
        path, expected, outcome = self.queue.pop(0)
        if (request.url.path, canonical) != (path, expected):
            raise BatchMismatchError(f"the judge sent a request to {request.url.path} that differs from the one "
                                     f"captured for the batch ({path}); request bodies must not depend on "
                                     "earlier outputs")
        if outcome.error is not None:
            raise _LineFailed(outcome.error)
        return httpx.Response(200, json=outcome.body)


def _clients(transport: _Transport) -> tuple[httpx.Client, httpx.AsyncClient]:
    return httpx.Client(transport=transport), httpx.AsyncClient(transport=transport)


class _LineResults(NoStreaming, LLM):
    """The judge's LLM in the second pass: a call whose batch line failed raises
    ``CallFailedError`` with the line's reason, as a call that failed for good does online (and,
    as there, any response the client cannot use: ``classify`` gives the reason)."""

    _inner: Any = PrivateAttr()
    _what: str = PrivateAttr()

    def __init__(self, inner: Any, what: str) -> None:
        super().__init__(callback_manager=inner.callback_manager)
        self._inner, self._what = inner, what

    @classmethod
    def class_name(cls) -> str:
        return "BatchLineResults"

    @property
    def metadata(self) -> LLMMetadata:
        return self._inner.metadata

    def _failed(self, exc: Exception) -> Exception:
        chain = exception_chain(exc)
        mismatch = next((e for e in chain if isinstance(e, BatchMismatchError)), None)
        if mismatch is not None:
            return mismatch
        line = next((e for e in chain if isinstance(e, _LineFailed)), None)
        reason = line.reason if line is not None else classify(exc)[2]
        return CallFailedError(f"{self._what}: {reason}", 1)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        try:
            return await self._inner.achat(messages, **kwargs)
        except Exception as exc:  # noqa: BLE001 - turned into the outcome online code would see
            raise self._failed(exc) from exc

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        try:
            return await self._inner.acomplete(prompt, formatted=formatted, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc) from exc

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        try:
            return self._inner.chat(messages, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc) from exc

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        try:
            return self._inner.complete(prompt, formatted=formatted, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc) from exc


# --------------------------------------------------------------------------- requests


def _endpoint(path: str, base_url: str | None) -> str:
    """The batch ``url`` of a request path: the part after the base URL's path, under /v1."""
    from urllib.parse import urlsplit

    base = urlsplit(base_url or "https://api.openai.com/v1").path.rstrip("/")
    tail = path[len(base):] if base and path.startswith(base + "/") else path
    url = "/v1" + tail if not tail.startswith("/v1/") else tail
    if url not in ENDPOINTS:
        raise BatchError(f"the judge called {path}, which the Batch API does not take (it takes "
                         f"{', '.join(ENDPOINTS)})")
    return url


async def capture_requests(items: Sequence[Any], judge_one: JudgeOne, build: Callable[[Any], Any],
                           orders: Sequence[str], base_url: str | None) -> dict[str, list[Request]]:
    """Every request the judge would send, per item id: ``judge_one`` runs on each item over an
    LLM that ``build(http_clients)`` makes on the capturing transport. Items one at a time, so
    each request is known to be its item's; no network."""
    transport = _Capture()
    sync_client, async_client = _clients(transport)
    out: dict[str, list[Request]] = {}
    try:
        llm = build((sync_client, async_client))
        for item in items:
            if item.id in out:
                raise BatchError(f"item id {item.id} appears twice in the stage; batch lines are keyed by item id")
            start = len(transport.requests)
            await judge_one(item, llm)
            made = transport.requests[start:]
            if len(made) > len(orders):
                raise BatchError(f"the judge made {len(made)} calls for item {item.id}; expected at most "
                                 f"{len(orders)} ({', '.join(orders)})")
            out[item.id] = [Request(custom_id=f"{item.id}:{order}", item_id=item.id,
                                    url=_endpoint(path, base_url), path=path, canonical=canonical)
                            for order, (path, canonical) in zip(orders, made)]
    finally:
        sync_client.close()
        await async_client.aclose()
    return out


def split_parts(requests: Sequence[Request], *, max_lines: int = MAX_LINES,
                max_bytes: int = MAX_BYTES) -> list[list[Request]]:
    """The requests in batches of at most ``max_lines`` lines and ``max_bytes`` bytes each."""
    parts: list[list[Request]] = [[]]
    size = 0
    for request in requests:
        n = len(request.line())
        if n > max_bytes:
            raise BatchError(f"request {request.custom_id} alone is {n} bytes, over the {max_bytes}-byte limit of "
                             "a batch input file")
        if parts[-1] and (len(parts[-1]) >= max_lines or size + n > max_bytes):
            parts.append([])
            size = 0
        parts[-1].append(request)
        size += n
    return [p for p in parts if p]


# --------------------------------------------------------------------------- one batch


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` in one step (a killed process never leaves half a state file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staged.write_bytes(data)
    os.replace(staged, path)


def _not_offered(exc: Exception, base_url: str | None, what: str) -> BatchError | None:
    status = getattr(exc, "status_code", None)
    if status in (404, 405, 501):
        return BatchError(f"the provider at {base_url or 'https://api.openai.com/v1'} does not offer the Batch API "
                          f"({what} answered HTTP {status}); set pipeline.batch = false (or drop --batch) to "
                          "judge online")
    return None


class BatchJob:
    """One batch of one judging stage: submit (or resume), wait, download."""

    def __init__(self, client: Any, *, folder: Path, name: str, what: str, replay: bool, poll: PollSettings,
                 resume: bool = False, played_back: Callable[[], int] = lambda: 0,
                 save: Callable[[], None] = lambda: None,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None) -> None:
        self.client, self.folder, self.name, self.what = client, Path(folder), name, what
        self.replay, self.poll, self.resume = replay, poll, resume
        self._played_back, self._save, self._clock = played_back, save, clock
        self._sleep = sleep or (lambda seconds: _sleep(seconds))
        self._log = log or _log

    @property
    def input_path(self) -> Path:
        return self.folder / f"{self.name}.jsonl"

    @property
    def state_path(self) -> Path:
        return self.folder / f"{self.name}.batch.json"

    def _state(self, data: bytes, endpoint: str) -> dict[str, Any]:
        """The stored ids of this input's batch, to resume (recording only: a replay follows its
        cassette). A new recording (not ``resume``) starts afresh after a batch that completed, and
        refuses to submit a second batch while one it submitted may still be running."""
        if self.replay or not self.state_path.is_file():
            return {}
        try:
            state = json.loads(self.state_path.read_text("utf-8"))
        except ValueError as exc:
            raise BatchError(f"{self.state_path} is not readable JSON ({exc}); it holds the id of a submitted batch: "
                             "restore it, or delete it to submit a new batch (the old one is paid for)") from None
        if not self.resume:
            if state.get("completed"):
                return {}
            raise unfinished_error(self.state_path, state)
        if state.get("input_sha256") != hashlib.sha256(data).hexdigest() or state.get("endpoint") != endpoint:
            raise BatchError(f"{self.state_path} notes batch {state.get('batch_id')} for another input than "
                             f"{self.input_path} (the items or prompts changed since it was submitted); delete "
                             f"{self.state_path} to submit a new batch")
        return state

    def _store(self, state: dict[str, Any]) -> None:
        _write(self.state_path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    def submit(self, data: bytes, endpoint: str, lines: int) -> str:
        """The batch id: the stored one when this input was submitted before, else upload and create."""
        import openai

        self.folder.mkdir(parents=True, exist_ok=True)
        _write(self.input_path, data)
        state = self._state(data, endpoint)
        if state.get("batch_id"):
            self._log(f"{self.what}: resuming batch {state['batch_id']} (noted in {self.state_path}); nothing "
                      "is submitted again")
            return str(state["batch_id"])
        base_url = str(self.client.base_url)
        state = state or {"input_sha256": hashlib.sha256(data).hexdigest(), "endpoint": endpoint, "lines": lines}
        if not state.get("input_file_id"):
            try:
                upload = self.client.files.create(file=(self.input_path.name, data), purpose="batch")
            except openai.APIStatusError as exc:
                raise (_not_offered(exc, base_url, "POST /files") or exc) from exc
            state["input_file_id"] = upload.id
            self._store(state)
            self._save()
        try:
            batch = self.client.batches.create(input_file_id=state["input_file_id"], endpoint=endpoint,
                                               completion_window=COMPLETION_WINDOW)
        except openai.APIStatusError as exc:
            raise (_not_offered(exc, base_url, "POST /batches") or exc) from exc
        state["batch_id"] = batch.id
        self._store(state)  # before anything else: an interruption from here on resumes this batch
        self._save()
        self._log(f"{self.what}: submitted batch {batch.id} ({lines} requests, input file {state['input_file_id']})")
        return str(batch.id)

    def wait(self, batch_id: str) -> Any:
        """Poll until the batch is completed; a failed, expired or cancelled batch, or the timeout,
        is a ``BatchError`` naming it. Waits back off from ``first_wait`` to ``max_wait``; a poll
        answered from the cassette (a replay, or the part of a resumed recording already made)
        does not wait."""
        delay, started, shown = self.poll.first_wait, self._clock(), None
        while True:
            before = self._played_back()
            batch = self.client.batches.retrieve(batch_id)
            recorded = self._played_back() > before
            self._save()
            counts = getattr(batch, "request_counts", None)
            seen = (batch.status, getattr(counts, "completed", None), getattr(counts, "failed", None))
            if seen != shown:
                shown = seen
                done = f", {counts.completed}/{counts.total} done, {counts.failed} failed" if counts else ""
                self._log(f"{self.what}: batch {batch_id} {batch.status}{done}")
            if batch.status == "completed":
                return batch
            if batch.status in FAILED:
                raise self._ended(batch)
            if self.replay or recorded:
                continue
            elapsed = self._clock() - started
            if elapsed >= self.poll.timeout:
                raise BatchError(f"{self.what}: batch {batch_id} is still {batch.status} after {elapsed:.0f} s of "
                                 f"polling (pipeline.batch_poll.timeout); it may still finish: resume with "
                                 f"`judge-eval record --resume --run-dir <this run dir>`, which polls it again "
                                 f"(its id is in {self.state_path})")
            self._sleep(min(delay, self.poll.timeout - elapsed))
            delay = min(delay * 2, self.poll.max_wait)

    def _ended(self, batch: Any) -> BatchError:
        """The error for a batch that ended without completing. Its state is set aside (kept,
        renamed), so the next recording submits a new batch instead of resuming this one."""
        details = []
        for error in getattr(getattr(batch, "errors", None), "data", None) or []:
            where = f"line {error.line}: " if getattr(error, "line", None) is not None else ""
            details.append(f"{where}{error.code or 'error'}: {error.message or ''}".strip())
        counts = getattr(batch, "request_counts", None)
        done = f" ({counts.completed}/{counts.total} requests done)" if counts else ""
        why = {"failed": f"failed{done}" + (": " + "; ".join(details[:5]) if details else ""),
               "expired": f"expired: the provider did not finish it within its {COMPLETION_WINDOW} completion "
                          f"window{done}",
               "cancelled": f"was cancelled (through the provider's API or dashboard){done}"}[batch.status]
        kept = ""
        if not self.replay and self.state_path.is_file():
            aside = self.state_path.with_name(f"{self.name}.batch.{safe_name(batch.id)}.{batch.status}.json")
            os.replace(self.state_path, aside)
            kept = f"; its ids are kept in {aside}"
        return BatchError(f"{self.what}: batch {batch.id} {why}. The input file is {self.input_path}{kept}. "
                          "Record the stage again to submit a new batch")

    def download(self, batch: Any) -> tuple[bytes, bytes]:
        """The output and error files (empty when the batch has none), also saved beside the input.
        The state then notes the batch as completed: a new recording submits a new one."""
        out = []
        for file_id, suffix in ((batch.output_file_id, "output"), (batch.error_file_id, "errors")):
            data = self.client.files.content(file_id).content if file_id else b""
            self._save()
            _write(self.folder / f"{self.name}.{suffix}.jsonl", data)
            out.append(data)
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text("utf-8"))
            self._store({**state, "completed": True, "output_file_id": batch.output_file_id,
                         "error_file_id": batch.error_file_id})
        return out[0], out[1]


def unfinished_error(path: Path, state: dict[str, Any]) -> BatchError:
    return BatchError(f"{path} notes batch {state.get('batch_id') or '(not created yet)'} of file "
                      f"{state.get('input_file_id')}, submitted by a recording that did not finish; continue it with "
                      "`judge-eval record --resume --run-dir <this run dir>`, or delete the file to submit a new batch "
                      "(the old one is billed all the same)")


def check_nothing_unfinished(folder: Path, stem: str) -> None:
    """Before a new (not resumed) recording of a stage opens its cassette, which drops the working
    copy holding an interrupted recording's upload and batch creation: refuse while a batch of
    that stage noted in ``folder`` has not completed, so none is submitted twice."""
    for path in sorted(Path(folder).glob(f"{stem}*.batch.json")):
        try:
            state = json.loads(path.read_text("utf-8"))
        except ValueError:
            state = {}
        if not state.get("completed"):
            raise unfinished_error(path, state)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _log(text: str) -> None:
    sys.stderr.write(f"[judge-eval] {text}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- mapping back


def _reason(line: dict[str, Any]) -> str | None:
    """None for a line with a usable response, else why it has none."""
    response, error = line.get("response"), line.get("error")
    if isinstance(response, dict):
        status, body = response.get("status_code"), response.get("body")
        if status == 200 and isinstance(body, dict):
            return None
        problem = body.get("error") if isinstance(body, dict) else None
        message = problem.get("message") if isinstance(problem, dict) else None
        return f"HTTP {status}: {message or json.dumps(body)[:200]}"
    if isinstance(error, dict):
        return f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip()
    return "the line has neither a response nor an error"


def map_outcomes(requests: Sequence[Request], files: Sequence[tuple[str, bytes]], batch_id: str) -> dict[str, Outcome]:
    """Every request's outcome from the downloaded ``(path, bytes)`` files, by ``custom_id``.
    A line that is not JSON, names an unknown ``custom_id`` or repeats one is a ``BatchError``;
    a request no line names is an error outcome ``MISSING``."""
    wanted = {r.custom_id for r in requests}
    found: dict[str, Outcome] = {}
    for path, data in files:
        for n, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                raise BatchError(f"{path}:{n}: a line of batch {batch_id}'s results is not a JSON object "
                                 f"({exc})") from None
            custom_id = line.get("custom_id")
            if custom_id not in wanted:
                raise BatchError(f"{path}:{n}: batch {batch_id} returned custom_id {custom_id!r}, which its input "
                                 "file does not have")
            if custom_id in found:
                raise BatchError(f"{path}:{n}: batch {batch_id} returned custom_id {custom_id!r} twice; its results "
                                 "cannot be mapped back unambiguously")
            reason = _reason(line)
            found[custom_id] = (Outcome(error=f"batch {batch_id}, request {custom_id}: {reason}") if reason
                                else Outcome(body=line["response"]["body"]))
    return {r.custom_id: found.get(r.custom_id) or Outcome(error=f"batch {batch_id}, request {r.custom_id}: {MISSING}")
            for r in requests}


async def answer_items(items: Sequence[Any], judge_one: JudgeOne, build: Callable[[Any], Any],
                       requests: dict[str, list[Request]], outcomes: dict[str, Outcome], what: str,
                       progress: Any = None) -> tuple[dict[str, tuple[Any, list[Any]]], int]:
    """Each item judged again, its calls answered by its batch lines; returns results by item id
    and how many lines no call asked for (a flipped order after an unparseable first one)."""
    transport = _Answers()
    sync_client, async_client = _clients(transport)
    results: dict[str, tuple[Any, list[Any]]] = {}
    unused = 0
    try:
        llm = _LineResults(build((sync_client, async_client)), what)
        for item in items:
            own = requests.get(item.id, [])
            transport.queue = [(r.path, r.canonical, outcomes[r.custom_id]) for r in own]
            results[item.id] = await judge_one(item, llm)
            unused += len(transport.queue)
            if progress is not None:
                progress.update(1)
    finally:
        sync_client.close()
        await async_client.aclose()
    return results, unused


# --------------------------------------------------------------------------- a whole stage


@dataclass
class BatchStage:
    """What a judging stage in batch mode needs from the pipeline."""

    name: str  # file name stem: <cassette>-<split>-<judge>
    folder: Path  # <run dir>/batches
    what: str  # "<role> <model>", as online errors name the model
    base_url: str | None
    build: Callable[[Any], Any]  # (sync, async) http clients -> the judge's llama-index LLM (as build_llm)
    client: Callable[[], Any]  # -> an openai.OpenAI client for files and batches
    replay: bool
    poll: PollSettings
    run_async: Callable[[Any], Any]
    resume: bool = False  # a resumed recording: a batch noted in ``folder`` is polled, not submitted again
    played_back: Callable[[], int] = lambda: 0
    save: Callable[[], None] = lambda: None
    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    stats: Stats = field(default_factory=Stats)

    def judge(self, items: Sequence[Any], judge_one: JudgeOne, orders: Sequence[str]) -> tuple[list[Any], list[Any]]:
        """(verdicts, events) aligned with ``items``, as ``judge_items`` / ``score_items`` return."""
        from judge_eval.core.progress import progress

        ordered = sorted(items, key=lambda i: i.order_key)
        requests = self.run_async(capture_requests(ordered, judge_one, self.build, orders, self.base_url))
        flat = [r for item in ordered for r in requests[item.id]]
        self.stats.lines = len(flat)
        outcomes = self._run_batches(flat) if flat else {}
        self.stats.failed_lines = sum(1 for o in outcomes.values() if o.error and not o.error.endswith(MISSING))
        self.stats.missing_lines = sum(1 for o in outcomes.values() if o.error and o.error.endswith(MISSING))
        bar = progress(len(ordered), f"judging from batch results ({self.name})")
        try:
            results, self.stats.unused_lines = self.run_async(answer_items(
                ordered, judge_one, self.build, requests, outcomes, self.what, progress=bar))
        finally:
            bar.close()
        return [results[i.id][0] for i in items], [e for i in items for e in results[i.id][1]]

    def _run_batches(self, flat: list[Request]) -> dict[str, Outcome]:
        parts = split_parts(flat, max_lines=self.max_lines, max_bytes=self.max_bytes)
        client = self.client()
        jobs = []
        for k, part in enumerate(parts, start=1):
            endpoints = {r.url for r in part}
            if len(endpoints) != 1:
                raise BatchError(f"{self.what}: one batch takes one endpoint; the judge called {sorted(endpoints)}")
            name = self.name if len(parts) == 1 else f"{self.name}-{k}of{len(parts)}"
            job = BatchJob(client, folder=self.folder, name=name, what=f"{self.what} ({name})", replay=self.replay,
                           poll=self.poll, resume=self.resume, played_back=self.played_back, save=self.save)
            data = b"".join(r.line() for r in part)
            jobs.append((job, job.submit(data, endpoints.pop(), len(part)), part))
        outcomes: dict[str, Outcome] = {}
        for job, batch_id, part in jobs:  # all submitted first: the provider runs them side by side
            batch = job.wait(batch_id)
            output, errors = job.download(batch)
            files = [(str(job.folder / f"{job.name}.output.jsonl"), output),
                     (str(job.folder / f"{job.name}.errors.jsonl"), errors)]
            outcomes.update(map_outcomes(part, files, batch_id))
            self.stats.batches.append(batch_id)
        return outcomes

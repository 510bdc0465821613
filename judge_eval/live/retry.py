"""Transient faults of live calls: bounded exponential backoff with jitter, honouring Retry-After.

Every live model call goes through ``RetryingLLM`` (the SDK clients are built with
``max_retries=0`` so that retries happen in one place, are counted, and follow one policy):
HTTP 429 and 5xx, connection resets, timeouts, and truncated or non-JSON bodies are retried;
anything else (a 400, a bad key) fails at once. A call that still fails after the last attempt
raises ``CallFailedError`` with the reason, which the judging stage turns into an explicit
``error`` verdict for that item.

Replay (``replaying``) follows the recording, not today's policy: after a recorded transient
HTTP failure (a 503, a 429) the next recorded attempt is played back at once (no wait), for as
many attempts as were recorded; a call that failed for good (its recording ends on a failure, or
on a 400) becomes the same ``error`` verdict, with the same reason and attempt count. Anything
else fails as it would without the retry: a missing recording is fatal immediately, and a
recorded response the client cannot read is the cassette layer's to name
(``judge_eval.recording.cassettes``).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage, ChatResponse, ChatResponseAsyncGen, ChatResponseGen, CompletionResponse,
    CompletionResponseAsyncGen, CompletionResponseGen, LLMMetadata,
)
from llama_index.core.llms.llm import LLM
from pydantic import PrivateAttr

from judge_eval.errors import JudgeEvalError, exception_chain
from judge_eval.recording.cassettes import TRANSIENT_STATUS  # the cassettes' duplicate check reads it too


class CallFailedError(JudgeEvalError):
    """A live call failed for good (after its retries, or at once for a non-transient error)."""

    def __init__(self, reason: str, attempts: int) -> None:
        self.reason, self.attempts = reason, attempts
        super().__init__(f"{reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")


@dataclass
class RetryPolicy:
    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.25  # each wait is scaled by a factor in [1 - jitter, 1 + jitter]
    seed: int | None = None
    sleeps: list[float] = field(default_factory=list)  # every wait taken, for reports and tests
    #: replaying a cassette: only recorded HTTP failures are retried, and never with a wait
    replay: bool = False
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng = random.Random(self.seed)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Wait before retry number ``attempt`` (1-based): Retry-After when the server gave one
        (capped), else ``base * 2**(attempt-1)`` with jitter, capped."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        wait = min(self.base * 2 ** (attempt - 1), self.cap)
        return wait * self._rng.uniform(1 - self.jitter, 1 + self.jitter)


NO_RETRY = RetryPolicy(attempts=1)


def replaying() -> RetryPolicy:
    """The policy for replaying a recording: no waits, and as many attempts as were recorded
    (``_wait_after``), whatever the live policy's ``attempts`` says now."""
    return RetryPolicy(base=0.0, cap=0.0, jitter=0.0, replay=True)


def _status_and_headers(exc: BaseException) -> tuple[int | None, Any]:
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    return status, getattr(response, "headers", None) or {}


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, or ``retry-after`` in seconds or
    as an HTTP date), or None. A value that is neither (``Retry-After: soon``, ``nan``) is
    ignored: the normal backoff applies."""
    for key in ("retry-after-ms", "retry-after"):
        try:
            value = headers.get(key)
        except AttributeError:
            value = None
        if value is None:
            continue
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = None
        if seconds is not None:
            if math.isfinite(seconds):
                return seconds / 1000 if key == "retry-after-ms" else seconds
            continue
        if key == "retry-after":
            try:
                parsed = email.utils.parsedate_to_datetime(str(value))
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            if parsed is not None:
                if parsed.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
                    parsed = parsed.replace(tzinfo=datetime.timezone.utc)
                return max(0.0, parsed.timestamp() - time.time())
    return None


def classify(exc: BaseException) -> tuple[bool, float | None, str]:
    """(transient?, Retry-After seconds or None, a one-line reason)."""
    import httpx
    import openai

    try:
        from vcr.errors import CannotOverwriteExistingCassetteException
    except ImportError:  # pragma: no cover
        CannotOverwriteExistingCassetteException = ()  # type: ignore[assignment]
    if any(isinstance(e, CannotOverwriteExistingCassetteException) for e in exception_chain(exc)):
        return False, None, "no recording for this request (replay)"
    status, headers = _status_and_headers(exc)
    name = type(exc).__name__
    if status is not None:
        return status in TRANSIENT_STATUS, _retry_after(headers), f"HTTP {status} ({name}: {str(exc)[:200]})"
    # A truncated or non-JSON body surfaces as a JSONDecodeError (or the SDK's validation error).
    transient_types = (openai.APIConnectionError, openai.APITimeoutError, openai.APIResponseValidationError,
                       httpx.TransportError, json.JSONDecodeError, ConnectionError, TimeoutError)
    if isinstance(exc, transient_types):
        return True, None, f"{name}: {str(exc)[:200]}"
    return False, None, f"{name}: {str(exc)[:200]}"


def _wait_after(exc: Exception, attempt: int, policy: RetryPolicy, what: str,
                previous: tuple[str, BaseException] | None = None) -> tuple[float, tuple[str, BaseException] | None]:
    """How long to wait before the next attempt, and the failure to remember for it; or raise: the
    original error for a replay miss, ``CallFailedError`` for a non-transient error or the last
    attempt.

    In replay (``policy.replay``) the recording decides, not today's policy: a recorded transient
    failure is followed by the next recorded attempt, with no wait, however many attempts the
    policy allows; when the recording has no further attempt (a miss right after a recorded
    failure) the call failed for good when it was recorded, and fails so again, with that
    failure's reason and count. A response with no HTTP status (a body the client cannot read)
    and a first-attempt miss are raised as they are: the cassette layer names them."""
    transient, retry_after, reason = classify(exc)
    if reason.startswith("no recording"):
        if policy.replay and previous is not None:
            raise CallFailedError(f"{what}: {previous[0]}", attempt - 1) from previous[1]
        raise exc
    if policy.replay:
        if _status_and_headers(exc)[0] is None:
            raise exc  # not a recorded HTTP response: the cassette layer says what is wrong with it
        if not transient:
            raise CallFailedError(f"{what}: {reason}", attempt) from exc
        return 0.0, (reason, exc)
    if not transient or attempt == policy.attempts:
        raise CallFailedError(f"{what}: {reason}", attempt) from exc
    wait = policy.delay(attempt, retry_after)
    policy.sleeps.append(wait)
    return wait, None


async def call_async(fn: Callable[[], Awaitable[Any]], policy: RetryPolicy, what: str) -> Any:
    attempt, previous = 0, None
    while True:  # ends: live after policy.attempts (_wait_after raises), in replay when the recording runs out
        attempt += 1
        try:
            return await fn()
        except Exception as exc:  # noqa: BLE001 - _wait_after re-raises what is not transient
            wait, previous = _wait_after(exc, attempt, policy, what, previous)
            await asyncio.sleep(wait)


def call_sync(fn: Callable[[], Any], policy: RetryPolicy, what: str) -> Any:
    attempt, previous = 0, None
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            wait, previous = _wait_after(exc, attempt, policy, what, previous)
            if wait:
                time.sleep(wait)


class NoStreaming:
    """The pipeline never streams; wrappers say so instead of half-supporting it."""

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        raise NotImplementedError("the pipeline does not stream")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        raise NotImplementedError("the pipeline does not stream")

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        raise NotImplementedError("the pipeline does not stream")

    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        raise NotImplementedError("the pipeline does not stream")


class RetryingLLM(NoStreaming, LLM):
    """Delegates to ``inner``; each chat/completion call is retried under ``policy``."""

    _inner: Any = PrivateAttr()
    _policy: RetryPolicy = PrivateAttr()
    _what: str = PrivateAttr()
    _limit: int = PrivateAttr()
    _gate: Any = PrivateAttr(default=None)

    def __init__(self, inner: Any, policy: RetryPolicy, what: str = "", limit: int = 0) -> None:
        super().__init__(callback_manager=inner.callback_manager)
        self._inner, self._policy = inner, policy
        self._what = what or getattr(inner.metadata, "model_name", "model")
        self._limit = limit  # at most this many async calls in flight (0: no bound)

    async def _bounded(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Bounds calls a stage fires all at once (DatasetGenerator gathers one per chunk)."""
        if not self._limit:
            return await call_async(fn, self._policy, self._what)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._limit)
        async with self._gate:
            return await call_async(fn, self._policy, self._what)

    @classmethod
    def class_name(cls) -> str:
        return "RetryingLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return self._inner.metadata

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return call_sync(lambda: self._inner.chat(messages, **kwargs), self._policy, self._what)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._bounded(lambda: self._inner.achat(messages, **kwargs))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return call_sync(lambda: self._inner.complete(prompt, formatted=formatted, **kwargs), self._policy,
                         self._what)

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await self._bounded(lambda: self._inner.acomplete(prompt, formatted=formatted, **kwargs))

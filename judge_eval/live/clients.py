"""Model clients per role, built from a profile's ``ModelSpec``; nothing global is touched.

Keys come from the environment variable the profile names and go only into the client (VCR
scrubs the header before anything is written). In replay no request leaves the machine, so a
placeholder key is used and the clients never retry: a missing recording must fail at once.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from judge_eval.errors import ConfigError
from judge_eval.config.pipeline_spec import ModelSpec

REPLAY_KEY = "replay-without-a-key"
#: Retries the SDKs do themselves where we do not wrap the client (embeddings, fine-tuning
#: endpoints): the openai SDK backs off exponentially with jitter and honours Retry-After.
LIVE_RETRIES = 5


#: httpx mount patterns of loopback hosts: these are always reached directly.
LOOPBACK_MOUNTS = ("all://127.0.0.1", "all://localhost", "all://[::1]")
#: Connection pools behind each loopback host of the async client (see ``LeastBusyTransport``).
LOOPBACK_POOLS = 8


class LeastBusyTransport(httpx.AsyncBaseTransport):
    """Sends each request through whichever of several transports (connection pools) has the
    fewest requests waiting for their response headers; ties go to the first.

    httpcore 1.0.9's pool walks all of its connections, polling the socket of each idle one,
    every time a request starts or a response closes: with C calls in flight to a keep-alive
    server that is O(C) work per call (at 32 in flight, one pool cost 3 to 6 ms more client CPU
    per call than these pools, about 6 ms in all: benchmarks/README.md). Spread over the pools,
    each holds about C / len(transports) connections; one call at a time keeps reusing the first
    pool's connection."""

    def __init__(self, transports: list[httpx.AsyncBaseTransport]) -> None:
        self._transports = transports
        self._busy = [0] * len(transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._busy.index(min(self._busy))
        self._busy[index] += 1
        try:
            return await self._transports[index].handle_async_request(request)
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


def http_clients() -> tuple[Any, Any]:
    """A (sync, async) pair of HTTP clients for the model SDKs: the openai SDK's defaults, which
    honour HTTP(S)_PROXY/NO_PROXY for remote APIs, except that loopback hosts (our own servers:
    llama.cpp while recording, the tests' fakes) are always reached directly. Without this, a proxy
    setting with no NO_PROXY sends loopback traffic to the proxy.

    Every transport shares one TLS context, built as httpx builds its default (certifi, or
    SSL_CERT_FILE / SSL_CERT_DIR): httpx loads the CA bundle once per transport, and the pair's
    eight transports took 0.5 s of CPU. The loopback transports get the SDK's connection limits
    (httpx's own keep only 20 idle connections), and the async ones spread calls in flight over
    ``LOOPBACK_POOLS`` pools (``LeastBusyTransport``)."""
    import openai

    tls = httpx.create_ssl_context()
    limits = openai.DEFAULT_CONNECTION_LIMITS

    def pools() -> LeastBusyTransport:
        return LeastBusyTransport([httpx.AsyncHTTPTransport(verify=tls, limits=limits)
                                   for _ in range(LOOPBACK_POOLS)])

    sync_mounts = {pattern: httpx.HTTPTransport(verify=tls, limits=limits) for pattern in LOOPBACK_MOUNTS}
    async_mounts = {pattern: pools() for pattern in LOOPBACK_MOUNTS}
    return (openai.DefaultHttpxClient(verify=tls, mounts=sync_mounts),
            openai.DefaultAsyncHttpxClient(verify=tls, mounts=async_mounts))


def _direct_if_loopback(spec: ModelSpec, http: Any) -> Any:
    """The shared clients when given; for a loopback model without them, a pair of our own."""
    from judge_eval.recording.netguard import is_loopback_url

    return http if http is not None or not is_loopback_url(spec.base_url) else http_clients()


def api_key(spec: ModelSpec, *, replay: bool) -> str | None:
    if spec.api_key_env is None:
        return "no-key-needed" if spec.api == "openai-like" else None
    value = os.environ.get(spec.api_key_env)
    if value:
        return value
    if replay:
        return REPLAY_KEY
    raise ConfigError(f"model {spec.model!r} ({spec.role}) needs an API key: set the environment variable "
                      f"{spec.api_key_env} before recording")


def build_llm(spec: ModelSpec, *, replay: bool, policy: Any = None, limit: int = 0, http: Any = None,
              replay_retries: bool = False) -> Any:
    """A llama-index LLM for ``spec``. Live, it is wrapped in ``RetryingLLM`` (one retry policy
    for every chat/completion call, the SDK's own retries off). In replay nothing retries, unless
    ``replay_retries``: then a recorded HTTP failure is handled as it was when recorded, its next
    recorded attempt played back at once (``judge_eval.live.retry.replaying``). ``http``: a
    (sync, async) pair of HTTP clients to share (``Context.http``); without it the SDK makes its
    own per model client."""
    llm = _build_llm(spec, replay=replay, http=http)
    if replay and not replay_retries:
        return llm
    from judge_eval.live.retry import RetryingLLM, RetryPolicy, replaying

    if replay:  # no bound: a replay makes no call to any server
        return RetryingLLM(llm, replaying(), what=f"{spec.role} {spec.model}")
    return RetryingLLM(llm, policy or RetryPolicy(), what=f"{spec.role} {spec.model}", limit=limit)


def _shared(http: Any) -> dict[str, Any]:
    return {"http_client": http[0], "async_http_client": http[1]} if http else {}


def _build_llm(spec: ModelSpec, *, replay: bool, http: Any = None) -> Any:
    retries = 0  # retries happen in RetryingLLM, counted and under one policy
    extra: dict[str, Any] = {}
    if spec.grammar:
        extra["extra_body"] = {"grammar": spec.grammar}
    if spec.logprobs:  # only then: requests without the option stay byte for byte as recorded
        extra_fields: dict[str, Any] = {"logprobs": True, "top_logprobs": spec.top_logprobs}
    else:
        extra_fields = {}
    key = api_key(spec, replay=replay)
    http = _direct_if_loopback(spec, http)
    if spec.api == "openai":
        from llama_index.llms.openai import OpenAI

        return OpenAI(model=spec.model, temperature=spec.temperature, max_tokens=spec.max_tokens,
                      api_key=key, api_base=spec.base_url, max_retries=retries, timeout=spec.timeout,
                      additional_kwargs=extra, reuse_client=True, **extra_fields, **_shared(http))
    if spec.api == "openai-like":
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(model=spec.model, api_base=spec.base_url, api_key=key,
                          is_chat_model=spec.chat, is_function_calling_model=False,
                          context_window=spec.context_window, temperature=spec.temperature,
                          max_tokens=spec.max_tokens, max_retries=retries, timeout=spec.timeout,
                          additional_kwargs=extra, reuse_client=True, **extra_fields, **_shared(http))
    if spec.api == "hf-inference":
        from llama_index.llms.huggingface_api import HuggingFaceInferenceAPI

        # A base URL (a dedicated endpoint, or a test server) is given as the model URL; the
        # client then posts there instead of routing through a provider.
        model = f"{spec.base_url.rstrip('/')}/{spec.model}" if spec.base_url else spec.model
        kwargs: dict[str, Any] = {"model_name": model, "token": key, "context_window": spec.context_window,
                                  "task": "conversational" if spec.chat else "text-generation",
                                  "is_chat_model": spec.chat, "timeout": spec.timeout,
                                  # The Inference API client rejects temperature 0 (gt=0.0).
                                  "temperature": max(spec.temperature, 0.01)}
        if spec.max_tokens:
            kwargs["num_output"] = spec.max_tokens
        return HuggingFaceInferenceAPI(**kwargs)
    raise ConfigError(f"unknown api {spec.api!r} for {spec.role}")


def build_embeddings(spec: ModelSpec, *, replay: bool, http: Any = None) -> Any:
    key = api_key(spec, replay=replay)
    retries = 0 if replay else LIVE_RETRIES
    http = _direct_if_loopback(spec, http)
    if spec.api == "openai":
        from llama_index.embeddings.openai import OpenAIEmbedding

        return OpenAIEmbedding(model=spec.model, api_key=key, api_base=spec.base_url,
                               max_retries=retries, timeout=spec.timeout, reuse_client=True, **_shared(http))
    if spec.api == "openai-like":
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        return OpenAILikeEmbedding(model_name=spec.model, api_base=spec.base_url, api_key=key,
                                   max_retries=retries, timeout=spec.timeout, reuse_client=True,
                                   **_shared(http))
    raise ConfigError(f"embeddings api {spec.api!r} is not supported; use openai or openai-like")

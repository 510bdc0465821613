"""Capture each judge call as a chat fine-tuning event, keyed by the call's order.

The study captured events with ``OpenAIFineTuningHandler`` (llama-index-finetuning), which we do
not use: importing it loads torch, cohere, mistralai and azure (4.6 s); it writes events as a
flat list whose only key is position; and when an LLM call raises, its ``on_event_end`` raises
``KeyError`` and hides the real error (llama-index-finetuning 0.4.2). ``CapturingLLM`` wraps the
judge's LLM instead: each call is recorded with the messages the model received and the text it
returned, and an exception from the model propagates untouched. The events it writes have the
handler's shape (``{"messages": [system, user, assistant]}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage, ChatResponse, CompletionResponse, LLMMetadata, MessageRole,
)
from llama_index.core.llms.llm import LLM
from pydantic import PrivateAttr

from judge_eval.live.retry import NoStreaming


@dataclass(frozen=True)
class Call:
    messages: tuple[tuple[str, str], ...]  # (role, content) as sent
    output: str


class CapturingLLM(NoStreaming, LLM):
    """Delegates every call to ``inner`` and appends a ``Call`` to ``calls``."""

    _inner: Any = PrivateAttr()
    _calls: list = PrivateAttr()

    def __init__(self, inner: Any, calls: list[Call]) -> None:
        super().__init__(callback_manager=inner.callback_manager)
        self._inner = inner
        self._calls = calls

    @classmethod
    def class_name(cls) -> str:
        return "CapturingLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return self._inner.metadata

    def _record_chat(self, messages: Sequence[ChatMessage], response: ChatResponse) -> ChatResponse:
        sent = tuple((_role(m.role), m.content or "") for m in messages)
        self._calls.append(Call(sent, response.message.content or ""))
        return response

    def _record_completion(self, prompt: str, response: CompletionResponse) -> CompletionResponse:
        self._calls.append(Call((("user", prompt),), response.text))
        return response

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._record_chat(messages, self._inner.chat(messages, **kwargs))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._record_chat(messages, await self._inner.achat(messages, **kwargs))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._record_completion(prompt, self._inner.complete(prompt, formatted=formatted, **kwargs))

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._record_completion(
            prompt, await self._inner.acomplete(prompt, formatted=formatted, **kwargs))


def _role(role: Any) -> str:
    return role.value if isinstance(role, MessageRole) else str(role)

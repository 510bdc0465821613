"""The pairwise judging stage: ``PairwiseComparisonEvaluator`` in both orders, with the project's
parser, every call captured as a fine-tuning event keyed by (item id, order). How the evaluator
resolves the two orders is modelled in ``judge_eval.core.resolution``.

Beware the evaluator's default parser: it checks substrings in the order ``[[A]]``, ``[[B]]``,
``[[C]]``, so any text that *contains* ``[[A]]`` reads as A, even one that merely quotes the
format string ("respond with [[A]] or [[B]]") before giving its own verdict. The project's own
parser (issue: faults, bad input and secrets) is passed as ``parser_function`` instead.

A judge whose requests ask for logprobs (``ModelSpec.logprobs``) also gets its P(A), P(B), P(C)
at the verdict position of each call kept on the verdict, ``extra["choice"]`` (order -> the
probabilities, or the reason there are none; ``judge_eval.core.choice``): a second verdict source
next to the parsed text, which stays as the evaluator resolved it. Calls without logprobs leave
the verdict exactly as before.
"""

from __future__ import annotations

import functools
from typing import Any

from judge_eval.core.progress import progress
from judge_eval.core.items import PARSE_FAILURE


async def judge_item(item: Any, llm: Any, judge: str, *, capture: bool = False) -> tuple[Any, list[Any]]:
    """Judge one pair in both orders with ``PairwiseComparisonEvaluator`` and the project's parser.

    Returns the verdict (raw, as the evaluator resolved it; the raw text of each call and how it
    parsed are kept in ``extra``) and, when ``capture``, one fine-tuning event per call made,
    keyed by ``(item.id, order)``.
    """
    from llama_index.core.evaluation import PairwiseComparisonEvaluator

    from judge_eval.live.capture import Call, CapturingLLM
    from judge_eval.core.parsing import parse_verdict, parser_function
    from judge_eval.core.items import ORDERS, FinetuneEvent, Message, Verdict

    from judge_eval.core.items import ERROR
    from judge_eval.live.retry import CallFailedError

    if item.extra.get("error"):  # the answers stage failed for this item: nothing to judge
        return Verdict(llm=judge, score=None, text="", source=ERROR,
                       extra={"error": item.extra["error"], "attempts": 0}), []
    calls: list[Call] = []
    logprobs: list[Any] = []
    evaluator = PairwiseComparisonEvaluator(llm=_logprobs_llm(CapturingLLM)(llm, calls, logprobs),
                                            parser_function=parser_function)
    try:
        result = await evaluator.aevaluate(query=item.question, response=item.answers[0].text,
                                           second_response=item.answers[1].text, reference=item.source)
    except CallFailedError as exc:
        # A live call that still failed after its retries: an explicit outcome for this item,
        # kept with its reason; the stage goes on. (Replay never gets here: a missing
        # recording is not a CallFailedError and stops the run.)
        raw = {order: call.output for order, call in zip(ORDERS, calls)}
        extra = {"raw": raw, "error": exc.reason, "attempts": exc.attempts}
        return Verdict(llm=judge, score=None, text="", source=ERROR, extra=extra), []
    raw = {order: call.output for order, call in zip(ORDERS, calls)}  # the flipped call may not happen
    parsed = {order: parse_verdict(text).reason for order, text in raw.items()}
    extra: dict[str, Any] = {"raw": raw, "parse": parsed}
    if any(lp is not None for lp in logprobs):
        from judge_eval.core.choice import CHOICE_KEY, choice_probs

        extra[CHOICE_KEY] = {order: choice_probs(lp).to_json() for order, lp in zip(ORDERS, logprobs)}
    if result.invalid_result:
        verdict = Verdict(llm=judge, score=None, text=result.response or "", source=PARSE_FAILURE, extra=extra)
    else:
        source = result.pairwise_source
        verdict = Verdict(llm=judge, score=result.score, text=result.response or "",
                          source=getattr(source, "value", source), extra=extra)
    events = []
    if capture:
        for order, call in zip(ORDERS, calls):
            messages = tuple(Message(role, content) for role, content in call.messages)
            events.append(FinetuneEvent(messages=messages + (Message("assistant", call.output),),
                                        item_id=item.id, order=order))
    return verdict, events


def response_logprobs(response: Any) -> Any:
    """The token logprobs of a llama-index ``ChatResponse`` / ``CompletionResponse`` in the API's
    own form (chat: the ``content`` list with each sampled token and its ``top_logprobs``;
    completions: ``tokens`` / ``top_logprobs``), read from its ``raw`` API response; None when it
    has none. ``response.logprobs`` is not enough: it keeps only each position's top list, not the
    sampled token, so the generated text (and its verdict position) cannot be rebuilt from it."""
    raw = getattr(response, "raw", None)
    choices = raw.get("choices") if isinstance(raw, dict) else getattr(raw, "choices", None)
    if not choices:
        return None
    first = choices[0]
    lp = first.get("logprobs") if isinstance(first, dict) else getattr(first, "logprobs", None)
    if lp is None:
        return None
    data = lp.model_dump() if hasattr(lp, "model_dump") else lp
    if isinstance(data, dict) and "content" in data:
        return data["content"] or None
    return data or None


@functools.cache
def _logprobs_llm(base: Any) -> Any:
    """A ``CapturingLLM`` that also appends each response's logprobs (``response_logprobs``) to a
    list, one entry per call in the order made."""
    from pydantic import PrivateAttr

    class LogprobCapturingLLM(base):  # type: ignore[misc, valid-type]
        _logprobs: list = PrivateAttr()

        def __init__(self, inner: Any, calls: list[Any], logprobs: list[Any]) -> None:
            super().__init__(inner, calls)
            self._logprobs = logprobs

        def _record_chat(self, messages: Any, response: Any) -> Any:
            self._logprobs.append(response_logprobs(response))
            return super()._record_chat(messages, response)

        def _record_completion(self, prompt: str, response: Any) -> Any:
            self._logprobs.append(response_logprobs(response))
            return super()._record_completion(prompt, response)

    return LogprobCapturingLLM


async def judge_items(items: Any, llm: Any, judge: str, *, capture: bool = False, journal: Any = None,
                      on_item_done: Any = None, concurrency: int = 1) -> tuple[list[Any], list[Any]]:
    """Judge every item; returns (verdicts, events) aligned with ``items`` (see ``judge_each``;
    within an item the evaluator's two calls keep their order)."""
    return await judge_each(items, lambda item: judge_item(item, llm, judge, capture=capture),
                            desc=f"judging ({judge})", journal=journal, on_item_done=on_item_done,
                            concurrency=concurrency)


async def judge_each(items: Any, call: Any, *, desc: str, journal: Any = None, on_item_done: Any = None,
                     concurrency: int = 1) -> tuple[list[Any], list[Any]]:
    """``await call(item)`` -> (verdict, events) for every item; returns (verdicts, events)
    aligned with ``items``. What the pairwise and the correctness stages share.

    Up to ``concurrency`` items are judged at once; results are keyed by item, so the output is
    the same whatever the completion order, and so is the cassette (each item's calls are saved
    under its ``order_key``). With a ``journal``, items it already holds are taken from it (no
    call is repeated) and each newly judged item is appended as it completes; ``on_item_done``
    runs first (the pipeline saves the cassette there, so a resumed recording has every finished
    call on disk).
    """
    import asyncio

    from judge_eval.core.store import event_from_json, event_to_json, verdict_from_json, verdict_to_json
    from judge_eval.recording.rerecord_stable import sort_key

    done = journal.load() if journal is not None else {}
    gate = asyncio.Semaphore(max(1, concurrency))
    results: dict[str, tuple[Any, list[Any]]] = {}
    bar = progress(len(items), desc)

    async def one(item: Any) -> None:
        if item.id in done:
            record = done[item.id]
            results[item.id] = (verdict_from_json(record["verdict"]),
                                [event_from_json(e) for e in record.get("events", [])])
            return
        async with gate:
            with sort_key(item.order_key):  # its calls are saved in the run files' item order
                verdict, item_events = await call(item)
        if on_item_done is not None:
            on_item_done()
        if journal is not None:
            journal.append({"id": item.id, "verdict": verdict_to_json(verdict),
                            "events": [event_to_json(e) for e in item_events]})
        results[item.id] = (verdict, item_events)
        bar.update(1)

    try:
        await run_bounded([one(item) for item in items])
    finally:
        bar.close()
    verdicts = [results[item.id][0] for item in items]
    events = [e for item in items for e in results[item.id][1]]
    return verdicts, events


async def run_bounded(coros: list[Any]) -> None:
    """Run coroutines as sibling tasks; the first failure cancels the others and is raised as
    itself (not wrapped in an ExceptionGroup), so callers see e.g. a missing recording as such."""
    import asyncio

    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first  # keeps its own __cause__ (a missing recording is found through it)

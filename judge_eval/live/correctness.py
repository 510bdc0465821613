"""The correctness judging stage (``pipeline.judge = "correctness"``): llama-index's own
``CorrectnessEvaluator`` (its class and its prompt) rates each answer alone on a declared scale,
for the teacher and for both students, through the same ``RetryingLLM``, capture, journal and
cassette machinery as the pairwise stage (``judge_eval.live.judging``).

Items. A score judge rates one answer, so each pair the answers stage (or ``source = "items"``)
gives becomes two pointwise items, one per answer (``pointwise_items``); a given pointwise item
stays as it is. The reference answer ``CorrectnessEvaluator`` compares against is the item's
``source``: the passage the answers were retrieved from (the first node's text, as the study
stored it), which is also the "reference" context of the pairwise prompt. The pipeline has no gold
answer, and the passage holds the facts the question was written from. It is kept on the item as
``reference_answer`` (a given pointwise item's own ``reference_answer`` wins over its source), so
the run file shows what the judges compared against.

One call per item (no order to flip), made under ``sort_key(item.order_key)`` so the cassette
is saved in the run files' item order whatever the concurrency.

Parsing. The evaluator's default parser (``eval_utils.default_parser``) reads the first line as a
float, and raises ``ValueError`` on an output of one line (it unpacks ``split("\\n", 1)``). Ours
(``parse_score``) reads the first line of the output with surrounding blank space removed; it must
be a plain decimal number (``4``, ``4.5``, ``+4.0``; not ``4/5``, ``Score: 4``, ``nan``) equal to
a value of the declared scale. Anything else is an ``output-cannot-be-parsed`` verdict with the
raw output as its text and the reason in ``extra["parse"]``; a call that still fails after its
retries is an ``error`` verdict with the reason (``extra["error"]``).

Distillation events. Every teacher call on a train item is captured as a chat fine-tuning event
(system, user, assistant) keyed by the item's id; a pointwise call has no presentation order, so
``order`` is absent. ``resolve_score_events`` is the pointwise analogue of the study's rule (keep
the call the teacher's verdict came from, drop inconclusive ones): the event of every train item
the teacher ``scored``; parse failures and errors teach nothing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from judge_eval.core.items import (
    ERROR, PARSE_FAILURE, POINTWISE, SCORE, SCORED, FinetuneEvent, Message, QAItem, Verdict, item_id,
    scale_text,
)
from judge_eval.errors import JudgeEvalError

#: Cassette (and journal) names of the correctness judges: ``<name>-<split>.yaml``. Different from
#: the pairwise stage's ``teacher``, ``student-base`` and ``student-distilled``, so a profile that
#: switches judge never replays the other kind's recording.
TEACHER_CASSETTE = "correctness-teacher"
BASE_STUDENT_CASSETTE = "correctness-student-base"
DISTILLED_STUDENT_CASSETTE = "correctness-student-distilled"

#: A plain decimal number (ASCII digits), as the first line of a judge output must be.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
#: How close a parsed number must be to a scale value to be that value (decimal scales such as
#: 0.1 steps are held inexactly by binary floats).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ParsedScore:
    score: float | None  # a value of the scale (as the scale holds it), or None
    reason: str  # "score", or why the output has no usable score


def parse_score(text: str, scale: Sequence[float]) -> ParsedScore:
    """The score on the first line of a ``CorrectnessEvaluator`` output, if it is on ``scale``."""
    stripped = text.strip()
    if not stripped:
        return ParsedScore(None, "empty output")
    first = stripped.splitlines()[0].strip()
    if not _NUMBER.fullmatch(first):
        shown = first if len(first) <= 60 else first[:57] + "..."
        return ParsedScore(None, f"the first line is not a number: {shown!r}")
    value = float(first)
    for allowed in scale:
        if math.isclose(value, allowed, rel_tol=0.0, abs_tol=_TOLERANCE):
            return ParsedScore(allowed, "score")
    return ParsedScore(None, f"{first} is not on the scale {scale_text(scale)}")


def reference_answer(item: QAItem) -> str:
    """What ``CorrectnessEvaluator`` gets as the reference answer (see the module docstring)."""
    given = item.extra.get("reference_answer")
    return given if isinstance(given, str) else item.source


def pointwise_items(items: Sequence[QAItem]) -> list[QAItem]:
    """One pointwise item per (question, answer): each pair's two answers become two items (the
    pair's question, source and split; an answers-stage ``error`` is kept, so both are judged as
    errors without a call), a pointwise item is kept. Each carries ``reference_answer``. Pairs
    that share a question and an identical answer (same model and text) give one item: its id is
    its content. A pair's verdicts and other fields (its explicit id too) stay with the pair."""
    out: dict[str, QAItem] = {}
    for item in items:
        if item.kind == POINTWISE:
            given = item if "reference_answer" in item.extra else dataclasses.replace(
                item, extra={**item.extra, "reference_answer": item.source})
            out.setdefault(item.id, given)
            continue
        for answer in item.answers:
            extra: dict[str, Any] = {"reference_answer": item.source}
            if item.extra.get("error"):
                extra["error"] = item.extra["error"]
            ident = item_id(item.split, item.question, (answer,))
            out.setdefault(ident, QAItem(id=ident, split=item.split, question=item.question, answers=(answer,),
                                         source=item.source, extra=extra))
    return list(out.values())


def _score_verdict(judge: str, scale: tuple[float, ...], score: float | None, text: str, source: str,
                   extra: Mapping[str, Any]) -> Verdict:
    return Verdict(llm=judge, score=score, text=text, source=source, extra=dict(extra), kind=SCORE, scale=scale)


async def score_item(item: QAItem, llm: Any, judge: str, scale: Sequence[float], *,
                     capture: bool = False) -> tuple[Verdict, list[FinetuneEvent]]:
    """Rate one pointwise item with ``CorrectnessEvaluator`` (its default prompt) and our parser.

    Returns the score verdict (text: the raw output) and, when ``capture``, the call as a
    fine-tuning event keyed by the item's id."""
    from llama_index.core.evaluation import CorrectnessEvaluator

    from judge_eval.live.capture import Call, CapturingLLM
    from judge_eval.live.retry import CallFailedError

    scale = tuple(scale)
    if item.kind != POINTWISE:
        raise JudgeEvalError(f"item {item.id} has {len(item.answers)} answers; the correctness judge rates one "
                             "answer per item (judge_eval.live.correctness.pointwise_items splits pairs)")
    if item.extra.get("error"):  # the answers stage failed for this item: nothing to judge
        return _score_verdict(judge, scale, None, "", ERROR, {"error": item.extra["error"], "attempts": 0}), []
    calls: list[Call] = []
    parsed: list[ParsedScore] = []

    def parser(text: str) -> tuple[float | None, str]:
        parsed.append(parse_score(text, scale))
        return parsed[-1].score, text

    evaluator = CorrectnessEvaluator(llm=CapturingLLM(llm, calls), parser_function=parser)
    try:
        await evaluator.aevaluate(query=item.question, response=item.answers[0].text,
                                  reference=reference_answer(item) or None)
    except CallFailedError as exc:
        # A live call that still failed after its retries: an explicit outcome for this item; the
        # stage goes on. (In replay a missing recording is not a CallFailedError: it stops the run.)
        return _score_verdict(judge, scale, None, "", ERROR, {"error": exc.reason, "attempts": exc.attempts}), []
    (call,) = calls
    (result,) = parsed
    source = SCORED if result.score is not None else PARSE_FAILURE
    verdict = _score_verdict(judge, scale, result.score, call.output, source, {"parse": result.reason})
    events = []
    if capture:
        messages = tuple(Message(role, content) for role, content in call.messages)
        events.append(FinetuneEvent(messages=messages + (Message("assistant", call.output),), item_id=item.id))
    return verdict, events


async def score_items(items: Sequence[QAItem], llm: Any, judge: str, scale: Sequence[float], *,
                      capture: bool = False, journal: Any = None, on_item_done: Any = None,
                      concurrency: int = 1) -> tuple[list[Verdict], list[FinetuneEvent]]:
    """Rate every item; returns (verdicts, events) aligned with ``items``, through
    ``judge_eval.live.judging.judge_each`` (concurrency, the journal, ``on_item_done`` and the
    cassette order as in the pairwise stage; one call per item)."""
    from judge_eval.live.judging import judge_each

    return await judge_each(items, lambda item: score_item(item, llm, judge, scale, capture=capture),
                            desc=f"scoring ({judge})", journal=journal, on_item_done=on_item_done,
                            concurrency=concurrency)


def resolve_score_events(items: Sequence[QAItem], events: Sequence[FinetuneEvent],
                         teacher: str) -> list[FinetuneEvent]:
    """For each train item, in the items' order, the teacher's event when its verdict is
    ``scored``; parse failures and errors are dropped (see the module docstring)."""
    by_item: dict[str, FinetuneEvent] = {}
    for n, event in enumerate(events, start=1):
        if event.item_id is None:
            raise JudgeEvalError(f"fine-tuning event {n} has no item_id; the correctness stage keys every "
                                 "event by its item")
        if event.item_id in by_item:
            raise JudgeEvalError(f"two fine-tuning events for item {event.item_id}; a correctness judge makes one "
                                 "call per item")
        by_item[event.item_id] = event
    resolved = []
    for item in items:
        verdict = item.verdict(teacher)
        if verdict is None:
            raise JudgeEvalError(f"train item {item.id} has no verdict by teacher {teacher!r}; "
                                 "judge every train item before resolving events")
        if verdict.source != SCORED:
            continue
        if item.id not in by_item:
            raise JudgeEvalError(f"no fine-tuning event for item {item.id}, which the teacher scored; re-run "
                                 "the teacher stage for this split")
        resolved.append(by_item[item.id])
    return resolved

"""Fine-tuning events: which judge call teaches the student.

While the teacher judges a train pair, each of its calls (original order, then flipped order)
is captured as a chat fine-tuning event keyed by ``(item id, order)``. For the student we keep,
per train item, the event of the order the teacher's verdict came from; items whose verdict is
inconclusive, unparseable or an error teach nothing and are dropped.

The core (``resolve_events``) works on keyed events only. The study's
``pairwise_finetuning_events.jsonl`` is positional (each train item's original-order event,
then its flipped-order event, in train-file order); ``import_study_events`` is the one place
that turns those positions into keys, and it checks that they line up.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from judge_eval.errors import JudgeEvalError
from judge_eval.core.items import FLIPPED, ORIGINAL, ORDERS, FinetuneEvent, QAItem

EventKey = tuple[str, str]  # (item id, order)


def key_events(events: Sequence[FinetuneEvent]) -> dict[EventKey, FinetuneEvent]:
    """Index keyed events by (item id, order); every event must carry its key, once."""
    out: dict[EventKey, FinetuneEvent] = {}
    for n, event in enumerate(events, start=1):
        if event.item_id is None or event.order is None:
            raise JudgeEvalError(
                f"fine-tuning event {n} has no item_id/order key; events of the study's positional "
                "file must go through judge_eval.core.events.import_study_events first")
        key = (event.item_id, event.order)
        if key in out:
            raise JudgeEvalError(f"two fine-tuning events for item {key[0]} in order {key[1]}")
        out[key] = event
    return out


def resolve_events(items: Sequence[QAItem], events: Mapping[EventKey, FinetuneEvent],
                   teacher: str) -> list[FinetuneEvent]:
    """For each train item, in the items' order, the event of the order the teacher's verdict
    came from (``original`` or ``flipped``); inconclusive/unparseable/error verdicts are dropped."""
    resolved = []
    for item in items:
        verdict = item.verdict(teacher)
        if verdict is None:
            raise JudgeEvalError(f"train item {item.id} has no verdict by teacher {teacher!r}; "
                                 "judge every train item before resolving events")
        if verdict.source not in (ORIGINAL, FLIPPED):
            continue
        key = (item.id, verdict.source)
        if key not in events:
            raise JudgeEvalError(
                f"no fine-tuning event for item {item.id} in order {verdict.source}, which decided "
                f"the teacher's verdict; re-run the teacher stage for this split")
        resolved.append(events[key])
    return resolved


def import_study_events(events: Sequence[FinetuneEvent], items: Sequence[QAItem]) -> list[FinetuneEvent]:
    """Key the study's positional events: event ``2i`` is item ``i`` in original order, event
    ``2i+1`` the same item flipped.

    Checks that there are exactly two events per item and that each event's user message holds
    its item's question, so a shifted or truncated file fails here instead of teaching the
    student the wrong verdicts.
    """
    if len(events) != len(ORDERS) * len(items):
        raise JudgeEvalError(
            f"the study's events file has {len(events)} events for {len(items)} train items; "
            f"expected {len(ORDERS) * len(items)} (original then flipped for every item). "
            "Re-fetch the study's files: judge-eval fetch-study DIR")
    keyed = []
    for n, event in enumerate(events):
        item = items[n // 2]
        order = ORDERS[n % 2]
        user = next((m.content for m in event.messages if m.role == "user"), "")
        question = item.question.removeprefix("Question:").strip()
        if question not in user:
            raise JudgeEvalError(
                f"event {n + 1} of the study's events file does not hold the question of train item "
                f"{n // 2 + 1} ({item.id}); the file is not in train order")
        keyed.append(FinetuneEvent(messages=event.messages, item_id=item.id, order=order,
                                   extra=event.extra))
    return keyed

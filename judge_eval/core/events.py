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

import dataclasses
import re
from typing import Mapping, Sequence

from judge_eval.core.parsing import parse_verdict
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


# --------------------------------------------------------------------------- validation slice


def validation_ids(items: Sequence[QAItem], every: int) -> list[str]:
    """The ids of the train items held out as a validation slice: positions ``every - 1``,
    ``2 * every - 1``, ... (0-based) of ``items`` in the order given (the train file's order),
    so the slice is fixed by the data and ``every`` alone, before any model is trained."""
    if every < 2:
        raise ValueError(f"every must be 2 or more (got {every!r}): 1 would hold out every train item")
    return [item.id for n, item in enumerate(items) if n % every == every - 1]


_QUESTION = re.compile(r"\[User Question\]\n(.*?)\n\n\[The Start of Reference\]", re.DOTALL)


def event_item_id(event: FinetuneEvent, items: Sequence[QAItem], n: int) -> str:
    """The train item an event teaches: its ``item_id`` when it has one, else the one item whose
    question its user message asks (the study's resolved file carries no keys). ``n`` is the
    event's 1-based line, for the error."""
    if event.item_id is not None:
        return event.item_id
    user = next((m.content for m in event.messages if m.role == "user"), "")
    found = _QUESTION.search(user)
    asked = found.group(1).strip() if found else None
    if asked is not None:
        asked = asked.removeprefix("Question:").strip()
    matches = [item.id for item in items
               if (asked is not None and item.question.removeprefix("Question:").strip() == asked)]
    if not matches:  # a user message in another template: the question anywhere in it
        matches = [item.id for item in items if item.question.removeprefix("Question:").strip() in user]
    if len(matches) != 1:
        what = "no train item's question" if not matches else f"the questions of {len(matches)} train items"
        raise JudgeEvalError(
            f"resolved fine-tuning event {n} holds {what}, so it cannot be kept out of training when its "
            "item is in the validation slice; give events with item_id keys, or fix the events file")
    return matches[0]


def split_validation(items: Sequence[QAItem], resolved: Sequence[FinetuneEvent],
                     every: int) -> tuple[list[QAItem], list[FinetuneEvent]]:
    """(the validation slice's items, the resolved events of every other train item): the slice's
    own events never reach training, so its verdicts are a held-out measurement."""
    held = set(validation_ids(items, every))
    training = [e for n, e in enumerate(resolved, start=1) if event_item_id(e, items, n) not in held]
    return [item for item in items if item.id in held], training


# --------------------------------------------------------------------------- swap augmentation

_ANSWERS = re.compile(
    r"(\[The Start of Assistant A’s Answer\]\n)(.*)(\n\[The End of Assistant A’s Answer\]\n\n"
    r"\[The Start of Assistant B’s Answer\]\n)(.*)(\n\[The End of Assistant B’s Answer\])", re.DOTALL)
_LETTERS = re.compile(r"\[\[(\s*)([AB])(\s*)\]\]"
                      r"|\b([Aa]ssistants?|[Rr]esponses?|[Aa]nswers?) ([AB])(?:( (?:and|or|&) |/)([AB]))?\b")
_OTHER = {"A": "B", "B": "A", "C": "C"}
_SEPARATOR = "\n[The End of Assistant A’s Answer]\n\n[The Start of Assistant B’s Answer]\n"


def _swap_letters(text: str) -> str:
    def other(m: re.Match[str]) -> str:
        if m.group(2):
            return f"[[{m.group(1)}{_OTHER[m.group(2)]}{m.group(3)}]]"
        pair = f"{m.group(6)}{_OTHER[m.group(7)]}" if m.group(7) else ""  # "Assistant A and B"
        return f"{m.group(4)} {_OTHER[m.group(5)]}{pair}"

    return _LETTERS.sub(other, text)


def swap_event(event: FinetuneEvent, n: int) -> FinetuneEvent:
    """The event with its two answers exchanged and the verdict mirrored (JudgeLM's swap
    augmentation): in the user message the texts of Assistant A's and Assistant B's answers trade
    places (PairwiseComparisonEvaluator's template); in the assistant message ``[[A]]`` and
    ``[[B]]`` trade places, as do the explanation's mentions (``Assistant A``, ``Assistants A and B``,
    ``Response B``, ``answer A/B``); ``[[C]]`` stays a tie. Other wordings (``the first response``)
    are left as written. ``n`` is the event's 1-based line, for the error."""
    messages = list(event.messages)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    answers = [i for i, m in enumerate(messages) if m.role == "assistant"]
    found = _ANSWERS.search(messages[users[-1]].content) if users else None
    verdict = parse_verdict(messages[answers[-1]].content).outcome if answers else None
    if found is None or verdict is None or messages[users[-1]].content.count(_SEPARATOR) != 1:
        raise JudgeEvalError(
            f"resolved fine-tuning event {n} cannot be swapped: its user message does not hold the pairwise "
            "template's two answer blocks (Assistant A's, then Assistant B's) exactly once, "
            "or its assistant message has no verdict the parser reads; set distill.swap_augment = false for events in "
            "another template")
    user = messages[users[-1]].content
    swapped = (user[:found.start()] + found.group(1) + found.group(4) + found.group(3) + found.group(2)
               + found.group(5) + user[found.end():])
    messages[users[-1]] = dataclasses.replace(messages[users[-1]], content=swapped)
    mirrored = _swap_letters(messages[answers[-1]].content)
    if parse_verdict(mirrored).outcome != _OTHER[verdict]:  # e.g. a verdict letter the pattern does not reach
        raise JudgeEvalError(f"resolved fine-tuning event {n}: its verdict {verdict} did not mirror to "
                             f"{_OTHER[verdict]} when swapped; set distill.swap_augment = false or fix the event")
    messages[answers[-1]] = dataclasses.replace(messages[answers[-1]], content=mirrored)
    order = {ORIGINAL: FLIPPED, FLIPPED: ORIGINAL}.get(event.order or "", event.order)
    return FinetuneEvent(messages=tuple(messages), item_id=event.item_id, order=order, extra=event.extra)


def swap_augmented(events: Sequence[FinetuneEvent]) -> list[FinetuneEvent]:
    """Every event, each followed by its swapped twin (``swap_event``)."""
    out: list[FinetuneEvent] = []
    for n, event in enumerate(events, start=1):
        out += [event, swap_event(event, n)]
    return out


# --------------------------------------------------------------------------- verdict-only targets

def verdict_target(event: FinetuneEvent, n: int) -> FinetuneEvent:
    """The event with its assistant answer cut to the verdict alone (``[[A]]``, ``[[B]]`` or
    ``[[C]]``, the verdict the project's parser reads in the teacher's answer): the student learns
    the decision, not the prose.
    ``n`` is the event's 1-based line, for the error."""
    messages = list(event.messages)
    answers = [i for i, m in enumerate(messages) if m.role == "assistant"]
    parsed = parse_verdict(messages[answers[-1]].content) if answers else None
    if parsed is None or parsed.outcome is None:
        raise JudgeEvalError(f"resolved fine-tuning event {n} has no verdict the parser reads in its assistant "
                             "message, so it has no verdict-only target; set distill.target = \"transcript\"")
    messages[answers[-1]] = dataclasses.replace(messages[answers[-1]], content=f"[[{parsed.outcome}]]")
    return dataclasses.replace(event, messages=tuple(messages))

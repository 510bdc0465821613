"""Fine-tuning event resolution against the study's own resolved file, record by record."""

from __future__ import annotations

import dataclasses

import pytest

from judge_eval.core.events import import_study_events, key_events, resolve_events
from judge_eval.errors import JudgeEvalError
from judge_eval.core.items import FinetuneEvent, Message
from judge_eval.core.store import Run, event_to_json


def test_resolution_reproduces_the_study_file_record_by_record(study_run: Run) -> None:
    keyed = key_events(import_study_events(study_run.events, study_run.train))
    resolved = resolve_events(study_run.train, keyed, teacher="gpt_4")
    assert len(resolved) == len(study_run.resolved) == 72
    for n, (ours, theirs) in enumerate(zip(resolved, study_run.resolved, strict=True), start=1):
        assert ours.messages == theirs.messages, f"record {n} differs"
    # Three train items are inconclusive for GPT-4 and teach nothing; one was decided by the
    # flipped call and contributes its flipped-order event.
    sources = [item.verdict("gpt_4").source for item in study_run.train]
    assert sources.count("neither") == 3
    flipped = [item.id for item in study_run.train if item.verdict("gpt_4").source == "flipped"]
    assert [e.order for e in resolved if e.item_id in flipped] == ["flipped"]


def test_resolution_follows_keys_not_positions(study_run: Run) -> None:
    keyed = key_events(import_study_events(study_run.events, study_run.train))
    shuffled = dict(reversed(list(keyed.items())))
    assert resolve_events(study_run.train, shuffled, "gpt_4") == resolve_events(study_run.train, keyed, "gpt_4")


def test_importer_checks_the_counts_line_up(study_run: Run) -> None:
    with pytest.raises(JudgeEvalError, match="149 events for 75 train items; expected 150"):
        import_study_events(study_run.events[:-1], study_run.train)


def test_importer_detects_a_shifted_file(study_run: Run) -> None:
    shifted = study_run.events[1:] + study_run.events[:1]
    with pytest.raises(JudgeEvalError, match="event 2 .* does not hold the question of train item 1"):
        import_study_events(shifted, study_run.train)


def test_a_missing_deciding_event_is_a_clear_error(study_run: Run) -> None:
    keyed = key_events(import_study_events(study_run.events, study_run.train))
    first = study_run.train[0]
    del keyed[(first.id, first.verdict("gpt_4").source)]
    with pytest.raises(JudgeEvalError, match=f"no fine-tuning event for item {first.id}"):
        resolve_events(study_run.train, keyed, "gpt_4")


def test_unkeyed_or_duplicate_events_are_rejected() -> None:
    event = FinetuneEvent(messages=(Message("user", "q"),))
    with pytest.raises(JudgeEvalError, match="no item_id/order key"):
        key_events([event])
    keyed = dataclasses.replace(event, item_id="test-1", order="original")
    with pytest.raises(JudgeEvalError, match="two fine-tuning events for item test-1"):
        key_events([keyed, keyed])
    assert event_to_json(keyed) == {"messages": [{"role": "user", "content": "q"}],
                                    "item_id": "test-1", "order": "original"}

"""The validation slice held out of distillation, and swap augmentation of fine-tuning events."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from judge_eval.core.events import split_validation, swap_augmented, swap_event, validation_ids
from judge_eval.core.items import FinetuneEvent, Message, QAItem
from judge_eval.core.store import Run
from judge_eval.errors import JudgeEvalError

USER = ("[User Question]\n{q}\n\n[The Start of Reference]\nref\n[The End of Reference]\n\n"
        "[The Start of Assistant A’s Answer]\n{a}\n[The End of Assistant A’s Answer]\n\n"
        "[The Start of Assistant B’s Answer]\n{b}\n[The End of Assistant B’s Answer]")


def item(q: str) -> QAItem:
    return QAItem(id=f"id-{q}", split="train", question=q, answers=(), source="")


def event(q: str, a: str, b: str, verdict: str, *, item_id: str | None = None) -> FinetuneEvent:
    return FinetuneEvent(messages=(Message("system", "judge"), Message("user", USER.format(q=q, a=a, b=b)),
                                   Message("assistant", verdict)), item_id=item_id)


def test_the_slice_is_every_nth_train_item_by_position() -> None:
    items = [item(f"q{n}") for n in range(10)]
    # positions 2, 5, 8 (0-based) with every = 3, counted by hand
    assert validation_ids(items, 3) == [items[2].id, items[5].id, items[8].id]
    assert validation_ids(items, 2) == [items[n].id for n in (1, 3, 5, 7, 9)]
    with pytest.raises(ValueError, match="2 or more"):
        validation_ids(items, 1)


def test_the_studys_slice_keeps_its_own_events_out_of_training(study_run: Run) -> None:
    train = list(study_run.train)
    held, training = split_validation(train, list(study_run.resolved), 3)
    assert len(train) == 75 and len(held) == 25  # positions 2, 5, ..., 74
    # The held-out items that teach (GPT-4 decided them in one order: resolution's rule) are
    # exactly the events removed, counted from the verdicts, not from the events' text.
    teaching = sum(1 for item in held if item.verdict("gpt_4").source in ("original", "flipped"))
    assert len(study_run.resolved) - len(training) == teaching
    held_questions = {item.question for item in held}
    for e in training:
        assert not any(q in e.messages[1].content for q in held_questions)


def test_an_event_without_its_question_in_the_train_items_is_a_clear_error() -> None:
    items = [item("What is up?"), item("Who?")]
    with pytest.raises(JudgeEvalError, match="event 1 holds no train item's question"):
        split_validation(items, [event("Something else?", "a", "b", "[[A]]")], 2)
    keyed = event("Something else?", "a", "b", "[[A]]", item_id=items[1].id)  # a key wins over the text
    assert split_validation(items, [keyed], 2) == ([items[1]], [])


def test_swap_exchanges_the_answers_and_mirrors_the_verdict() -> None:
    e = event("Q?", "first text", "second text",
              "Assistant A is precise; Assistant B is vague. Assistant A's answer wins.\n\nFinal Verdict: [[A]]")
    s = swap_event(e, 1)
    assert s.messages[1].content == USER.format(q="Q?", a="second text", b="first text")
    assert s.messages[2].content == ("Assistant B is precise; Assistant A is vague. Assistant B's answer wins."
                                     "\n\nFinal Verdict: [[B]]")
    assert s.messages[0] == e.messages[0]
    tie = swap_event(event("Q?", "x", "y", "Both Assistant A and Assistant B are fine. [[C]]"), 1)
    assert tie.messages[2].content == "Both Assistant B and Assistant A are fine. [[C]]"
    assert [m.messages[1].content for m in swap_augmented([e])] == [e.messages[1].content, s.messages[1].content]


@given(a=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
       b=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
       letter=st.sampled_from("ABC"))
def test_swapping_twice_gives_the_event_back(a: str, b: str, letter: str) -> None:
    e = event("Q?", a, b, f"Assistant A or Assistant B? [[{letter}]]")
    assert swap_event(swap_event(e, 1), 1) == e


def test_an_event_in_another_template_cannot_be_swapped() -> None:
    odd = FinetuneEvent(messages=(Message("user", "Which is better, 1 or 2?"), Message("assistant", "[[A]]")))
    with pytest.raises(JudgeEvalError, match=r"event 3 cannot be swapped.*swap_augment = false"):
        swap_event(odd, 3)


def test_a_verdict_target_keeps_only_the_verdict_the_parser_reads() -> None:
    from judge_eval.core.events import verdict_target

    # a quoted format string is no verdict (the parser skips it); "[[ A ]]" is
    e = event("Q?", "a", "b", "Answer with [[A]], [[B]] or [[C]]. Assistant A wins.\n\nFinal Verdict: [[ A ]]")
    cut = verdict_target(e, 1)
    assert cut.messages[2].content == "[[A]]" and cut.messages[:2] == e.messages[:2]
    for unreadable in ("I cannot decide.", "First [[A]], then again [[B]]."):  # none; two conflicting
        with pytest.raises(JudgeEvalError, match=r"event 4 has no verdict .*distill.target = \"transcript\""):
            verdict_target(event("Q?", "a", "b", unreadable), 4)


def test_a_spaced_verdict_is_mirrored_and_one_that_cannot_be_is_refused() -> None:
    s = swap_event(event("Q?", "x", "y", "Assistant B wins. [[ B ]]"), 1)
    assert s.messages[2].content == "Assistant A wins. [[ A ]]"
    with pytest.raises(JudgeEvalError, match="event 2 cannot be swapped"):  # no verdict the parser reads
        swap_event(event("Q?", "x", "y", "hmm [[ unsure"), 2)
    sep = "\n[The End of Assistant A’s Answer]\n\n[The Start of Assistant B’s Answer]\n"
    with pytest.raises(JudgeEvalError, match="event 3 cannot be swapped"):  # the separator inside an answer
        swap_event(event("Q?", "x", "quoting" + sep + "it", "[[A]]"), 3)


def test_other_mentions_of_the_letters_are_mirrored_too() -> None:
    text = "While both Assistant A and B are right, Response A is longer than answer A/B says. [[A]]"
    assert swap_event(event("Q?", "x", "y", text), 1).messages[2].content == (
        "While both Assistant B and A are right, Response B is longer than answer B/A says. [[B]]")

"""Verdict probabilities at the verdict position, and the position-debiased combination."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from judge_eval.core.choice import (
    Choice, choice_probs, choice_verdict, combine, token_entries, verdict_position, with_choice_verdicts,
)
from judge_eval.core.items import Answer, QAItem, Verdict


def entry(token: str, top: dict[str, float]) -> dict:
    """A chat completions logprob entry; the sampled token's logprob is its top_logprobs value."""
    return {"token": token, "logprob": top.get(token, -9.0), "bytes": None,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top.items()]}


def plain(*tokens: str) -> list[dict]:
    return [entry(t, {t: -0.1}) for t in tokens]


def test_letter_after_a_separate_open_token_as_llama_cpp_gives_it():
    # SmolLM2 under llama.cpp: "[[" then the letter, "]]" its own token
    lp = [*plain("Verdict", ":", " [["),
          entry("A", {"A": math.log(0.6), "B": math.log(0.2), " C": math.log(0.1), "The": math.log(0.05)}),
          *plain("]]")]
    c = choice_probs(lp)
    assert c.mass == pytest.approx(0.9)
    assert c.probs == pytest.approx({"A": 0.6 / 0.9, "B": 0.2 / 0.9, "C": 0.1 / 0.9})


def test_letter_inside_the_open_token_and_tokens_with_closing_brackets():
    # " [[A" holds the position with prefix " [["; "[[B" does not start with it, " [[B]]" does
    lp = [*plain("So"), entry(" [[A", {" [[A": math.log(0.5), " [[B]]": math.log(0.25), "[[C": math.log(0.2)}),
          *plain("]]")]
    c = choice_probs(lp)
    assert c.mass == pytest.approx(0.75)
    assert c.probs == pytest.approx({"A": 2 / 3, "B": 1 / 3, "C": 0.0})


def test_variants_of_one_letter_add_up_and_words_starting_with_a_letter_do_not_count():
    lp = [*plain("[["), entry("B", {"B": math.log(0.3), " B": math.log(0.1), "B]]": math.log(0.1),
                                    "Both": math.log(0.2), "A": math.log(0.1)})]
    c = choice_probs(lp)
    assert c.mass == pytest.approx(0.6)
    assert c.probs == pytest.approx({"A": 0.1 / 0.6, "B": 0.5 / 0.6, "C": 0.0})


def test_the_last_open_bracket_is_the_verdict_position():
    # a format quote "[[A]] or [[B]]" first, then the verdict
    lp = [*plain("Use", " [[", "A", "]]", " or", " [[", "B", "]].", " Verdict", ": [["),
          entry("C", {"C": math.log(0.7), "A": math.log(0.1)}), *plain("]]")]
    assert choice_probs(lp).probs == pytest.approx({"A": 0.125, "B": 0.0, "C": 0.875})
    assert verdict_position(["a", " [[", "B", "]]", " [[ ", "C"]) == (5, "")


def test_the_sampled_token_counts_even_outside_its_top_list():
    lp = [*plain("[["), {"token": "A", "logprob": math.log(0.4), "top_logprobs": [{"token": "B", "logprob": math.log(0.4)}]}]
    assert choice_probs(lp).probs == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0})


@pytest.mark.parametrize("logprobs, reason", [
    (None, "no logprobs"), ([], "no logprobs"),
    (plain("I", " think", " A"), "no [[ in the output"),
    (plain("Verdict", ": [["), "the output ends after its last [["),
    ([*plain("[["), entry("The", {"The": -0.1, "Tie": -2.0})], "no A, B or C among the candidates at the verdict position"),
])
def test_no_probabilities_with_a_reason(logprobs, reason):
    c = choice_probs(logprobs)
    assert c.probs is None and c.reason == reason
    assert c.to_json() == {"reason": reason}


def test_the_completions_endpoint_form():
    # llama.cpp /v1/completions: tokens, token_logprobs, top_logprobs as {token: logprob}
    lp = {"tokens": ["The", " verdict", " [[", "B", "]]"], "token_logprobs": [-1.0, -1.0, -1.0, math.log(0.5), -0.1],
          "top_logprobs": [{}, {}, {}, {"B": math.log(0.5), "A": math.log(0.25)}, {"]]": -0.1}], "text_offset": [0, 3, 11, 14, 15]}
    assert token_entries(lp)[3]["top_logprobs"] == [{"token": "B", "logprob": math.log(0.5)},
                                                    {"token": "A", "logprob": math.log(0.25)}]
    assert choice_probs(lp).probs == pytest.approx({"A": 1 / 3, "B": 2 / 3, "C": 0.0})
    assert choice_probs({"content": [*plain("[["), entry("A", {"A": -0.1})]}).probs == {"A": 1.0, "B": 0.0, "C": 0.0}


def test_json_round_trip():
    c = Choice({"A": 0.5, "B": 0.25, "C": 0.25}, 0.8)
    assert Choice.from_json(c.to_json()) == c
    assert Choice.from_json({"reason": "no logprobs"}) == Choice(None, None, "no logprobs")


def test_combine_by_hand():
    # first: (0.6 + 0.5) / 2, second: (0.3 + 0.2) / 2, tie: (0.1 + 0.3) / 2
    c = combine({"A": 0.6, "B": 0.3, "C": 0.1}, {"A": 0.2, "B": 0.5, "C": 0.3})
    assert (c.first, c.second, c.tie) == pytest.approx((0.55, 0.25, 0.2))
    assert c.outcome == "first" and c.score == 1.0 and c.margin == pytest.approx(0.30)
    assert combine({"A": 0.6, "B": 0.3, "C": 0.1}, {"A": 0.2, "B": 0.5, "C": 0.3}, margin=0.31).outcome is None
    # position bias: A in both orders -> the two answers tie on first/second and it is inconclusive
    both_a = combine({"A": 0.9, "B": 0.1, "C": 0.0}, {"A": 0.9, "B": 0.1, "C": 0.0})
    assert both_a.outcome is None and both_a.score == 0.5
    assert combine({"A": 0.1, "B": 0.1, "C": 0.8}, {"A": 0.1, "B": 0.1, "C": 0.8}).outcome == "tie"
    with pytest.raises(ValueError, match="negative"):
        combine({"A": 1, "B": 0, "C": 0}, {"A": 0, "B": 1, "C": 0}, margin=-0.1)


def _dist(raw: list[float]) -> dict[str, float]:
    total = sum(raw)
    return dict(zip("ABC", (r / total for r in raw)))


weights = st.lists(st.floats(0.001, 1.0), min_size=3, max_size=3)
MIRROR = {"first": "second", "second": "first", "tie": "tie", None: None}


@given(weights, weights, st.floats(0.0, 0.5))
def test_swapping_the_answers_mirrors_the_combined_verdict(orig, flip, margin):
    # Swapping the stored answers makes the old flipped call the new original one and vice versa
    # (A still names the answer shown first), so the verdict mirrors: first <-> second.
    po, pf = _dist(orig), _dist(flip)
    c, s = combine(po, pf, margin), combine(pf, po, margin)
    assert s.outcome == MIRROR[c.outcome]
    assert (s.first, s.second, s.tie, s.margin) == (c.second, c.first, c.tie, c.margin)


@given(weights, weights, st.floats(0.0, 0.5))
def test_relabelling_a_and_b_in_both_orders_mirrors_the_combined_verdict(orig, flip, margin):
    po, pf = _dist(orig), _dist(flip)
    swap = lambda p: {"A": p["B"], "B": p["A"], "C": p["C"]}  # noqa: E731
    c, s = combine(po, pf, margin), combine(swap(po), swap(pf), margin)
    assert s.outcome == MIRROR[c.outcome] and s.margin == c.margin


def _item(*verdicts: Verdict) -> QAItem:
    return QAItem(id="t1", split="test", question="q", answers=(Answer("m1", "x"), Answer("m2", "y")),
                  source="ctx", evaluations=verdicts)


def test_choice_verdicts_are_a_separate_judge_and_leave_the_text_verdict_alone():
    text = Verdict("student", 1.0, "[[A]]", "original", extra={"choice": {
        "original": {"A": 0.2, "B": 0.7, "C": 0.1, "mass": 0.9}, "flipped": {"A": 0.6, "B": 0.3, "C": 0.1, "mass": 0.8}}})
    other = Verdict("gpt_4", 0.0, "[[B]]", "original")
    out = with_choice_verdicts([_item(text, other), _item(Verdict("student", 1.0, "", "original"))])
    first = out[0]
    assert first.verdict("student") is text and first.verdict("gpt_4@choice") is None
    v = first.verdict("student@choice")
    # first: (0.2 + 0.3) / 2 = 0.25, second: (0.7 + 0.6) / 2 = 0.65, tie 0.1
    assert (v.source, v.score) == ("original", 0.0) and v.first_answer_score == 0.0
    assert v.extra["choice"]["first"] == pytest.approx(0.25)
    missing = out[1].verdict("student@choice")
    assert missing.source == "output-cannot-be-parsed" and "original: no call" in missing.extra["choice"]["reason"]
    only_one = choice_verdict(Verdict("s", 1.0, "", "original", extra={"choice": {"original": {"reason": "no logprobs"}}}))
    assert only_one.extra["choice"]["reason"] == "original: no logprobs; flipped: no call"

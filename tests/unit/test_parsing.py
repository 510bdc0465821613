"""The project's judge-output parser: every kind of output is classified explicitly."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from llama_index.core.evaluation import PairwiseComparisonEvaluator

from judge_eval.core.parsing import parse_verdict, parser_function
from tests.scripted import ScriptedLLM

SYSTEM_FORMAT = ("output your final verdict by strictly following this format: '[[A]]' if assistant A "
                 "is better, '[[B]]' if assistant B is better, and '[[C]]' for a tie.")


@pytest.mark.parametrize(("text", "outcome", "reason"), [
    ("Assistant A cites the reference. [[A]]", "A", "verdict"),
    ("Both are equally good.\n[[C]]", "C", "verdict"),
    ("[[ B ]]", "B", "verdict"),
    ("A is better. [[A]]\nFinal verdict: [[A]]", "A", "verdict"),
    ("I cannot decide which is better.", None, "no verdict"),
    ("The verdict is [A].", None, "no verdict"),
    ("Respond with [[A]] or [[B]]. Assistant B is more accurate. [[B]]", "B",
     "verdict after a quoted format string"),
    (f"I was asked to {SYSTEM_FORMAT} Assistant A is better.\n[[A]]", "A",
     "verdict after a quoted format string"),
    (f"I will {SYSTEM_FORMAT}", None, "no verdict (only a quoted format string)"),
    ("Assistant A is better. [[A]]\nOn reflection, Assistant B. [[B]]", None, "conflicting verdicts: A, B"),
])
def test_classification(text: str, outcome: str | None, reason: str) -> None:
    parsed = parse_verdict(text)
    assert (parsed.outcome, parsed.reason, parsed.raw) == (outcome, reason, text)


def test_default_parser_and_ours_disagree_on_a_quoted_format_string() -> None:
    text = "Respond with [[A]] or [[B]]. Assistant B is more accurate. [[B]]"
    flipped = "Assistant A is more accurate. [[A]]"  # B wins in both orders

    def run(parser):
        kwargs = {} if parser is None else {"parser_function": parser}
        llm = ScriptedLLM(script=[text, flipped], prompts=[])
        return asyncio.run(PairwiseComparisonEvaluator(llm=llm, **kwargs).aevaluate(
            query="q", response="a1", second_response="a2", reference="ctx"))

    default, ours = run(None), run(parser_function)
    assert (default.score, default.pairwise_source) == (0.5, "neither")  # read as A, then A: position bias
    assert (ours.score, getattr(ours.pairwise_source, "value", None)) == (0.0, "original")


def test_unparseable_output_becomes_an_invalid_result_with_the_raw_text() -> None:
    llm = ScriptedLLM(script=["No idea."], prompts=[])
    result = asyncio.run(PairwiseComparisonEvaluator(llm=llm, parser_function=parser_function).aevaluate(
        query="q", response="a1", second_response="a2", reference="ctx"))
    assert result.invalid_result and result.feedback == "No idea." and result.score is None


@given(st.text(max_size=200))
def test_any_text_is_classified(text: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.outcome in ("A", "B", "C", None) and parsed.reason and parsed.raw == text
    if "[[" not in text:
        assert parsed.outcome is None and parsed.reason == "no verdict"
    passing, score, feedback = parser_function(text)
    assert (score is None) == (parsed.outcome is None)

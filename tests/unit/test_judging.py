"""Verdict resolution: ours must match PairwiseComparisonEvaluator on every pair of outcomes.

The evaluator is the real llama-index class, driven by a scripted LLM (a real ``CustomLLM``
returning fixed texts; no HTTP).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.evaluation import PairwiseComparisonEvaluator

from judge_eval.core.resolution import resolve_orders
from tests.scripted import ScriptedLLM

OUTCOMES = ["A", "B", "C", None]  # None: the output has no verdict


def judge_text(outcome: str | None, explanation: str) -> str:
    return explanation if outcome is None else f"{explanation}\nFinal verdict: [[{outcome}]]"


def run_evaluator(first: str, second: str) -> tuple[Any, int]:
    llm = ScriptedLLM(script=[first, second], prompts=[])
    result = asyncio.run(PairwiseComparisonEvaluator(llm=llm).aevaluate(
        query="Which is better?", response="answer one", second_response="answer two",
        reference="ctx"))
    return result, len(llm.prompts)


def evaluator_verdict(result) -> tuple[float | None, str]:
    if result.invalid_result:
        return None, "output-cannot-be-parsed"
    # pairwise_source is an EvaluationSource enum member, except for the inconclusive result,
    # which the evaluator builds with a plain string (llama-index-core 0.14.25).
    source = result.pairwise_source
    return result.score, getattr(source, "value", source)


@pytest.mark.parametrize(("first", "second"), list(itertools.product(OUTCOMES, OUTCOMES)))
def test_every_pair_of_outcomes_matches_the_evaluator(first, second) -> None:
    result, calls = run_evaluator(judge_text(first, "Because."), judge_text(second, "Because."))
    assert resolve_orders(first, second if first is not None else None) == evaluator_verdict(result)
    # The flipped call is made only when the first call parsed.
    assert calls == (1 if first is None else 2)


@settings(max_examples=60, deadline=None)
@given(first=st.sampled_from(OUTCOMES), second=st.sampled_from(OUTCOMES),
       explanation=st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=40))
def test_resolution_matches_the_evaluator_whatever_the_explanation(first, second, explanation) -> None:
    result, _ = run_evaluator(judge_text(first, explanation), judge_text(second, explanation))
    assert resolve_orders(first, second if first is not None else None) == evaluator_verdict(result)


def test_the_flipped_call_decides_and_its_score_is_in_the_flipped_order() -> None:
    # C then A: the second stored answer won; the evaluator reports the flipped call's 1.0.
    assert resolve_orders("C", "A") == (1.0, "flipped")
    assert resolve_orders("A", "A") == (0.5, "neither")  # position, not the answer, decided
    assert resolve_orders("C", "C") == (0.5, "original")


def test_default_parser_reads_a_quoted_format_string_as_a() -> None:
    """Why the project passes its own parser: the evaluator's default reads any text that
    contains "[[A]]" as A, even one that only quotes the instructions."""
    text = "The format is [[A]] or [[B]]. Assistant B is better. [[B]]"
    result, _ = run_evaluator(text, judge_text("B", "x"))
    assert evaluator_verdict(result) == (1.0, "original")


def test_unknown_outcome_is_rejected() -> None:
    with pytest.raises(ValueError, match="outcome 'D'"):
        resolve_orders("D", "A")

"""Resolving a pairwise judge's two presentation orders into one verdict.

This reproduces ``llama_index.core.evaluation.PairwiseComparisonEvaluator`` (llama-index-core
0.14.25, ``_resolve_results``) on parsed outcomes, so that verdicts resolved outside the evaluator
(from a journal, from another tool's transcripts, from an importer of both-order judgements) carry
exactly the score and source the evaluator would have returned. ``tests/unit/test_judging.py``
drives the real evaluator with a scripted LLM over every pair of outcomes to hold us to that.
"""

from __future__ import annotations

from judge_eval.core.parsing import OUTCOME_SCORES
from judge_eval.core.items import FLIPPED, NEITHER, ORIGINAL, PARSE_FAILURE


def resolve_orders(original: str | None, flipped: str | None) -> tuple[float | None, str]:
    """Resolve the outcomes of the original-order call and the flipped-order call into
    ``(score, source)`` exactly as the evaluator does.

    The score is in the frame of the deciding call: with source ``flipped`` it refers to the
    flipped order (1.0 = the answer shown first there, i.e. the second stored answer, wins).
    An unparseable first call means the flipped call is never made; either one unparseable
    gives ``(None, "output-cannot-be-parsed")``.
    """
    for outcome in (original, flipped):
        if outcome is not None and outcome not in OUTCOME_SCORES:
            raise ValueError(f"outcome {outcome!r} is not one of A, B, C or None")
    if original is None or flipped is None:
        return None, PARSE_FAILURE
    s1, s2 = OUTCOME_SCORES[original], OUTCOME_SCORES[flipped]
    votes_1 = s1 + (1 - s2)  # votes for the first stored answer
    votes_2 = (1 - s1) + s2
    if votes_1 > votes_2:
        # The evaluator returns the first voter for answer 1: the original call if it said A.
        return (s1, ORIGINAL) if s1 == 1.0 else (s2, FLIPPED)
    if votes_2 > votes_1:
        return (s1, ORIGINAL) if s1 == 0.0 else (s2, FLIPPED)
    if s1 == 0.5:  # C and C: a real tie
        return s1, ORIGINAL
    return 0.5, NEITHER  # A/A or B/B: the verdict followed the position, not the answer



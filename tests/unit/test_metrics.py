"""Metrics: the published table to the last digit, the corrected frame, and properties."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import pearsonr
from sklearn.metrics import cohen_kappa_score, jaccard_score

from judge_eval.errors import JudgeEvalError
from judge_eval.core.metrics import (bootstrap_ci, bootstrap_means, compare, discover_judges, judge_stats,
                                     run_metrics)
from judge_eval.core.items import SOURCES, Answer, QAItem, Verdict, item_id
from judge_eval.core.store import Run

# The published notebook's printed table (and ../shared/seed_run/SOURCE.md): the independent
# source for the study frame, kept literal.
PUBLISHED = {
    "ft_gpt_3p5": (15, 41, 47, 0.8723404255319149, 0.765365523658036, 0.773126734505088),
    "gpt_3p5": (24, 32, 38, 0.8421052631578947, 0.671929323262293, 0.7308712958867757),
}
CONCLUSIVE = ("original", "flipped")


def row(c):
    return (c.inconclusive, c.agreements, c.total, c.agreement_rate, c.correlation, c.jaccard)


def raw_rows(study_dir: Path) -> list[dict]:
    """The study's test file read line by line, without judge_eval's reader."""
    return [json.loads(line) for line in (study_dir / "test_qa_complete.jsonl").read_text().splitlines()]


def by_hand(study_dir: Path, judge: str, frame: str) -> tuple:
    """The table row counted by hand over the raw file: a verdict's score, or in the corrected
    frame 1 - score when its source is "flipped"; compared only where both gpt_4 and the judge
    are conclusive. Correlation by scipy, Jaccard by scikit-learn on string labels."""
    def score(e: dict) -> float:
        return 1.0 - e["score"] if frame == "corrected" and e["source"] == "flipped" else e["score"]

    inconclusive, ref, cand = 0, [], []
    for line in raw_rows(study_dir):
        ev = {e["llm"]: e for e in line["evaluations"]}
        inconclusive += ev[judge]["source"] == "neither"
        if ev["gpt_4"]["source"] in CONCLUSIVE and ev[judge]["source"] in CONCLUSIVE:
            ref.append(score(ev["gpt_4"]))
            cand.append(score(ev[judge]))
    agreements = sum(a == b for a, b in zip(ref, cand))
    return (inconclusive, agreements, len(ref), agreements / len(ref), float(pearsonr(ref, cand).statistic),
            float(jaccard_score([str(float(x)) for x in ref], [str(float(x)) for x in cand], average="weighted")))


def assert_rows_match(got: tuple, expected: tuple) -> None:
    """Counts, rate and Jaccard exactly; the correlation within 1e-12 (numpy's corrcoef against
    scipy's pearsonr: equal up to the last bits)."""
    assert got[:4] == expected[:4] and got[5] == expected[5]
    assert abs(got[4] - expected[4]) <= 1e-12


def test_study_frame_reproduces_the_published_table(study_run: Run) -> None:
    metrics = run_metrics(study_run.test)
    assert metrics.reference == "gpt_4" and metrics.reference_stats.inconclusive == 4
    assert {j: row(f["study"]) for j, f in metrics.judges.items()} == PUBLISHED


def test_the_hand_count_reproduces_the_published_table(study_dir: Path) -> None:
    """The hand count below is trusted for the corrected frame because, in the study frame, it
    gives the published table."""
    for judge, published in PUBLISHED.items():
        assert_rows_match(by_hand(study_dir, judge, "study"), published)


def test_corrected_frame(study_run: Run, study_dir: Path) -> None:
    metrics = run_metrics(study_run.test)
    assert set(metrics.judges) == set(PUBLISHED)
    for judge, frames in metrics.judges.items():
        assert_rows_match(row(frames["corrected"]), by_hand(study_dir, judge, "corrected"))


def test_items_that_change_between_frames_and_why(study_run: Run) -> None:
    """Every change comes from a judge verdict decided by the flipped call: its raw score refers
    to the flipped order, so the study compared it against GPT-4's original-order score."""
    changes = {}
    for judge in ("ft_gpt_3p5", "gpt_3p5"):
        for item in study_run.test:
            ref, cand = item.verdict("gpt_4"), item.verdict(judge)
            if not (ref.conclusive and cand.conclusive):
                continue
            raw = ref.score == cand.score
            fixed = first_wins(ref) == first_wins(cand)
            if raw != fixed:
                changes[(judge, item.id)] = (ref.source, ref.score, cand.source, cand.score, fixed)
    assert changes == {
        # ft: GPT-4 says the first answer wins; ft's flipped call said "B" (0.0 in the flipped
        # order), i.e. the first stored answer wins too: an agreement the study missed.
        ("ft_gpt_3p5", "test-c14786aa5de0b501"): ("original", 1.0, "flipped", 0.0, True),
        ("ft_gpt_3p5", "test-60bcdfe1ecd653b3"): ("original", 1.0, "flipped", 0.0, True),
        ("ft_gpt_3p5", "test-38a00232ee4d7149"): ("original", 1.0, "flipped", 0.0, True),
        # base: the same three kinds of moves to agreement ...
        ("gpt_3p5", "test-c7466877b2ee4b45"): ("original", 0.0, "flipped", 1.0, True),
        ("gpt_3p5", "test-c14786aa5de0b501"): ("original", 1.0, "flipped", 0.0, True),
        ("gpt_3p5", "test-60bcdfe1ecd653b3"): ("original", 1.0, "flipped", 0.0, True),
        # ... and one away: both scored 1.0 raw, but the base judge's 1.0 is in the flipped
        # order (the second stored answer wins), so it disagrees with GPT-4.
        ("gpt_3p5", "test-38a00232ee4d7149"): ("original", 1.0, "flipped", 1.0, False),
    }
    # These changes are the whole difference between the published (study frame) agreements and
    # the corrected frame's.
    metrics = run_metrics(study_run.test)
    for judge, published in PUBLISHED.items():
        moves = [fixed for (j, _), (*_, fixed) in changes.items() if j == judge]
        assert published[1] + moves.count(True) - moves.count(False) == \
            metrics.judges[judge]["corrected"].agreements


def first_wins(v) -> float:
    """Score in "the first stored answer wins" order, by hand (not Verdict.first_answer_score)."""
    return 1.0 - v.score if v.source == "flipped" else v.score


def length_bias_by_hand(study_dir: Path, judge: str) -> tuple[int, int]:
    """(won by the longer answer, decisive): conclusive verdicts of ``judge`` in the corrected
    frame that pick a winner between answers of different length, counted over the raw file."""
    longer = decisive = 0
    for line in raw_rows(study_dir):
        e = next(e for e in line["evaluations"] if e["llm"] == judge)
        if e["source"] not in CONCLUSIVE:
            continue
        first = 1.0 - e["score"] if e["source"] == "flipped" else e["score"]
        len_1, len_2 = (len(a["text"]) for a in line["answers"])
        if first == 0.5 or len_1 == len_2:
            continue
        decisive += 1
        winner_len, loser_len = (len_1, len_2) if first == 1.0 else (len_2, len_1)
        longer += winner_len > loser_len
    return longer, decisive


@pytest.mark.parametrize("judge", sorted(PUBLISHED))
def test_extra_metrics_on_the_study(study_run: Run, study_dir: Path, judge: str) -> None:
    c = compare(study_run.test, judge, frame="corrected")
    both = [i for i in study_run.test if i.verdict("gpt_4").conclusive and i.verdict(judge).conclusive]
    ref = np.array([first_wins(i.verdict("gpt_4")) for i in both])
    cand = np.array([first_wins(i.verdict(judge)) for i in both])
    assert c.kappa == pytest.approx(cohen_kappa_score(ref.astype(str), cand.astype(str)), rel=1e-12)
    low, high = c.agreement_ci
    assert low < c.agreement_rate < high <= 1.0
    inconclusive = PUBLISHED[judge][0]
    assert c.consistency_rate == (64 - inconclusive) / 64
    assert (c.parse_failures, c.errors, c.missing) == (0, 0, 0)
    longer, decisive = length_bias_by_hand(study_dir, judge)
    assert decisive > 0 and c.length_bias == longer / decisive


# --------------------------------------------------------------------------- synthetic items

def make_item(n: int, verdicts: dict[str, tuple[float | None, str]], lengths=(3, 5)) -> QAItem:
    question = f"question {n}"
    return QAItem(
        id=item_id("test", question), split="test", question=question,
        answers=(Answer("m1", "x" * lengths[0]), Answer("m2", "y" * lengths[1])), source="ctx",
        evaluations=tuple(Verdict(llm, score, "", source) for llm, (score, source) in verdicts.items()),
    )


verdict_st = st.one_of(
    st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from(["original", "flipped"])),
    st.just((0.5, "neither")),
    st.tuples(st.none(), st.sampled_from(["output-cannot-be-parsed", "error"])),
)
items_st = st.lists(st.tuples(verdict_st, verdict_st, st.tuples(st.integers(1, 9), st.integers(1, 9))),
                    min_size=0, max_size=30).map(
    lambda rows: [make_item(n, {"ref": a, "cand": b}, lengths) for n, (a, b, lengths) in enumerate(rows)])
frames = st.sampled_from(["study", "corrected"])


def counts(c):
    return (c.agreements, c.total, c.agreement_rate, c.inconclusive, c.parse_failures, c.errors,
            c.kappa, c.agreement_ci, c.consistency_rate, c.length_bias)


@given(items=items_st, frame=frames)
def test_a_judge_agrees_fully_with_itself(items, frame) -> None:
    c = compare(items, "ref", "ref", frame)
    conclusive = sum(1 for i in items if i.verdict("ref").conclusive)
    assert (c.agreements, c.total) == (conclusive, conclusive)
    if conclusive:
        assert c.agreement_rate == 1.0 and c.agreement_ci == (1.0, 1.0) and c.jaccard == 1.0
        assert c.correlation is None or c.correlation == pytest.approx(1.0)


@given(items=items_st, frame=frames)
def test_agreement_is_symmetric(items, frame) -> None:
    ab, ba = compare(items, "cand", "ref", frame), compare(items, "ref", "cand", frame)
    assert (ab.agreements, ab.total, ab.agreement_rate, ab.agreement_ci) == \
           (ba.agreements, ba.total, ba.agreement_rate, ba.agreement_ci)
    assert ab.kappa == pytest.approx(ba.kappa, rel=1e-12, abs=1e-12)
    assert ab.correlation == pytest.approx(ba.correlation, rel=1e-12, abs=1e-12)


@given(items=items_st, frame=frames, seed=st.integers(0, 2**32))
def test_invariant_to_item_order(items, frame, seed) -> None:
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    a, b = compare(items, "cand", "ref", frame), compare(shuffled, "cand", "ref", frame)
    assert counts(a) == counts(b)
    # Correlation and Jaccard keep the study's float arithmetic in file order: equal up to rounding.
    assert a.correlation == pytest.approx(b.correlation, rel=1e-12, abs=1e-12)
    assert a.jaccard == pytest.approx(b.jaccard, rel=1e-12, abs=1e-12)


@given(items=items_st, frame=frames)
def test_masks_drop_exactly_the_not_conclusive_items(items, frame) -> None:
    c = compare(items, "cand", "ref", frame)
    both = [i for i in items if i.verdict("ref").conclusive and i.verdict("cand").conclusive]
    assert c.total == len(both)
    kept = compare(both, "cand", "ref", frame)
    assert (kept.agreements, kept.total, kept.agreement_rate) == (c.agreements, c.total, c.agreement_rate)
    sources = [i.verdict("cand").source for i in items]
    assert (c.inconclusive, c.parse_failures, c.errors) == (
        sources.count("neither"), sources.count("output-cannot-be-parsed"), sources.count("error"))


def test_constant_input_gives_none_with_a_reason_and_no_warning() -> None:
    items = [make_item(n, {"ref": (1.0, "original"), "cand": (s, "original")}) for n, s in
             enumerate([1.0, 0.0, 1.0])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare(items, "cand", "ref")
        empty = compare([], "cand", "ref")
    assert c.correlation is None and "reference's scores are constant" in c.notes["correlation"]
    assert c.agreement_rate == 2 / 3 and c.jaccard is not None
    for name in ("agreement_rate", "correlation", "jaccard", "kappa", "agreement_ci"):
        assert getattr(empty, name) is None and name in empty.notes
    same = [make_item(n, {"ref": (1.0, "original"), "cand": (1.0, "original")}) for n in range(3)]
    assert compare(same, "cand", "ref").kappa is None


def test_flipped_scores_are_normalised_in_the_corrected_frame() -> None:
    items = [make_item(0, {"ref": (1.0, "original"), "cand": (0.0, "flipped")})]
    assert compare(items, "cand", "ref", "study").agreements == 0
    assert compare(items, "cand", "ref", "corrected").agreements == 1


def test_length_bias_counts_decisive_verdicts_won_by_the_longer_answer() -> None:
    items = [
        make_item(0, {"j": (0.0, "original")}, lengths=(3, 5)),  # second (longer) wins
        make_item(1, {"j": (1.0, "original")}, lengths=(9, 5)),  # first (longer) wins
        make_item(2, {"j": (1.0, "original")}, lengths=(3, 5)),  # shorter wins
        make_item(3, {"j": (0.5, "original")}, lengths=(3, 5)),  # tie: not decisive
        make_item(4, {"j": (1.0, "original")}, lengths=(4, 4)),  # same length: not counted
        make_item(5, {"j": (0.5, "neither")}, lengths=(3, 5)),   # inconclusive
    ]
    assert judge_stats(items, "j").length_bias == 2 / 3
    assert judge_stats(items[3:], "j").length_bias is None


def test_bootstrap_is_seeded() -> None:
    agree = np.array([1.0] * 30 + [0.0] * 10)
    assert bootstrap_ci(agree, seed=1) == bootstrap_ci(agree, seed=1)
    # With 2000 resamples the percentiles sit on the same lattice points for most seeds; with
    # few resamples the seed shows.
    assert bootstrap_ci(agree, seed=1, resamples=20) != bootstrap_ci(agree, seed=2, resamples=20)
    assert bootstrap_ci(np.array([])) is None


def test_bootstrap_means_resample_aligned_vectors_together() -> None:
    a = np.array([1.0] * 7 + [0.0] * 5)
    (alone,) = bootstrap_means(a, seed=3, resamples=50)
    same, flipped = bootstrap_means(a, 1.0 - a, seed=3, resamples=50)
    # One index table for all vectors: a and 1 - a are resampled at the same positions.
    assert np.array_equal(alone, same) and np.allclose(same + flipped, 1.0, rtol=0, atol=1e-15)
    assert alone.shape == (50,) and len(set(alone.tolist())) > 1
    with pytest.raises(ValueError):
        bootstrap_means(a, a[:-1])
    with pytest.raises(ValueError):
        bootstrap_means(np.array([]))


def test_judges_are_discovered_and_an_unknown_reference_is_a_clear_error() -> None:
    items = [make_item(0, {"teacher": (1.0, "original"), "s1": (1.0, "original"), "s2": (0.0, "original")})]
    assert discover_judges(items) == ["teacher", "s1", "s2"]
    assert list(run_metrics(items, "teacher").judges) == ["s1", "s2"]
    with pytest.raises(JudgeEvalError, match="reference judge 'gpt_4'.*judges found: teacher, s1, s2"):
        run_metrics(items)


def test_every_source_is_counted_somewhere() -> None:
    items = [make_item(n, {"ref": (1.0, "original"),
                           "cand": (None if s in ("output-cannot-be-parsed", "error") else 0.5, s)})
             for n, s in enumerate(SOURCES)] + [make_item(99, {"ref": (1.0, "original")})]
    c = compare(items, "cand", "ref")
    assert c.total + c.inconclusive + c.parse_failures + c.errors + c.missing == len(items)

"""Score judges' metrics against scipy, scikit-learn and plain Python written here.

Every metric of ``judge_eval.core.scores`` is numpy over a count table; each is checked on random
scores (1..5, 0/1, 1..5 in halves; ties and constant sides included) against an implementation
that shares no code with it: ``scipy.stats`` for the correlations, ``sklearn.metrics`` for kappa
and the confusion matrix, a plain loop for exact / within-1 / MAE and the counts. Undefined is
None with a reason exactly where scipy / scikit-learn return NaN.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau, pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from judge_eval.core.items import SCORE, SCORED, Answer, QAItem, Verdict, item_id
from judge_eval.core.metrics import INDEX_DRAW_MAX_N, VerdictTable
from judge_eval.core.scores import (
    LOWER_IS_BETTER, MEAN_METRICS, SCORE_METRICS, ScoreTable, compare_scores, discover_score_judges, item_errors,
    paired_errors, score_confusion, score_interval, score_metrics, score_stats, split_tables,
)
from judge_eval.core.store import QA_FILES, read_qa, stream_split, write_qa
from judge_eval.errors import JudgeEvalError

SCALES = {
    "1-5": (1, 2, 3, 4, 5),
    "0/1": (0, 1),
    "halves": (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5),
}


# --------------------------------------------------------------------------- independent code


def scipy_value(name: str, ref: list[float], cand: list[float], scale: tuple[float, ...]) -> float:
    """What scipy / scikit-learn say (NaN where they call it undefined)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning, UndefinedMetricWarning: NaN is the answer here
        if name == "pearson":
            return float(pearsonr(ref, cand).statistic)
        if name == "spearman":
            return float(spearmanr(ref, cand).statistic)
        if name == "kendall_tau_b":
            return float(kendalltau(ref, cand, variant="b").statistic)
        if name == "quadratic_kappa":
            # scikit-learn refuses float labels with fractions ("continuous"): the same labels as strings,
            # in the scale's order (the weights are the distances of positions in ``labels``)
            as_str = {v: repr(float(v)) for v in scale}
            return float(cohen_kappa_score([as_str[v] for v in ref], [as_str[v] for v in cand],
                                           weights="quadratic", labels=[as_str[v] for v in scale]))
    raise AssertionError(name)


def by_hand(name: str, ref: list[float], cand: list[float]) -> float | None:
    n = len(ref)
    if n == 0:
        return None
    if name == "exact_agreement":
        return sum(1 for a, b in zip(ref, cand) if a == b) / n
    if name == "within_1_agreement":
        return sum(1 for a, b in zip(ref, cand) if abs(a - b) <= 1) / n
    if name == "mae":
        return sum(abs(a - b) for a, b in zip(ref, cand)) / n
    raise AssertionError(name)


def check_against_references(ref: list[float], cand: list[float], scale: tuple[float, ...]) -> None:
    got = score_metrics(ref, cand, scale)
    assert set(got) == set(SCORE_METRICS)
    for name in ("exact_agreement", "within_1_agreement", "mae"):
        value, reason = got[name]
        expected = by_hand(name, ref, cand)
        if expected is None:
            assert value is None and reason == "undefined: no item where both judges gave a score"
        else:
            assert reason is None and math.isclose(value, expected, rel_tol=1e-12, abs_tol=1e-15), (name, value,
                                                                                                   expected)
    for name in ("pearson", "spearman", "kendall_tau_b", "quadratic_kappa"):
        value, reason = got[name]
        if len(ref) == 0:
            assert value is None and reason == "undefined: no item where both judges gave a score"
            continue
        if len(ref) < 2 and name != "quadratic_kappa":  # scipy refuses fewer than 2 items (pearsonr raises)
            assert value is None and reason == "undefined: 1 item where both judges gave a score (need 2)"
            continue
        expected = scipy_value(name, ref, cand, scale)
        if math.isnan(expected):
            assert value is None and reason.startswith("undefined: "), (name, value, ref, cand)
        else:
            assert reason is None and math.isclose(value, expected, rel_tol=1e-10, abs_tol=1e-12), (
                name, value, expected, ref, cand)


# --------------------------------------------------------------------------- the metrics


@st.composite
def scored_pairs(draw) -> tuple[tuple[float, ...], list[float], list[float]]:
    scale = SCALES[draw(st.sampled_from(sorted(SCALES)))]
    # a subset of the scale per side: few values make ties, one value a constant side
    ref_values = draw(st.lists(st.sampled_from(scale), min_size=1, max_size=len(scale), unique=True))
    cand_values = draw(st.sampled_from([ref_values, list(scale)]))
    cand_values = draw(st.lists(st.sampled_from(cand_values), min_size=1, max_size=len(cand_values), unique=True))
    n = draw(st.integers(0, 60))
    ref = draw(st.lists(st.sampled_from(ref_values), min_size=n, max_size=n))
    cand = draw(st.lists(st.sampled_from(cand_values), min_size=n, max_size=n))
    return scale, ref, cand


@settings(max_examples=400, deadline=None)
@given(data=scored_pairs())
def test_every_metric_matches_scipy_and_sklearn(data) -> None:
    scale, ref, cand = data
    check_against_references(ref, cand, scale)


@pytest.mark.parametrize("scale_name", sorted(SCALES))
def test_every_metric_matches_on_larger_seeded_samples(scale_name: str) -> None:
    scale = SCALES[scale_name]
    rng = random.Random(f"score-metrics-{scale_name}")
    for n in (2, 3, 17, 250, 4000):
        ref = [rng.choice(scale) for _ in range(n)]
        # correlated with the reference: a noisy copy
        cand = [min(scale, key=lambda v: abs(v - (r + rng.gauss(0, 1)))) for r in ref]
        check_against_references(ref, cand, scale)


@pytest.mark.parametrize(("ref", "cand", "name", "reason"), [
    ([3, 3, 3], [1, 2, 3], "pearson", "undefined: the reference's scores are constant (3) on the compared items"),
    ([1, 2, 3], [4, 4, 4], "spearman", "undefined: the judge's scores are constant (4) on the compared items"),
    ([2, 2], [5, 5], "kendall_tau_b", "undefined: the reference's scores are constant (2) on the compared items"),
    ([4, 4], [4, 4], "quadratic_kappa", "undefined: both judges gave the one score 4 on every compared item"),
    ([4], [3], "pearson", "undefined: 1 item where both judges gave a score (need 2)"),
    ([], [], "mae", "undefined: no item where both judges gave a score"),
])
def test_degenerate_inputs_are_none_with_a_reason_where_scipy_says_nan(ref, cand, name, reason) -> None:
    value, why = score_metrics(ref, cand, SCALES["1-5"])[name]
    assert value is None and why.startswith(reason)
    if len(ref) >= 2 or name == "quadratic_kappa" and ref:
        assert math.isnan(scipy_value(name, ref, cand, SCALES["1-5"]))


def test_kappa_weighs_positions_on_the_scale_not_values() -> None:
    """Scores 1, 1.5 and 3 sit at positions 0, 1, 4 of the scale in halves and 0, 1, 2 of the scale
    (1, 1.5, 3): a disagreement 1.5 vs 3 weighs 9 in one and 1 in the other, as scikit-learn's
    labels= makes it."""
    ref, cand = [1, 1.5, 3, 3, 1.5], [1.5, 3, 3, 1, 1.5]
    halves, short = score_metrics(ref, cand, SCALES["halves"]), score_metrics(ref, cand, (1, 1.5, 3))
    assert halves["quadratic_kappa"][0] != short["quadratic_kappa"][0]
    check_against_references(ref, cand, SCALES["halves"])
    check_against_references(ref, cand, (1, 1.5, 3))


def test_kappa_without_a_scale_takes_the_scores_present_as_sklearn_does() -> None:
    ref, cand = [1, 2, 2, 5, 5], [1, 2, 5, 5, 2]
    value, _ = score_metrics(ref, cand)["quadratic_kappa"]
    assert math.isclose(value, cohen_kappa_score(ref, cand, weights="quadratic"), rel_tol=1e-12)
    assert value != score_metrics(ref, cand, SCALES["1-5"])["quadratic_kappa"][0]  # positions 0,1,2 vs 0,1,4


def test_within_1_is_on_the_score_values() -> None:
    # 3 vs 4 and 0.1 vs 1.1 (1.0000000000000002 in binary floats) are within 1; 3 vs 4.5 is not
    assert score_metrics([3, 3], [4, 4.5], SCALES["halves"])["within_1_agreement"] == (0.5, None)
    assert score_metrics([0.1], [1.1], (0.1, 0.6, 1.1))["within_1_agreement"] == (1.0, None)
    assert score_metrics([0, 1], [1, 0], SCALES["0/1"])["within_1_agreement"] == (1.0, None)


def test_a_score_off_the_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="the judge score 6.0 is not on the scale \\[1, 2, 3, 4, 5\\]"):
        score_metrics([1, 2], [2, 6], SCALES["1-5"])


def test_the_metric_names_and_their_direction() -> None:
    assert SCORE_METRICS == ("exact_agreement", "within_1_agreement", "mae", "pearson", "spearman", "kendall_tau_b",
                             "quadratic_kappa")
    assert LOWER_IS_BETTER == {"mae"} and MEAN_METRICS == {"exact_agreement", "within_1_agreement", "mae"}


# --------------------------------------------------------------------------- items, counts, comparison


def point(question: str, verdicts: dict[str, tuple[float | None, str]], scale=SCALES["1-5"]) -> QAItem:
    answers = (Answer("m", f"answer to {question}"),)
    return QAItem(id=item_id("test", question, answers), split="test", question=question, answers=answers,
                  source="", evaluations=tuple(Verdict(j, s, "", src, kind=SCORE, scale=scale)
                                               for j, (s, src) in verdicts.items()))


def pair(question: str) -> QAItem:
    answers = (Answer("m", "a"), Answer("n", "b"))
    return QAItem(id=item_id("test", question, answers), split="test", question=question, answers=answers,
                  source="", evaluations=(Verdict("gpt_4", 1.0, "", "original"),))


P, E = "output-cannot-be-parsed", "error"
HAND = [
    point("q1", {"ref": (5, SCORED), "j": (5, SCORED)}),  # exact
    point("q2", {"ref": (4, SCORED), "j": (3, SCORED)}),  # within 1, error 1
    point("q3", {"ref": (1, SCORED), "j": (4, SCORED)}),  # off by 3
    point("q4", {"ref": (2, SCORED), "j": (None, P)}),  # judge parse failure
    point("q5", {"ref": (3, SCORED), "j": (None, E)}),  # judge error
    point("q6", {"ref": (2, SCORED)}),  # judge missing
    point("q7", {"j": (2, SCORED)}),  # reference missing
    point("q8", {"ref": (None, P), "j": (2, SCORED)}),  # reference parse failure
    point("q9", {"ref": (3, SCORED), "j": (3, SCORED)}),  # exact
    pair("a pair"),  # not a pointwise item: not counted
]


def test_a_hand_counted_comparison() -> None:
    c = compare_scores(HAND, "j", "ref", interval=None)
    # 9 pointwise items; judge: scored q1 q2 q3 q7 q8 q9 = 6, parse failure q4, error q5, missing q6
    assert (c.items, c.conclusive, c.parse_failures, c.errors, c.missing) == (9, 6, 1, 1, 1)
    # reference: scored q1-q6 q9 = 7, parse failure q8, missing q7
    assert (c.reference_conclusive, c.reference_parse_failures, c.reference_errors, c.reference_missing) == (7, 1, 0, 1)
    assert c.reference_coverage == 8 / 9 and c.conclusive_rate == 6 / 9
    # compared: q1 (5,5), q2 (4,3), q3 (1,4), q9 (3,3)
    assert (c.n, c.exact_matches, c.within_1_matches) == (4, 2, 3)
    assert (c.exact_agreement, c.within_1_agreement, c.mae) == (2 / 4, 3 / 4, (0 + 1 + 3 + 0) / 4)
    assert c.pearson == pytest.approx(pearsonr([5, 4, 1, 3], [5, 3, 4, 3]).statistic, rel=1e-12)
    assert c.scale == (1.0, 2.0, 3.0, 4.0, 5.0) and c.interval is None and c.interval_metric is None
    assert c.metric("mae") == c.mae
    with pytest.raises(JudgeEvalError, match="unknown score metric 'agreement'"):
        c.metric("agreement")
    stats = score_stats(HAND, "ref")
    assert (stats.items, stats.conclusive, stats.parse_failures, stats.errors, stats.missing) == (9, 7, 1, 0, 1)
    assert stats.histogram == (1, 2, 2, 1, 1) and stats.mean_score == (5 + 4 + 1 + 2 + 3 + 2 + 3) / 7


def test_the_comparison_serialises_at_full_precision() -> None:
    c = compare_scores(HAND, "j", "ref", interval="spearman", resamples=200)
    out = json.loads(json.dumps(c.to_json()))
    assert out["spearman"] == c.spearman and out["interval"] == list(c.interval)
    assert out["scale"] == [1.0, 2.0, 3.0, 4.0, 5.0] and out["reference_coverage"] == 8 / 9
    assert out["interval_metric"] == "spearman" and out["n"] == 4


def test_score_judges_and_their_scales_are_discovered_in_order() -> None:
    items = [point("a", {"j": (1, SCORED)}), point("b", {"ref": (0, SCORED), "k": (1, SCORED)}, SCALES["0/1"])]
    with pytest.raises(JudgeEvalError, match="judge 'j' declares the scale \\[0, 1\\] but \\[1, 2, 3, 4, 5\\]"):
        discover_score_judges(items + [point("c", {"j": (1, SCORED)}, SCALES["0/1"])])
    assert discover_score_judges(items) == {"j": (1.0, 2.0, 3.0, 4.0, 5.0), "ref": (0.0, 1.0), "k": (0.0, 1.0)}
    with pytest.raises(JudgeEvalError, match="judge 'j' scores on \\[1, 2, 3, 4, 5\\] but the reference 'ref' on "
                                             "\\[0, 1\\]"):
        compare_scores(items, "j", "ref")
    with pytest.raises(JudgeEvalError, match="score judge 'nobody' has no verdict on these 2 pointwise item"):
        compare_scores(items, "nobody", "ref")


@pytest.mark.parametrize(("items", "message"), [
    ([point("a", {"j": (6, SCORED)})], "judge 'j' scored 6.0, which is not on its scale"),
    ([point("a", {"j": (None, SCORED)})], "judge 'j' has score None with source 'scored'"),
    ([point("a", {"j": (3, "flipped")})], "judge 'j' has source 'flipped'"),
    ([QAItem(id="x", split="test", question="q", answers=(Answer("m", "t"),), source="",
             evaluations=(Verdict("j", 1.0, "", "original"),))], "judge 'j' has a 'pairwise' verdict on a pointwise"),
    ([QAItem(id="x", split="test", question="q", answers=(Answer("m", "t"), Answer("n", "u")), source="",
             evaluations=(Verdict("j", 1, "", SCORED, kind=SCORE, scale=(1, 2)),))], "has two answers and a score"),
    ([point("a", {"j": (1, SCORED)}, scale=(2, 1))], "a scale lists finite scores in strictly ascending order"),
])
def test_items_built_in_code_get_the_stores_checks(items, message) -> None:
    with pytest.raises(JudgeEvalError, match=message):
        ScoreTable.from_items(items)


def test_point_estimates_do_not_depend_on_item_order() -> None:
    rng = random.Random(7)
    items = [point(f"q{i}", {"ref": (rng.choice(SCALES["halves"]), SCORED), "j": (rng.choice(SCALES["halves"]), SCORED)},
                   SCALES["halves"]) for i in range(300)]
    shuffled = items[:]
    rng.shuffle(shuffled)
    a, b = compare_scores(items, "j", "ref", interval="kendall_tau_b", resamples=300), \
        compare_scores(shuffled, "j", "ref", interval="kendall_tau_b", resamples=300)
    assert a == b  # every value bit for bit, the interval too (items are drawn in order_key order)


def test_nothing_warns_on_degenerate_data() -> None:
    items = [point(f"q{i}", {"ref": (3, SCORED), "j": (3, SCORED)}) for i in range(5)] + [point("e", {"j": (None, E)})]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare_scores(items, "j", "ref", interval="pearson")
        empty = compare_scores([point("only", {"ref": (None, P), "j": (1, SCORED)})], "j", "ref", interval="mae")
    assert c.pearson is None and c.interval is None and c.notes["interval"] == c.notes["pearson"]
    assert c.exact_agreement == 1.0 and c.quadratic_kappa is None
    assert empty.n == 0 and all(empty.metric(m) is None for m in SCORE_METRICS) and empty.interval is None
    assert empty.notes["interval"] == "undefined: no item where both judges gave a score"


# --------------------------------------------------------------------------- bootstrap


def ordered_pairs(items: list[QAItem], judge: str, reference: str) -> tuple[np.ndarray, np.ndarray]:
    both = sorted((i for i in items if i.verdict(judge) and i.verdict(reference) and i.verdict(judge).conclusive
                   and i.verdict(reference).conclusive), key=lambda i: i.order_key)
    return (np.array([i.verdict(reference).score for i in both], dtype=float),
            np.array([i.verdict(judge).score for i in both], dtype=float))


def interval_by_resampling(name: str, ref: np.ndarray, cand: np.ndarray, *, seed: int, resamples: int
                           ) -> tuple[float, float]:
    """Row r of ``default_rng(seed).integers(0, n, (resamples, n))`` is resample r; its metric
    from scipy / sklearn / a plain mean; resamples where that is NaN are left out."""
    n = len(ref)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = []
    for row in idx:
        r, c = ref[row].tolist(), cand[row].tolist()
        if name in MEAN_METRICS:
            values.append(by_hand(name, r, c))
        else:
            values.append(scipy_value(name, r, c, SCALES["1-5"]))
    values = np.array(values)
    low, high = np.percentile(values[~np.isnan(values)], [2.5, 97.5])
    return float(low), float(high)


@pytest.mark.parametrize("name", SCORE_METRICS)
def test_the_interval_is_the_percentile_bootstrap_of_the_index_draw(name: str) -> None:
    rng = random.Random(f"interval-{name}")
    items = [point(f"q{i}", {"ref": (rng.choice([2, 3, 4]), SCORED), "j": (rng.choice([1, 2, 3, 4, 5]), SCORED)})
             for i in range(40)]
    items += [point("tie", {"ref": (3, SCORED), "j": (3, SCORED)}), point("miss", {"ref": (3, SCORED)})]
    ref, cand = ordered_pairs(items, "j", "ref")
    got, note = score_interval(items, "j", "ref", name, seed=3, resamples=300)
    expected = interval_by_resampling(name, ref, cand, seed=3, resamples=300)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert compare_scores(items, "j", "ref", interval=name, seed=3, resamples=300).interval == got


def test_a_resample_where_the_metric_is_undefined_is_left_out_and_counted() -> None:
    # 3 items, one of them with a different reference score: many resamples hold a constant reference
    items = [point("a", {"ref": (1, SCORED), "j": (1, SCORED)}), point("b", {"ref": (2, SCORED), "j": (3, SCORED)}),
             point("c", {"ref": (1, SCORED), "j": (2, SCORED)})]
    ref, cand = ordered_pairs(items, "j", "ref")
    idx = np.random.default_rng(0).integers(0, 3, size=(2000, 3))
    constant = int(sum(1 for row in idx if len(set(ref[row].tolist())) == 1 or len(set(cand[row].tolist())) == 1))
    interval, note = score_interval(items, "j", "ref", "pearson")
    assert constant > 0 and note.startswith(f"{constant} of 2000 resamples left out: pearson is undefined in them")
    assert interval == pytest.approx(interval_by_resampling("pearson", ref, cand, seed=0, resamples=2000))


def test_above_the_index_draw_limit_the_interval_is_drawn_as_cell_counts() -> None:
    """Past INDEX_DRAW_MAX_N no (resamples, n) table is drawn; the counts of a resample have the
    same distribution, so the interval is close to the index draw's, and still deterministic and
    independent of item order."""
    n = INDEX_DRAW_MAX_N + 500
    rng = np.random.default_rng(11)
    ref = rng.integers(1, 6, size=n)
    cand = np.clip(ref + rng.integers(-1, 2, size=n), 1, 5)
    items = [point(f"q{i}", {"ref": (int(r), SCORED), "j": (int(c), SCORED)}) for i, (r, c) in enumerate(zip(ref, cand))]
    table = ScoreTable.from_items(items)
    got, _ = score_interval(table, "j", "ref", "kendall_tau_b", resamples=400)
    assert got == score_interval(ScoreTable.from_items(items[::-1]), "j", "ref", "kendall_tau_b", resamples=400)[0]
    point_value = compare_scores(table, "j", "ref", interval=None).kendall_tau_b
    # the index draw of scipy's tau-b on 100 resamples: a reference for the spread
    sorted_ref, sorted_cand = ordered_pairs(items, "j", "ref")
    idx = np.random.default_rng(5).integers(0, n, size=(100, n))
    spread = np.std([kendalltau(sorted_ref[row], sorted_cand[row]).statistic for row in idx])
    assert got[0] < point_value < got[1]
    assert abs((got[1] - got[0]) - 2 * 1.96 * spread) < 0.35 * 2 * 1.96 * spread


# --------------------------------------------------------------------------- plot and compare helpers


def test_the_confusion_matrix_is_sklearns_over_the_scale() -> None:
    rng = random.Random(3)
    scale = SCALES["halves"]
    items = [point(f"q{i}", {"ref": (rng.choice(scale[:5]), SCORED), "j": (rng.choice(scale), SCORED)}, scale)
             for i in range(200)] + [point("x", {"ref": (None, E), "j": (1, SCORED)}, scale)]
    ref, cand = ordered_pairs(items, "j", "ref")
    got = score_confusion(items, "j", "ref")
    as_str = [repr(float(v)) for v in scale]
    expected = confusion_matrix([repr(float(v)) for v in ref], [repr(float(v)) for v in cand], labels=as_str)
    assert got.counts.shape == (9, 9) and got.counts.sum() == 200
    assert np.array_equal(got.counts, expected)  # rows reference, columns judge
    assert got.to_json()["counts"] == expected.tolist()


def test_item_errors_and_their_pairing_by_item() -> None:
    old = item_errors(HAND, "j", "ref")
    assert len(old.ids) == 4
    by_id = dict(zip(old.ids, old.abs_error.tolist()))
    assert by_id == {HAND[0].id: 0.0, HAND[1].id: 1.0, HAND[2].id: 3.0, HAND[8].id: 0.0}
    assert list(old.ids) == [i.id for i in sorted((HAND[0], HAND[1], HAND[2], HAND[8]), key=lambda i: i.order_key)]
    assert old.vector("exact_agreement").tolist() == [1.0 if e == 0 else 0.0 for e in old.abs_error.tolist()]
    assert old.vector("mae").mean() == compare_scores(HAND, "j", "ref", interval=None).mae
    # a new judge: better on q3, worse on q1, the same on q2; q9 unscored; a new item q10
    new_items = [point("q1", {"ref": (5, SCORED), "j": (4, SCORED)}), point("q2", {"ref": (4, SCORED), "j": (3, SCORED)}),
                 point("q3", {"ref": (1, SCORED), "j": (1, SCORED)}), point("q9", {"ref": (3, SCORED)}),
                 point("q10", {"ref": (3, SCORED), "j": (3, SCORED)})]
    paired = paired_errors(old, item_errors(new_items, "j", "ref"))
    assert set(paired.ids) == {HAND[0].id, HAND[1].id, HAND[2].id} and paired.ids == tuple(i for i in old.ids
                                                                                            if i in set(paired.ids))
    assert (paired.only_old, paired.only_new) == (1, 1)
    assert (paired.improved, paired.worsened, paired.unchanged) == (1, 1, 1)
    old_v, new_v = paired.vectors("mae")
    assert dict(zip(paired.ids, zip(old_v.tolist(), new_v.tolist()))) == {
        HAND[0].id: (0.0, 1.0), HAND[1].id: (1.0, 1.0), HAND[2].id: (3.0, 0.0)}
    with pytest.raises(JudgeEvalError, match="'pearson' is not the mean of a per-item value"):
        paired.vectors("pearson")


def test_one_stream_gives_both_tables(tmp_path: Path) -> None:
    items = [*HAND[:9], pair("p1"), pair("p2")]
    write_qa(tmp_path / QA_FILES["test"], items)
    pairwise, scores = split_tables(stream_split(tmp_path))
    read = read_qa(tmp_path / QA_FILES["test"], "test")
    expected_pairwise = VerdictTable.from_items([i for i in read if len(i.answers) == 2])
    assert pairwise.ids == expected_pairwise.ids and np.array_equal(pairwise.rank, expected_pairwise.rank)
    assert list(pairwise.judges) == ["gpt_4"]
    assert scores.ids == ScoreTable.from_items(read).ids == [i.id for i in HAND[:9]]
    assert compare_scores(scores, "j", "ref") == compare_scores(read, "j", "ref") == compare_scores(HAND, "j", "ref")
    assert ScoreTable.from_rows(stream_split(tmp_path)).scales == discover_score_judges(HAND)

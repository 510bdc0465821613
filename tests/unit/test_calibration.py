"""Brier score, ECE and AUC of verdict probabilities, against sklearn and a hand count."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from judge_eval.core.calibration import auc, brier, calibration, ece, judge_calibration, reliability_bins
from judge_eval.core.choice import with_choice_verdicts
from judge_eval.core.items import Answer, QAItem, Verdict


@pytest.mark.parametrize("seed", range(5))
def test_brier_and_auc_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    p = np.round(rng.random(n), 1)  # rounded: many tied probabilities
    assert brier(p, y)[0] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert auc(p, y)[0] == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_ece_by_hand():
    # bins [0.1, 0.2): p 0.1, 0.15 -> mean 0.125, outcomes 0, 1 -> 0.5; |0.5 - 0.125| * 2/5 = 0.15
    #      [0.8, 0.9): p 0.8 -> outcome 1; |1 - 0.8| * 1/5 = 0.04
    #      [0.9, 1.0]: p 0.9, 1.0 -> mean 0.95, outcomes 1, 1; |1 - 0.95| * 2/5 = 0.02
    p = [0.1, 0.15, 0.8, 0.9, 1.0]
    y = [0, 1, 1, 1, 1]
    assert ece(p, y)[0] == pytest.approx(0.21)
    counts = [b.count for b in reliability_bins(p, y)]
    assert counts == [0, 2, 0, 0, 0, 0, 0, 0, 1, 2]


def test_undefined_metrics_say_why():
    c = calibration([], [])
    assert (c.n, c.brier, c.ece, c.auc) == (0, None, None, None)
    assert set(c.notes) == {"brier", "ece", "auc"}
    one_way = calibration([0.2, 0.9], [1, 1])
    assert one_way.brier == pytest.approx((0.64 + 0.01) / 2) and one_way.auc is None
    assert "all one way" in one_way.notes["auc"]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier([1.5], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        brier([0.5], [0.5])


def _item(i: int, ref: Verdict, student: Verdict) -> QAItem:
    return QAItem(id=f"t{i}", split="test", question=f"q{i}", answers=(Answer("m1", "x"), Answer("m2", "y")),
                  source="ctx", evaluations=(ref, student))


def test_judge_calibration_uses_the_reference_s_decisive_verdicts_in_the_stored_frame():
    def student(a_orig: float, a_flip: float) -> Verdict:
        return Verdict("student", 1.0, "", "original", extra={"choice": {
            "original": {"A": a_orig, "B": 1 - a_orig, "C": 0.0}, "flipped": {"A": a_flip, "B": 1 - a_flip, "C": 0.0}}})

    items = [
        _item(0, Verdict("gpt_4", 1.0, "", "original"), student(0.9, 0.1)),  # P(first) 0.9, y 1
        _item(1, Verdict("gpt_4", 1.0, "", "flipped"), student(0.6, 0.2)),   # flipped 1.0: second wins; P 0.7, y 0
        _item(2, Verdict("gpt_4", 0.5, "", "original"), student(0.5, 0.5)),  # reference tie: left out
        _item(3, Verdict("gpt_4", 0.5, "", "neither"), student(0.5, 0.5)),   # inconclusive: left out
        _item(4, Verdict("gpt_4", 0.0, "", "original"), student(0.3, 0.5)),  # P 0.4, y 0
    ]
    c = judge_calibration(with_choice_verdicts(items), "student@choice", "gpt_4")
    assert (c.n, c.positives) == (3, 1)
    assert c.brier == pytest.approx((0.1 ** 2 + 0.7 ** 2 + 0.4 ** 2) / 3)
    assert c.auc == 1.0


def test_the_plot_has_a_reliability_diagram_for_a_judge_with_probabilities():
    from judge_eval.core.metrics import run_metrics
    from judge_eval.reporting.plot import build_figure

    def student(a: float) -> Verdict:  # original P(A) = a, flipped P(B) = a: P(first wins) = a
        return Verdict("student", 1.0, "", "original", extra={"choice": {
            "original": {"A": a, "B": 1 - a, "C": 0.0}, "flipped": {"A": 1 - a, "B": a, "C": 0.0}}})

    refs = [1.0, 0.0, 1.0, 1.0]
    probs = [0.95, 0.15, 0.55, 0.92]  # bins 9, 1, 5, 9
    items = [_item(i, Verdict("gpt_4", r, "", "original"), student(p)) for i, (r, p) in enumerate(zip(refs, probs))]
    metrics = run_metrics(items, "gpt_4", resamples=20)
    assert list(metrics.calibration) == ["student@choice"]
    fig = build_figure(metrics, items)  # the plot derives the @choice verdicts itself
    (ax,) = [a for a in fig.axes if "reliability" in a.get_title()]
    assert "n=4" in ax.get_title()
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "2"]  # the counts of the three non-empty bins

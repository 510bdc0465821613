"""The "above chance" gate: the lower bound of kappa's 95% bootstrap interval must be above 0.

Kappa's interval is checked against an independent bootstrap (index resampling, each resample's
kappa by scikit-learn), and the gate is made to pass and to fail with its message."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from judge_eval.config.profiles import Profile, Thresholds
from judge_eval.core.items import Answer, QAItem, Verdict
from judge_eval.core.metrics import kappa_ci, run_metrics
from judge_eval.gating.gates import check_judge, gate_results
from judge_eval.reporting.report import gate_line


def sklearn_kappa_interval(ref: np.ndarray, cand: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(ref), len(ref))
        r, c = ref[idx].astype(str), cand[idx].astype(str)
        if len(set(r) | set(c)) < 2:
            continue  # kappa undefined on a single label: left out, as kappa_ci documents
        values.append(cohen_kappa_score(r, c))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def test_kappa_interval_matches_an_index_bootstrap_with_sklearn() -> None:
    seed = 0
    rng = np.random.default_rng(100)
    ref = rng.choice([0.0, 0.5, 1.0], size=60, p=[0.45, 0.1, 0.45])
    noise = rng.random(60) < 0.3
    cand = np.where(noise, rng.choice([0.0, 0.5, 1.0], size=60), ref)
    (low, high), reason = kappa_ci(ref, cand, seed=seed, resamples=2000)
    assert reason is None
    exp_low, exp_high = sklearn_kappa_interval(ref, cand, 2000, seed + 7)
    # two Monte Carlo estimates of the same percentiles (different random streams); each has a
    # standard error near 0.007 at 2000 resamples, so 0.03 is about three standard errors of the
    # difference, while a wrong draw (e.g. resampling labels, not pairs) is off by far more
    assert low == pytest.approx(exp_low, abs=0.03) and high == pytest.approx(exp_high, abs=0.03)
    observed = cohen_kappa_score(ref.astype(str), cand.astype(str))
    assert low < observed < high


def test_kappa_interval_is_undefined_with_its_reason_when_kappa_is() -> None:
    same = np.array([1.0, 1.0, 1.0])
    assert kappa_ci(same, same) == (None, "undefined: both judges gave the same single label on every compared item")
    assert kappa_ci(np.array([]), np.array([]))[0] is None


def test_kappa_interval_does_not_depend_on_item_order() -> None:
    ref = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5])
    cand = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5])
    perm = np.array([3, 1, 7, 0, 5, 2, 6, 4])
    assert kappa_ci(ref, cand, seed=3) == kappa_ci(ref[perm], cand[perm], seed=3)


def items(pairs: list[tuple[float, float]]) -> list[QAItem]:
    """Items with a reference and a judge verdict each (score in the first answer's frame)."""
    return [QAItem(id=f"test-{i:03d}", split="test", question=f"q{i}",
                   answers=(Answer("m1", "a"), Answer("m2", "b")), source="s",
                   evaluations=(Verdict("ref", r, "", "original"), Verdict("judge", c, "", "original")))
            for i, (r, c) in enumerate(pairs)]


PROFILE = Profile(name="p", reference="ref", gated=("judge",), thresholds=Thresholds(above_chance=True))


def test_the_gate_passes_a_judge_that_tracks_the_reference() -> None:
    # 20 items: agree on 18 (9 each way), disagree on 2 -> kappa 0.8, far above chance
    pairs = [(1.0, 1.0)] * 9 + [(0.0, 0.0)] * 9 + [(1.0, 0.0), (0.0, 1.0)]
    metrics = run_metrics(items(pairs), "ref")
    assert check_judge(metrics, "judge", PROFILE, run_dir="RUN") == []
    (result,) = [r for r in gate_results(metrics, PROFILE, run_dir="RUN") if r.threshold == "above_chance"]
    assert result.passed and result.metric == "kappa_ci_low" and result.measured > 0
    assert gate_line(result).startswith("PASS judge kappa_ci_low 0.") and gate_line(result).endswith("> allowed 0.0")


def test_the_gate_fails_a_judge_that_agrees_by_chance_with_its_message() -> None:
    # 20 items, the judge's verdict independent of the reference's: each of the four cells 5 times,
    # agreement 10/20 and kappa exactly 0 (p_o = 0.5 = p_e), so the interval straddles 0
    pairs = [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)] * 5
    assert cohen_kappa_score([str(r) for r, _ in pairs], [str(c) for _, c in pairs]) == 0.0
    metrics = run_metrics(items(pairs), "ref")
    (failure,) = check_judge(metrics, "judge", PROFILE, run_dir="RUN")
    assert failure.metric == "kappa_ci_low"
    assert failure.message.startswith("gate failed: judge 'judge', kappa_ci_low: measured -0.")
    assert failure.message.endswith("(lower bound of kappa's 95% interval), allowed > 0.0 "
                                    "(run RUN, corrected frame, profile p)")
    (result,) = gate_results(metrics, PROFILE, run_dir="RUN")[-2:-1]
    assert gate_line(result).startswith("FAIL judge kappa_ci_low -0.") and gate_line(result).endswith("<= allowed 0.0")


def test_an_undefined_kappa_fails_the_gate_and_says_why() -> None:
    metrics = run_metrics(items([(1.0, 1.0)] * 4), "ref")  # one label only: kappa undefined
    (failure,) = check_judge(metrics, "judge", PROFILE, run_dir="RUN")
    assert failure.message == (
        "gate failed: judge 'judge', kappa_ci_low: measured undefined (lower bound of kappa's 95% interval) "
        "[undefined: both judges gave the same single label on every compared item], allowed > 0.0 "
        "(run RUN, corrected frame, profile p)")


def test_above_chance_false_or_absent_is_no_gate() -> None:
    metrics = run_metrics(items([(1.0, 1.0)] * 4), "ref")
    for thresholds in (Thresholds(), Thresholds(above_chance=False)):
        profile = Profile(name="p", reference="ref", gated=("judge",), thresholds=thresholds)
        assert [r.threshold for r in gate_results(metrics, profile, run_dir="RUN")] == [
            "max_missing", "min_compared", "min_reference_coverage"]

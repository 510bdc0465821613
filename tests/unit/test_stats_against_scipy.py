"""judge_eval's own statistics against scipy, scikit-learn and plain numpy written here.

Cohen's kappa and the exact McNemar test are implemented in judge_eval (exact arithmetic, no
scipy at import time); Pearson's r is numpy's ``corrcoef`` in file order, as the study computed
it; the agreement interval is a percentile bootstrap. Each is checked on random data against an
implementation that shares no code with it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, pearsonr
from sklearn.metrics import cohen_kappa_score

from judge_eval.core.items import Answer, QAItem, Verdict
from judge_eval.core.metrics import _kappa, bootstrap_ci, compare
from judge_eval.core.store import Run
from judge_eval.gating.compare import mcnemar_exact

SCORES = (0.0, 0.5, 1.0)
CONCLUSIVE = ("original", "flipped")
# The agreement intervals judge-eval has published for the study (corrected frame, seed 0,
# 2000 resamples). They must not move.
PUBLISHED_CI = {
    "ft_gpt_3p5": (0.851063829787234, 1.0),
    "gpt_3p5": (0.7894736842105263, 0.9736842105263158),
}


# --------------------------------------------------------------------------- independent code

def percentile_by_hand(values, q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation between order statistics (Hyndman and
    Fan's type 7, numpy's default), from a plain sort."""
    s = sorted(float(v) for v in values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def interval_by_hand(agree, *, seed: int, resamples: int, level: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the share of ones in a 0/1 vector. The sample is the one
    the seed defines (row r of ``default_rng(seed).integers(0, n, (resamples, n))`` is resample
    r); each resample's share is counted as how many drawn positions hold a one, over n."""
    n = len(agree)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ones = [i for i, a in enumerate(agree) if a == 1]
    shares = np.isin(idx, ones).sum(axis=1) / n
    tail = (1 - level) / 2
    return percentile_by_hand(shares, tail), percentile_by_hand(shares, 1 - tail)


def first_wins(score: float, source: str) -> float:
    return 1.0 - score if source == "flipped" else score


# --------------------------------------------------------------------------- Cohen's kappa

label_pairs = st.lists(st.tuples(st.sampled_from(SCORES), st.sampled_from(SCORES)), min_size=1, max_size=80)


@given(pairs=label_pairs)
def test_kappa_matches_scikit_learn(pairs) -> None:
    ref = np.array([a for a, _ in pairs])
    cand = np.array([b for _, b in pairs])
    kappa, reason = _kappa(ref, cand)
    if len(set(ref.tolist())) == 1 and set(ref.tolist()) == set(cand.tolist()):
        # One label everywhere: chance agreement is 1 and kappa is 0/0.
        assert kappa is None and "same single label" in reason
        return
    expected = cohen_kappa_score(ref.astype(str), cand.astype(str))
    assert reason is None
    assert kappa == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_kappa_of_nothing_is_undefined() -> None:
    assert _kappa(np.array([]), np.array([]))[0] is None


# --------------------------------------------------------------------------- exact McNemar

@given(b=st.integers(0, 400), c=st.integers(0, 400))
def test_mcnemar_exact_matches_scipy_binomtest(b: int, c: int) -> None:
    p = mcnemar_exact(b, c)
    assert p == mcnemar_exact(c, b)
    if b + c == 0:
        assert p == 1.0
        return
    # Two-sided binomial test of min(b, c) successes in b + c trials at p = 0.5.
    expected = binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert p == pytest.approx(expected, rel=1e-10)
    assert 0.0 <= p <= 1.0


# --------------------------------------------------------------------------- Pearson, in file order

verdict_st = st.tuples(st.sampled_from(SCORES), st.sampled_from(["original", "flipped", "neither"]))


def make_items(rows) -> list[QAItem]:
    return [QAItem(id=f"test-{n:016x}", split="test", question=f"q{n}",
                   answers=(Answer("m1", "x"), Answer("m2", "yy")), source="ctx",
                   evaluations=(Verdict("ref", r[0], "", r[1]), Verdict("cand", c[0], "", c[1])))
            for n, (r, c) in enumerate(rows)]


@settings(deadline=None)
@given(rows=st.lists(st.tuples(verdict_st, verdict_st), max_size=60),
       frame=st.sampled_from(["study", "corrected"]))
def test_correlation_and_kappa_match_scipy_and_scikit_learn(rows, frame: str) -> None:
    c = compare(make_items(rows), "cand", "ref", frame)
    both = [(r, k) for r, k in rows if r[1] in CONCLUSIVE and k[1] in CONCLUSIVE]
    norm = (lambda v: first_wins(*v)) if frame == "corrected" else (lambda v: v[0])
    ref = [norm(r) for r, _ in both]
    cand = [norm(k) for _, k in both]
    assert c.total == len(both) and c.agreements == sum(a == b for a, b in zip(ref, cand))
    if len(both) < 2 or len(set(ref)) == 1 or len(set(cand)) == 1:
        assert c.correlation is None and "correlation" in c.notes
    else:
        assert abs(c.correlation - pearsonr(ref, cand).statistic) <= 1e-12
    if not both or (len(set(ref)) == 1 and set(ref) == set(cand)):
        assert c.kappa is None
    else:
        expected = cohen_kappa_score([str(x) for x in ref], [str(x) for x in cand])
        assert c.kappa == pytest.approx(expected, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- bootstrap interval

@settings(deadline=None)
@given(agree=st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=60),
       seed=st.integers(0, 2**32), resamples=st.integers(1, 400),
       level=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_bootstrap_interval_matches_an_independent_computation(agree, seed: int, resamples: int,
                                                               level: float) -> None:
    low, high = bootstrap_ci(np.array(agree), seed=seed, resamples=resamples, level=level)
    by_hand = interval_by_hand(agree, seed=seed, resamples=resamples, level=level)
    assert abs(low - by_hand[0]) <= 1e-12 and abs(high - by_hand[1]) <= 1e-12
    assert 0.0 <= low <= high <= 1.0


def agreement_by_hand(study_dir: Path, judge: str) -> list[float]:
    """1/0 per item where gpt_4 and ``judge`` are both conclusive (corrected frame), in the order
    of the items' ids (sha256 of "test\\n" + question), read from the raw file."""
    keyed = []
    for line in (study_dir / "test_qa_complete.jsonl").read_text().splitlines():
        row = json.loads(line)
        ev = {e["llm"]: e for e in row["evaluations"]}
        r, c = ev["gpt_4"], ev[judge]
        if r["source"] in CONCLUSIVE and c["source"] in CONCLUSIVE:
            key = hashlib.sha256(f"test\n{row['question']}".encode()).hexdigest()
            agree = first_wins(r["score"], r["source"]) == first_wins(c["score"], c["source"])
            keyed.append((key, 1.0 if agree else 0.0))
    return [a for _, a in sorted(keyed)]


@pytest.mark.parametrize("judge", sorted(PUBLISHED_CI))
def test_the_published_study_intervals(study_run: Run, study_dir: Path, judge: str) -> None:
    c = compare(study_run.test, judge, frame="corrected")
    assert c.agreement_ci == PUBLISHED_CI[judge]
    by_hand = interval_by_hand(agreement_by_hand(study_dir, judge), seed=0, resamples=2000, level=0.95)
    assert all(abs(a - b) <= 1e-12 for a, b in zip(by_hand, PUBLISHED_CI[judge]))

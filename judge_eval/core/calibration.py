"""Calibration of a judge's verdict probabilities against the reference's decisive verdicts.

For a judge with choice probabilities (``judge_eval.core.choice``: its derived ``<judge>@choice``
verdicts carry P(first stored answer wins)), the forecasts are those probabilities and the
outcomes the reference's decisive verdicts: items where the reference is conclusive and not a
tie, 1 when it says the first stored answer wins, 0 when the second does. P(first wins) is the
combined three-way probability as it is (tie mass counts against "first wins").

- **Brier score**: mean of (p - y)^2.
- **Expected calibration error**: 10 equal-width bins of p ([0, 0.1), [0.1, 0.2), ...,
  [0.9, 1.0], the last closed), ECE = sum over non-empty bins of (n_bin / n) * |mean(y) - mean(p)|.
- **AUC**: the probability that a random positive item has a higher p than a random negative one,
  ties counting 0.5 (Mann-Whitney); undefined without both outcomes.

Each comes with n, and is None with a reason when undefined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from judge_eval.core.items import QAItem

BINS = 10


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    predicted: float | None  # mean p in the bin
    observed: float | None  # share of positive outcomes in the bin


@dataclass(frozen=True)
class Calibration:
    judge: str  # the judge whose probabilities these are (``<judge>@choice``)
    reference: str
    n: int  # items with a probability and a decisive reference verdict
    positives: int  # of which the reference says the first answer wins
    brier: float | None
    ece: float | None
    auc: float | None
    bins: tuple[Bin, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)  # metric -> why it is None

    def to_json(self) -> dict[str, Any]:
        return {"judge": self.judge, "reference": self.reference, "n": self.n, "positives": self.positives,
                "brier": self.brier, "ece": self.ece, "auc": self.auc, "ece_bins": BINS,
                "bins": [b.__dict__ for b in self.bins], "notes": dict(self.notes)}


def _arrays(p: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    pa, ya = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    if pa.shape != ya.shape or pa.ndim != 1:
        raise ValueError(f"probabilities ({pa.shape}) and outcomes ({ya.shape}) must be two vectors of one length")
    if np.any((pa < 0) | (pa > 1)) or np.any(np.isnan(pa)):
        raise ValueError("probabilities must lie in [0, 1]")
    if np.any((ya != 0) & (ya != 1)):
        raise ValueError("outcomes must be 0 or 1")
    return pa, ya


def brier(p: Sequence[float], y: Sequence[float]) -> tuple[float | None, str | None]:
    pa, ya = _arrays(p, y)
    if not len(pa):
        return None, "no item with a probability and a decisive reference verdict"
    return float(np.mean((pa - ya) ** 2)), None


def reliability_bins(p: Sequence[float], y: Sequence[float], bins: int = BINS) -> tuple[Bin, ...]:
    """The equal-width bins of ``p`` with their counts, mean prediction and observed rate."""
    pa, ya = _arrays(p, y)
    index = np.minimum((pa * bins).astype(int), bins - 1)  # p == 1.0 goes into the last bin
    out = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        out.append(Bin(b / bins, (b + 1) / bins, count, float(pa[mask].mean()) if count else None,
                       float(ya[mask].mean()) if count else None))
    return tuple(out)


def ece(p: Sequence[float], y: Sequence[float], bins: int = BINS) -> tuple[float | None, str | None]:
    pa, _ = _arrays(p, y)
    if not len(pa):
        return None, "no item with a probability and a decisive reference verdict"
    total = sum(b.count / len(pa) * abs(b.observed - b.predicted)  # type: ignore[operator]
                for b in reliability_bins(p, y, bins) if b.count)
    return float(total), None


def auc(p: Sequence[float], y: Sequence[float]) -> tuple[float | None, str | None]:
    pa, ya = _arrays(p, y)
    pos, neg = pa[ya == 1], pa[ya == 0]
    if not len(pos) or not len(neg):
        return None, (f"the reference's decisive verdicts are all one way ({len(pos)} first-answer wins, "
                      f"{len(neg)} second-answer wins): AUC needs both")
    greater = (pos[:, None] > neg[None, :]).sum()
    equal = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(pos) * len(neg))), None


def calibration(p: Sequence[float], y: Sequence[float], *, judge: str = "", reference: str = "") -> Calibration:
    pa, ya = _arrays(p, y)
    notes: dict[str, str] = {}
    values = {}
    for name, fn in (("brier", brier), ("ece", ece), ("auc", auc)):
        value, note = fn(pa, ya)
        values[name] = value
        if note:
            notes[name] = note
    return Calibration(judge=judge, reference=reference, n=len(pa), positives=int(ya.sum()),
                       bins=reliability_bins(pa, ya) if len(pa) else (), notes=notes, **values)


def forecasts(items: Sequence[QAItem], judge: str, reference: str) -> tuple[list[float], list[float]]:
    """(P(first wins), outcome) for the items where ``judge`` (a ``<judge>@choice``) has a
    probability and ``reference`` a decisive verdict."""
    from judge_eval.core.choice import first_wins_probability

    p: list[float] = []
    y: list[float] = []
    for item in items:
        v, ref = item.verdict(judge), item.verdict(reference)
        if v is None or ref is None or not ref.conclusive:
            continue
        prob, outcome = first_wins_probability(v), ref.first_answer_score
        if prob is None or outcome not in (0.0, 1.0):
            continue
        p.append(prob)
        y.append(float(outcome))
    return p, y


def judge_calibration(items: Sequence[QAItem], judge: str, reference: str) -> Calibration:
    p, y = forecasts(items, judge, reference)
    return calibration(p, y, judge=judge, reference=reference)

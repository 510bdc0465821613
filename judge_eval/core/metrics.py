"""Agreement of a judge with a reference judge, in two frames.

- ``study``: exactly the published notebook's computation: raw scores as stored, items where
  both judges are conclusive, ``np.corrcoef`` and ``sklearn.metrics.jaccard_score(average=
  "weighted")`` on string labels, in file order. It reproduces the published table to the last
  digit.
- ``corrected``: the same over scores normalised to "the first stored answer wins". A verdict
  decided by the flipped call has its score in the flipped order (DESIGN.md, "Scores have a
  frame"); the study compared those raw.

Counts and rates are exact and independent of item order. Correlation and Jaccard are floats
computed in file order as the study did: re-ordering the items can move their 16th significant
digit (the exact Pearson r of the study's ft judge is 0.76536552365803628..., numpy in file order
prints 0.765365523658036). The bootstrap interval sorts items by id first, so it is exactly
order-independent.

Undefined values (no items to compare, a constant score vector) are ``None`` with a reason in
``notes``; nothing here emits numpy or scikit-learn warnings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from judge_eval.errors import JudgeEvalError
from judge_eval.core.items import ERROR, NEITHER, PARSE_FAILURE, QAItem, Verdict

FRAMES = ("study", "corrected")
DEFAULT_REFERENCE = "gpt_4"
DEFAULT_SEED = 0
DEFAULT_RESAMPLES = 2000


def frame_score(verdict: Verdict, frame: str) -> float | None:
    """The verdict's score in ``frame``."""
    if frame == "study":
        return verdict.score
    if frame == "corrected":
        return verdict.first_answer_score
    raise JudgeEvalError(f"unknown frame {frame!r}; known frames: {', '.join(FRAMES)}")


def discover_judges(items: Iterable[QAItem]) -> list[str]:
    """Every judge name that appears in the items, in order of first appearance."""
    seen: dict[str, None] = {}
    for item in items:
        for verdict in item.evaluations:
            seen.setdefault(verdict.llm, None)
    return list(seen)


@dataclass(frozen=True)
class JudgeStats:
    """What one judge did on its own, before any comparison."""

    judge: str
    items: int
    conclusive: int
    inconclusive: int  # source "neither": the two orders disagreed
    parse_failures: int  # source "output-cannot-be-parsed"
    errors: int  # source "error": the call failed after retries
    missing: int  # items this judge has no verdict on
    consistency_rate: float | None  # conclusive / items
    length_bias: float | None  # share of decisive conclusive verdicts won by the longer answer
    notes: dict[str, str] = field(default_factory=dict)


def judge_stats(items: Sequence[QAItem], judge: str, frame: str = "corrected") -> JudgeStats:
    verdicts = [item.verdict(judge) for item in items]
    sources = [v.source for v in verdicts if v is not None]
    conclusive = sum(1 for v in verdicts if v is not None and v.conclusive)
    notes: dict[str, str] = {}
    longer_wins = decisive = 0
    for item, v in zip(items, verdicts, strict=True):
        if v is None or not v.conclusive:
            continue
        score = frame_score(v, frame)
        len_1, len_2 = (len(a.text) for a in item.answers)
        if score == 0.5 or len_1 == len_2:
            continue
        decisive += 1
        longer_wins += (score == 1.0) == (len_1 > len_2)
    if decisive == 0:
        notes["length_bias"] = "no conclusive verdict picked a winner between answers of different length"
    if not items:
        notes["consistency_rate"] = "no items"
    return JudgeStats(
        judge=judge,
        items=len(items),
        conclusive=conclusive,
        inconclusive=sources.count(NEITHER),
        parse_failures=sources.count(PARSE_FAILURE),
        errors=sources.count(ERROR),
        missing=sum(1 for v in verdicts if v is None),
        consistency_rate=conclusive / len(items) if items else None,
        length_bias=longer_wins / decisive if decisive else None,
        notes=notes,
    )


@dataclass(frozen=True)
class Comparison:
    """One judge against the reference judge in one frame."""

    judge: str
    reference: str
    frame: str
    items: int
    inconclusive: int
    parse_failures: int
    errors: int
    missing: int  # items this judge has no verdict on
    agreements: int
    total: int  # items where both judges are conclusive
    agreement_rate: float | None
    correlation: float | None
    jaccard: float | None
    kappa: float | None
    agreement_ci: tuple[float, float] | None
    consistency_rate: float | None
    length_bias: float | None
    notes: dict[str, str] = field(default_factory=dict)
    reference_missing: int = 0  # items the reference has no verdict on (agreement never sees them)

    @property
    def inconclusive_rate(self) -> float | None:
        return self.inconclusive / self.items if self.items else None

    @property
    def reference_coverage(self) -> float | None:
        """Share of the items with a reference verdict of any source."""
        return (self.items - self.reference_missing) / self.items if self.items else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["agreement_ci"] = list(self.agreement_ci) if self.agreement_ci else None
        out["inconclusive_rate"] = self.inconclusive_rate
        out["reference_coverage"] = self.reference_coverage
        return out


def _pearson(ref: np.ndarray, cand: np.ndarray) -> tuple[float | None, str | None]:
    if len(ref) < 2:
        return None, f"undefined: {len(ref)} item(s) where both judges are conclusive (need 2)"
    for name, vec in (("reference", ref), ("judge", cand)):
        if np.all(vec == vec[0]):
            return None, f"undefined: the {name}'s scores are constant ({vec[0]}) on the compared items"
    return float(np.corrcoef(ref, cand)[0, 1]), None


def _jaccard(ref: np.ndarray, cand: np.ndarray) -> tuple[float | None, str | None]:
    if len(ref) == 0:
        return None, "undefined: no item where both judges are conclusive"
    from sklearn.metrics import jaccard_score  # lazy: keeps `import judge_eval.core.metrics` light

    # String labels as the study used: jaccard_score rejects float labels containing 0.5.
    return float(jaccard_score(ref.astype(str), cand.astype(str), average="weighted")), None


def _kappa(ref: np.ndarray, cand: np.ndarray) -> tuple[float | None, str | None]:
    """Cohen's kappa over the labels 0 / 0.5 / 1."""
    n = len(ref)
    if n == 0:
        return None, "undefined: no item where both judges are conclusive"
    labels = np.union1d(ref, cand)
    p_o = float(np.mean(ref == cand))
    p_e = float(sum(np.mean(ref == lab) * np.mean(cand == lab) for lab in labels))
    if p_e == 1.0:
        return None, "undefined: both judges gave the same single label on every compared item"
    return (p_o - p_e) / (1.0 - p_e), None


def bootstrap_means(*vectors: np.ndarray, seed: int = DEFAULT_SEED,
                    resamples: int = DEFAULT_RESAMPLES) -> tuple[np.ndarray, ...]:
    """The means of ``resamples`` bootstrap resamples of each vector, one array per vector.

    The vectors are aligned (paired): every resample draws the same positions from all of them,
    from one ``(resamples, n)`` table of ``np.random.default_rng(seed).integers(0, n)``. This is
    the only place a bootstrap draws its indices: ``bootstrap_ci`` and the paired interval of
    ``judge_eval.gating.compare`` both resample through it, so equal seeds give equal tables.
    """
    if not vectors:
        raise ValueError("bootstrap_means needs at least one vector")
    n = len(vectors[0])
    if n == 0 or any(len(v) != n for v in vectors):
        raise ValueError(f"bootstrap_means needs non-empty vectors of one length; got lengths "
                         f"{[len(v) for v in vectors]}")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return tuple(np.asarray(v)[idx].mean(axis=1) for v in vectors)


def bootstrap_ci(agree: np.ndarray, *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of a 0/1 vector (None when empty)."""
    if len(agree) == 0:
        return None
    (means,) = bootstrap_means(agree, seed=seed, resamples=resamples)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def compare(items: Sequence[QAItem], judge: str, reference: str = DEFAULT_REFERENCE,
            frame: str = "corrected", *, seed: int = DEFAULT_SEED,
            resamples: int = DEFAULT_RESAMPLES) -> Comparison:
    """``judge`` against ``reference`` in ``frame``, over items where both are conclusive."""
    if frame not in FRAMES:
        raise JudgeEvalError(f"unknown frame {frame!r}; known frames: {', '.join(FRAMES)}")
    pairs = []
    for item in items:
        r, c = item.verdict(reference), item.verdict(judge)
        if r is not None and c is not None and r.conclusive and c.conclusive:
            pairs.append((item.id, frame_score(r, frame), frame_score(c, frame)))
    ref = np.array([p[1] for p in pairs], dtype=float)
    cand = np.array([p[2] for p in pairs], dtype=float)
    agree = ref == cand
    notes: dict[str, str] = {}

    def keep(name: str, result: tuple[Any, str | None]) -> Any:
        value, reason = result
        if reason:
            notes[name] = reason
        return value

    correlation = keep("correlation", _pearson(ref, cand))
    jaccard = keep("jaccard", _jaccard(ref, cand))
    kappa = keep("kappa", _kappa(ref, cand))
    order = np.argsort([p[0] for p in pairs], kind="stable")  # by id: file order must not matter
    ci = bootstrap_ci(agree[order].astype(float), seed=seed, resamples=resamples)
    if ci is None:
        notes["agreement_ci"] = "undefined: no item where both judges are conclusive"
    if not pairs:
        notes["agreement_rate"] = "undefined: no item where both judges are conclusive"
    stats = judge_stats(items, judge, frame)
    notes.update({k: v for k, v in stats.notes.items() if k not in notes})
    reference_missing = sum(1 for item in items if item.verdict(reference) is None)
    return Comparison(
        judge=judge, reference=reference, frame=frame, items=len(items),
        inconclusive=stats.inconclusive, parse_failures=stats.parse_failures,
        errors=stats.errors, missing=stats.missing,
        agreements=int(agree.sum()), total=len(pairs),
        agreement_rate=float(agree.sum()) / len(pairs) if pairs else None,
        correlation=correlation, jaccard=jaccard, kappa=kappa, agreement_ci=ci,
        consistency_rate=stats.consistency_rate, length_bias=stats.length_bias, notes=notes,
        reference_missing=reference_missing,
    )


@dataclass(frozen=True)
class RunMetrics:
    """Every judge of a run against the reference, in both frames."""

    reference: str
    reference_stats: JudgeStats
    judges: dict[str, dict[str, Comparison]]  # judge -> frame -> comparison

    @property
    def reference_coverage(self) -> float | None:
        """Share of the run's items with a reference verdict of any source."""
        ref = self.reference_stats
        return (ref.items - ref.missing) / ref.items if ref.items else None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "reference_inconclusive": self.reference_stats.inconclusive,
            "items": self.reference_stats.items,
            "reference_missing": self.reference_stats.missing,
            "reference_coverage": self.reference_coverage,
            "reference_stats": asdict(self.reference_stats),
            "judges": {name: {frame: c.to_json() for frame, c in frames.items()}
                       for name, frames in self.judges.items()},
        }


def run_metrics(items: Sequence[QAItem], reference: str = DEFAULT_REFERENCE, *,
                seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                judges: Sequence[str] | None = None) -> RunMetrics:
    """Compare every judge found in ``items`` (or those named) with ``reference``."""
    if not items:
        raise JudgeEvalError(
            "the run has 0 items (its test_qa_complete.jsonl holds no pair), so there is nothing to "
            f"compare with the reference judge {reference!r}. Judge a run with at least one item")
    found = discover_judges(items)
    if reference not in found:
        raise JudgeEvalError(
            f"reference judge {reference!r} has no verdict in these items; judges found: "
            f"{', '.join(found) or 'none'}. Pass --reference NAME with one of them.")
    names = [j for j in found if j != reference] if judges is None else list(judges)
    unknown = [j for j in names if j not in found]
    if unknown:
        raise JudgeEvalError(f"judge(s) {', '.join(unknown)} have no verdict in these items; "
                             f"judges found: {', '.join(found)}")
    return RunMetrics(
        reference=reference,
        reference_stats=judge_stats(items, reference),
        judges={j: {f: compare(items, j, reference, f, seed=seed, resamples=resamples)
                    for f in FRAMES} for j in names},
    )


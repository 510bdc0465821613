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

Every pairwise metric comes **with ties** (``ties="with"``, MT-Bench's setup S1: every item
where both judges are conclusive, a tie ``[[C]]`` being a verdict like any other; the published
table) and **without ties** (``ties="without"``, MT-Bench's S2: the items where either judge says
tie are dropped as well). A tie is a score of 0.5 from a conclusive source, the same in both
frames; an inconclusive verdict (source ``neither``) is not a tie and never compared.

Undefined values (no items to compare, a constant score vector) are ``None`` with a reason in
``notes``; nothing here emits numpy or scikit-learn warnings.

All of this is about pairwise items (two answers). Score judges of pointwise items (one answer)
have their metrics in ``judge_eval.core.scores``; ``run_metrics`` computes both kinds, each
against its reference (``RunMetrics.scores``).
"""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

import numpy as np

from judge_eval.errors import JudgeEvalError
from judge_eval.core.items import (CONCLUSIVE_SOURCES, ERROR, FLIPPED, NEITHER, PARSE_FAILURE, SOURCES, QAItem,
                                   Verdict)

if TYPE_CHECKING:
    from judge_eval.core.calibration import Calibration
    from judge_eval.core.groups import GroupMetrics
    from judge_eval.core.scores import ScoreComparison, ScoreStats, ScoreTable

FRAMES = ("study", "corrected")
#: "with": ties count as verdicts (MT-Bench S1); "without": items where either side says tie are
#: dropped (MT-Bench S2).
TIES = ("with", "without")
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


def check_ties(ties: str) -> None:
    if ties not in TIES:
        raise JudgeEvalError(f"unknown ties mode {ties!r}; known modes: {', '.join(TIES)}")


def is_tie(verdict: Verdict | None) -> bool:
    """A conclusive verdict that says tie (score 0.5; frame-independent). Inconclusive is no tie."""
    return verdict is not None and verdict.conclusive and verdict.score == 0.5


def discover_judges(items: Iterable[QAItem]) -> list[str]:
    """Every judge name that appears in the items, in order of first appearance."""
    if isinstance(items, VerdictTable):
        return list(items.judges)
    seen: dict[str, None] = {}
    for item in items:
        for verdict in item.evaluations:
            seen.setdefault(verdict.llm, None)
    return list(seen)


# --------------------------------------------------------------------------- compact items

_MISSING = -1  # source code of "this judge has no verdict on this item"
_CODE = {source: code for code, source in enumerate(SOURCES)}
_CONCLUSIVE_CODES = sorted(_CODE[s] for s in CONCLUSIVE_SOURCES)
_FLIPPED_CODE = _CODE[FLIPPED]


@dataclass(frozen=True)
class JudgeColumn:
    """One judge's verdicts on every item of a table, aligned by item: the stored score (NaN for
    null or no verdict) and the source as an index into ``SOURCES`` (-1: no verdict)."""

    score: np.ndarray  # float64
    source: np.ndarray  # int8

    @property
    def missing(self) -> np.ndarray:
        return self.source == _MISSING

    @property
    def conclusive(self) -> np.ndarray:
        return np.isin(self.source, _CONCLUSIVE_CODES)

    @property
    def tie(self) -> np.ndarray:
        """Conclusive and 0.5 (``is_tie``: frame-independent)."""
        return self.conclusive & (self.score == 0.5)

    def frame_scores(self, frame: str) -> np.ndarray:
        """``frame_score`` of every verdict (NaN where it is None)."""
        if frame == "study":
            return self.score
        if frame == "corrected":
            return np.where(self.source == _FLIPPED_CODE, 1.0 - self.score, self.score)
        raise JudgeEvalError(f"unknown frame {frame!r}; known frames: {', '.join(FRAMES)}")

    def verdict_str(self, i: int) -> str:
        """``"<source> <score>"`` of item ``i`` as ``str(verdict)`` parts, ``"missing"`` without one."""
        code = int(self.source[i])
        if code == _MISSING:
            return "missing"
        score = float(self.score[i])
        return f"{SOURCES[code]} {None if np.isnan(score) else score}"


@dataclass(frozen=True)
class VerdictTable:
    """What the metrics need of a run's pairwise items and nothing more (pointwise items are a
    ``judge_eval.core.scores.ScoreTable``'s), as arrays aligned by item (file order): ids, each
    item's rank in ``QAItem.order_key`` order, the lengths of the two answers, and per judge (in
    order of first appearance) a ``JudgeColumn``. For 1,000,000 items this is
    about 150 MB where the ``QAItem`` objects with their texts take gigabytes; ``compare``,
    ``judge_stats``, ``run_metrics`` and ``judge_eval.gating.compare.compare_runs`` take either.
    """

    ids: list[str]
    rank: np.ndarray  # int64: position of the item when items are sorted by order_key (stable)
    len_first: np.ndarray  # int64: len(answers[0].text)
    len_second: np.ndarray
    judges: dict[str, JudgeColumn]

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, judge: str) -> JudgeColumn:
        """The judge's column; a judge with no verdict at all gets an all-missing one."""
        found = self.judges.get(judge)
        if found is None:
            n = len(self)
            return JudgeColumn(np.full(n, np.nan), np.full(n, _MISSING, dtype=np.int8))
        return found

    def take(self, positions: np.ndarray | Sequence[int]) -> "VerdictTable":
        """The items at ``positions``, in that order, as ``from_items`` of those items would
        build them: ranks re-derived, the judges with a verdict among them in order of first
        appearance in the new order."""
        positions = np.asarray(positions, dtype=np.int64)
        rank = np.empty(len(positions), dtype=np.int64)
        rank[np.argsort(self.rank[positions], kind="stable")] = np.arange(len(positions))
        columns = {j: JudgeColumn(c.score[positions], c.source[positions]) for j, c in self.judges.items()}
        first = {j: int(np.argmax(~c.missing)) for j, c in columns.items() if (~c.missing).any()}
        return VerdictTable(ids=[self.ids[i] for i in positions.tolist()], rank=rank,
                            len_first=self.len_first[positions], len_second=self.len_second[positions],
                            judges={j: columns[j] for j in sorted(first, key=first.__getitem__)})

    @classmethod
    def from_items(cls, items: Iterable[QAItem]) -> "VerdictTable":
        """Consume ``items`` (a sequence or a stream) keeping only the columns of the pairwise
        items (two answers); pointwise items (one answer) are skipped: their score judges are
        ``judge_eval.core.scores.ScoreTable.from_items``'s."""
        return cls.from_rows((item.id, item.order_key, len(item.answers[0].text), len(item.answers[1].text),
                              tuple((v.llm, v.score, v.source) for v in item.evaluations))
                             for item in items if len(item.answers) != 1)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, int, int, Sequence[tuple[str, float | None, str]]]]
                  ) -> "VerdictTable":
        """Consume rows ``(id, order_key, len_first, len_second, ((llm, score, source), ...))``
        (``judge_eval.core.store.QARow``, what ``iter_qa_rows`` streams) keeping only the
        columns. A judge's verdict on an item is its first one, as ``QAItem.verdict``. Pointwise
        rows (``len_second == -1``) are skipped, as ``from_items`` skips pointwise items: a
        stream that may hold them goes through ``judge_eval.core.scores.split_tables``, which
        keeps them in a ``ScoreTable`` (``run_metrics`` takes it as ``scores``)."""
        ids: list[str] = []
        keys: list[str] = []
        len_first, len_second = array("q"), array("q")
        scores: dict[str, array] = {}
        sources: dict[str, array] = {}
        nan = float("nan")
        n = 0
        for ident, key, len_1, len_2, verdicts in rows:
            if len_2 < 0:  # a pointwise row: no pairwise item
                continue
            ids.append(ident)
            keys.append(key)
            len_first.append(len_1)
            len_second.append(len_2)
            first: dict[str, tuple[float | None, str]] = {}
            for llm, score, source in verdicts:
                if llm not in first:
                    first[llm] = (score, source)
                    if llm not in scores:  # a new judge: no verdict on the items before
                        scores[llm] = array("d", [nan]) * n
                        sources[llm] = array("b", [_MISSING]) * n
            for judge, column in scores.items():
                found = first.get(judge)
                if found is None:
                    column.append(nan)
                    sources[judge].append(_MISSING)
                else:
                    column.append(nan if found[0] is None else found[0])
                    sources[judge].append(_CODE.get(found[1], _MISSING))
            n += 1
        rank = np.empty(n, dtype=np.int64)
        rank[sorted(range(n), key=keys.__getitem__)] = np.arange(n)
        del keys
        return cls(ids=ids, rank=rank, len_first=np.frombuffer(len_first, dtype=np.int64).copy(),
                   len_second=np.frombuffer(len_second, dtype=np.int64).copy(),
                   judges={j: JudgeColumn(np.frombuffer(scores[j], dtype=np.float64).copy(),
                                          np.frombuffer(sources[j], dtype=np.int8).copy()) for j in scores})


#: What the metrics take: the items themselves or their compact table.
Items = Union[Sequence[QAItem], VerdictTable]


def as_table(items: Items) -> VerdictTable:
    return items if isinstance(items, VerdictTable) else VerdictTable.from_items(items)


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


def judge_stats(items: Items, judge: str, frame: str = "corrected") -> JudgeStats:
    table = as_table(items)
    col = table.column(judge)
    n = len(table)
    conclusive = col.conclusive
    notes: dict[str, str] = {}
    score = col.frame_scores(frame)
    decisive_mask = conclusive & (score != 0.5) & (table.len_first != table.len_second)
    decisive = int(decisive_mask.sum())
    longer_wins = int(((score == 1.0) == (table.len_first > table.len_second))[decisive_mask].sum())
    if decisive == 0:
        notes["length_bias"] = "no conclusive verdict picked a winner between answers of different length"
    if not n:
        notes["consistency_rate"] = "no items"
    counts = np.bincount(col.source.astype(np.int64) + 1, minlength=len(SOURCES) + 1)  # [missing, *SOURCES]
    n_conclusive = int(conclusive.sum())
    return JudgeStats(
        judge=judge,
        items=n,
        conclusive=n_conclusive,
        inconclusive=int(counts[_CODE[NEITHER] + 1]),
        parse_failures=int(counts[_CODE[PARSE_FAILURE] + 1]),
        errors=int(counts[_CODE[ERROR] + 1]),
        missing=int(counts[0]),
        consistency_rate=n_conclusive / n if n else None,
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
    ties: str = "with"  # "with" (MT-Bench S1) or "without" (S2: items where either side says tie dropped)
    tie_items: int = 0  # items both judged conclusively where either says tie (counted in total only with ties)
    #: 95% bootstrap interval of kappa over the compared items; its lower bound above 0 is the
    #: "above chance" check (a judge whose kappa could be 0 agrees no more than chance would)
    kappa_ci: tuple[float, float] | None = None
    #: items the reference is conclusive on (of any judge's; the ``min_compared`` gate says it when
    #: nothing could be compared)
    reference_conclusive: int | None = None

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
        out["kappa_ci"] = list(self.kappa_ci) if self.kappa_ci else None
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
    """``sklearn.metrics.jaccard_score(ref.astype(str), cand.astype(str), average="weighted")``,
    the study's call (string labels: jaccard_score rejects float labels containing 0.5), computed
    from label counts with the same operations in the same order, so the same float to the last
    bit (tests/unit/test_scale.py checks it against scikit-learn) in O(n) time and memory with
    no scikit-learn: at a million items its label encoding took seconds per call."""
    if len(ref) == 0:
        return None, "undefined: no item where both judges are conclusive"
    labels = np.union1d(ref, cand)
    labels = labels[np.argsort(labels.astype(str), kind="stable")]  # scikit-learn sorts the strings
    tp = np.array([np.count_nonzero((ref == lab) & (cand == lab)) for lab in labels], dtype=np.int64)
    true = np.array([np.count_nonzero(ref == lab) for lab in labels], dtype=np.int64)
    pred = np.array([np.count_nonzero(cand == lab) for lab in labels], dtype=np.int64)
    fn, fp = true - tp, pred - tp
    jaccard = tp / (tp + fp + fn)  # every label occurs in ref or cand: no zero denominator
    weights = (fn + tp).astype(np.float64)  # the support in ref, as scikit-learn's "weighted"
    return float(np.sum(np.multiply(jaccard, weights)) / np.sum(weights)), None


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


def kappa_ci(ref: np.ndarray, cand: np.ndarray, *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
             level: float = 0.95) -> tuple[tuple[float, float] | None, str | None]:
    """Percentile bootstrap interval of Cohen's kappa (``_kappa``) over aligned labels.

    A resample of the n compared items with replacement holds each (reference, judge) label
    pair a multinomial number of times, so the resamples are drawn as counts over the observed
    cells (at most 3 x 3 labels): the same distribution as an index draw, in memory that does not
    grow with n. Item order therefore cannot matter. Resamples in which kappa is undefined (both
    judges gave one single label) are left out; the interval is undefined when kappa itself is.
    """
    value, reason = _kappa(ref, cand)
    if value is None:
        return None, reason
    labels = np.union1d(ref, cand)
    r_idx, c_idx = np.searchsorted(labels, ref), np.searchsorted(labels, cand)
    k = len(labels)
    cells, counts = np.unique(r_idx * k + c_idx, return_counts=True)
    n = int(counts.sum())
    drawn = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)  # (resamples, cells)
    table = np.zeros((resamples, k * k))
    table[:, cells] = drawn
    table = table.reshape(resamples, k, k) / n
    p_o = np.trace(table, axis1=1, axis2=2)
    p_e = np.einsum("ri,ri->r", table.sum(axis=2), table.sum(axis=1))
    defined = p_e < 1.0
    if not defined.any():
        return None, "undefined: every resample has a single label"
    kappas = (p_o[defined] - p_e[defined]) / (1.0 - p_e[defined])
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(kappas, [tail, 100 - tail])
    return (float(low), float(high)), None


#: Up to this many items a bootstrap draws a ``(resamples, n)`` index table, bit for bit as the
#: published intervals were computed; above it, it draws from the exact sampling distribution
#: instead (see ``bootstrap_means``), which costs no memory in n.
INDEX_DRAW_MAX_N = 10_000

#: Above INDEX_DRAW_MAX_N, vectors with at most this many distinct aligned value combinations
#: (cells) are drawn as cell counts; more (continuous values) fall back to index draws in chunks.
_MAX_CELLS = 4096
_CHUNK_ELEMENTS = 1 << 23  # index table entries per chunk of the fallback (64 MB of int64)


def bootstrap_means(*vectors: np.ndarray, seed: int = DEFAULT_SEED,
                    resamples: int = DEFAULT_RESAMPLES) -> tuple[np.ndarray, ...]:
    """The means of ``resamples`` bootstrap resamples of each vector, one array per vector.

    The vectors are aligned (paired): every resample draws the same positions from all of them.
    This is the only place a bootstrap draws: ``bootstrap_ci`` and the paired interval of
    ``judge_eval.gating.compare`` both resample through it, so equal seeds give equal draws.

    THE SWITCH (the one place it is made): for ``n <= INDEX_DRAW_MAX_N`` items, one ``(resamples,
    n)`` table of ``np.random.default_rng(seed).integers(0, n)``, exactly as always, so published
    intervals (the study's 47 and 38 items) do not move. Above it, that table would take
    ``resamples * n * 16`` bytes (32 GB at a million items), so the resample is drawn from its
    exact sampling distribution instead: a resample of n items with replacement holds each
    distinct aligned combination of values (a cell: for a 0/1 agreement vector, agree or not; for
    the paired comparison, the four agree/disagree cells) a multinomial number of times, so
    ``cell_bootstrap_means`` draws those counts (a binomial for two cells) and the means follow.
    Same distribution, different random stream; memory O(resamples x cells).
    """
    if not vectors:
        raise ValueError("bootstrap_means needs at least one vector")
    n = len(vectors[0])
    if n == 0 or any(len(v) != n for v in vectors):
        raise ValueError(f"bootstrap_means needs non-empty vectors of one length; got lengths "
                         f"{[len(v) for v in vectors]}")
    if n <= INDEX_DRAW_MAX_N:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        return tuple(np.asarray(v)[idx].mean(axis=1) for v in vectors)
    stacked = np.stack([np.asarray(v, dtype=float) for v in vectors], axis=1)  # (n, k)
    k = stacked.shape[1]
    if k <= 8 and bool(np.all((stacked == 0.0) | (stacked == 1.0))):  # 0/1 vectors: count without sorting
        code = stacked.astype(np.int64) @ (1 << np.arange(k, dtype=np.int64))
        counts = np.bincount(code, minlength=1 << k)
        cells = (np.arange(1 << k)[:, None] >> np.arange(k)) & 1
        cells, counts = cells[counts > 0], counts[counts > 0]
    else:
        cells, counts = np.unique(stacked, axis=0, return_counts=True)
    if len(cells) <= _MAX_CELLS:
        return cell_bootstrap_means(cells, counts, seed=seed, resamples=resamples)
    rng = np.random.default_rng(seed)  # many distinct values: index draws, a bounded chunk at a time
    step = max(1, _CHUNK_ELEMENTS // n)
    out = [np.empty(resamples) for _ in vectors]
    for start in range(0, resamples, step):
        idx = rng.integers(0, n, size=(min(step, resamples - start), n))
        for o, k in zip(out, range(stacked.shape[1])):
            o[start:start + len(idx)] = stacked[:, k][idx].mean(axis=1)
    return tuple(out)


def cell_bootstrap_means(cells: np.ndarray, counts: np.ndarray, *, seed: int = DEFAULT_SEED,
                         resamples: int = DEFAULT_RESAMPLES) -> tuple[np.ndarray, ...]:
    """Bootstrap means of aligned vectors given as their distinct rows ``cells`` (shape
    ``(m, k)``, or ``(m,)`` for one vector) and how many items hold each (``counts``): the
    counts of a resample of ``n = counts.sum()`` items are drawn from ``Multinomial(n,
    counts / n)`` (a binomial when m <= 2), ``resamples`` times. Memory and time do not depend
    on n (``bootstrap_means`` uses it above ``INDEX_DRAW_MAX_N``)."""
    cells = np.asarray(cells, dtype=float)
    if cells.ndim == 1:
        cells = cells[:, None]
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n <= 0 or len(counts) != len(cells) or (counts < 0).any():
        raise ValueError("cell_bootstrap_means needs one non-negative count per cell and n > 0")
    rng = np.random.default_rng(seed)
    if len(counts) == 1:
        drawn = np.full((resamples, 1), n, dtype=np.int64)
    elif len(counts) == 2:
        second = rng.binomial(n, counts[1] / n, size=resamples)
        drawn = np.stack([n - second, second], axis=1)
    else:
        drawn = rng.multinomial(n, counts / n, size=resamples)
    return tuple(drawn @ cells[:, k] / n for k in range(cells.shape[1]))


def bootstrap_ci(agree: np.ndarray, *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of a 0/1 vector (None when empty)."""
    if len(agree) == 0:
        return None
    (means,) = bootstrap_means(agree, seed=seed, resamples=resamples)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def compare(items: Items, judge: str, reference: str = DEFAULT_REFERENCE,
            frame: str = "corrected", *, seed: int = DEFAULT_SEED,
            resamples: int = DEFAULT_RESAMPLES, ties: str = "with") -> Comparison:
    """``judge`` against ``reference`` in ``frame``, over items where both are conclusive (and,
    with ``ties="without"``, where neither says tie)."""
    if frame not in FRAMES:
        raise JudgeEvalError(f"unknown frame {frame!r}; known frames: {', '.join(FRAMES)}")
    check_ties(ties)
    table = as_table(items)
    r, c = table.column(reference), table.column(judge)
    both = r.conclusive & c.conclusive
    tied = both & (r.tie | c.tie)
    tie_items = int(tied.sum())
    compared = both & ~tied if ties == "without" else both
    ref = r.frame_scores(frame)[compared]  # file order, as the study computed
    cand = c.frame_scores(frame)[compared]
    total = len(ref)
    agree = ref == cand
    notes: dict[str, str] = {}
    empty = ("no item where both judges are conclusive" if ties == "with" else
             "no item where both judges are conclusive and neither says tie")

    def keep(name: str, result: tuple[Any, str | None]) -> Any:
        value, reason = result
        if reason:
            notes[name] = (reason if ties == "with" else reason.replace(
                "where both judges are conclusive", "where both judges are conclusive and neither says tie"))
        return value

    correlation = keep("correlation", _pearson(ref, cand))
    jaccard = keep("jaccard", _jaccard(ref, cand))
    kappa = keep("kappa", _kappa(ref, cand))
    kappa_interval = keep("kappa_ci", kappa_ci(ref, cand, seed=seed, resamples=resamples))
    order = np.argsort(table.rank[compared], kind="stable")  # by order_key: file order must not matter
    ci = bootstrap_ci(agree[order].astype(float), seed=seed, resamples=resamples)
    if ci is None:
        notes["agreement_ci"] = f"undefined: {empty}"
    if not total:
        notes["agreement_rate"] = f"undefined: {empty}"
    stats = judge_stats(table, judge, frame)
    notes.update({k: v for k, v in stats.notes.items() if k not in notes})
    reference_missing = int(r.missing.sum())
    return Comparison(
        judge=judge, reference=reference, frame=frame, items=len(table),
        inconclusive=stats.inconclusive, parse_failures=stats.parse_failures,
        errors=stats.errors, missing=stats.missing,
        agreements=int(agree.sum()), total=total,
        agreement_rate=float(agree.sum()) / total if total else None,
        correlation=correlation, jaccard=jaccard, kappa=kappa, agreement_ci=ci,
        consistency_rate=stats.consistency_rate, length_bias=stats.length_bias, notes=notes,
        reference_missing=reference_missing, ties=ties, tie_items=tie_items, kappa_ci=kappa_interval,
        reference_conclusive=int(r.conclusive.sum()),
    )


@dataclass(frozen=True)
class RunMetrics:
    """Every judge of a run against the reference, in both frames, with and without ties; every
    annotator group of the run (``judge_eval.core.groups``); and every score judge of its
    pointwise items against the score reference (``judge_eval.core.scores``).

    The two parts are independent: the pairwise one covers the pairwise items (``reference_stats.
    items`` of them; 0 in a run of pointwise items only), the score one the pointwise items
    (``score_reference_stats`` None in a run without any)."""

    reference: str
    reference_stats: JudgeStats
    judges: dict[str, dict[str, Comparison]]  # judge -> frame -> comparison, with ties (S1)
    without_ties: dict[str, dict[str, Comparison]] = field(default_factory=dict)  # the same, S2
    groups: dict[str, GroupMetrics] = field(default_factory=dict)  # group name -> its metrics
    scores: dict[str, ScoreComparison] = field(default_factory=dict)  # score judge -> against score_reference
    score_reference: str | None = None  # the score judges' reference (None: no pointwise item)
    score_reference_stats: ScoreStats | None = None
    score_interval: str | None = None  # the score metric each ScoreComparison has the interval of
    # ``<judge>@choice`` -> its verdict probabilities against the reference (judge_eval.core.calibration)
    calibration: dict[str, Calibration] = field(default_factory=dict)
    choice_margin: float = 0.0  # the margin the ``@choice`` verdicts were decided with

    def comparisons(self, ties: str = "with") -> dict[str, dict[str, Comparison]]:
        """judge -> frame -> comparison in the tie mode ``ties``."""
        check_ties(ties)
        return self.judges if ties == "with" else self.without_ties

    def comparison(self, judge: str, frame: str, ties: str = "with") -> Comparison:
        return self.comparisons(ties)[judge][frame]

    @property
    def has_pairwise(self) -> bool:
        """Whether the run has pairwise items (or, without pointwise ones, is the pairwise run it
        always was): what the pairwise tables and the pairwise reference-coverage gate cover."""
        return self.reference_stats.items > 0 or self.score_reference_stats is None

    @property
    def has_scores(self) -> bool:
        """Whether the run has pointwise items (and so a score reference)."""
        return self.score_reference_stats is not None

    @property
    def reference_coverage(self) -> float | None:
        """Share of the run's pairwise items with a reference verdict of any source."""
        ref = self.reference_stats
        return (ref.items - ref.missing) / ref.items if ref.items else None

    @property
    def score_reference_coverage(self) -> float | None:
        """Share of the run's pointwise items with a score reference verdict of any source."""
        ref = self.score_reference_stats
        return (ref.items - ref.missing) / ref.items if ref is not None and ref.items else None

    def to_json(self) -> dict[str, Any]:
        ref = self.score_reference_stats
        return {
            "reference": self.reference,
            "reference_inconclusive": self.reference_stats.inconclusive,
            "items": self.reference_stats.items,
            "reference_missing": self.reference_stats.missing,
            "reference_coverage": self.reference_coverage,
            "reference_stats": asdict(self.reference_stats),
            "judges": {name: {frame: c.to_json() for frame, c in frames.items()}
                       for name, frames in self.judges.items()},
            "judges_without_ties": {name: {frame: c.to_json() for frame, c in frames.items()}
                                    for name, frames in self.without_ties.items()},
            "groups": {name: g.to_json() for name, g in self.groups.items()},
            "score_reference": self.score_reference,
            "score_items": ref.items if ref is not None else 0,
            "score_reference_coverage": self.score_reference_coverage,
            "score_reference_stats": ref.to_json() if ref is not None else None,
            "score_interval": self.score_interval,
            "score_judges": {name: c.to_json() for name, c in self.scores.items()},
            "calibration": {name: c.to_json() for name, c in self.calibration.items()},
            "choice_margin": self.choice_margin,  # what the ``@choice`` verdicts were decided with
        }


def _judge_kinds(pairwise: Iterable[str], scales: dict[str, tuple[float, ...]]) -> str:
    """``gpt_4 (pairwise), student (score, scale [1, 2, 3, 4, 5])``: the judges and their kinds."""
    from judge_eval.core.items import scale_text

    found = [f"{j} (pairwise)" for j in pairwise]
    found += [f"{j} (score, scale {scale_text(scale)})" for j, scale in scales.items()]
    return ", ".join(found) or "none"


def run_metrics(items: Items, reference: str = DEFAULT_REFERENCE, *,
                seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                judges: Sequence[str] | None = None, scores: ScoreTable | None = None,
                score_reference: str | None = None, score_interval: str = "exact_agreement",
                choice_margin: float = 0.0) -> RunMetrics:
    """Compare every judge found in ``items`` (or those named) with ``reference``, with and
    without ties, and every judge group found (``<group>:<id>`` names) with the reference and
    those judges; and every score judge of the pointwise items with ``score_reference`` (default:
    ``reference``), with the bootstrap interval of metric ``score_interval``.

    ``items``: the run's items (pairwise, pointwise or both), or the ``VerdictTable`` of its
    pairwise items with ``scores``, the ``ScoreTable`` of its pointwise ones
    (``judge_eval.core.scores.split_tables`` reads both from one stream; without ``scores`` a
    table has no pointwise item). A reference that is not a judge of the kind its items need is an
    error naming the judges found and their kinds, never an empty table.

    A judge whose verdicts carry choice probabilities gets a derived judge ``<judge>@choice``
    (``judge_eval.core.choice``, inconclusive below ``choice_margin``), compared like any judge,
    with its calibration against the reference in ``calibration`` (not from a ``VerdictTable``)."""
    from judge_eval.core.scores import ScoreTable, compare_scores, score_stats  # scores imports this module
    from judge_eval.core.calibration import judge_calibration
    from judge_eval.core.choice import CHOICE_SUFFIX, with_choice_verdicts

    if not isinstance(items, VerdictTable):
        items = with_choice_verdicts(list(items), choice_margin)

    if isinstance(items, VerdictTable):
        table = items
        point = scores if scores is not None else ScoreTable.from_items(())
        pairs: Items = items
    else:
        point = scores if scores is not None else ScoreTable.from_items(items)
        pairs = [item for item in items if len(item.answers) != 1] if len(point) else items
        table = as_table(pairs)
    if not len(table) and not len(point):
        raise JudgeEvalError(
            "the run has 0 items (its test_qa_complete.jsonl holds no pair), so there is nothing to "
            f"compare with the reference judge {reference!r}. Judge a run with at least one item")
    found = discover_judges(table)
    scales = point.scales
    score_ref = score_reference or reference
    if len(table) and reference not in found:
        if not len(point):
            raise JudgeEvalError(
                f"reference judge {reference!r} has no verdict in these items; judges found: "
                f"{', '.join(found) or 'none'}. Pass --reference NAME with one of them.")
        raise JudgeEvalError(
            f"reference judge {reference!r} has no pairwise verdict on the run's {len(table)} pairwise item(s); "
            f"judges found: {_judge_kinds(found, scales)}. Pass --reference NAME with a pairwise judge (profile key "
            "reference) and, for the score judges of the pointwise items, --score-reference NAME with a score "
            "judge (profile key score_reference)")
    if len(point) and score_ref not in scales:
        if len(table):
            how = (f"Pass --score-reference NAME with a score judge (profile key score_reference): the run also holds "
                   f"{len(table)} pairwise item(s), whose reference is --reference")
        else:
            how = "Pass --reference NAME with a score judge (profile key reference)"
        raise JudgeEvalError(
            f"reference judge {score_ref!r} has no score verdict on the run's {len(point)} pointwise item(s), so "
            f"its score judges have no reference; judges found: {_judge_kinds(found, scales)}. {how}")
    every = [*found, *(j for j in scales if j not in found)]
    if judges is None:
        names = [j for j in found if j != reference]
        score_names = [j for j in scales if j != score_ref]
    else:
        unknown = [j for j in judges if j not in found and j not in scales]
        if unknown:
            raise JudgeEvalError(f"judge(s) {', '.join(unknown)} have no verdict in these items; "
                                 f"judges found: {', '.join(every)}")
        names = [j for j in judges if j in found]
        score_names = [j for j in judges if j in scales]
    from judge_eval.core.groups import discover_groups, group_metrics  # groups imports this module

    groups = discover_groups(found)
    if groups and isinstance(pairs, VerdictTable):
        raise ValueError(f"judge group(s) {', '.join(groups)} need the items themselves, not their VerdictTable")
    return RunMetrics(
        reference=reference,
        reference_stats=judge_stats(table, reference),
        judges={j: {f: compare(table, j, reference, f, seed=seed, resamples=resamples)
                    for f in FRAMES} for j in names},
        without_ties={j: {f: compare(table, j, reference, f, seed=seed, resamples=resamples, ties="without")
                          for f in FRAMES} for j in names},
        groups={g: group_metrics(pairs, g, members, judges=[reference, *names], seed=seed, resamples=resamples)
                for g, members in groups.items()},
        scores={j: compare_scores(point, j, score_ref, interval=score_interval, seed=seed, resamples=resamples)
                for j in score_names},
        score_reference=score_ref if len(point) else None,
        score_reference_stats=score_stats(point, score_ref) if len(point) else None,
        score_interval=score_interval if len(point) else None,
        calibration={j: judge_calibration(pairs, j, reference) for j in names
                     if j.endswith(CHOICE_SUFFIX) and not isinstance(pairs, VerdictTable)},
        choice_margin=choice_margin,
    )

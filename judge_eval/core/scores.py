"""Score (pointwise) judges: one judge's scores against a reference score judge's.

A pointwise item has one answer; a score judge's verdict on it is a score on the scale the verdict
declares (``judge_eval.core.items``: ``kind == "score"``, ``scale`` the allowed values ascending,
source ``scored`` or, with a null score, ``output-cannot-be-parsed`` / ``error``). The store checks
every line; ``ScoreTable.from_items`` checks items built in code the same way. A judge keeps one
scale, and a judge is compared only with a reference on the same scale.

The compared items are those where both judges gave a score (both ``scored``); on them, for
reference scores r and judge scores j (n items):

- ``exact_agreement``: share of items with j == r;
- ``within_1_agreement``: share with |j - r| <= 1 on the score values themselves (not scale
  steps: on a 1..5 scale in halves, 3 and 4 are within 1, 3 and 4.5 are not; on a 0/1 scale every
  pair is). A slack of 1e-9 lets decimal scales whose values binary floats hold inexactly (0.1
  steps) count a difference of 1.0000000000000002 as 1;
- ``mae``: mean |j - r| (the one metric where lower is better: ``LOWER_IS_BETTER``);
- ``pearson``: Pearson r (``scipy.stats.pearsonr``);
- ``spearman``: Spearman rho, Pearson r of the ranks, tied values sharing their average rank
  (``scipy.stats.spearmanr``);
- ``kendall_tau_b``: Kendall's tau-b, tie-corrected (``scipy.stats.kendalltau(variant="b")``);
- ``quadratic_kappa``: Cohen's kappa with quadratic weights over the declared scale
  (``sklearn.metrics.cohen_kappa_score(r, j, weights="quadratic", labels=scale)``): the weight of a
  disagreement is the squared distance of the two scores' *positions* in the scale, so a scale
  in halves weighs 3 vs 4 as two steps, exactly as scikit-learn does.

Each is None with a reason in ``notes`` where it is undefined: no compared item; a correlation
over fewer than 2 items or a constant side (scipy returns NaN there); kappa when both judges gave
the one same score everywhere (0/0). Nothing here emits numpy warnings. tests/unit/
test_score_metrics.py checks every metric against scipy / scikit-learn on random data.

How they are computed: every metric is a function of the count table of the compared items
(reference score x judge score), so a point estimate is one table and a bootstrap resample is
another: O(n) to count, then O(cells), whatever n. The point estimates therefore do not depend on
item order at all (not even in the last bit).

The bootstrap interval (``score_interval``; ``compare_scores(interval=NAME)`` for the gated
metric) follows ``judge_eval.core.metrics.bootstrap_means``: items sorted by
``QAItem.order_key`` first; a mean metric (exact, within-1, MAE) is resampled by
``bootstrap_means`` itself, so its interval is the one ``bootstrap_ci`` gives for that per-item
vector; the others draw the same resamples (up to ``INDEX_DRAW_MAX_N`` items, the ``(resamples,
n)`` index table of ``np.random.default_rng(seed).integers(0, n)``; above, multinomial counts over
the table's occupied cells as ``cell_bootstrap_means`` draws them) and compute the metric on each
resample's table. Resamples where the metric is undefined (a resample in which one side is
constant) are left out of the percentiles and counted in the note; percentiles 2.5 / 97.5 for
``level=0.95``.

The API the gates, reports, plots and ``compare`` build on:

- ``ScoreTable`` (``from_items``, ``from_rows``; ``split_tables`` reads one stream of
  ``judge_eval.core.store.QARow``s into a pairwise ``VerdictTable`` and a ``ScoreTable``);
  every function takes a ``ScoreTable`` or the items themselves (``ScoreItems``);
- ``discover_score_judges`` -> {judge: scale}; ``score_stats`` (one judge alone);
- ``compare_scores`` -> ``ScoreComparison`` (counts, metrics, interval, notes; ``metric(name)``,
  ``to_json()`` at full precision);
- ``score_metrics`` and one function per metric on aligned score vectors;
- ``score_confusion`` (counts over the scale, rows reference, columns judge) for the plot;
- ``item_errors`` (per item, in order_key order: absolute error, exact and within-1 flags) and
  ``paired_errors`` (two of them aligned by item id, with the sign counts of the shift) for
  ``compare``.
"""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Sequence, Union

import numpy as np

from judge_eval.errors import JudgeEvalError
from judge_eval.core.items import (ERROR, PARSE_FAILURE, POINTWISE, SCORE, SCORE_SOURCES, SCORED, QAItem,
                                   scale_text)
from judge_eval.core.metrics import (DEFAULT_RESAMPLES, DEFAULT_SEED, INDEX_DRAW_MAX_N, VerdictTable,
                                     bootstrap_means)

#: The metrics of a score judge against the reference, in report order.
SCORE_METRICS = ("exact_agreement", "within_1_agreement", "mae", "pearson", "spearman", "kendall_tau_b",
                 "quadratic_kappa")
#: Metrics where a lower value is better (a gate's threshold on them is a maximum).
LOWER_IS_BETTER = frozenset({"mae"})
#: Metrics that are the mean of a per-item vector (``item_errors``); their interval is
#: ``bootstrap_means``'s, and ``compare`` can pair them item by item.
MEAN_METRICS = frozenset({"exact_agreement", "within_1_agreement", "mae"})

#: ``within_1_agreement``: |judge - reference| <= WITHIN (+ _WITHIN_SLACK) on the score values.
WITHIN = 1.0
_WITHIN_SLACK = 1e-9

_MISSING = -1  # source code of "this judge has no verdict on this item"
_CODE = {source: code for code, source in enumerate(SCORE_SOURCES)}
_SCORED = _CODE[SCORED]
_CHUNK_ELEMENTS = 1 << 22  # entries of the resample arrays built at once


def _check_metric(name: str) -> None:
    if name not in SCORE_METRICS:
        raise JudgeEvalError(f"unknown score metric {name!r}; known: {', '.join(SCORE_METRICS)}")


def _as_scale(scale: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in scale)


def _scale_problem(scale: Sequence[float]) -> str | None:
    values = np.asarray(scale, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        return "a scale needs at least two scores"
    if not np.all(np.isfinite(values)) or not np.all(np.diff(values) > 0):
        return "a scale lists finite scores in strictly ascending order"
    return None


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ScoreColumn:
    """One score judge's verdicts on every item of a ``ScoreTable``, aligned by item: the score
    (NaN unless scored), the source as an index into ``SCORE_SOURCES`` (-1: no verdict), and the
    judge's scale (floats, ascending)."""

    scale: tuple[float, ...]
    score: np.ndarray  # float64
    source: np.ndarray  # int8

    @property
    def conclusive(self) -> np.ndarray:
        return self.source == _SCORED

    @property
    def missing(self) -> np.ndarray:
        return self.source == _MISSING

    @property
    def parse_failure(self) -> np.ndarray:
        return self.source == _CODE[PARSE_FAILURE]

    @property
    def error(self) -> np.ndarray:
        return self.source == _CODE[ERROR]


@dataclass(frozen=True)
class ScoreTable:
    """What the score metrics need of a run's pointwise items, as arrays aligned by item (file
    order): ids, each item's rank in ``QAItem.order_key`` order, and per score judge (in order of
    first appearance) a ``ScoreColumn``. Pairwise items are not part of it (``split_tables``)."""

    ids: list[str]
    rank: np.ndarray  # int64
    judges: dict[str, ScoreColumn]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def scales(self) -> dict[str, tuple[float, ...]]:
        """Each score judge's scale, in order of first appearance."""
        return {judge: column.scale for judge, column in self.judges.items()}

    def column(self, judge: str) -> ScoreColumn:
        found = self.judges.get(judge)
        if found is None:
            raise JudgeEvalError(
                f"score judge {judge!r} has no verdict on these {len(self)} pointwise item(s); score judges "
                f"found: {', '.join(self.judges) or 'none'}. Name one of them (a pointwise item has one answer "
                "and evaluations with \"kind\": \"score\")")
        return found

    @classmethod
    def from_items(cls, items: Iterable[QAItem]) -> "ScoreTable":
        """The pointwise items of ``items`` (a sequence or a stream); pairwise items are skipped.
        Items built in code get the store's checks: a score verdict only on a one-answer item, its
        source one of ``SCORE_SOURCES``, its score on its scale, one scale per judge."""
        builder = _Builder()
        for item in items:
            try:
                kind = item.kind
            except ValueError as exc:
                raise JudgeEvalError(str(exc)) from None
            if kind == POINTWISE:
                for verdict in item.evaluations:
                    if verdict.kind != SCORE:
                        raise JudgeEvalError(f"item {item.id!r}: judge {verdict.llm!r} has a {verdict.kind!r} "
                                             "verdict on a pointwise item (one answer), which takes score verdicts")
                builder.add(item.id, item.order_key, ((v.llm, v.score, v.source, v.scale) for v in item.evaluations))
            elif any(v.kind == SCORE for v in item.evaluations):
                raise JudgeEvalError(f"item {item.id!r} has two answers and a score verdict; a score verdict rates "
                                     "the one answer of a pointwise item")
        return builder.build()

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, int, int, Sequence[tuple[str, float | None, str]]]]
                  ) -> "ScoreTable":
        """The pointwise rows (``len_second == -1``) of ``judge_eval.core.store.QARow``s, whose
        verdicts are ``ScoreEntry``s (each carries its scale); pairwise rows are skipped."""
        builder = _Builder()
        for row in rows:
            if row[3] < 0:
                builder.add_row(row)
        return builder.build()


def split_tables(rows: Iterable[tuple[str, str, int, int, Sequence[tuple[str, float | None, str]]]]
                 ) -> tuple[VerdictTable, ScoreTable]:
    """One pass over ``QARow``s (``judge_eval.core.store.stream_split``): the pairwise rows as a
    ``VerdictTable``, the pointwise rows as a ``ScoreTable``."""
    builder = _Builder()

    def pairwise() -> Iterator[tuple[str, str, int, int, Sequence[tuple[str, float | None, str]]]]:
        for row in rows:
            if row[3] < 0:
                builder.add_row(row)
            else:
                yield row

    table = VerdictTable.from_rows(pairwise())
    return table, builder.build()


class _Builder:
    """Columns of a ``ScoreTable``, one item at a time (``array`` buffers, as ``VerdictTable``)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.keys: list[str] = []
        self.scores: dict[str, array] = {}
        self.sources: dict[str, array] = {}
        self.scales: dict[str, tuple[float, ...]] = {}
        self.declared: dict[str, Sequence[float]] = {}  # each judge's scale as first given (checked)
        self.first_item: dict[str, str] = {}

    def add_row(self, row: tuple[str, str, int, int, Sequence[tuple[str, float | None, str]]]) -> None:
        def entries() -> Iterator[tuple[str, float | None, str, Sequence[float] | None]]:
            for entry in row[4]:
                llm, score, source = entry
                yield llm, score, source, getattr(entry, "scale", None)
        self.add(row[0], row[1], entries())

    def add(self, ident: str, key: str, verdicts: Iterable[tuple[str, float | None, str, Sequence[float] | None]]
            ) -> None:
        """One item's score verdicts as (llm, score, source, scale); a judge's first verdict counts."""
        n = len(self.ids)
        nan = float("nan")
        first: dict[str, tuple[float, int]] = {}
        for llm, score, source, scale in verdicts:
            if llm in first:
                continue
            code = _CODE.get(source)
            if code is None:
                raise JudgeEvalError(f"item {ident!r}: judge {llm!r} has source {source!r}; a score verdict's source "
                                     f"is one of {', '.join(SCORE_SOURCES)}")
            if scale is None:
                raise JudgeEvalError(f"item {ident!r}: the score verdict of judge {llm!r} has no scale")
            known = self.scales.get(llm)
            if known is None:
                self.declared[llm] = scale
                scale = _as_scale(scale)
                problem = _scale_problem(scale)
                if problem:
                    raise JudgeEvalError(f"item {ident!r}: judge {llm!r} declares the scale {scale_text(scale)}; "
                                         f"{problem}")
                self.scales[llm] = scale
                self.first_item[llm] = ident
                self.scores[llm] = array("d", [nan]) * n
                self.sources[llm] = array("b", [_MISSING]) * n
            elif scale is not self.declared[llm] and known != _as_scale(scale):  # a store row repeats one object
                raise JudgeEvalError(f"item {ident!r}: judge {llm!r} declares the scale {scale_text(scale)} but "
                                     f"{scale_text(known)} on item {self.first_item[llm]!r}; a judge keeps one scale")
            if (score is None) != (code != _SCORED):
                raise JudgeEvalError(f"item {ident!r}: judge {llm!r} has score {score!r} with source {source!r}; "
                                     f"a {SCORED!r} verdict has a score, the others have none")
            first[llm] = (nan if score is None else float(score), code)
        for judge, column in self.scores.items():
            found = first.get(judge)
            column.append(nan if found is None else found[0])
            self.sources[judge].append(_MISSING if found is None else found[1])
        self.ids.append(ident)
        self.keys.append(key)

    def build(self) -> ScoreTable:
        n = len(self.ids)
        rank = np.empty(n, dtype=np.int64)
        rank[sorted(range(n), key=self.keys.__getitem__)] = np.arange(n)
        judges = {}
        for judge, scale in self.scales.items():
            score = np.frombuffer(self.scores[judge], dtype=np.float64).copy()
            source = np.frombuffer(self.sources[judge], dtype=np.int8).copy()
            scored = source == _SCORED
            values = np.asarray(scale)
            pos = np.clip(np.searchsorted(values, score[scored]), 0, len(values) - 1)
            off = np.flatnonzero(values[pos] != score[scored])
            if len(off):
                where = int(np.flatnonzero(scored)[off[0]])
                raise JudgeEvalError(f"item {self.ids[where]!r}: judge {judge!r} scored {float(score[where])!r}, which is "
                                     f"not on its scale {scale_text(scale)}")
            judges[judge] = ScoreColumn(scale=scale, score=score, source=source)
        return ScoreTable(ids=self.ids, rank=rank, judges=judges)


#: What the score functions take: the items themselves or their ``ScoreTable``.
ScoreItems = Union[Sequence[QAItem], ScoreTable]


def as_score_table(items: ScoreItems) -> ScoreTable:
    return items if isinstance(items, ScoreTable) else ScoreTable.from_items(items)


def discover_score_judges(items: ScoreItems) -> dict[str, tuple[float, ...]]:
    """Every score judge in the items with its scale (floats), in order of first appearance.
    A judge whose scale differs between items is a ``JudgeEvalError`` (the store refuses such a
    file with file, line and field)."""
    return as_score_table(items).scales


# --------------------------------------------------------------------------- one judge


@dataclass(frozen=True)
class ScoreStats:
    """What one score judge did on its own: its verdicts by source, and how often it gave each
    score of its scale (``histogram``, aligned with ``scale``)."""

    judge: str
    scale: tuple[float, ...]
    items: int
    conclusive: int  # source "scored"
    parse_failures: int
    errors: int
    missing: int
    histogram: tuple[int, ...]
    mean_score: float | None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def conclusive_rate(self) -> float | None:
        return self.conclusive / self.items if self.items else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["scale"], out["histogram"] = list(self.scale), list(self.histogram)
        out["conclusive_rate"] = self.conclusive_rate
        return out


def score_stats(items: ScoreItems, judge: str) -> ScoreStats:
    table = as_score_table(items)
    col = table.column(judge)
    counts = np.bincount(col.source.astype(np.int64) + 1, minlength=len(SCORE_SOURCES) + 1)  # [missing, *sources]
    scored = col.score[col.conclusive]
    histogram = np.bincount(np.searchsorted(np.asarray(col.scale), scored), minlength=len(col.scale))
    notes = {} if len(scored) else {"mean_score": "undefined: no scored verdict"}
    return ScoreStats(judge=judge, scale=col.scale, items=len(table), conclusive=int(counts[_SCORED + 1]),
                      parse_failures=int(counts[_CODE[PARSE_FAILURE] + 1]), errors=int(counts[_CODE[ERROR] + 1]),
                      missing=int(counts[0]), histogram=tuple(int(h) for h in histogram),
                      mean_score=float(scored.mean()) if len(scored) else None, notes=notes)


# --------------------------------------------------------------------------- metrics of a count table


@dataclass(frozen=True)
class _Cells:
    """Compared items as a count table over the scores present: rows the reference's distinct
    scores, columns the judge's (ascending), with their positions in the scale (for kappa's
    weights) and each item's cell (``codes``, row * columns + column, in the items' order)."""

    ref_values: np.ndarray
    judge_values: np.ndarray
    ref_pos: np.ndarray
    judge_pos: np.ndarray
    codes: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ref_values), len(self.judge_values)

    def counts(self) -> np.ndarray:
        a, b = self.shape
        return np.bincount(self.codes, minlength=a * b).astype(np.float64).reshape(1, a, b)


def _cells(reference: Any, judge: Any, scale: Sequence[float] | None) -> _Cells:
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cand = np.asarray(judge, dtype=np.float64).ravel()
    if len(ref) != len(cand):
        raise ValueError(f"score vectors of different lengths: {len(ref)} reference, {len(cand)} judge")
    labels = np.union1d(ref, cand) if scale is None else np.asarray(_as_scale(scale))
    if scale is not None and _scale_problem(labels):
        raise ValueError(f"scale {scale_text(labels)}: {_scale_problem(labels)}")
    positions = []
    for name, vec in (("reference", ref), ("judge", cand)):
        pos = np.clip(np.searchsorted(labels, vec), 0, max(len(labels) - 1, 0))
        if len(vec) and not np.array_equal(labels[pos], vec):
            bad = vec[labels[pos] != vec][0]
            raise ValueError(f"the {name} score {float(bad)!r} is not on the scale {scale_text(labels)}")
        positions.append(pos)
    ref_rows, ref_inv = np.unique(positions[0], return_inverse=True)
    judge_cols, judge_inv = np.unique(positions[1], return_inverse=True)
    return _Cells(ref_values=labels[ref_rows] if len(labels) else ref_rows.astype(float),
                  judge_values=labels[judge_cols] if len(labels) else judge_cols.astype(float),
                  ref_pos=ref_rows.astype(np.float64), judge_pos=judge_cols.astype(np.float64),
                  codes=ref_inv.ravel() * len(judge_cols) + judge_inv.ravel())


def _mean_of(counts: np.ndarray, values: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("rab,ab->r", counts, values) / n


def _correlation(counts: np.ndarray, row: np.ndarray, col: np.ndarray, x: np.ndarray, y: np.ndarray,
                 n: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """Pearson r of the items of each table, row values ``x`` (R, a), column values ``y`` (R, b)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.einsum("ra,ra->r", row, x) / n)[:, None]
        dy = y - (np.einsum("rb,rb->r", col, y) / n)[:, None]
        sxx = np.einsum("ra,ra->r", row, dx * dx)
        syy = np.einsum("rb,rb->r", col, dy * dy)
        sxy = np.einsum("rab,ra,rb->r", counts, dx, dy)
        r = sxy / (np.sqrt(sxx) * np.sqrt(syy))
    return np.where(defined, np.clip(r, -1.0, 1.0), np.nan)


def _average_ranks(margin: np.ndarray) -> np.ndarray:
    """1-based average ranks of each value given how many items hold it (ties share their mean)."""
    return np.cumsum(margin, axis=1) - margin + (margin + 1.0) / 2.0


def _evaluate(name: str, cells: _Cells, counts: np.ndarray) -> np.ndarray:
    """Metric ``name`` of each count table ``counts`` (R, a, b): (R,), NaN where undefined."""
    n = counts.sum(axis=(1, 2))
    row, col = counts.sum(axis=2), counts.sum(axis=1)
    xv, yv = cells.ref_values, cells.judge_values
    diff = np.abs(xv[:, None] - yv[None, :])
    some = n > 0
    if name == "exact_agreement":
        return np.where(some, _mean_of(counts, (diff == 0).astype(float), n), np.nan)
    if name == "within_1_agreement":
        return np.where(some, _mean_of(counts, (diff <= WITHIN + _WITHIN_SLACK).astype(float), n), np.nan)
    if name == "mae":
        return np.where(some, _mean_of(counts, diff, n), np.nan)
    varied = ((row > 0).sum(axis=1) >= 2) & ((col > 0).sum(axis=1) >= 2)  # neither side constant (so n >= 2)
    if name == "pearson":
        return _correlation(counts, row, col, np.broadcast_to(xv, row.shape), np.broadcast_to(yv, col.shape),
                            n, varied)
    if name == "spearman":
        return _correlation(counts, row, col, _average_ranks(row), _average_ranks(col), n, varied)
    if name == "kendall_tau_b":
        return _kendall_tau_b(counts, row, col, n, varied)
    if name == "quadratic_kappa":
        weights = (cells.ref_pos[:, None] - cells.judge_pos[None, :]) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = row[:, :, None] * col[:, None, :] / n[:, None, None]
            observed = np.einsum("rab,ab->r", counts, weights)
            chance = np.einsum("rab,ab->r", expected, weights)
            kappa = 1.0 - observed / chance
        return np.where(some & (chance > 0), kappa, np.nan)
    raise JudgeEvalError(f"unknown score metric {name!r}; known: {', '.join(SCORE_METRICS)}")


def _kendall_tau_b(counts: np.ndarray, row: np.ndarray, col: np.ndarray, n: np.ndarray,
                   varied: np.ndarray) -> np.ndarray:
    """Kendall's tau-b from count tables: a pair of items in cells (i, j), (i', j') with i' > i is
    concordant when j' > j and discordant when j' < j; rows and columns are ascending scores."""
    r, a, b = counts.shape
    above = counts[:, ::-1, ::-1].cumsum(axis=1).cumsum(axis=2)[:, ::-1, ::-1]  # sum over i' >= i, j' >= j
    below = counts[:, ::-1, :].cumsum(axis=1)[:, ::-1, :].cumsum(axis=2)  # sum over i' >= i, j' <= j
    later_higher = np.zeros_like(counts)
    later_higher[:, :-1, :-1] = above[:, 1:, 1:]
    later_lower = np.zeros_like(counts)
    later_lower[:, :-1, 1:] = below[:, 1:, :-1]
    concordant = np.einsum("rab,rab->r", counts, later_higher)
    discordant = np.einsum("rab,rab->r", counts, later_lower)
    pairs = n * (n - 1) / 2
    x_ties = (row * (row - 1) / 2).sum(axis=1)
    y_ties = (col * (col - 1) / 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (concordant - discordant) / np.sqrt(pairs - x_ties) / np.sqrt(pairs - y_ties)
    return np.where(varied, np.clip(tau, -1.0, 1.0), np.nan)


def _reason(name: str, cells: _Cells) -> str:
    """Why metric ``name`` is undefined on these compared items."""
    n = len(cells.codes)
    if n == 0:
        return "undefined: no item where both judges gave a score"
    if name == "quadratic_kappa":
        return (f"undefined: both judges gave the one score {scale_text(cells.ref_values)[1:-1]} on every compared "
                "item (kappa is 0/0)")
    if n < 2:
        return f"undefined: {n} item where both judges gave a score (need 2)"
    for side, values in (("reference", cells.ref_values), ("judge", cells.judge_values)):
        if len(values) == 1:
            return f"undefined: the {side}'s scores are constant ({scale_text(values)[1:-1]}) on the compared items"
    return "undefined"


def _point(name: str, cells: _Cells) -> tuple[float | None, str | None]:
    value = float(_evaluate(name, cells, cells.counts())[0])
    if np.isnan(value):
        return None, _reason(name, cells)
    return value, None


def score_metrics(reference: Any, judge: Any, scale: Sequence[float] | None = None
                  ) -> dict[str, tuple[float | None, str | None]]:
    """Every metric of ``SCORE_METRICS`` over aligned score vectors (the compared items): name ->
    (value, None) or (None, reason). ``scale``: the declared scale (kappa's labels); None takes the
    scores present, as scikit-learn does without ``labels``. A score off the scale is a
    ValueError."""
    cells = _cells(reference, judge, scale)
    return {name: _point(name, cells) for name in SCORE_METRICS}


def _one(name: str) -> Any:
    def metric(reference: Any, judge: Any, scale: Sequence[float] | None = None) -> tuple[float | None, str | None]:
        return _point(name, _cells(reference, judge, scale))
    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = f"``{name}`` of aligned score vectors: (value, None) or (None, reason); see ``score_metrics``."
    return metric


exact_agreement = _one("exact_agreement")
within_1_agreement = _one("within_1_agreement")
mean_absolute_error = _one("mae")
pearson = _one("pearson")
spearman = _one("spearman")
kendall_tau_b = _one("kendall_tau_b")
quadratic_kappa = _one("quadratic_kappa")


# --------------------------------------------------------------------------- bootstrap


def _per_item(name: str, reference: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """The per-item vector whose mean is mean metric ``name``."""
    diff = np.abs(judge - reference)
    if name == "exact_agreement":
        return (diff == 0).astype(np.float64)
    if name == "within_1_agreement":
        return (diff <= WITHIN + _WITHIN_SLACK).astype(np.float64)
    return diff


def _resampled_tables(cells: _Cells, *, seed: int, resamples: int) -> Iterator[np.ndarray]:
    """Count tables (r, a, b) of the bootstrap resamples of the compared items, a chunk at a time,
    drawn as ``bootstrap_means`` draws: the ``(resamples, n)`` index table up to
    ``INDEX_DRAW_MAX_N`` items, multinomial counts over the occupied cells above (as
    ``cell_bootstrap_means``: the full count for one cell, a binomial for two)."""
    a, b = cells.shape
    size = a * b
    n = len(cells.codes)
    step = max(1, _CHUNK_ELEMENTS // max(n, size))
    rng = np.random.default_rng(seed)
    if n <= INDEX_DRAW_MAX_N:
        idx = rng.integers(0, n, size=(resamples, n))
        for start in range(0, resamples, step):
            drawn = cells.codes[idx[start:start + step]]
            offsets = np.arange(len(drawn))[:, None] * size
            yield np.bincount((drawn + offsets).ravel(), minlength=len(drawn) * size).astype(np.float64).reshape(
                len(drawn), a, b)
        return
    present = np.bincount(cells.codes, minlength=size)
    occupied = np.flatnonzero(present)
    counts = present[occupied]
    if len(counts) == 1:
        drawn = np.full((resamples, 1), n, dtype=np.int64)
    elif len(counts) == 2:
        second = rng.binomial(n, counts[1] / n, size=resamples)
        drawn = np.stack([n - second, second], axis=1)
    else:
        drawn = rng.multinomial(n, counts / n, size=resamples)
    for start in range(0, resamples, step):
        part = drawn[start:start + step]
        tables = np.zeros((len(part), size))
        tables[:, occupied] = part
        yield tables.reshape(len(part), a, b)


def _interval(name: str, cells: _Cells, reference: np.ndarray, judge: np.ndarray, *, seed: int, resamples: int,
              level: float) -> tuple[tuple[float, float] | None, str | None]:
    """Percentile interval of metric ``name`` over the compared items, given in order_key order;
    (None, reason) when undefined, else (interval, a note when resamples were left out)."""
    if len(cells.codes) == 0:
        return None, "undefined: no item where both judges gave a score"
    if name in MEAN_METRICS:
        (values,) = bootstrap_means(_per_item(name, reference, judge), seed=seed, resamples=resamples)
    else:
        if _point(name, cells)[0] is None:
            return None, _reason(name, cells)
        values = np.concatenate([_evaluate(name, cells, t) for t in _resampled_tables(cells, seed=seed,
                                                                                      resamples=resamples)])
    defined = values[~np.isnan(values)]
    if len(defined) == 0:
        return None, f"undefined: {name} is undefined in every resample"
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    left_out = len(values) - len(defined)
    note = (f"{left_out} of {len(values)} resamples left out: {name} is undefined in them (a side constant)"
            if left_out else None)
    return (float(low), float(high)), note


def _compared(table: ScoreTable, judge: str, reference: str) -> tuple[ScoreColumn, ScoreColumn, np.ndarray]:
    """(reference column, judge column, positions of the items both scored in order_key order);
    the two judges must declare one scale."""
    r, c = table.column(reference), table.column(judge)
    if r.scale != c.scale:
        raise JudgeEvalError(f"judge {judge!r} scores on {scale_text(c.scale)} but the reference {reference!r} on "
                             f"{scale_text(r.scale)}; a score judge is compared with a reference on the same scale. "
                             "How to fix: give the judges of each scale, with a reference on that scale, a run "
                             "directory of its own (judge-eval import scores once per scale)")
    both = np.flatnonzero(r.conclusive & c.conclusive)
    return r, c, both[np.argsort(table.rank[both], kind="stable")]


def score_interval(items: ScoreItems, judge: str, reference: str, metric: str, *, seed: int = DEFAULT_SEED,
                   resamples: int = DEFAULT_RESAMPLES, level: float = 0.95
                   ) -> tuple[tuple[float, float] | None, str | None]:
    """Percentile bootstrap interval of ``metric`` of ``judge`` against ``reference``: (interval,
    None or a note on resamples left out) or (None, reason)."""
    _check_metric(metric)
    table = as_score_table(items)
    r, c, order = _compared(table, judge, reference)
    ref, cand = r.score[order], c.score[order]
    return _interval(metric, _cells(ref, cand, r.scale), ref, cand, seed=seed, resamples=resamples, level=level)


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class ScoreComparison:
    """One score judge against the reference score judge (same scale), over the items both
    scored (``n``); the counts cover every pointwise item (``items``)."""

    judge: str
    reference: str
    scale: tuple[float, ...]
    items: int
    conclusive: int  # the judge's scored verdicts
    parse_failures: int
    errors: int
    missing: int  # items the judge has no verdict on
    reference_conclusive: int
    reference_parse_failures: int
    reference_errors: int
    reference_missing: int
    n: int  # items both scored: what every metric is computed over
    exact_matches: int
    within_1_matches: int
    exact_agreement: float | None
    within_1_agreement: float | None
    mae: float | None
    pearson: float | None
    spearman: float | None
    kendall_tau_b: float | None
    quadratic_kappa: float | None
    interval_metric: str | None  # the metric ``interval`` belongs to (the gated one), or None
    interval: tuple[float, float] | None
    level: float = 0.95
    seed: int = DEFAULT_SEED
    resamples: int = DEFAULT_RESAMPLES
    notes: dict[str, str] = field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        _check_metric(name)
        return getattr(self, name)

    @property
    def conclusive_rate(self) -> float | None:
        return self.conclusive / self.items if self.items else None

    @property
    def reference_coverage(self) -> float | None:
        """Share of the items with a reference verdict of any source."""
        return (self.items - self.reference_missing) / self.items if self.items else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["scale"] = list(self.scale)
        out["interval"] = list(self.interval) if self.interval else None
        out["conclusive_rate"] = self.conclusive_rate
        out["reference_coverage"] = self.reference_coverage
        return out


def compare_scores(items: ScoreItems, judge: str, reference: str, *, interval: str | None = "exact_agreement",
                   seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                   level: float = 0.95) -> ScoreComparison:
    """``judge`` against ``reference`` (both score judges on one scale) over the items both
    scored, with a bootstrap interval of metric ``interval`` (None: no interval)."""
    if interval is not None:
        _check_metric(interval)
    table = as_score_table(items)
    r, c, order = _compared(table, judge, reference)
    ref, cand = r.score[order], c.score[order]
    cells = _cells(ref, cand, r.scale)
    values = {}
    notes: dict[str, str] = {}
    for name in SCORE_METRICS:
        value, reason = _point(name, cells)
        values[name] = value
        if reason:
            notes[name] = reason
    ci = None
    if interval is not None:
        ci, note = _interval(interval, cells, ref, cand, seed=seed, resamples=resamples, level=level)
        if note:
            notes["interval"] = note
    judge_stats, ref_stats = score_stats(table, judge), score_stats(table, reference)
    diff = np.abs(cand - ref)
    return ScoreComparison(
        judge=judge, reference=reference, scale=r.scale, items=len(table),
        conclusive=judge_stats.conclusive, parse_failures=judge_stats.parse_failures, errors=judge_stats.errors,
        missing=judge_stats.missing, reference_conclusive=ref_stats.conclusive,
        reference_parse_failures=ref_stats.parse_failures, reference_errors=ref_stats.errors,
        reference_missing=ref_stats.missing, n=len(order), exact_matches=int(np.count_nonzero(diff == 0)),
        within_1_matches=int(np.count_nonzero(diff <= WITHIN + _WITHIN_SLACK)), interval_metric=interval,
        interval=ci, level=level, seed=seed, resamples=resamples, notes=notes, **values)


# --------------------------------------------------------------------------- plot and compare helpers


@dataclass(frozen=True)
class ScoreConfusion:
    """How often the reference gave score ``scale[i]`` and the judge ``scale[j]`` on one item:
    ``counts[i, j]`` over the items both scored (rows reference, columns judge)."""

    judge: str
    reference: str
    scale: tuple[float, ...]
    counts: np.ndarray  # (len(scale), len(scale)) int64

    def to_json(self) -> dict[str, Any]:
        return {"judge": self.judge, "reference": self.reference, "scale": list(self.scale),
                "counts": self.counts.tolist()}


def score_confusion(items: ScoreItems, judge: str, reference: str) -> ScoreConfusion:
    table = as_score_table(items)
    r, c, order = _compared(table, judge, reference)
    scale = np.asarray(r.scale)
    k = len(scale)
    rows, cols = np.searchsorted(scale, r.score[order]), np.searchsorted(scale, c.score[order])
    counts = np.bincount(rows * k + cols, minlength=k * k).reshape(k, k).astype(np.int64)
    return ScoreConfusion(judge=judge, reference=reference, scale=r.scale, counts=counts)


@dataclass(frozen=True)
class ItemErrors:
    """A judge's scores against the reference's, item by item, over the items both scored, in
    ``QAItem.order_key`` order (the order every bootstrap draws in)."""

    judge: str
    reference: str
    scale: tuple[float, ...]
    ids: tuple[str, ...]
    reference_scores: np.ndarray
    judge_scores: np.ndarray

    @property
    def abs_error(self) -> np.ndarray:
        return np.abs(self.judge_scores - self.reference_scores)

    @property
    def exact(self) -> np.ndarray:
        """1.0 where the judge gave the reference's score, else 0.0."""
        return _per_item("exact_agreement", self.reference_scores, self.judge_scores)

    @property
    def within_1(self) -> np.ndarray:
        return _per_item("within_1_agreement", self.reference_scores, self.judge_scores)

    def vector(self, metric: str) -> np.ndarray:
        """The per-item vector whose mean is mean metric ``metric`` (``MEAN_METRICS``)."""
        if metric not in MEAN_METRICS:
            raise JudgeEvalError(f"{metric!r} is not the mean of a per-item value; these are: "
                                 f"{', '.join(sorted(MEAN_METRICS))}")
        return _per_item(metric, self.reference_scores, self.judge_scores)


def item_errors(items: ScoreItems, judge: str, reference: str) -> ItemErrors:
    table = as_score_table(items)
    r, c, order = _compared(table, judge, reference)
    return ItemErrors(judge=judge, reference=reference, scale=r.scale, ids=tuple(table.ids[i] for i in order.tolist()),
                      reference_scores=r.score[order], judge_scores=c.score[order])


@dataclass(frozen=True)
class PairedErrors:
    """Two ``ItemErrors`` (``old``, ``new``: e.g. a judge before and after distillation, or two
    runs) on the items both have, aligned by item id in ``old``'s order (order_key order), for a
    paired bootstrap of a mean metric (``vectors``) and the sign test of the shift in absolute
    error (``improved`` / ``worsened`` / ``unchanged``)."""

    ids: tuple[str, ...]
    old_abs_error: np.ndarray
    new_abs_error: np.ndarray
    old_exact: np.ndarray
    new_exact: np.ndarray
    old_within_1: np.ndarray
    new_within_1: np.ndarray
    only_old: int  # items in old only (no score from both judges in new)
    only_new: int

    @property
    def improved(self) -> int:
        """Items where the new absolute error is smaller."""
        return int(np.count_nonzero(self.new_abs_error < self.old_abs_error))

    @property
    def worsened(self) -> int:
        return int(np.count_nonzero(self.new_abs_error > self.old_abs_error))

    @property
    def unchanged(self) -> int:
        return int(np.count_nonzero(self.new_abs_error == self.old_abs_error))

    def vectors(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(old, new) per-item vectors of mean metric ``metric``, aligned."""
        found = {"mae": (self.old_abs_error, self.new_abs_error),
                 "exact_agreement": (self.old_exact, self.new_exact),
                 "within_1_agreement": (self.old_within_1, self.new_within_1)}.get(metric)
        if found is None:
            raise JudgeEvalError(f"{metric!r} is not the mean of a per-item value; these are: "
                                 f"{', '.join(sorted(MEAN_METRICS))}")
        return found


def paired_errors(old: ItemErrors, new: ItemErrors) -> PairedErrors:
    """``old`` and ``new`` on their common items. Their scales must agree (a score of 3 means
    something else on another scale)."""
    if old.scale != new.scale:
        raise JudgeEvalError(f"cannot pair scores on {scale_text(old.scale)} with scores on {scale_text(new.scale)}")
    where_new = {ident: i for i, ident in enumerate(new.ids)}
    common = [(i, where_new[ident]) for i, ident in enumerate(old.ids) if ident in where_new]
    o = np.array([i for i, _ in common], dtype=np.int64)
    w = np.array([j for _, j in common], dtype=np.int64)
    return PairedErrors(ids=tuple(old.ids[i] for i in o.tolist()),
                        old_abs_error=old.abs_error[o], new_abs_error=new.abs_error[w],
                        old_exact=old.exact[o], new_exact=new.exact[w],
                        old_within_1=old.within_1[o], new_within_1=new.within_1[w],
                        only_old=len(old.ids) - len(common), only_new=len(new.ids) - len(common))


"""Compare two runs over the same test items: what a new judge (or a new version of one) changed.

Per judge present in both runs: every metric with its old and new value (counts as counts), a
paired bootstrap interval for the agreement delta, the items whose verdict changed, and two exact
two-sided McNemar tests (a binomial test on the discordant items): on "agrees with the
reference" (a conclusive verdict equal to the reference's, corrected frame; anything else counts as
not agreeing) and on "gave a conclusive verdict". A gated judge fails the comparison when

* its agreement drops significantly (p < alpha and more items lost agreement than gained it);
* it loses conclusive verdicts significantly (p < alpha and more items went from conclusive to
  inconclusive, unparseable, error or missing than the other way): a judge that stops answering
  never loses agreement on the items it no longer answers, so the first test cannot see it;
* its parse failures or errors in the new run are above the profile's ``max_parse_failures`` or
  ``max_errors``;
* or a gate it passed on the old run fails on the new one.

A single moved verdict is reported (with its item), never a failure on its own: with one
discordant item no exact test can be significant.

Every gated judge must have verdicts in both runs (else a ``JudgeEvalError`` names the judge and
the run that lacks it): a gated judge that was renamed or dropped must never pass by omission.
A judge found in only one run is listed as removed (only in the old run) or added (only in the
new one), in the text and the JSON output.

The profile comes from ``--profile``, else from the runs' ``run.json`` (``profile_from_runs``):
a comparison read with the wrong profile's reference and gated judges is worse than none.

Score judges (pointwise items, ``judge_eval.core.scores``), against the score reference: every
metric old -> new (counts as counts); over the items the judge and the reference scored in both
runs (``paired_errors``), a paired bootstrap interval of the change in MAE and in exact agreement
(``bootstrap_means``, the seed and resamples of the pairwise interval), an exact two-sided McNemar
test on exact agreement (lost vs gained) and a sign test on the absolute error (worsened vs
improved); an exact sign test on the shift of the judge's own score (higher vs lower, on the items
it scored in both runs: reported, a lenient or strict drift, never a failure on its own); and the
McNemar test on scored verdicts lost vs gained over every pointwise item. A gated score judge fails
when its MAE rises significantly (worsened > improved, p < alpha), its exact agreement drops
significantly, it loses scored verdicts significantly, its parse failures or errors exceed the
profile's maximum, or a gate it passed fails now: the pairwise rules, read for scores. Every exact
test here is the one binomial of ``mcnemar_exact`` (a sign test is a McNemar test on its two
counts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from judge_eval.errors import JudgeEvalError, RunFileError
from judge_eval.core.metrics import (Comparison, Items, JudgeStats, VerdictTable, as_table, bootstrap_means,
                                     discover_judges, frame_score, run_metrics)
from judge_eval.core.choice import CHOICE_KEY, with_choice_verdicts
from judge_eval.core.items import SCORE_SOURCES, SCORED, QAItem, scale_text
from judge_eval.core.scores import (ScoreColumn, ScoreComparison, ScoreStats, ScoreTable, item_errors,
                                    paired_errors, split_tables)

FRAME = "corrected"

#: The counts compared per judge (``Comparison`` fields), with the label the text shows.
COUNTS = {"inconclusive": "inconclusive", "parse_failures": "parse failures", "errors": "errors",
          "missing": "missing", "agreements": "agreements", "total": "compared items", "tie_items": "tie items"}
#: The rates and statistics compared per judge, with their label.
RATES = {"agreement_rate": "agreement rate", "correlation": "r", "jaccard": "Jaccard", "kappa": "kappa",
         "agreement_ci_low": "agreement CI low", "agreement_ci_high": "agreement CI high",
         "kappa_ci_low": "kappa CI low", "kappa_ci_high": "kappa CI high",
         "inconclusive_rate": "inconclusive rate", "consistency_rate": "consistency rate",
         "length_bias": "length bias"}
#: The reference judge's own counts (``JudgeStats`` fields): its verdicts bound every agreement.
REFERENCE_COUNTS = {"inconclusive": "inconclusive", "parse_failures": "parse failures", "errors": "errors",
                    "missing": "missing"}
#: The profile thresholds a gated judge's new run must not exceed, whatever the old run did.
MAX_THRESHOLDS = {"parse_failures": "max_parse_failures", "errors": "max_errors"}
#: The counts compared per score judge (``ScoreComparison`` fields), with their label.
SCORE_COUNTS = {"conclusive": "scored", "parse_failures": "parse failures", "errors": "errors", "missing": "missing",
                "n": "compared items", "exact_matches": "exact matches", "within_1_matches": "within-1 matches"}
#: The score reference's own counts (``ScoreStats`` fields; a score verdict is never inconclusive).
SCORE_REFERENCE_COUNTS = {"conclusive": "scored", "parse_failures": "parse failures", "errors": "errors",
                          "missing": "missing"}
#: The metrics compared per score judge, with their label (the interval's: ``_score_rates``).
SCORE_RATES = {"exact_agreement": "exact agreement", "within_1_agreement": "within-1 agreement", "mae": "MAE",
               "pearson": "r", "spearman": "rho", "kendall_tau_b": "tau-b", "quadratic_kappa": "QWK",
               "interval_low": "CI low", "interval_high": "CI high"}


#: Up to this many discordant pairs the McNemar tail is summed in exact integers; above, each
#: addition costs O(n) bits (76 s at 800,000 pairs), so it is summed in floats from the largest
#: term down (``_binomial_tail_half``), to about 1e-12 relative.
EXACT_SUM_MAX = 20_000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs: twice the binomial
    tail P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), at most 1 (summed in exact integers up to
    ``EXACT_SUM_MAX`` pairs, in floats above)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    if 2 * k + 1 >= n:  # b and c equal or one apart: the tail holds half the distribution or more
        return 1.0
    if n > EXACT_SUM_MAX:
        return min(1.0, 2 * _binomial_tail_half(k, n))
    # sum of comb(n, i) for i <= k, each term from the last (exact integers: comb(n, i) called
    # afresh for every i took minutes at 15,000 discordant pairs)
    term = total = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    tail = total / 2 ** n
    return min(1.0, 2 * tail)


_STIRLING = (1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188)


def _stirling_error(n: int) -> float:
    """ln(n!) - ln(sqrt(2 pi n) (n/e)^n), accurate where the difference of the two would not be
    (Loader, "Fast and accurate computation of binomial probabilities", 2000)."""
    if n <= 15:
        return math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - 0.5 * math.log(2 * math.pi)
    nn = n * n
    s0, s1, s2, s3, s4 = _STIRLING
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _deviance(x: float, mean: float) -> float:
    """x ln(x / mean) + mean - x, without its cancellation when x is near mean (Loader's bd0)."""
    if abs(x - mean) >= 0.1 * (x + mean):
        return x * math.log(x / mean) + mean - x
    v = (x - mean) / (x + mean)
    s, ej, j = (x - mean) * v, 2 * x * v, 1
    while True:
        ej *= v * v
        following = s + ej / (2 * j + 1)
        if following == s:
            return s
        s, j = following, j + 1


def _binomial_tail_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), k <= n / 2: the probability of k from Loader's
    formula, then the terms below it, each the last times i / (n - i + 1), until they no longer
    count."""
    if k == 0:
        return math.exp(-n * math.log(2))
    log_pk = (_stirling_error(n) - _stirling_error(k) - _stirling_error(n - k) - _deviance(k, n / 2)
              - _deviance(n - k, n / 2) + 0.5 * math.log(n / (2 * math.pi * k * (n - k))))
    term = total = 1.0
    for i in range(k, 0, -1):
        term *= i / (n - i + 1)
        total += term
        if term < 1e-17 * total:
            break
    return math.exp(log_pk) * total


def agreement_vector(items: Items, judge: str, reference: str) -> np.ndarray:
    if isinstance(items, VerdictTable):
        r, c = items.column(reference), items.column(judge)
        agree = r.conclusive & c.conclusive & (r.frame_scores(FRAME) == c.frame_scores(FRAME))
        return agree.astype(float)
    out = []
    for item in items:
        r, c = item.verdict(reference), item.verdict(judge)
        agree = (r is not None and c is not None and r.conclusive and c.conclusive
                 and frame_score(r, FRAME) == frame_score(c, FRAME))
        out.append(1.0 if agree else 0.0)
    return np.array(out)


# --------------------------------------------------------------------------- which profile


PROFILE_KEY = "profile"  # the key of run.json that names the profile a recording ran with


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a comparison reads and where its name came from (shown in the header)."""

    name: str
    origin: str


def run_profile(path: Path | str) -> tuple[str | None, str]:
    """The profile named in run ``path``'s ``run.json`` (``None`` without one) and what the file
    says about it, for the messages: "names profile 'local'", "no run.json", ...

    Only ``run.json`` is read: the test items are checked later, by the comparison itself."""
    from judge_eval.core.store import RUN_JSON, read_run

    option = "or pass --profile NAME (compare then does not read run.json)"
    try:
        meta = read_run(path, require=(), parts=("meta",)).meta
    except RunFileError as exc:
        if exc.path.name != RUN_JSON:
            raise
        raise RunFileError(exc.path, exc.problem, line=exc.line, field=exc.field,
                           fix=f"fix {RUN_JSON}, {option}") from None
    if not meta and not (Path(path) / RUN_JSON).exists():
        return None, f"no {RUN_JSON}"
    name = meta.get(PROFILE_KEY)
    if name is None:
        return None, f"{RUN_JSON} names no profile (no key {PROFILE_KEY!r}; an import writes none)"
    if not isinstance(name, str) or not name:
        raise RunFileError(Path(path) / RUN_JSON, f"key {PROFILE_KEY!r} should name a profile, found {name!r}",
                           fix=f"fix {RUN_JSON}, {option}")
    return name, f"{RUN_JSON} names profile {name!r}"


def profile_from_runs(old: Path | str, new: Path | str, *, known: Sequence[str] = ()) -> ProfileChoice:
    """The profile both runs' ``run.json`` name; when only one run names one, that one (the other
    run, an import or a run without ``run.json``, cannot contradict it, and the header says so).
    Runs naming different profiles, or none, are an error asking for ``--profile``: the profile
    decides the reference, the gated judges and the thresholds."""
    (old_name, old_says), (new_name, new_says) = run_profile(old), run_profile(new)
    choices = f" (profiles in the project: {', '.join(known)})" if known else ""
    if old_name is not None and new_name is not None:
        if old_name == new_name:
            return ProfileChoice(old_name, "run.json of both runs")
        raise JudgeEvalError(
            f"the runs name different profiles: {old}: {old_says}; {new}: {new_says}. Which profile's "
            f"reference, gated judges and thresholds apply is yours to say: pass --profile NAME "
            f"(--profile {old_name} or --profile {new_name}){choices}")
    if old_name is None and new_name is None:
        raise JudgeEvalError(
            f"no profile to compare with: {old}: {old_says}; {new}: {new_says}. Pass --profile NAME, the "
            f"profile whose reference, gated judges and thresholds apply{choices}")
    if new_name is not None:
        return ProfileChoice(new_name, f"run.json of {new}; {old}: {old_says}")
    assert old_name is not None
    return ProfileChoice(old_name, f"run.json of {old}; {new}: {new_says}")


# --------------------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class ChangedItem:
    id: str
    old: str  # "source score"
    new: str


@dataclass(frozen=True)
class OverMax:
    """A count of the new run above the profile's maximum for it."""

    metric: str  # "parse_failures" or "errors"
    threshold: str  # "max_parse_failures" or "max_errors"
    old: int
    new: int
    allowed: int

    @property
    def text(self) -> str:
        return f"{COUNTS[self.metric]} {self.new} > {self.threshold} {self.allowed} (was {self.old})"


@dataclass(frozen=True)
class JudgeComparison:
    judge: str
    gated: bool
    deltas: dict[str, float | int | None]  # new - old, corrected frame, ties with (None: a side undefined)
    agreement_delta_ci: tuple[float, float]  # paired bootstrap over items, share agreeing with the reference
    lost_agreement: int  # McNemar b: agreed before, not now
    gained_agreement: int  # McNemar c
    p_value: float
    significant_drop: bool
    changed: list[ChangedItem] = field(default_factory=list)
    new_gate_failures: list[str] = field(default_factory=list)
    old: dict[str, float | int | None] = field(default_factory=dict)  # every metric of COUNTS and RATES
    new: dict[str, float | int | None] = field(default_factory=dict)
    lost_conclusive: int = 0  # conclusive before, not now (inconclusive, parse failure, error, missing)
    gained_conclusive: int = 0
    conclusive_p_value: float = 1.0
    significant_conclusive_loss: bool = False
    over_max: list[OverMax] = field(default_factory=list)  # only for a gated judge with a profile

    def fail_reasons(self, alpha: float) -> list[str]:
        """Each rule that fails this judge, in words (empty: it does not fail)."""
        if not self.gated:
            return []
        reasons = []
        if self.significant_drop:
            reasons.append(f"agreement with the reference dropped significantly (lost on {self.lost_agreement} "
                           f"item(s), gained on {self.gained_agreement}, p = {sig(self.p_value)} < alpha {alpha})")
        if self.significant_conclusive_loss:
            reasons.append(f"conclusive verdicts lost significantly (lost on {self.lost_conclusive} item(s), "
                           f"gained on {self.gained_conclusive}, p = {sig(self.conclusive_p_value)} < alpha "
                           f"{alpha})")
        reasons += [m.text for m in self.over_max]
        if self.new_gate_failures:
            reasons.append(f"gate(s) passed before and fail now: {', '.join(self.new_gate_failures)}")
        return reasons

    @property
    def fails(self) -> bool:
        return self.gated and (self.significant_drop or self.significant_conclusive_loss or bool(self.over_max)
                               or bool(self.new_gate_failures))


@dataclass(frozen=True)
class ScoreJudgeComparison:
    """A score judge in both runs, against the score reference of each (module docstring)."""

    judge: str
    gated: bool
    scale: tuple[float, ...]
    old: dict[str, float | int | None]  # every metric of SCORE_COUNTS and SCORE_RATES
    new: dict[str, float | int | None]
    deltas: dict[str, float | int | None]  # new - old (None: a side undefined)
    paired: int  # items the judge and the reference scored in both runs: the paired tests' items
    mae_delta_ci: tuple[float, float] | None  # paired bootstrap of new MAE - old MAE (None: no paired item)
    exact_delta_ci: tuple[float, float] | None  # the same for exact agreement
    worsened: int  # absolute error larger in the new run
    improved: int
    unchanged: int
    error_p_value: float  # sign test of worsened vs improved
    significant_mae_rise: bool
    lost_exact: int  # the reference's score before, not now
    gained_exact: int
    exact_p_value: float
    significant_exact_drop: bool
    shift_up: int  # items the judge scored in both runs, higher now
    shift_down: int
    shift_p_value: float  # sign test of the shift: reported, never a failure on its own
    lost_scored: int  # scored before; now a parse failure, an error or missing
    gained_scored: int
    scored_p_value: float
    significant_scored_loss: bool
    changed: list[ChangedItem] = field(default_factory=list)
    new_gate_failures: list[str] = field(default_factory=list)
    over_max: list[OverMax] = field(default_factory=list)  # only for a gated judge with a profile

    def fail_reasons(self, alpha: float) -> list[str]:
        """Each rule that fails this judge, in words (empty: it does not fail)."""
        if not self.gated:
            return []
        reasons = []
        if self.significant_mae_rise:
            reasons.append(f"MAE rose significantly (absolute error worsened on {self.worsened} item(s), improved "
                           f"on {self.improved}, p = {sig(self.error_p_value)} < alpha {alpha})")
        if self.significant_exact_drop:
            reasons.append(f"exact agreement with the reference dropped significantly (lost on {self.lost_exact} "
                           f"item(s), gained on {self.gained_exact}, p = {sig(self.exact_p_value)} < alpha {alpha})")
        if self.significant_scored_loss:
            reasons.append(f"scored verdicts lost significantly (lost on {self.lost_scored} item(s), gained on "
                           f"{self.gained_scored}, p = {sig(self.scored_p_value)} < alpha {alpha})")
        reasons += [m.text for m in self.over_max]
        if self.new_gate_failures:
            reasons.append(f"gate(s) passed before and fail now: {', '.join(self.new_gate_failures)}")
        return reasons

    @property
    def fails(self) -> bool:
        return self.gated and (self.significant_mae_rise or self.significant_exact_drop
                               or self.significant_scored_loss or bool(self.over_max) or bool(self.new_gate_failures))


@dataclass(frozen=True)
class RunComparison:
    old: str
    new: str
    reference: str
    alpha: float
    judges: list[JudgeComparison]
    removed: list[str] = field(default_factory=list)  # judges with verdicts in the old run only
    added: list[str] = field(default_factory=list)  # judges with verdicts in the new run only
    profile: str | None = None  # the profile whose gates and thresholds applied
    profile_origin: str = ""  # where its name came from: "--profile", "run.json of both runs", ...
    gated: list[str] = field(default_factory=list)
    items: int = 0
    reference_old: dict[str, int] = field(default_factory=dict)  # the reference's REFERENCE_COUNTS
    reference_new: dict[str, int] = field(default_factory=dict)
    score_judges: list[ScoreJudgeComparison] = field(default_factory=list)
    score_reference: str | None = None  # None: the runs hold no pointwise item
    score_items: int = 0
    score_interval: str | None = None  # the metric of the intervals in SCORE_RATES
    score_reference_old: dict[str, int] = field(default_factory=dict)  # the score reference's SCORE_REFERENCE_COUNTS
    score_reference_new: dict[str, int] = field(default_factory=dict)

    @property
    def fails(self) -> bool:
        return any(j.fails for j in self.judges) or any(j.fails for j in self.score_judges)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for j, data in [*zip(self.judges, out["judges"]), *zip(self.score_judges, out["score_judges"])]:
            data["fails"] = j.fails
            data["fail_reasons"] = j.fail_reasons(self.alpha)
        out["fails"] = self.fails
        return out


def _verdict_str(item: QAItem, judge: str) -> str:
    v = item.verdict(judge)
    return "missing" if v is None else f"{v.source} {v.score}"


def _values(c: Comparison) -> dict[str, float | int | None]:
    """Every metric of COUNTS and RATES of one judge in one run."""
    ci = c.agreement_ci
    kci = getattr(c, "kappa_ci", None)  # the kappa interval, where the metrics compute one
    extra = {"agreement_ci_low": ci[0] if ci else None, "agreement_ci_high": ci[1] if ci else None,
             "kappa_ci_low": kci[0] if kci else None, "kappa_ci_high": kci[1] if kci else None,
             "inconclusive_rate": c.inconclusive_rate}
    return {k: extra[k] if k in extra else getattr(c, k) for k in (*COUNTS, *RATES)}


def _delta(old: float | int | None, new: float | int | None) -> float | int | None:
    if old is None or new is None:
        return None
    return new - old if isinstance(old, int) and isinstance(new, int) else float(new - old)


def _reference_counts(stats: JudgeStats) -> dict[str, int]:
    return {k: getattr(stats, k) for k in REFERENCE_COUNTS}


def _over_max(old: dict[str, Any], new: dict[str, Any], profile: Any) -> list[OverMax]:
    out = []
    for metric, threshold in MAX_THRESHOLDS.items():
        allowed = getattr(profile.thresholds, threshold)
        if allowed is not None and new[metric] > allowed:
            out.append(OverMax(metric, threshold, old[metric], new[metric], allowed))
    return out


def _same_items(old_ids: Sequence[str], new_ids: Sequence[str], old_path: str, new_path: str,
                what: str = "test items") -> None:
    """The runs must hold the same items (of one kind, ``what``): a comparison is item by item."""
    old_set, new_set = set(old_ids), set(new_ids)
    if old_set != new_set:
        only_old = sorted(old_set - new_set)
        only_new = sorted(new_set - old_set)
        raise JudgeEvalError(f"the runs do not hold the same {what}: {len(only_old)} only in {old_path} "
                             f"({', '.join(only_old[:3])}), {len(only_new)} only in {new_path} "
                             f"({', '.join(only_new[:3])}); compare runs of the same test set")


def compare_runs(old: Items, new: Items, *, reference: str = "gpt_4",
                 gated: Sequence[str] = (), profile: Any = None, old_path: str = "OLD", new_path: str = "NEW",
                 alpha: float = 0.05, seed: int = 0, resamples: int = 2000,
                 profile_origin: str = "", old_scores: ScoreTable | None = None, new_scores: ScoreTable | None = None,
                 score_reference: str | None = None, score_interval: str | None = None,
                 choice_margin: float | None = None) -> RunComparison:
    """``old`` and ``new``: each a run's items or their ``VerdictTable`` (what ``load_table``
    reads, a few arrays where 1,000,000 items take gigabytes) with ``old_scores`` / ``new_scores``,
    the ``ScoreTable`` of its pointwise items (``load_metrics_input`` reads both; items carry their
    own). ``profile`` (a ``Profile``) adds its gates and its ``max_parse_failures``/``max_errors``
    to the rules of the gated judges. Score judges are compared against ``score_reference``
    (default: ``reference``) with the interval of ``score_interval`` (default: the profile's).

    A judge whose verdicts carry choice probabilities gets its ``<judge>@choice`` judge in each
    run that holds items (not a ``VerdictTable``: it has no ``extra``), decided with
    ``choice_margin`` (default: the profile's ``choice_margin``, else 0.0) and compared like any
    judge."""
    if old_scores is None:
        old_scores = ScoreTable.from_items(() if isinstance(old, VerdictTable) else old)
    if new_scores is None:
        new_scores = ScoreTable.from_items(() if isinstance(new, VerdictTable) else new)
    if score_interval is None:
        score_interval = profile.score_interval if profile is not None else "exact_agreement"
    if choice_margin is None:
        choice_margin = profile.choice_margin if profile is not None else 0.0
    score_ref = score_reference or reference
    # the pairwise items of a list of items (their positions are the VerdictTable's)
    old_pairs = old if isinstance(old, VerdictTable) or not len(old_scores) else [i for i in old if len(i.answers) != 1]
    new_pairs = new if isinstance(new, VerdictTable) or not len(new_scores) else [i for i in new if len(i.answers) != 1]
    # the ``<judge>@choice`` verdicts, before the tables are built: their columns are compared item by item
    if not isinstance(old_pairs, VerdictTable):
        old_pairs = with_choice_verdicts(old_pairs, choice_margin)
    if not isinstance(new_pairs, VerdictTable):
        new_pairs = with_choice_verdicts(new_pairs, choice_margin)
    old_t, new_t = as_table(old_pairs), as_table(new_pairs)
    _same_items([*old_t.ids, *old_scores.ids], [*new_t.ids, *new_scores.ids], old_path, new_path)
    _same_items(old_t.ids, new_t.ids, old_path, new_path, "pairwise items (an item with two answers in one run has one "
                "in the other)")
    old_by_id = {i: pos for pos, i in enumerate(old_t.ids)}
    new_by_id = {i: pos for pos, i in enumerate(new_t.ids)}
    # the bootstrap order of metrics.compare: by the old items' order_key
    old_pos = sorted(old_by_id.values(), key=old_t.rank.__getitem__)
    ids = [old_t.ids[p] for p in old_pos]
    new_pos = [new_by_id[i] for i in ids]
    del old_by_id, new_by_id
    old_items, new_items = old_t.take(old_pos), new_t.take(new_pos)
    old_found = [*discover_judges(old_items), *old_scores.scales]
    new_found = [*discover_judges(new_items), *new_scores.scales]
    references = ([reference] if len(old_t) or not len(old_scores) else []) + ([score_ref] if len(old_scores) else [])
    for j in dict.fromkeys([*references, *gated]):
        lacking = [path for path, found in ((old_path, old_found), (new_path, new_found)) if j not in found]
        if lacking:
            role, key = ("reference judge", "reference" if j == reference else "score_reference") \
                if j in references else ("gated judge", "gated")
            present = [path for path in (old_path, new_path) if path not in lacking]
            raise JudgeEvalError(
                f"{role} {j!r} has no verdict in run {' nor in run '.join(lacking)}"
                f"{f' (run {present[0]} has its verdicts)' if present else ''}; judges found in {old_path}: "
                f"{', '.join(old_found) or 'none'}; in {new_path}: {', '.join(new_found) or 'none'}. "
                f"A {role} must be in both runs to be compared: if it was renamed or dropped, fix the run "
                f"or `{key}` of the profile")
    score_options = {"scores": None, "score_reference": score_reference, "score_interval": score_interval,
                     "choice_margin": choice_margin}
    # judge groups need the items themselves (judge_eval.core.groups); a table has none
    old_m = run_metrics(old_items if isinstance(old_pairs, VerdictTable) else [old_pairs[p] for p in old_pos],
                        reference, seed=seed, resamples=resamples, **{**score_options, "scores": old_scores})
    new_m = run_metrics(new_items if isinstance(new_pairs, VerdictTable) else [new_pairs[p] for p in new_pos],
                        reference, seed=seed, resamples=resamples, **{**score_options, "scores": new_scores})
    judges = [j for j in old_m.judges if j in new_m.judges]
    score_judges = [j for j in old_m.scores if j in new_m.scores]
    _check_gated_compared(gated, judges, score_judges, old_m, new_m, profile, old_path, new_path)
    removed = [j for j in (*old_m.judges, *old_m.scores) if j not in new_m.judges and j not in new_m.scores]
    added = [j for j in (*new_m.judges, *new_m.scores) if j not in old_m.judges and j not in old_m.scores]
    old_failures: dict[str, set[str]] = {}
    new_failures: dict[str, set[str]] = {}
    if profile is not None:
        from judge_eval.gating.gates import check_judge

        for j in [*judges, *score_judges]:
            if j in gated:
                old_failures[j] = {f.metric for f in check_judge(old_m, j, profile, run_dir=old_path)}
                new_failures[j] = {f.metric for f in check_judge(new_m, j, profile, run_dir=new_path)}
    results = []
    for j in judges:
        a_old = agreement_vector(old_items, j, reference)
        a_new = agreement_vector(new_items, j, reference)
        b = int(((a_old == 1) & (a_new == 0)).sum())
        c = int(((a_old == 0) & (a_new == 1)).sum())
        p = mcnemar_exact(b, c)
        if ids:
            # Paired: bootstrap_means resamples both runs' vectors alike (one index table, or
            # above 10,000 items one multinomial over the four agree/disagree cells).
            new_means, old_means = bootstrap_means(a_new, a_old, seed=seed, resamples=resamples)
            diffs = new_means - old_means
            ci = tuple(float(x) for x in np.percentile(diffs, [2.5, 97.5]))
        else:
            ci = (0.0, 0.0)
        oc, nc = old_items.column(j), new_items.column(j)
        lost_c = int((oc.conclusive & ~nc.conclusive).sum())
        gained_c = int((~oc.conclusive & nc.conclusive).sum())
        p_c = mcnemar_exact(lost_c, gained_c)
        old_v, new_v = _values(old_m.judges[j][FRAME]), _values(new_m.judges[j][FRAME])
        same_score = (oc.score == nc.score) | (np.isnan(oc.score) & np.isnan(nc.score))
        changed = [ChangedItem(ids[i], oc.verdict_str(i), nc.verdict_str(i))
                   for i in np.flatnonzero((oc.source != nc.source) | ~same_score).tolist()]
        is_gated = j in gated
        results.append(JudgeComparison(
            judge=j, gated=is_gated, deltas={k: _delta(old_v[k], new_v[k]) for k in old_v},
            agreement_delta_ci=ci, lost_agreement=b, gained_agreement=c, p_value=p,
            significant_drop=p < alpha and b > c, changed=changed,
            new_gate_failures=sorted(new_failures.get(j, set()) - old_failures.get(j, set())),
            old=old_v, new=new_v, lost_conclusive=lost_c, gained_conclusive=gained_c, conclusive_p_value=p_c,
            significant_conclusive_loss=p_c < alpha and lost_c > gained_c,
            over_max=_over_max(old_v, new_v, profile) if is_gated and profile is not None else [],
        ))
    score_results = [
        _compare_score_judge(j, old_scores, new_scores, old_m.scores[j], new_m.scores[j], gated=j in gated,
                             profile=profile, alpha=alpha, seed=seed, resamples=resamples, old_path=old_path,
                             new_path=new_path, new_gate_failures=sorted(new_failures.get(j, set())
                                                                         - old_failures.get(j, set())))
        for j in score_judges]
    has_scores = old_m.score_reference_stats is not None and new_m.score_reference_stats is not None
    return RunComparison(old=old_path, new=new_path, reference=reference, alpha=alpha, judges=results,
                         removed=removed, added=added, profile=profile.name if profile is not None else None,
                         profile_origin=profile_origin, gated=list(gated), items=len(ids),
                         reference_old=_reference_counts(old_m.reference_stats) if old_m.has_pairwise else {},
                         reference_new=_reference_counts(new_m.reference_stats) if new_m.has_pairwise else {},
                         score_judges=score_results, score_reference=old_m.score_reference,
                         score_items=len(old_scores), score_interval=old_m.score_interval,
                         score_reference_old=_score_reference_counts(old_m.score_reference_stats) if has_scores else {},
                         score_reference_new=_score_reference_counts(new_m.score_reference_stats) if has_scores else {})


def _check_gated_compared(gated: Sequence[str], judges: Sequence[str], score_judges: Sequence[str], old_m: Any,
                          new_m: Any, profile: Any, old_path: str, new_path: str) -> None:
    """Every gated judge is compared (a pairwise or a score judge in both runs): one that is not
    (the reference itself, or a judge of one kind in one run and of the other in the other) would
    otherwise be left out without a word, and the comparison say OK on it."""
    from judge_eval.gating.gates import reference_gated

    for j in gated:
        if j in judges or j in score_judges:
            continue
        if j in (old_m.reference, old_m.score_reference, new_m.reference, new_m.score_reference):
            raise JudgeEvalError(reference_gated(j, profile.name if profile is not None else "(none)"))
        old_kind, new_kind = ("a pairwise judge" if j in m.judges else "a score judge" for m in (old_m, new_m))
        raise JudgeEvalError(f"gated judge {j!r} is {old_kind} in run {old_path} but {new_kind} in run {new_path}, "
                             "so it cannot be compared; compare runs in which it keeps its kind")


def _score_reference_counts(stats: ScoreStats | None) -> dict[str, int]:
    """The score reference's SCORE_REFERENCE_COUNTS."""
    assert stats is not None
    return {k: getattr(stats, k) for k in SCORE_REFERENCE_COUNTS}


def _score_values(c: ScoreComparison) -> dict[str, float | int | None]:
    """Every metric of SCORE_COUNTS and SCORE_RATES of one score judge in one run."""
    extra = {"interval_low": c.interval[0] if c.interval else None,
             "interval_high": c.interval[1] if c.interval else None}
    return {k: extra[k] if k in extra else getattr(c, k) for k in (*SCORE_COUNTS, *SCORE_RATES)}


def _score_strs(column: ScoreColumn, rows: np.ndarray) -> list[str]:
    """``scored 4``, ``output-cannot-be-parsed``, ``error`` or ``missing``: the verdicts of a column
    at positions ``rows``, each looked up by position (a column-wide mask per item made listing n
    changed items O(n^2)), the text of each score of the scale made once."""
    scored = {float(v): f"{SCORED} {scale_text([v])[1:-1]}" for v in column.scale}
    return ["missing" if code < 0 else scored[score] if SCORE_SOURCES[code] == SCORED else SCORE_SOURCES[code]
            for code, score in zip(column.source[rows].tolist(), column.score[rows].tolist())]


def _paired_interval(old: np.ndarray, new: np.ndarray, *, seed: int, resamples: int) -> tuple[float, float] | None:
    """Percentile 95% interval of mean(new) - mean(old) over resamples of the paired items."""
    if len(old) == 0:
        return None
    new_means, old_means = bootstrap_means(new, old, seed=seed, resamples=resamples)
    low, high = np.percentile(new_means - old_means, [2.5, 97.5])
    return float(low), float(high)


def _compare_score_judge(judge: str, old_s: ScoreTable, new_s: ScoreTable, old_c: ScoreComparison,
                         new_c: ScoreComparison, *, gated: bool, profile: Any, alpha: float, seed: int, resamples: int,
                         old_path: str, new_path: str, new_gate_failures: list[str]) -> ScoreJudgeComparison:
    """One score judge in both runs (module docstring: what is tested, on which items)."""
    if old_c.scale != new_c.scale:
        raise JudgeEvalError(
            f"score judge {judge!r} scores on {scale_text(old_c.scale)} in run {old_path} but on "
            f"{scale_text(new_c.scale)} in run {new_path}; a score means something else on another scale, so the runs "
            "cannot be compared item by item. Compare runs in which the judge keeps its scale (or rename it)")
    pe = paired_errors(item_errors(old_s, judge, old_c.reference), item_errors(new_s, judge, new_c.reference))
    lost_exact = int(np.count_nonzero((pe.old_exact == 1) & (pe.new_exact == 0)))
    gained_exact = int(np.count_nonzero((pe.old_exact == 0) & (pe.new_exact == 1)))
    # every pointwise item, aligned by id in the old run's order_key order
    order = np.argsort(old_s.rank, kind="stable")
    where_new = {ident: pos for pos, ident in enumerate(new_s.ids)}
    new_order = np.array([where_new[old_s.ids[i]] for i in order.tolist()], dtype=np.int64)
    oc, nc = old_s.column(judge), new_s.column(judge)
    o_scored, n_scored = oc.conclusive[order], nc.conclusive[new_order]
    both = o_scored & n_scored
    o_score, n_score = oc.score[order], nc.score[new_order]
    shift_up = int(np.count_nonzero(both & (n_score > o_score)))
    shift_down = int(np.count_nonzero(both & (n_score < o_score)))
    lost_scored = int(np.count_nonzero(o_scored & ~n_scored))
    gained_scored = int(np.count_nonzero(~o_scored & n_scored))
    same = (oc.source[order] == nc.source[new_order]) & ((o_score == n_score) | (np.isnan(o_score) & np.isnan(n_score)))
    moved = np.flatnonzero(~same)
    changed = [ChangedItem(old_s.ids[i], before, after) for i, before, after in
               zip(order[moved].tolist(), _score_strs(oc, order[moved]), _score_strs(nc, new_order[moved]))]
    error_p, exact_p = mcnemar_exact(pe.worsened, pe.improved), mcnemar_exact(lost_exact, gained_exact)
    scored_p = mcnemar_exact(lost_scored, gained_scored)
    old_v, new_v = _score_values(old_c), _score_values(new_c)
    return ScoreJudgeComparison(
        judge=judge, gated=gated, scale=old_c.scale, old=old_v, new=new_v,
        deltas={k: _delta(old_v[k], new_v[k]) for k in old_v}, paired=len(pe.ids),
        mae_delta_ci=_paired_interval(*pe.vectors("mae"), seed=seed, resamples=resamples),
        exact_delta_ci=_paired_interval(*pe.vectors("exact_agreement"), seed=seed, resamples=resamples),
        worsened=pe.worsened, improved=pe.improved, unchanged=pe.unchanged, error_p_value=error_p,
        significant_mae_rise=error_p < alpha and pe.worsened > pe.improved,
        lost_exact=lost_exact, gained_exact=gained_exact, exact_p_value=exact_p,
        significant_exact_drop=exact_p < alpha and lost_exact > gained_exact,
        shift_up=shift_up, shift_down=shift_down, shift_p_value=mcnemar_exact(shift_up, shift_down),
        lost_scored=lost_scored, gained_scored=gained_scored, scored_p_value=scored_p,
        significant_scored_loss=scored_p < alpha and lost_scored > gained_scored, changed=changed,
        new_gate_failures=new_gate_failures,
        over_max=_over_max(old_v, new_v, profile) if gated and profile is not None else [])


# --------------------------------------------------------------------------- text


def sig(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros kept (``1.00``); None is ``n/a``
    (the compact report's format; gating sits below reporting, so it has its own copy)."""
    if value is None:
        return "n/a"
    text = f"{value:#.{digits}g}"
    return text if "e" in text else text.rstrip(".")


def _signed(value: float) -> str:
    text = f"{value:+#.3g}"
    return text if "e" in text else text.rstrip(".")


def _rate_change(label: str, old: float | None, new: float | None) -> str:
    """``agreement rate 0.936 -> 0.915 (-0.0213)``: 3 significant digits, more when 3 would
    show two different values alike."""
    if old is None or new is None:
        return f"{label} {sig(old)} -> {sig(new)}"
    digits = 3
    while digits < 17 and sig(old, digits) == sig(new, digits):
        digits += 1
    return f"{label} {sig(old, digits)} -> {sig(new, digits)} ({_signed(new - old)})"


def _count_change(label: str, old: int, new: int) -> str:
    return f"{label} {old} -> {new} ({new - old:+d})"


def _changes_line(title: str, labels: dict[str, str], old: dict[str, Any], new: dict[str, Any],
                  counts: bool) -> str:
    """``title: <every changed value, old -> new>; unchanged: <the others, with their value>``, or
    ``title unchanged: ...`` when nothing changed."""
    changed, same = [], []
    for key, label in labels.items():
        x, y = old[key], new[key]
        if x == y:
            same.append(f"{label} {x if counts else sig(x)}")
        else:
            changed.append(_count_change(label, x, y) if counts else _rate_change(label, x, y))
    unchanged = f"unchanged: {', '.join(same)}"
    if not changed:
        return f"  {title} {unchanged}"
    return f"  {title}: {', '.join(changed)}" + (f"; {unchanged}" if same else "")


def _last_line(cmp: RunComparison) -> str:
    """``FAIL``/``OK`` and, per gated judge, the rules that fired (or that none did)."""
    gated: list[Any] = [j for j in (*cmp.judges, *cmp.score_judges) if j.gated]
    if cmp.fails:
        return "FAIL: a gated judge got worse: " + "; ".join(
            f"{j.judge}: {'; '.join(j.fail_reasons(cmp.alpha))}" for j in gated if j.fails)
    if not gated:
        return "OK: no gated judge to check"
    return "OK: no gated judge got worse (" + "; ".join(f"{j.judge}: no failure rule fired" for j in gated) + ")"


def render_comparison(cmp: RunComparison) -> str:
    pairwise = cmp.items > 0 or cmp.score_reference is None
    if pairwise:
        lines = [f"Comparing {cmp.old} -> {cmp.new} against reference {cmp.reference} ({FRAME} frame, ties with; "
                 f"exact McNemar tests, alpha {cmp.alpha})"]
    else:
        lines = [f"Comparing {cmp.old} -> {cmp.new}: score judges against reference {cmp.score_reference} (paired "
                 f"bootstrap intervals; exact McNemar and sign tests, alpha {cmp.alpha})"]
    where = f"profile {cmp.profile} (from {cmp.profile_origin})" if cmp.profile else "no profile"
    count = (f"{cmp.items} test items" if cmp.score_reference is None else f"{cmp.score_items} pointwise test items"
             if not cmp.items else f"{cmp.items} pairwise and {cmp.score_items} pointwise test items")
    lines.append(f"{where}; gated judge(s): {', '.join(cmp.gated) or 'none'}; {count}")
    if cmp.reference_old:
        lines.append(_changes_line(f"reference {cmp.reference} counts", REFERENCE_COUNTS, cmp.reference_old,
                                   cmp.reference_new, counts=True).lstrip())
    for j in cmp.judges:
        lines += ["", f"{j.judge}{' (gated)' if j.gated else ''}"]
        if j.old:
            lines += [_changes_line("counts", COUNTS, j.old, j.new, counts=True),
                      _changes_line("metrics", RATES, j.old, j.new, counts=False)]
        lines += [f"  share of items agreeing with the reference: 95% interval of the change "
                  f"[{_signed(j.agreement_delta_ci[0])}, {_signed(j.agreement_delta_ci[1])}]",
                  f"  lost agreement on {j.lost_agreement} item(s), gained on {j.gained_agreement}; "
                  f"p = {sig(j.p_value)}{' -> SIGNIFICANT DROP' if j.significant_drop else ''}",
                  f"  conclusive verdicts: lost on {j.lost_conclusive} item(s), gained on {j.gained_conclusive}; "
                  f"p = {sig(j.conclusive_p_value)}"
                  + (" -> SIGNIFICANT LOSS" if j.significant_conclusive_loss
                     else " (reported, not significant)" if j.lost_conclusive > j.gained_conclusive else ""),
                  f"  verdicts changed on {len(j.changed)} item(s)"]
        lines += [f"    {c.id}: {c.old} -> {c.new}" for c in j.changed]
        if j.over_max:
            lines.append(f"  above the profile's maximum: {', '.join(m.text for m in j.over_max)}")
        if j.new_gate_failures:
            lines.append(f"  gates that passed before and fail now: {', '.join(j.new_gate_failures)}")
    if cmp.score_reference is not None:
        lines += _score_lines(cmp, pairwise)
    if cmp.removed or cmp.added:
        lines.append("")
    if cmp.removed:
        lines.append(f"removed: judge(s) with verdicts in {cmp.old} only, not compared: {', '.join(cmp.removed)}")
    if cmp.added:
        lines.append(f"added: judge(s) with verdicts in {cmp.new} only, not compared: {', '.join(cmp.added)}")
    lines += ["", _last_line(cmp)]
    return "\n".join(lines) + "\n"


def _interval_text(ci: tuple[float, float] | None) -> str:
    return f"[{_signed(ci[0])}, {_signed(ci[1])}]" if ci is not None else "n/a (no item paired)"


def _score_lines(cmp: RunComparison, pairwise: bool) -> list[str]:
    """The score judges' part of ``render_comparison``."""
    short = {"exact_agreement": "exact", "within_1_agreement": "within-1", "mae": "MAE", "pearson": "r",
             "spearman": "rho", "kendall_tau_b": "tau-b", "quadratic_kappa": "QWK"}.get(cmp.score_interval or "")
    rates = {**SCORE_RATES, "interval_low": f"{short} CI low", "interval_high": f"{short} CI high"}
    lines = []
    if pairwise:
        lines += ["", f"score judges: {cmp.score_items} pointwise test items, against reference {cmp.score_reference}"]
    if cmp.score_reference_old:
        lines.append(_changes_line(f"reference {cmp.score_reference} counts", SCORE_REFERENCE_COUNTS,
                                   cmp.score_reference_old, cmp.score_reference_new, counts=True).lstrip())
    for j in cmp.score_judges:
        lines += ["", f"{j.judge} ({'gated; ' if j.gated else ''}score judge, scale {scale_text(j.scale)})",
                  _changes_line("counts", SCORE_COUNTS, j.old, j.new, counts=True),
                  _changes_line("metrics", rates, j.old, j.new, counts=False),
                  f"  paired: {j.paired} item(s) scored by {j.judge} and the reference in both runs",
                  f"  exact agreement: 95% interval of the change {_interval_text(j.exact_delta_ci)}; lost on "
                  f"{j.lost_exact} item(s), gained on {j.gained_exact}; p = {sig(j.exact_p_value)}"
                  + (" -> SIGNIFICANT DROP" if j.significant_exact_drop else ""),
                  f"  MAE: 95% interval of the change {_interval_text(j.mae_delta_ci)}; absolute error worsened on "
                  f"{j.worsened} item(s), improved on {j.improved}, unchanged on {j.unchanged}; p = "
                  f"{sig(j.error_p_value)}" + (" -> SIGNIFICANT RISE" if j.significant_mae_rise else ""),
                  f"  score shift (items {j.judge} scored in both runs): higher on {j.shift_up} item(s), lower on "
                  f"{j.shift_down}; p = {sig(j.shift_p_value)} (reported, never a failure on its own)",
                  f"  scored verdicts: lost on {j.lost_scored} item(s), gained on {j.gained_scored}; p = "
                  f"{sig(j.scored_p_value)}" + (" -> SIGNIFICANT LOSS" if j.significant_scored_loss
                                                else " (reported, not significant)" if j.lost_scored > j.gained_scored
                                                else ""),
                  f"  verdicts changed on {len(j.changed)} item(s)"]
        lines += [f"    {c.id}: {c.old} -> {c.new}" for c in j.changed]
        if j.over_max:
            lines.append(f"  above the profile's maximum: {', '.join(m.text for m in j.over_max)}")
        if j.new_gate_failures:
            lines.append(f"  gates that passed before and fail now: {', '.join(j.new_gate_failures)}")
    return lines


def load_items(path: Path | str) -> list[QAItem]:
    from judge_eval.core.store import read_run

    return list(read_run(path, require=("test",)).test)


def load_tables(path: Path | str) -> tuple[VerdictTable, ScoreTable]:
    """The test items of run ``path``, read a line at a time, as the ``VerdictTable`` of its
    pairwise items and the ``ScoreTable`` of its pointwise ones (``split_tables``): what report,
    gate and compare need of them, with ``read_run``'s checks and errors."""
    from judge_eval.core.store import stream_split

    return split_tables(stream_split(path, "test"))


def load_table(path: Path | str) -> VerdictTable:
    """The ``VerdictTable`` of ``load_tables``: the run's pairwise test items."""
    return load_tables(path)[0]


#: The bytes a line of a test file holds when one of its verdicts may carry choice probabilities
#: (``judge_eval.core.choice.CHOICE_KEY`` as a JSON key; an answer text holding the word choice
#: has it only when quoted alone, a false positive ``has_choice_verdicts`` then parses away).
_CHOICE_BYTES = b'"' + CHOICE_KEY.encode() + b'"'


def has_choice_verdicts(path: Path | str) -> bool:
    """Whether the test file of run ``path`` holds a verdict with choice probabilities: an
    evaluation whose ``choice`` (``CHOICE_KEY``) is an object. Read a line at a time as bytes; only
    a line holding ``"choice"`` is parsed, and the scan stops at the first such verdict. A line that
    does not parse is skipped (the reader of the run reports it): at worst this says True for a run
    whose metrics then read the items (memory, never other numbers: ``with_choice_verdicts`` derives
    nothing from a verdict without choice entries)."""
    import json

    from judge_eval.core.store import QA_FILES

    try:
        fh = (Path(path) / QA_FILES["test"]).open("rb")
    except OSError:
        return False
    with fh:
        for line in fh:
            if _CHOICE_BYTES not in line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            evaluations = obj.get("evaluations") if isinstance(obj, dict) else None
            if isinstance(evaluations, list) and any(
                    isinstance(e, dict) and isinstance(e.get(CHOICE_KEY), dict) for e in evaluations):
                return True
    return False


def load_metrics_input(path: Path | str) -> tuple[Items, ScoreTable]:
    """(``load_tables``'s ``VerdictTable``, or the items themselves when the run has judge groups
    (``<group>:<id>`` judges) or verdicts with choice probabilities (``has_choice_verdicts``), whose
    metrics need them (``judge_eval.core.groups``; the ``<judge>@choice`` judges of
    ``judge_eval.core.choice``, read from each verdict's ``extra``, which a table does not keep);
    the ``ScoreTable`` of its pointwise items): what ``run_metrics`` (``scores=``) and
    ``compare_runs`` (``old_scores=``, ``new_scores=``) take."""
    from judge_eval.core.groups import discover_groups

    table, scores = load_tables(path)  # first: a broken run fails with the reader's error
    return (load_items(path) if discover_groups(table.judges) or has_choice_verdicts(path) else table), scores


def load_for_metrics(path: Path | str) -> Items:
    """``load_table``, or the items themselves when the run has judge groups (``<group>:<id>``
    judges), whose metrics need them (``judge_eval.core.groups``), or pointwise items (a
    ``VerdictTable`` holds none: ``load_metrics_input`` gives their ``ScoreTable`` instead)."""
    items, scores = load_metrics_input(path)
    return load_items(path) if len(scores) and isinstance(items, VerdictTable) else items

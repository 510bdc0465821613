"""Release gates: thresholds against measured metrics, failures that explain themselves.

Agreement is computed over the items where both judges gave a conclusive verdict, so a verdict
that is absent would silently shrink that subset. Three coverage gates, on by default, make an
omission fail instead: ``max_missing`` (items a gated judge has no verdict on), ``min_compared``
(items it was compared on: a judge whose every output is unreadable has none) and
``min_reference_coverage`` (share of items with a reference verdict of any source). The reference
gate belongs to the profile, not to a judge: ``check_run`` reports it once.

A profile's gates read its frame and its tie mode (``ties``: "with", the default, or "without":
the items where either judge says tie dropped). A failure names both; the default tie mode is
named only by omission, so that the messages of every profile without a ``ties`` key read as
they always have.

Score judges (pointwise items, ``judge_eval.core.scores``) are gated with the score keys of
``Thresholds`` (``min_exact_agreement``, ``min_within_1_agreement``, ``max_mae``, ``min_pearson``,
``min_spearman``, ``min_kendall_tau_b``, ``min_quadratic_kappa``, and ``min_score_ci_low`` /
``max_score_ci_high`` on the interval of the profile's ``score_interval`` metric) and the generic
ones (``max_parse_failures``, ``max_errors``, ``max_missing``, ``min_compared``, ``min_reference_coverage``, the
last against the score reference over the pointwise items). A score has no frame and no tie, so
their messages name neither: ``gate failed: judge 'student', quadratic_kappa: measured 0.4100
(n 120), allowed >= 0.6 (run R, profile P)``. A key of one kind set on a gated judge of the other
kind is never skipped: that gate fails, its message naming the key, the judge, its kind and the
key to use instead (``PAIRWISE_ONLY``, ``SCORE_ONLY``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from judge_eval.config.profiles import Profile, Thresholds
from judge_eval.errors import JudgeEvalError
from judge_eval.core.items import scale_text
from judge_eval.core.metrics import Comparison, RunMetrics
from judge_eval.core.scores import LOWER_IS_BETTER, ScoreComparison


@dataclass(frozen=True)
class GateFailure:
    judge: str
    metric: str
    measured: str
    allowed: str
    run_dir: str
    frame: str
    profile: str
    role: str = "judge"  # "reference judge" for the reference-coverage gate
    ties: str = "with"  # the tie mode the gate read (named in the message when not the default)

    @property
    def message(self) -> str:
        ties = "" if self.ties == "with" else f", ties {self.ties}"
        frame = f", {self.frame} frame{ties}" if self.frame else ""  # a score gate has no frame
        return (f"gate failed: {self.role} {self.judge!r}, {self.metric}: measured {self.measured}, "
                f"allowed {self.allowed} (run {self.run_dir}{frame}, profile {self.profile})")


@dataclass(frozen=True)
class GateResult:
    """One gate checked on a run, passed or failed: what a release manager reads in one line."""

    judge: str
    threshold: str  # the Thresholds key, e.g. "max_inconclusive_rate"
    metric: str  # the measured metric, as GateFailure names it, e.g. "inconclusive_rate"
    measured: float | int | None  # None: undefined (see ``note``); an undefined value fails
    allowed: float | int  # the threshold's value
    op: str  # ">=" or "<=": what passing means
    counts: str = ""  # the counts behind the value: "24/64" for a rate, "of 64" for a count
    note: str = ""  # why ``measured`` is undefined
    role: str = "judge"  # "reference judge" for the reference-coverage gate
    frame: str = "corrected"  # the frame and tie mode the gate read ("" for a score judge's gate)
    ties: str = "with"
    failure: GateFailure | None = None  # the failure, with its message, when the gate fails

    @property
    def passed(self) -> bool:
        return self.failure is None


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "undefined"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


#: What passing means for each direction a gate can have.
PASSES = {">=": operator.ge, "<=": operator.le, ">": operator.gt}


def passes(measured: float | int | None, op: str, allowed: float | int) -> bool:
    """Whether ``measured`` meets ``op allowed``; an undefined value never does."""
    return measured is not None and PASSES[op](measured, allowed)


REFERENCE_COVERAGE = "reference_coverage"  # the metric name of the min_reference_coverage gate


def check_reference_coverage(reference: str, items: int, missing: int, t: Thresholds, *,
                             run_dir: Path | str, frame: str, profile: str,
                             ties: str = "with") -> list[GateFailure]:
    """The ``min_reference_coverage`` gate: the share of the ``items`` with a verdict by the
    reference (any source). Items the reference skipped never enter any agreement, so a low
    coverage means every judge was compared on a subset chosen by omission."""
    result = reference_coverage_result(reference, items, missing, t, run_dir=run_dir, frame=frame,
                                       profile=profile, ties=ties)
    return [result.failure] if result is not None and result.failure is not None else []


def reference_coverage_result(reference: str, items: int, missing: int, t: Thresholds, *,
                              run_dir: Path | str, frame: str, profile: str,
                              ties: str = "with") -> GateResult | None:
    """The ``min_reference_coverage`` gate, passed or failed (None when the threshold is unset);
    ``frame`` "" for the score reference over the pointwise items."""
    if t.min_reference_coverage is None:
        return None
    coverage = (items - missing) / items if items else None
    ok = coverage is not None and coverage >= t.min_reference_coverage
    failure = None
    if not ok:
        shown = (f"{_fmt(coverage)} ({items - missing} of {items} items have a verdict by the reference; "
                 f"{missing} missing)" if items else "undefined [the run has 0 items]")
        failure = GateFailure(judge=reference, metric=REFERENCE_COVERAGE, measured=shown,
                              allowed=f">= {t.min_reference_coverage}", run_dir=str(run_dir), frame=frame,
                              profile=profile, role="reference judge", ties=ties)
    return GateResult(judge=reference, threshold="min_reference_coverage", metric=REFERENCE_COVERAGE,
                      measured=coverage, allowed=t.min_reference_coverage, op=">=",
                      counts=f"{items - missing}/{items}" if items else "",
                      note="" if items else "the run has 0 items", role="reference judge", frame=frame, ties=ties,
                      failure=failure)


def check_comparison(c: Comparison, t: Thresholds, *, run_dir: Path | str, profile: str,
                     reference: bool = True) -> list[GateFailure]:
    """Every threshold of ``t`` that comparison ``c`` misses (undefined values miss).

    With ``reference`` (the default) the reference-coverage gate is checked too, as a failure of
    the reference judge: ``c``'s agreement is only as complete as the reference's verdicts.
    """
    failures = [r.failure for r in comparison_results(c, t, run_dir=run_dir, profile=profile)
                if r.failure is not None]
    if reference:
        failures += check_reference_coverage(c.reference, c.items, c.reference_missing, t, run_dir=run_dir,
                                             frame=c.frame, profile=profile, ties=c.ties)
    return failures


def comparison_results(c: Comparison, t: Thresholds, *, run_dir: Path | str,
                       profile: str) -> list[GateResult]:
    """Every threshold of ``t`` that is set, checked on comparison ``c``: one result each, passed or
    failed (undefined values fail), in the order of the thresholds. ``check_comparison`` keeps the
    failed ones, so a result fails exactly when ``check_comparison`` reports it."""
    ci_low = c.agreement_ci[0] if c.agreement_ci else None
    kappa_low = c.kappa_ci[0] if c.kappa_ci else None
    checks: Iterable[tuple[str, str, float | int | None, float | int | None, str, str, str]] = (
        # threshold, metric, measured, threshold value, direction, context for the message, counts
        ("min_agreement", "agreement_rate", c.agreement_rate, t.min_agreement, ">=",
         f" ({c.agreements} of {c.total})", f"{c.agreements}/{c.total}"),
        ("min_correlation", "correlation", c.correlation, t.min_correlation, ">=", "", ""),
        ("max_inconclusive", "inconclusive", c.inconclusive, t.max_inconclusive, "<=", f" of {c.items}",
         f"of {c.items}"),
        ("max_inconclusive_rate", "inconclusive_rate", c.inconclusive_rate, t.max_inconclusive_rate, "<=",
         f" ({c.inconclusive} of {c.items})", f"{c.inconclusive}/{c.items}"),
        ("max_parse_failures", "parse_failures", c.parse_failures, t.max_parse_failures, "<=", "", ""),
        ("max_errors", "errors", c.errors, t.max_errors, "<=", "", ""),
        ("min_agreement_ci_low", "agreement_ci_low", ci_low, t.min_agreement_ci_low, ">=",
         " (lower bound of the 95% interval)", ""),
        ("max_missing", "missing", c.missing, t.max_missing, "<=", f" of {c.items} items without a verdict",
         f"of {c.items}"),
        ("min_compared", "compared", c.total, t.min_compared, ">=", _compared_context(c), f"of {c.items}"),
        # "above chance": kappa's whole interval above 0, i.e. more agreement than chance would give
        ("above_chance", "kappa_ci_low", kappa_low, 0.0 if t.above_chance else None, ">",
         " (lower bound of kappa's 95% interval)", ""),
    )
    results = []
    for name, metric, measured, threshold, op, context, counts in checks:
        if threshold is None:
            continue
        ok = passes(measured, op, threshold)
        # the key of its reason in c.notes
        why = {"agreement_ci_low": "agreement_ci", "kappa_ci_low": "kappa_ci"}.get(metric, metric)
        failure = None
        if not ok:
            shown = _fmt(measured) + context
            if measured is None and why in c.notes:
                shown += f" [{c.notes[why]}]"
            failure = GateFailure(judge=c.judge, metric=metric, measured=shown,
                                  allowed=f"{op} {threshold}", run_dir=str(run_dir),
                                  frame=c.frame, profile=profile, ties=c.ties)
        note = "" if measured is not None else c.notes.get(why, "undefined")
        results.append(GateResult(judge=c.judge, threshold=name, metric=metric, measured=measured,
                                  allowed=threshold, op=op, counts=counts, note=note, frame=c.frame, ties=c.ties,
                                  failure=failure))
    kind = f"{c.judge!r} is a pairwise judge"
    results += [_not_applicable(c.judge, key, t, SCORE_ONLY, kind, run_dir=run_dir, profile=profile, frame=c.frame,
                                ties=c.ties) for key in SCORE_ONLY if _is_set(getattr(t, key))]
    return results


# --------------------------------------------------------------------------- score judges

#: Keys that gate pairwise judges only: the metric each reads, and the key of a score judge to use
#: instead (None: a score verdict has nothing like it).
PAIRWISE_ONLY: dict[str, tuple[str, str | None]] = {
    "min_agreement": ("agreement_rate", "min_exact_agreement"),
    "min_correlation": ("correlation", "min_pearson"),
    "max_inconclusive": ("inconclusive", None),
    "max_inconclusive_rate": ("inconclusive_rate", None),
    "min_agreement_ci_low": ("agreement_ci_low", "min_score_ci_low"),
    "above_chance": ("kappa_ci_low", "min_quadratic_kappa"),
}
#: Keys that gate score judges only (in the order of ``Thresholds``): the metric each reads (the
#: interval bounds are named after the interval's metric), and the pairwise key to use instead.
SCORE_ONLY: dict[str, tuple[str, str | None]] = {
    "min_exact_agreement": ("exact_agreement", "min_agreement"),
    "min_within_1_agreement": ("within_1_agreement", "min_agreement"),
    "max_mae": ("mae", "min_agreement"),
    "min_pearson": ("pearson", "min_correlation"),
    "min_spearman": ("spearman", "min_correlation"),
    "min_kendall_tau_b": ("kendall_tau_b", "min_correlation"),
    "min_quadratic_kappa": ("quadratic_kappa", "above_chance"),
    "min_score_ci_low": ("score_ci_low", "min_agreement_ci_low"),
    "max_score_ci_high": ("score_ci_high", "min_agreement_ci_low"),
}
#: Keys that gate both kinds (min_reference_coverage gates the reference, once per kind of item).
BOTH_KINDS = ("max_parse_failures", "max_errors", "max_missing", "min_compared")


def _is_set(value: Any) -> bool:
    """Whether a threshold value gates (``above_chance = false`` does not)."""
    return value is not None and value is not False


def _not_applicable(judge: str, key: str, t: Thresholds, table: dict[str, tuple[str, str | None]], kind: str, *,
                    run_dir: Path | str, profile: str, frame: str = "", ties: str = "with") -> GateResult:
    """A failed gate: ``key`` gates the other kind of judge than ``judge`` (``kind`` says which it
    is); its message names the key to use instead."""
    metric, instead = table[key]
    other = "score" if table is SCORE_ONLY else "pairwise"
    if instead is not None:
        fix = f"use {instead}"
    else:
        fix = "a score verdict is never inconclusive (unreadable outputs count in max_parse_failures)"
    note = f"{key} gates {other} judges; {kind}: {fix}"
    value = getattr(t, key)
    op = "<=" if key.startswith("max_") else ">" if key == "above_chance" else ">="
    allowed = 0.0 if key == "above_chance" else value
    failure = GateFailure(judge=judge, metric=metric, measured=f"n/a [{note}]", allowed=f"{op} {allowed}",
                          run_dir=str(run_dir), frame=frame, profile=profile, ties=ties)
    return GateResult(judge=judge, threshold=key, metric=metric, measured=None, allowed=allowed, op=op, note=note,
                      frame=frame, ties=ties, failure=failure)


def _compared_context(c: Comparison | ScoreComparison) -> str:
    """What the ``min_compared`` gate's message says after the count: of how many items, and
    where the others went (the judge's own counts, then the reference's missing verdicts)."""
    if isinstance(c, ScoreComparison):
        return (f" of {c.items} items scored by both the judge and the reference (judge: {c.parse_failures} parse "
                f"failures, {c.errors} errors, {c.missing} missing; reference: {c.reference_parse_failures} parse "
                f"failures, {c.reference_errors} errors, {c.reference_missing} missing)")
    reference = f"{c.reference_missing} missing"
    if c.reference_conclusive is not None:
        reference = f"{c.items - c.reference_missing - c.reference_conclusive} not conclusive, " + reference
    where = "are conclusive" if c.ties == "with" else "are conclusive and neither says tie"
    ties = "" if c.ties == "with" else f"; {c.tie_items} dropped as ties"
    return (f" of {c.items} items where both the judge and the reference {where} (judge: {c.inconclusive} "
            f"inconclusive, {c.parse_failures} parse failures, {c.errors} errors, {c.missing} missing; reference: "
            f"{reference}{ties})")


def _score_check(c: ScoreComparison, key: str) -> tuple[str, float | int | None, str, str, str, str]:
    """(metric, measured, direction, context for the message, counts, key of its reason in
    ``c.notes``) of score-judge key ``key`` on ``c``."""
    n = f"n {c.n}"
    if key == "max_parse_failures":
        return "parse_failures", c.parse_failures, "<=", "", "", ""
    if key == "max_errors":
        return "errors", c.errors, "<=", "", "", ""
    if key == "max_missing":
        return ("missing", c.missing, "<=", f" of {c.items} items without a verdict", f"of {c.items}", "")
    if key == "min_compared":
        return "compared", c.n, ">=", _compared_context(c), f"of {c.items}", ""
    if key in ("min_exact_agreement", "min_within_1_agreement"):
        metric = SCORE_ONLY[key][0]
        matches = c.exact_matches if metric == "exact_agreement" else c.within_1_matches
        return metric, c.metric(metric), ">=", f" ({matches} of {c.n})", f"{matches}/{c.n}", metric
    if key in ("min_score_ci_low", "max_score_ci_high"):
        low = key == "min_score_ci_low"
        metric = f"{c.interval_metric}_ci_{'low' if low else 'high'}"
        bound = None if c.interval is None else c.interval[0 if low else 1]
        context = f" ({'lower' if low else 'upper'} bound of the 95% interval of {c.interval_metric}, {n})"
        return metric, bound, ">=" if low else "<=", context, n, "interval"
    metric = SCORE_ONLY[key][0]
    return metric, c.metric(metric), "<=" if key.startswith("max_") else ">=", f" ({n})", n, metric


def score_results(c: ScoreComparison, t: Thresholds, *, run_dir: Path | str, profile: str) -> list[GateResult]:
    """Every threshold of ``t`` that is set, checked on score comparison ``c``, in the order of
    ``Thresholds``: one result each, passed or failed (undefined values fail); a pairwise key
    fails with the key to use instead. ``min_reference_coverage`` is the reference's
    (``reference_results``)."""
    kind = f"{c.judge!r} is a score judge (scale {scale_text(c.scale)})"
    results = []
    for key in Thresholds.model_fields:
        threshold = getattr(t, key)
        if not _is_set(threshold) or key == "min_reference_coverage":
            continue
        if key in PAIRWISE_ONLY:
            results.append(_not_applicable(c.judge, key, t, PAIRWISE_ONLY, kind, run_dir=run_dir, profile=profile))
            continue
        if key in ("min_score_ci_low", "max_score_ci_high") and (c.interval_metric is None or (
                c.interval_metric in LOWER_IS_BETTER) == (key == "min_score_ci_low")):
            carried = f"the interval of {c.interval_metric}" if c.interval_metric else "no interval"
            raise JudgeEvalError(
                f"{key} gates the interval of score judge {c.judge!r}, but its metrics carry {carried}, which "
                f"{key} cannot bound: compute them with the profile's score_interval (run_metrics(..., "
                "score_interval=...))")
        metric, measured, op, context, counts, why = _score_check(c, key)
        failure = None
        if not passes(measured, op, threshold):
            shown = _fmt(measured) + context
            if measured is None and why in c.notes:
                shown += f" [{c.notes[why]}]"
            failure = GateFailure(judge=c.judge, metric=metric, measured=shown, allowed=f"{op} {threshold}",
                                  run_dir=str(run_dir), frame="", profile=profile)
        note = "" if measured is not None else c.notes.get(why, "undefined")
        results.append(GateResult(judge=c.judge, threshold=key, metric=metric, measured=measured, allowed=threshold,
                                  op=op, counts=counts, note=note, frame="", failure=failure))
    return results


def _check_interval(metrics: RunMetrics, profile: Profile, judge: str) -> None:
    """A profile that gates a score interval reads the interval of its ``score_interval``."""
    t = profile.thresholds
    if (t.min_score_ci_low is not None or t.max_score_ci_high is not None) \
            and metrics.score_interval != profile.score_interval:
        raise JudgeEvalError(
            f"profile {profile.name!r} gates the 95% interval of {profile.score_interval} of score judge {judge!r}, "
            f"but the metrics carry the interval of {metrics.score_interval}: compute them with "
            f"score_interval={profile.score_interval!r}")


def reference_results(metrics: RunMetrics, profile: Profile, *, run_dir: Path | str) -> list[GateResult]:
    """The ``min_reference_coverage`` gate of each kind of item the run holds: the reference over
    the pairwise items, the score reference over the pointwise items (empty when unset)."""
    t = profile.thresholds
    results = []
    if metrics.has_pairwise:
        ref = metrics.reference_stats
        results.append(reference_coverage_result(metrics.reference, ref.items, ref.missing, t, run_dir=run_dir,
                                                 frame=profile.frame, profile=profile.name, ties=profile.ties))
    if metrics.score_reference_stats is not None and metrics.score_reference is not None:
        ref_s = metrics.score_reference_stats
        results.append(reference_coverage_result(metrics.score_reference, ref_s.items, ref_s.missing, t,
                                                 run_dir=run_dir, frame="", profile=profile.name))
    return [r for r in results if r is not None]


def check_reference(metrics: RunMetrics, profile: Profile, *, run_dir: Path | str) -> list[GateFailure]:
    """The profile's reference-coverage gate on a run (one per profile and kind of item, not per
    judge: the reference's over the pairwise items, the score reference's over the pointwise ones)."""
    return [r.failure for r in reference_results(metrics, profile, run_dir=run_dir) if r.failure is not None]


def reference_gated(judge: str, profile: str) -> str:
    """Why a profile cannot gate its own reference: every metric compares a judge with it."""
    return (f"gated judge {judge!r} is the reference of profile {profile!r}: every other judge is compared with "
            f"it, so it has no metric of its own to gate. Remove it from `gated` in "
            f"[tool.judge_eval.profiles.{profile}], or name another judge the reference")


def _unknown_judge(metrics: RunMetrics, judge: str, profile: Profile, run_dir: Path | str) -> JudgeEvalError:
    if (judge == metrics.reference and metrics.has_pairwise) or judge == metrics.score_reference:
        return JudgeEvalError(reference_gated(judge, profile.name))
    return JudgeEvalError(
        f"profile {profile.name!r} gates judge {judge!r}, but the run {run_dir} has no verdicts "
        f"by it; judges found: {', '.join([*metrics.judges, *metrics.scores]) or 'none'}. Fix `gated` in "
        f"[tool.judge_eval.profiles.{profile.name}] or the run")


def check_judge(metrics: RunMetrics, judge: str, profile: Profile, *, run_dir: Path | str,
                reference: bool = True) -> list[GateFailure]:
    """Gate one judge of a run with the profile's thresholds, in the profile's frame and tie mode (a
    score judge: the score keys, no frame), including (unless ``reference`` is false) the
    reference-coverage gate its metrics depend on."""
    if judge in metrics.scores:
        _check_interval(metrics, profile, judge)
        failures = [r.failure for r in score_results(metrics.scores[judge], profile.thresholds, run_dir=run_dir,
                                                     profile=profile.name) if r.failure is not None]
        if reference and metrics.score_reference_stats is not None and metrics.score_reference is not None:
            ref = metrics.score_reference_stats
            failures += check_reference_coverage(metrics.score_reference, ref.items, ref.missing, profile.thresholds,
                                                 run_dir=run_dir, frame="", profile=profile.name)
        return failures
    if judge not in metrics.judges:
        raise _unknown_judge(metrics, judge, profile, run_dir)
    return check_comparison(metrics.comparison(judge, profile.frame, profile.ties), profile.thresholds,
                            run_dir=run_dir, profile=profile.name, reference=reference)


def check_run(metrics: RunMetrics, profile: Profile, *, run_dir: Path | str) -> list[GateFailure]:
    """Gate every judge the profile names in ``gated``; other judges are only reported. The
    reference-coverage failure, if any, comes first and once."""
    if not profile.gated:
        raise JudgeEvalError(f"profile {profile.name!r} gates no judge; set gated = [\"NAME\"] in "
                             f"[tool.judge_eval.profiles.{profile.name}]")
    judge_failures = [f for judge in profile.gated
                      for f in check_judge(metrics, judge, profile, run_dir=run_dir, reference=False)]
    return check_reference(metrics, profile, run_dir=run_dir) + judge_failures


def gate_results(metrics: RunMetrics, profile: Profile, *, run_dir: Path | str) -> list[GateResult]:
    """Every gate of the profile on a run, passed or failed: each threshold set (the default-on
    coverage gates included) for each gated judge, in the profile's frame and tie mode, then the
    reference-coverage gate once per kind of item the run holds. The failed ones are exactly
    ``check_run``'s failures. A profile that gates no judge has no gate (as
    ``judge_eval.plugin.gate_cases`` makes none)."""
    results = []
    for judge in profile.gated:
        if judge in metrics.scores:
            _check_interval(metrics, profile, judge)
            results += score_results(metrics.scores[judge], profile.thresholds, run_dir=run_dir, profile=profile.name)
            continue
        if judge not in metrics.judges:
            raise _unknown_judge(metrics, judge, profile, run_dir)
        results += comparison_results(metrics.comparison(judge, profile.frame, profile.ties), profile.thresholds,
                                      run_dir=run_dir, profile=profile.name)
    if profile.gated:
        results += reference_results(metrics, profile, run_dir=run_dir)
    return results


def pipeline_failures(run: Any, profile: Profile) -> list[str]:
    """Structural gates of a live-pipeline run: every stage produced its output.

    For profiles whose models are too small to be judged on agreement (``local``), these are the
    honest gates: items in both splits, a teacher verdict on every item, at least one resolved
    fine-tuning event, a distilled model in the manifest, and verdicts of both students on every
    test item.
    """
    cfg = profile.pipeline
    if cfg is None:
        raise JudgeEvalError(f"profile {profile.name!r} has no pipeline")
    failures = []
    for split in ("train", "test"):
        items = run.items(split)
        if not items:
            failures.append(f"stages questions/answers produced no {split} items (run {run.path})")
        missing = [i.id for i in items if i.verdict(profile.reference) is None]
        if missing:
            failures.append(f"stage teacher left {len(missing)} {split} item(s) without a verdict: "
                            f"{', '.join(missing[:5])}")
        if any(len(a.text.strip()) == 0 for i in items for a in i.answers):
            failures.append(f"stage answers produced empty answers in {split}")
    if not run.resolved:
        failures.append("no resolved fine-tuning event: the teacher gave the distillation nothing to teach")
    manifest = run.meta.get("distillation") or {}
    if not manifest.get("model"):
        failures.append("stage distill recorded no distilled model name in run.json")
    for judge in (cfg.base_student_name, cfg.distilled_student_name):
        missing = [i.id for i in run.test if i.verdict(judge) is None]
        if missing or not run.test:
            failures.append(f"stage students: judge {judge!r} has no verdict on {len(missing)} test item(s)")
    return failures

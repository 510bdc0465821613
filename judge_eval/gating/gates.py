"""Release gates: thresholds against measured metrics, failures that explain themselves.

Agreement is computed over the items where both judges gave a conclusive verdict, so a verdict
that is absent would silently shrink that subset. Two coverage gates, on by default, make an
omission fail instead: ``max_missing`` (items a gated judge has no verdict on) and
``min_reference_coverage`` (share of items with a reference verdict of any source). The reference
gate belongs to the profile, not to a judge: ``check_run`` reports it once.

A profile's gates read its frame and its tie mode (``ties``: "with", the default, or "without":
the items where either judge says tie dropped). A failure names both; the default tie mode is
named only by omission, so that the messages of every profile without a ``ties`` key read as
they always have.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from judge_eval.config.profiles import Profile, Thresholds
from judge_eval.errors import JudgeEvalError
from judge_eval.core.metrics import Comparison, RunMetrics


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
        return (f"gate failed: {self.role} {self.judge!r}, {self.metric}: measured {self.measured}, "
                f"allowed {self.allowed} (run {self.run_dir}, {self.frame} frame{ties}, "
                f"profile {self.profile})")


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
    frame: str = "corrected"  # the frame and tie mode the gate read
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
    """The ``min_reference_coverage`` gate, passed or failed (None when the threshold is unset)."""
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
    return results


def check_reference(metrics: RunMetrics, profile: Profile, *, run_dir: Path | str) -> list[GateFailure]:
    """The profile's reference-coverage gate on a run (one per profile, not per judge)."""
    ref = metrics.reference_stats
    return check_reference_coverage(metrics.reference, ref.items, ref.missing, profile.thresholds,
                                    run_dir=run_dir, frame=profile.frame, profile=profile.name,
                                    ties=profile.ties)


def check_judge(metrics: RunMetrics, judge: str, profile: Profile, *, run_dir: Path | str,
                reference: bool = True) -> list[GateFailure]:
    """Gate one judge of a run with the profile's thresholds, in the profile's frame and tie mode, including
    (unless ``reference`` is false) the reference-coverage gate its agreement depends on."""
    if judge not in metrics.judges:
        raise JudgeEvalError(
            f"profile {profile.name!r} gates judge {judge!r}, but the run {run_dir} has no verdicts "
            f"by it; judges found: {', '.join(metrics.judges) or 'none'}. Fix `gated` in "
            f"[tool.judge_eval.profiles.{profile.name}] or the run")
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
    reference-coverage gate once. The failed ones are exactly ``check_run``'s failures. A profile
    that gates no judge has no gate (as ``judge_eval.plugin.gate_cases`` makes none)."""
    results = []
    for judge in profile.gated:
        if judge not in metrics.judges:
            check_judge(metrics, judge, profile, run_dir=run_dir)  # raises the error that names the fix
        results += comparison_results(metrics.comparison(judge, profile.frame, profile.ties), profile.thresholds,
                                      run_dir=run_dir, profile=profile.name)
    ref = metrics.reference_stats
    coverage = reference_coverage_result(metrics.reference, ref.items, ref.missing, profile.thresholds,
                                         run_dir=run_dir, frame=profile.frame, profile=profile.name,
                                         ties=profile.ties)
    if coverage is not None and profile.gated:
        results.append(coverage)
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

"""Release gates: thresholds against measured metrics, failures that explain themselves."""

from __future__ import annotations

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

    @property
    def message(self) -> str:
        return (f"gate failed: judge {self.judge!r}, {self.metric}: measured {self.measured}, "
                f"allowed {self.allowed} (run {self.run_dir}, {self.frame} frame, "
                f"profile {self.profile})")


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "undefined"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def check_comparison(c: Comparison, t: Thresholds, *, run_dir: Path | str,
                     profile: str) -> list[GateFailure]:
    """Every threshold of ``t`` that comparison ``c`` misses (undefined values miss)."""
    ci_low = c.agreement_ci[0] if c.agreement_ci else None
    checks: Iterable[tuple[str, float | int | None, float | int | None, str, str]] = (
        # metric, measured, threshold, direction, extra context for the measured value
        ("agreement_rate", c.agreement_rate, t.min_agreement, ">=", f" ({c.agreements} of {c.total})"),
        ("correlation", c.correlation, t.min_correlation, ">=", ""),
        ("inconclusive", c.inconclusive, t.max_inconclusive, "<=", f" of {c.items}"),
        ("inconclusive_rate", c.inconclusive_rate, t.max_inconclusive_rate, "<=",
         f" ({c.inconclusive} of {c.items})"),
        ("parse_failures", c.parse_failures, t.max_parse_failures, "<=", ""),
        ("errors", c.errors, t.max_errors, "<=", ""),
        ("agreement_ci_low", ci_low, t.min_agreement_ci_low, ">=", " (lower bound of the 95% interval)"),
    )
    failures = []
    for metric, measured, threshold, op, context in checks:
        if threshold is None:
            continue
        ok = measured is not None and (measured >= threshold if op == ">=" else measured <= threshold)
        if not ok:
            shown = _fmt(measured) + context
            if measured is None and metric in c.notes:
                shown += f" [{c.notes[metric]}]"
            failures.append(GateFailure(judge=c.judge, metric=metric, measured=shown,
                                        allowed=f"{op} {threshold}", run_dir=str(run_dir),
                                        frame=c.frame, profile=profile))
    return failures


def check_judge(metrics: RunMetrics, judge: str, profile: Profile, *,
                run_dir: Path | str) -> list[GateFailure]:
    """Gate one judge of a run with the profile's thresholds, in the profile's frame."""
    if judge not in metrics.judges:
        raise JudgeEvalError(
            f"profile {profile.name!r} gates judge {judge!r}, but the run {run_dir} has no verdicts "
            f"by it; judges found: {', '.join(metrics.judges) or 'none'}. Fix `gated` in "
            f"[tool.judge_eval.profiles.{profile.name}] or the run")
    return check_comparison(metrics.judges[judge][profile.frame], profile.thresholds,
                            run_dir=run_dir, profile=profile.name)


def check_run(metrics: RunMetrics, profile: Profile, *, run_dir: Path | str) -> list[GateFailure]:
    """Gate every judge the profile names in ``gated``; other judges are only reported."""
    if not profile.gated:
        raise JudgeEvalError(f"profile {profile.name!r} gates no judge; set gated = [\"NAME\"] in "
                             f"[tool.judge_eval.profiles.{profile.name}]")
    return [f for judge in profile.gated for f in check_judge(metrics, judge, profile, run_dir=run_dir)]


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

"""Release gates on the published study: the profile's candidate must pass; a gate can fail."""

from __future__ import annotations

import pytest

from judge_eval.config.profiles import Profile
from judge_eval.gating.gates import check_judge, check_run
from judge_eval.core.metrics import RunMetrics
from judge_eval.core.store import Run

pytestmark = pytest.mark.release


def test_gated_judge_meets_the_release_thresholds(study_metrics: RunMetrics, study_profile: Profile,
                                                  study_run: Run, gated_judge: str) -> None:
    failures = check_judge(study_metrics, gated_judge, study_profile, run_dir=study_run.path)
    assert not failures, "\n".join(f.message for f in failures)


def test_the_base_student_fails_the_gate_on_inconclusives(study_metrics: RunMetrics,
                                                          study_profile: Profile, study_run: Run) -> None:
    """Not an xfail: the same gate, run on the un-fine-tuned judge, must fail, and say why."""
    failures = check_judge(study_metrics, "gpt_3p5", study_profile, run_dir=study_run.path)
    assert [f.metric for f in failures] == ["inconclusive_rate"]
    (failure,) = failures
    assert failure.message == (
        f"gate failed: judge 'gpt_3p5', inconclusive_rate: measured 0.3750 (24 of 64), "
        f"allowed <= 0.25 (run {study_run.path}, corrected frame, profile study)")


def test_only_the_gated_judges_are_gated(study_metrics: RunMetrics, study_profile: Profile,
                                         study_run: Run) -> None:
    assert study_profile.gated == ("ft_gpt_3p5",)
    assert set(study_metrics.judges) == {"ft_gpt_3p5", "gpt_3p5"}  # gpt_3p5 reported only
    assert check_run(study_metrics, study_profile, run_dir=study_run.path) == []

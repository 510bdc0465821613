"""The study's real GPT-4 verdicts distilled into a local LoRA student (profile study-local),
replayed offline. These gates were fixed before the recording (see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.core.metrics import judge_stats, run_metrics
from judge_eval.core.store import read_run

pytestmark = pytest.mark.release


def students(profile) -> tuple[str, str]:
    cfg = profile.pipeline
    return cfg.base_student_name, cfg.distilled_student_name


def test_both_students_judged_every_test_pair(study_local_run: Path, study_local_profile) -> None:
    run = read_run(study_local_run)
    assert len(run.test) == 64
    for judge in students(study_local_profile):
        assert all(item.verdict(judge) is not None for item in run.test), judge
    # The study's own judges are still there, so one table holds all four against GPT-4.
    assert {"gpt_4", "ft_gpt_3p5", "gpt_3p5"} <= {v.llm for v in run.test[0].evaluations}


def test_distillation_does_not_add_parse_failures(study_local_run: Path, study_local_profile) -> None:
    base, distilled = (judge_stats(read_run(study_local_run).test, j) for j in students(study_local_profile))
    assert distilled.parse_failures <= base.parse_failures, (base, distilled)


def test_distillation_does_not_leave_more_pairs_without_a_conclusive_verdict(study_local_run: Path,
                                                                              study_local_profile) -> None:
    base, distilled = (judge_stats(read_run(study_local_run).test, j) for j in students(study_local_profile))
    assert distilled.items - distilled.conclusive <= base.items - base.conclusive, (base, distilled)


def test_both_students_are_reported_against_gpt4_in_both_frames(study_local_run: Path,
                                                                study_local_profile) -> None:
    metrics = run_metrics(read_run(study_local_run).test, "gpt_4")
    for judge in (*students(study_local_profile), "ft_gpt_3p5", "gpt_3p5"):
        for frame in ("study", "corrected"):
            c = metrics.judges[judge][frame]
            assert c.items == 64 and (c.agreement_ci is not None or "agreement_ci" in c.notes)


def test_one_table_in_the_summary_holds_both_students_and_the_studys_gpt35_judges(
        study_local_run: Path, study_local_profile, pytestconfig: pytest.Config) -> None:
    from judge_eval.plugin import REPORTS_KEY

    shown = [r for r in pytestconfig.stash[REPORTS_KEY] if r.title == f"study-local run {study_local_run}"]
    assert len(shown) == 1
    for judge in (*students(study_local_profile), "ft_gpt_3p5", "gpt_3p5"):
        assert judge in shown[0].text and judge in shown[0].markdown, judge

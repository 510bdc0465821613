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


#: What the study's release thresholds (copied into the study-local profile before any new
#: recipe was measured) decide on the distilled SmolLM2: the gates that fail, in threshold order.
REJECTED_ON = ["agreement_rate", "correlation", "inconclusive_rate", "parse_failures", "agreement_ci_low",
               "kappa_ci_low"]


def test_the_release_gate_rejects_the_distilled_student(study_local_run: Path, study_local_profile) -> None:
    """Not an xfail: the gate GPT-3.5's fine-tune passes on the study runs on the local student and
    rejects it. The counts in the messages are the ones issue 14 measured on the committed
    recording: 13 agreements in 27 comparable pairs, 33 of 64 pairs inconclusive, 2 unparseable."""
    from judge_eval.gating.gates import check_run

    metrics = run_metrics(read_run(study_local_run).test, "gpt_4", seed=study_local_profile.bootstrap_seed,
                          resamples=study_local_profile.bootstrap_resamples)
    failures = check_run(metrics, study_local_profile, run_dir=study_local_run)
    assert [f.metric for f in failures] == REJECTED_ON, "\n".join(f.message for f in failures) or "every gate passed"
    where = f"(run {study_local_run}, corrected frame, profile study-local)"
    by_metric = {f.metric: f.message for f in failures}
    assert by_metric["agreement_rate"] == (
        f"gate failed: judge 'smollm2_lora', agreement_rate: measured {13 / 27:.4f} (13 of 27), allowed >= 0.85 {where}")
    assert by_metric["inconclusive_rate"] == (
        f"gate failed: judge 'smollm2_lora', inconclusive_rate: measured {33 / 64:.4f} (33 of 64), "
        f"allowed <= 0.25 {where}")
    assert by_metric["parse_failures"] == (
        f"gate failed: judge 'smollm2_lora', parse_failures: measured 2, allowed <= 0 {where}")
    # above chance: kappa 0.137 on 27 pairs, and its interval reaches below 0
    assert by_metric["kappa_ci_low"].startswith("gate failed: judge 'smollm2_lora', kappa_ci_low: measured -0.")


def test_loosened_thresholds_flip_the_decision(study_local_run: Path, study_dir: Path, tmp_path: Path) -> None:
    """The gate can pass: in a copy of the project whose study-local thresholds are set below what
    the student reached, the decision test above fails and says every gate passed."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "fixtures", tmp_path / "fixtures")
    shutil.copytree(root / "cassettes" / "study-local", tmp_path / "cassettes" / "study-local")
    (tmp_path / "tests" / "release").mkdir(parents=True)
    for name in ("tests/__init__.py", "tests/release/__init__.py", "tests/release/test_study_local.py"):
        shutil.copy(root / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text("utf-8")
    block = text[text.index("[tool.judge_eval.profiles.study-local.thresholds]"):]
    block = block[:block.index("\n\n")]
    loose = ("[tool.judge_eval.profiles.study-local.thresholds]\nmin_agreement = 0.4\nmin_correlation = 0.0\n"
             "max_inconclusive_rate = 0.6\nmax_parse_failures = 2\nmax_errors = 0\nmin_agreement_ci_low = 0.25\n")
    pyproject.write_text(text.replace(block, loose), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "tests/release/test_study_local.py::test_the_release_gate_rejects_the_distilled_student",
         f"--study-dir={study_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in __import__("os").environ.items() if k != "JUDGE_EVAL_STRICT"})
    assert "1 failed" in result.stdout, result.stdout[-3000:]
    assert "AssertionError: every gate passed" in result.stdout, result.stdout[-3000:]

"""Regression against a baseline run (--baseline-run=DIR): the run this session produced must not
be significantly worse for a gated judge (exact McNemar), nor fail a gate the baseline passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.gating.compare import compare_runs, load_items, render_comparison

pytestmark = pytest.mark.release


def test_no_significant_drop_since_the_baseline(pytestconfig: pytest.Config, pipeline_run: Path,
                                                pipeline_profile) -> None:
    baseline = pytestconfig.getoption("--baseline-run") or pytestconfig.getini("judge_eval_baseline_run")
    if not baseline:
        pytest.skip("no baseline run given (--baseline-run=DIR or ini judge_eval_baseline_run)")
    result = compare_runs(load_items(Path(baseline).expanduser()), load_items(pipeline_run), reference=pipeline_profile.reference,
                          gated=pipeline_profile.gated, profile=pipeline_profile, old_path=str(baseline),
                          new_path=str(pipeline_run))
    assert not result.fails, render_comparison(result)

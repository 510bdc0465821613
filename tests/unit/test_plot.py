"""judge-eval plot: a PNG, and confusion matrices that add up to the metrics."""

from __future__ import annotations

from pathlib import Path

from judge_eval.cli import main
from judge_eval.core.metrics import run_metrics
from judge_eval.reporting.plot import confusion
from judge_eval.core.store import Run


def test_confusion_matrices_match_the_corrected_metrics(study_run: Run) -> None:
    metrics = run_metrics(study_run.test)
    for judge, frames in metrics.judges.items():
        cm = confusion(study_run.test, judge, "gpt_4")
        c = frames["corrected"]
        assert cm.sum() == c.total and cm.trace() == c.agreements


def test_plot_writes_a_png(study_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "plot.png"
    assert main(["plot", str(study_dir), "-o", str(out), "--title", "t"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert f"wrote {out}" in capsys.readouterr().out

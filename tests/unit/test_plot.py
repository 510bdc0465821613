"""judge-eval plot: a PNG, and confusion matrices that add up to the metrics."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import matplotlib
import pytest

from judge_eval.cli import main
from judge_eval.core.items import Answer, QAItem, Verdict, item_id
from judge_eval.core.metrics import run_metrics
from judge_eval.errors import JudgeEvalError
from judge_eval.reporting.plot import (
    MATRICES_PER_ROW, MAX_MATRICES, MAX_WIDTH_IN, build_figure, confusion, plot_run,
)
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


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a well-formed PNG: signature, IHDR first, every chunk's CRC right,
    image data present, IEND last."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert len(body) == length and zlib.crc32(kind + body) == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        pos += 12 + length
    assert pos == len(data) and kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    return width, height


def backend() -> str | None:
    """The process's backend as set, without resolving it (resolving imports pyplot)."""
    return matplotlib.get_backend(auto_select=False)


def test_plot_run_leaves_the_process_backend_alone(study_run: Run, tmp_path: Path) -> None:
    before, pyplot_before = backend(), "matplotlib.pyplot" in sys.modules
    out = plot_run(run_metrics(study_run.test), study_run.test, tmp_path / "plot.png", title="t")
    assert backend() == before and ("matplotlib.pyplot" in sys.modules) == pyplot_before
    data = out.read_bytes()
    width, height = png_size(data)
    assert width > 500 and height > 200 and len(data) > 10_000


def test_plot_run_in_a_process_with_another_backend(study_dir: Path, tmp_path: Path) -> None:
    """A caller that uses the svg backend (set before judge_eval is imported) keeps it, and
    pyplot is never imported."""
    code = (
        "import sys, matplotlib\n"
        "from judge_eval.core.metrics import run_metrics\n"
        "from judge_eval.core.store import read_run\n"
        "from judge_eval.reporting.plot import plot_run\n"
        "items = read_run(sys.argv[1], require=('test',)).test\n"
        "before = matplotlib.get_backend(auto_select=False)\n"
        "plot_run(run_metrics(items), items, sys.argv[2])\n"
        "print(before, matplotlib.get_backend(auto_select=False), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = tmp_path / "plot.png"
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code, str(study_dir), str(out)], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "svg", "False"]
    width, height = png_size(out.read_bytes())
    assert width > 500 and height > 200 and out.stat().st_size > 10_000


def synthetic_items(judges: int, n: int = 12) -> list[QAItem]:
    """``n`` test items judged by the reference gpt_4 and ``judges`` others named judge_00, ..."""
    items = []
    for i in range(n):
        verdicts = [Verdict("gpt_4", (i % 3) / 2, "t", "original")]
        verdicts += [Verdict(f"judge_{k:02d}", ((i + k) % 3) / 2, "t", "original") for k in range(judges)]
        items.append(QAItem(id=item_id("test", f"q{i}"), split="test", question=f"q{i}",
                            answers=(Answer("a", "x"), Answer("b", "y")), source="s",
                            evaluations=tuple(verdicts)))
    return items


def matrix_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_title().endswith("(corrected frame)")]


def test_only_the_reference_judge_is_an_error_not_empty_axes(tmp_path: Path) -> None:
    items = synthetic_items(0)
    out = tmp_path / "plot.png"
    with pytest.raises(JudgeEvalError) as info:
        plot_run(run_metrics(items, resamples=10), items, out, source="runs/only-ref")
    message = str(info.value)
    assert message.startswith("runs/only-ref: no judge besides the reference 'gpt_4'")
    assert "How to fix" in message
    assert not out.exists()


def test_many_judges_are_laid_out_in_rows_with_a_bounded_width(tmp_path: Path) -> None:
    items = synthetic_items(40)
    metrics = run_metrics(items, resamples=10)
    fig = build_figure(metrics, items)
    assert fig.get_figwidth() <= MAX_WIDTH_IN
    shown = matrix_axes(fig)
    assert [ax.get_xlabel() for ax in shown] == [f"judge_{k:02d}" for k in range(MAX_MATRICES)]
    columns = {round(ax.get_position().x0, 3) for ax in shown}
    rows = {round(ax.get_position().y0, 3) for ax in shown}
    assert len(columns) == MATRICES_PER_ROW and len(rows) == MAX_MATRICES // MATRICES_PER_ROW
    (note,) = [t.get_text() for t in fig.texts if t.get_text() != fig.get_suptitle()]  # besides the title
    assert f"first {MAX_MATRICES} of 40 judges" in note
    assert all(f"judge_{k:02d}" in note for k in range(MAX_MATRICES, 40))
    assert "judge_11" not in note
    # Every judge still has its bar.
    bars = [ax for ax in fig.axes if ax not in shown]
    assert len(bars) == 1 and len(bars[0].get_xticklabels()) == 40
    width, height = png_size(plot_run(metrics, items, tmp_path / "many.png").read_bytes())
    assert width <= MAX_WIDTH_IN * 110 + 50 and height <= 2000, (width, height)


def test_a_few_judges_fill_rows_of_four_and_nothing_is_left_out() -> None:
    items = synthetic_items(5)
    fig = build_figure(run_metrics(items, resamples=10), items)
    shown = matrix_axes(fig)
    assert len(shown) == 5 and [t.get_text() for t in fig.texts] == [fig.get_suptitle()]  # no left-out note
    assert len({round(ax.get_position().y0, 3) for ax in shown}) == 2


def test_the_plot_has_a_title_and_a_legend_outside_the_bars(study_dir) -> None:
    from judge_eval.core.metrics import run_metrics
    from judge_eval.core.store import read_run
    from judge_eval.reporting.plot import build_figure

    items = read_run(study_dir).test
    fig = build_figure(run_metrics(items, "gpt_4"), items)
    assert fig.get_suptitle() == "Agreement of 2 judge(s) with gpt_4 on 64 pairs"
    fig.canvas.draw()
    bars_ax = fig.axes[0]
    legend_box = bars_ax.get_legend().get_window_extent()
    for bar in bars_ax.patches:
        assert not legend_box.overlaps(bar.get_window_extent()), "the legend covers a bar"

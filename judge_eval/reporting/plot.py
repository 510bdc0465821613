"""``judge-eval plot``: agreement with the reference per judge (with its 95% interval, both frames)
and each judge's confusion matrix against the reference (corrected frame).

Layout: the agreement bars on top, across the figure; below them the confusion matrices in rows
of at most ``MATRICES_PER_ROW``. Only the first ``MAX_MATRICES`` judges (in order of first
appearance in the items) get a matrix; the figure names the ones left out. The figure is at most
``MAX_WIDTH_IN`` inches wide whatever the number of judges (the bars get narrower and their
labels turn upright), so it stays readable and a few thousand pixels at most."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from judge_eval.core.metrics import FRAMES, RunMetrics, frame_score
from judge_eval.core.items import QAItem
from judge_eval.errors import JudgeEvalError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABELS = (0.0, 0.5, 1.0)
LABEL_NAMES = ("second\nwins", "tie", "first\nwins")

#: Confusion matrices per row of the figure.
MATRICES_PER_ROW = 4
#: Judges that get a confusion matrix (the first ones in order of appearance); the rest are named.
MAX_MATRICES = 12
#: The widest the figure gets, in inches (at 110 dpi: 1760 px before the tight crop).
MAX_WIDTH_IN = 16.0
#: Above this many judges the bar labels are written upright.
UPRIGHT_LABELS_FROM = 9


def confusion(items: Sequence[QAItem], judge: str, reference: str) -> np.ndarray:
    """Counts over items where both are conclusive: rows = reference, columns = judge."""
    matrix = np.zeros((3, 3), dtype=int)
    for item in items:
        r, c = item.verdict(reference), item.verdict(judge)
        if r is not None and c is not None and r.conclusive and c.conclusive:
            matrix[LABELS.index(frame_score(r, "corrected")), LABELS.index(frame_score(c, "corrected"))] += 1
    return matrix


def build_figure(metrics: RunMetrics, items: Sequence[QAItem], *, title: str = "",
                 source: Path | str | None = None) -> Figure:
    """The figure ``plot_run`` saves, on its own Agg canvas. ``source`` names the run in errors.

    Raises ``JudgeEvalError`` when the run has no judge besides the reference (nothing to plot).
    """
    # An explicit figure on its own Agg canvas: no pyplot and no matplotlib.use(), so the calling
    # process's backend (and any figures it has open) is left as it was.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    judges = list(metrics.judges)
    if not judges:
        where = f"{source}: " if source is not None else ""
        raise JudgeEvalError(
            f"{where}no judge besides the reference {metrics.reference!r} in the test items, so there "
            "is nothing to compare or plot. How to fix: plot a run whose test items also hold verdicts "
            "of at least one other judge (judge-eval report lists the judges found)")
    shown, left_out = judges[:MAX_MATRICES], judges[MAX_MATRICES:]
    cols = min(MATRICES_PER_ROW, len(shown))
    rows = math.ceil(len(shown) / cols)
    width = min(MAX_WIDTH_IN, max(8.0, 3.4 * cols, 4.5 + 0.6 * len(judges)))
    upright = len(judges) >= UPRIGHT_LABELS_FROM
    bar_height = 5.0 if upright else 4.2
    fig = Figure(figsize=(width, bar_height + 3.4 * rows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[bar_height] + [3.4] * rows)

    ax = fig.add_subplot(grid[0, :])
    width_bar = 0.36
    for k, frame in enumerate(FRAMES):
        xs = np.arange(len(judges)) + (k - 0.5) * width_bar
        rates, lows, highs = [], [], []
        for j in judges:
            c = metrics.judges[j][frame]
            rate = c.agreement_rate if c.agreement_rate is not None else np.nan
            low, high = c.agreement_ci if c.agreement_ci else (np.nan, np.nan)
            rates.append(rate)
            lows.append(rate - low)
            highs.append(high - rate)
        ax.bar(xs, rates, width_bar, label=f"{frame} frame", alpha=0.85 if frame == "corrected" else 0.5)
        ax.errorbar(xs, rates, yerr=[lows, highs], fmt="none", ecolor="black", capsize=3, lw=1)
    sep = " " if upright else "\n"
    ax.set_xticks(np.arange(len(judges)),
                  [f"{j}{sep}({metrics.judges[j]['corrected'].total} pairs)" for j in judges],
                  fontsize=7 if upright else 8, rotation=90 if upright else 0)
    ax.set_xlim(-0.7, len(judges) - 0.3)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"agreement with {metrics.reference}")
    ax.set_title("agreement, 95% bootstrap interval", fontsize=10)
    # Outside the axes, to the right: bars reach up to 1.0 and down to 0, so any corner inside
    # the axes can cover one of them.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)

    for n, j in enumerate(shown):
        cm = confusion(items, j, metrics.reference)
        axc = fig.add_subplot(grid[1 + n // cols, n % cols])
        axc.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            axc.text(c, r, str(v), ha="center", va="center", fontsize=9,
                     color="white" if v > cm.max() / 2 else "black")
        axc.set_xticks(range(3), LABEL_NAMES, fontsize=7)
        axc.set_yticks(range(3), LABEL_NAMES, fontsize=7)
        axc.set_xlabel(j, fontsize=8)
        axc.set_ylabel(metrics.reference, fontsize=8)
        axc.set_title(f"{j} vs {metrics.reference}\n(corrected frame)", fontsize=9)
    if left_out:
        names = ", ".join(left_out[:40]) + (f" and {len(left_out) - 40} more" if len(left_out) > 40 else "")
        note = (f"Confusion matrices of the first {len(shown)} of {len(judges)} judges only; "
                f"left out: {names}.")
        fig.text(0.01, 0.0, textwrap.fill(note, int(width * 14)), ha="left", va="top", fontsize=8)
    fig.suptitle(title or default_title(metrics), fontsize=11)
    return fig


def default_title(metrics: RunMetrics) -> str:
    n = metrics.reference_stats.items
    return f"Agreement of {len(metrics.judges)} judge(s) with {metrics.reference} on {n} pairs"


def plot_run(metrics: RunMetrics, items: Sequence[QAItem], out: Path | str, *, title: str = "",
             source: Path | str | None = None) -> Path:
    """Write the figure to ``out`` (its format from the suffix, PNG without one)."""
    out = Path(out)
    fig = build_figure(metrics, items, title=title, source=source)
    fmt = out.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise JudgeEvalError(f"{out}: cannot write a {fmt!r} image. How to fix: name the output file "
                             f"with one of the suffixes {', '.join('.' + k for k in sorted(supported))} "
                             "(.png is the usual)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, bbox_inches="tight", format=fmt)
    except OSError as exc:
        raise JudgeEvalError(f"{out}: cannot write the plot ({exc.strerror or exc}). How to fix: "
                             "give a file path in a folder you may write to (not a folder)") from None
    return out

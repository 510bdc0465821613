"""``judge-eval plot``: agreement with the reference per judge (with its 95% interval, both frames)
and each judge's confusion matrix against the reference (corrected frame)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from judge_eval.core.metrics import FRAMES, RunMetrics, frame_score
from judge_eval.core.items import QAItem

LABELS = (0.0, 0.5, 1.0)
LABEL_NAMES = ("second\nwins", "tie", "first\nwins")


def confusion(items: Sequence[QAItem], judge: str, reference: str) -> np.ndarray:
    """Counts over items where both are conclusive: rows = reference, columns = judge."""
    matrix = np.zeros((3, 3), dtype=int)
    for item in items:
        r, c = item.verdict(reference), item.verdict(judge)
        if r is not None and c is not None and r.conclusive and c.conclusive:
            matrix[LABELS.index(frame_score(r, "corrected")), LABELS.index(frame_score(c, "corrected"))] += 1
    return matrix


def plot_run(metrics: RunMetrics, items: Sequence[QAItem], out: Path | str, *, title: str = "") -> Path:
    # An explicit figure on its own Agg canvas: no pyplot and no matplotlib.use(), so the calling
    # process's backend (and any figures it has open) is left as it was.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    judges = list(metrics.judges)
    fig = Figure(figsize=(4.5 + 3.2 * len(judges), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 1 + len(judges), width_ratios=[1.6] + [1] * len(judges), wspace=0.45)
    ax = fig.add_subplot(grid[0, 0])
    width = 0.36
    for k, frame in enumerate(FRAMES):
        xs = np.arange(len(judges)) + (k - 0.5) * width
        rates, lows, highs = [], [], []
        for j in judges:
            c = metrics.judges[j][frame]
            rate = c.agreement_rate if c.agreement_rate is not None else np.nan
            low, high = c.agreement_ci if c.agreement_ci else (np.nan, np.nan)
            rates.append(rate)
            lows.append(rate - low)
            highs.append(high - rate)
        ax.bar(xs, rates, width, label=f"{frame} frame", alpha=0.85 if frame == "corrected" else 0.5)
        ax.errorbar(xs, rates, yerr=[lows, highs], fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xticks(np.arange(len(judges)), [f"{j}\n({metrics.judges[j]['corrected'].total} pairs)" for j in judges],
                  fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"agreement with {metrics.reference}")
    ax.set_title("agreement, 95% bootstrap interval", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    for n, j in enumerate(judges, start=1):
        cm = confusion(items, j, metrics.reference)
        axc = fig.add_subplot(grid[0, n])
        axc.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            axc.text(c, r, str(v), ha="center", va="center", fontsize=9,
                     color="white" if v > cm.max() / 2 else "black")
        axc.set_xticks(range(3), LABEL_NAMES, fontsize=7)
        axc.set_yticks(range(3), LABEL_NAMES, fontsize=7)
        axc.set_xlabel(j, fontsize=8)
        axc.set_ylabel(metrics.reference, fontsize=8)
        axc.set_title(f"{j} vs {metrics.reference}\n(corrected frame)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    return out

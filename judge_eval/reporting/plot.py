"""``judge-eval plot``: agreement with the reference per judge (with its 95% interval, both frames)
and each judge's confusion matrix against the reference (corrected frame); for each score judge
(pointwise items), its confusion matrix over the declared scale (rows reference, columns judge:
``judge_eval.core.scores.score_confusion``) and a scatter of its scores against the reference's.

Layout: the agreement bars on top, across the figure; below them the confusion matrices in rows
of at most ``MATRICES_PER_ROW``. Only the first ``MAX_MATRICES`` judges (in order of first
appearance in the items) get a matrix; the figure names the ones left out. The figure is at most
``MAX_WIDTH_IN`` inches wide whatever the number of judges (the bars get narrower and their
labels turn upright), so it stays readable and a few thousand pixels at most. Score judges come
below, two panels each (matrix, scatter), two judges to a row of four panels, the first
``MAX_SCORE_JUDGES`` of them (the rest named); a run of pointwise items only has these alone.
Judges with verdict probabilities (``<judge>@choice``, ``RunMetrics.calibration``) get a
reliability diagram each in a last row (the first ``MATRICES_PER_ROW``): per bin of P(first answer
wins), the mean prediction against the observed share of first-answer wins by the reference, with
the bin's count written by its point.

The scatter jitters each point by up to a third of the scale's smallest step, drawn from
``np.random.default_rng(JITTER_SEED)``, so that the many items on one (reference, judge) cell
show as a cloud, the same cloud on every draw; the matrix holds the exact counts."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from judge_eval.core.metrics import FRAMES, RunMetrics, frame_score
from judge_eval.core.items import QAItem, scale_text
from judge_eval.core.scores import ScoreTable, item_errors, score_confusion
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
#: Score judges that get their two panels (the first ones in order of appearance); the rest are named.
MAX_SCORE_JUDGES = 6
#: The seed of the scatter's jitter.
JITTER_SEED = 0


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

    from judge_eval.core.choice import with_choice_verdicts

    items = with_choice_verdicts(list(items), metrics.choice_margin)  # the ``@choice`` judges' matrices
    judges = list(metrics.judges)
    score_judges = list(metrics.scores)
    if not judges and not score_judges:
        where = f"{source}: " if source is not None else ""
        raise JudgeEvalError(
            f"{where}no judge besides the reference {metrics.reference!r} in the test items, so there "
            "is nothing to compare or plot. How to fix: plot a run whose test items also hold verdicts "
            "of at least one other judge (judge-eval report lists the judges found)")
    shown, left_out = judges[:MAX_MATRICES], judges[MAX_MATRICES:]
    scored, scores_left_out = score_judges[:MAX_SCORE_JUDGES], score_judges[MAX_SCORE_JUDGES:]
    cols = min(MATRICES_PER_ROW, len(shown)) if shown else 0
    rows = math.ceil(len(shown) / cols) if cols else 0
    score_cols = 2 * min(2, len(scored))  # two panels per score judge, two judges to a row
    score_rows = math.ceil(2 * len(scored) / score_cols) if scored else 0
    columns = max(cols, score_cols)
    width = min(MAX_WIDTH_IN, max(8.0, 3.4 * columns, 4.5 + 0.6 * len(judges) if judges else 0.0))
    upright = len(judges) >= UPRIGHT_LABELS_FROM
    bar_height = (5.0 if upright else 4.2) if judges else 0.0
    calibrated = [c for c in metrics.calibration.values() if c.n][:MATRICES_PER_ROW]
    columns = max(columns, len(calibrated))
    heights = ([bar_height] if judges else []) + [3.4] * rows + [3.6] * score_rows + ([3.4] if calibrated else [])
    fig = Figure(figsize=(width, sum(heights)), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(heights), columns, height_ratios=heights)
    if judges:
        _agreement_bars(fig.add_subplot(grid[0, :]), metrics, judges, upright)
    for n, j in enumerate(shown):
        cm = confusion(items, j, metrics.reference)
        axc = fig.add_subplot(grid[1 + n // cols, n % cols])
        axc.imshow(cm, cmap="Blues", vmin=0)  # from 0: the text colour below is picked on that scale
        for (r, c), v in np.ndenumerate(cm):
            axc.text(c, r, str(v), ha="center", va="center", fontsize=9,
                     color="white" if v > cm.max() / 2 else "black")
        axc.set_xticks(range(3), LABEL_NAMES, fontsize=7)
        axc.set_yticks(range(3), LABEL_NAMES, fontsize=7)
        axc.set_xlabel(j, fontsize=8)
        axc.set_ylabel(metrics.reference, fontsize=8)
        axc.set_title(f"{j} vs {metrics.reference}\n(corrected frame)", fontsize=9)
    if scored:
        table = ScoreTable.from_items(items)
        first = (1 if judges else 0) + rows
        for n, j in enumerate(scored):
            row, col = first + (2 * n) // score_cols, (2 * n) % score_cols
            _score_panels(fig.add_subplot(grid[row, col]), fig.add_subplot(grid[row, col + 1]), table, metrics, j)
    for n, c in enumerate(calibrated):
        _reliability(fig.add_subplot(grid[len(heights) - 1, n]), c)
    notes = []
    if left_out:
        names = ", ".join(left_out[:40]) + (f" and {len(left_out) - 40} more" if len(left_out) > 40 else "")
        notes.append(f"Confusion matrices of the first {len(shown)} of {len(judges)} judges only; "
                     f"left out: {names}.")
    if scores_left_out:
        names = ", ".join(scores_left_out[:40]) + (f" and {len(scores_left_out) - 40} more"
                                                   if len(scores_left_out) > 40 else "")
        notes.append(f"Score panels of the first {len(scored)} of {len(score_judges)} score judges only; "
                     f"left out: {names}.")
    if notes:
        fig.text(0.01, 0.0, "\n".join(textwrap.fill(note, int(width * 14)) for note in notes), ha="left", va="top",
                 fontsize=8)
    fig.suptitle(title or default_title(metrics), fontsize=11)
    return fig


def _reliability(ax: Any, c: Any) -> None:
    """A reliability diagram of one judge's P(first answer wins) (a ``Calibration``)."""
    filled = [b for b in c.bins if b.count]
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    ax.plot([b.predicted for b in filled], [b.observed for b in filled], marker="o", color="tab:blue")
    for b in filled:
        ax.annotate(str(b.count), (b.predicted, b.observed), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted P(first wins)", fontsize=8)
    ax.set_ylabel(f"observed ({c.reference})", fontsize=8)
    ax.set_title(f"{c.judge}: reliability (n={c.n})\nECE {_short(c.ece)}, Brier {_short(c.brier)}", fontsize=9)


def _agreement_bars(ax: Any, metrics: RunMetrics, judges: Sequence[str], upright: bool) -> None:
    """Agreement with the reference per pairwise judge, both frames, with its 95% interval."""
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


def _score_panels(axm: Any, axs: Any, table: ScoreTable, metrics: RunMetrics, judge: str) -> None:
    """A score judge's confusion matrix over its scale and its scatter against the reference."""
    reference = metrics.score_reference
    assert reference is not None
    cm = score_confusion(table, judge, reference)
    labels = [scale_text([v])[1:-1] for v in cm.scale]
    k = len(cm.scale)
    axm.imshow(cm.counts, cmap="Blues", vmin=0)  # from 0, as the text colour's threshold (half the largest)
    if k <= 12:  # the counts stay legible
        for (r, c), v in np.ndenumerate(cm.counts):
            axm.text(c, r, str(v), ha="center", va="center", fontsize=8 if k <= 6 else 6,
                     color="white" if v > cm.counts.max() / 2 else "black")
    step = max(1, math.ceil(k / 12))
    axm.set_xticks(range(0, k, step), labels[::step], fontsize=7)
    axm.set_yticks(range(0, k, step), labels[::step], fontsize=7)
    axm.set_xlabel(f"{judge} (score)", fontsize=8)
    axm.set_ylabel(f"{reference} (score)", fontsize=8)
    c = metrics.scores[judge]
    axm.set_title(f"{judge} vs {reference}: counts\n({c.n} items both scored)", fontsize=9)

    errors = item_errors(table, judge, reference)
    scale = np.asarray(cm.scale)
    spread = float(np.min(np.diff(scale))) / 3
    rng = np.random.default_rng(JITTER_SEED)
    x = errors.reference_scores + rng.uniform(-spread, spread, len(errors.ids))
    y = errors.judge_scores + rng.uniform(-spread, spread, len(errors.ids))
    low, high = scale[0] - 2 * spread, scale[-1] + 2 * spread
    axs.plot([low, high], [low, high], color="grey", lw=1, ls="--", label="judge = reference", zorder=1)
    axs.scatter(x, y, s=12, alpha=0.5, color="tab:blue", label=f"one item (jittered by up to {spread:.3g})", zorder=2)
    axs.set_xlim(low, high)
    axs.set_ylim(low, high)
    axs.set_aspect("equal", adjustable="box")
    axs.set_xticks(scale[::step], labels[::step], fontsize=7)
    axs.set_yticks(scale[::step], labels[::step], fontsize=7)
    axs.set_xlabel(f"{reference} (score)", fontsize=8)
    axs.set_ylabel(f"{judge} (score)", fontsize=8)
    axs.set_title(f"{judge} vs {reference}: scores\n(MAE {_short(c.mae)}, QWK {_short(c.quadratic_kappa)})", fontsize=9)
    # Below the axes: points can fill every corner of the square.
    axs.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), borderaxespad=0.0, ncol=1)


def _short(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def default_title(metrics: RunMetrics) -> str:
    n = metrics.reference_stats.items
    pairs = f"Agreement of {len(metrics.judges)} judge(s) with {metrics.reference} on {n} pairs"
    if not metrics.has_scores:
        return pairs
    ref = metrics.score_reference_stats
    assert ref is not None
    scores = (f"scores of {len(metrics.scores)} score judge(s) against {metrics.score_reference} on {ref.items} "
              f"pointwise items, scale {scale_text(ref.scale)}")
    return f"{pairs}; {scores}" if metrics.judges else scores[0].upper() + scores[1:]


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

"""Reports of a run's metrics: text in the study's layout, Markdown, and JSON.

Every format shows coverage: how many items each judge, and the reference, has no verdict on
(agreement only ever sees the items where both have one).
"""

from __future__ import annotations

import json

from judge_eval.core.metrics import FRAMES, Comparison, RunMetrics

FORMATS = ("text", "json", "markdown")

_FRAME_TITLES = {
    "study": "study frame: raw scores, as the published notebook compared them",
    "corrected": "corrected frame: scores normalised to 'first answer wins'",
}


def _value(c: Comparison, name: str) -> str:
    value = getattr(c, name)
    if value is None:
        return f"undefined ({c.notes.get(name, 'no items')})"
    return str(value)


def _block(c: Comparison) -> str:
    # The first six lines are the notebook's REPORT_FMT_STR, value for value.
    ci = (f"[{c.agreement_ci[0]}, {c.agreement_ci[1]}]" if c.agreement_ci
          else f"undefined ({c.notes.get('agreement_ci', 'no items')})")
    return (
        f"{c.judge}\n"
        "-----------------\n"
        f"Number of inconclusives: {c.inconclusive}\n"
        f"Number of agreements with {c.reference}: {c.agreements} out of {c.total}\n"
        f"Agreement rate: {_value(c, 'agreement_rate')}\n"
        f"Correlation: {_value(c, 'correlation')}\n"
        f"Jaccard: {_value(c, 'jaccard')}\n"
        f"Cohen's kappa: {_value(c, 'kappa')}\n"
        f"Agreement 95% bootstrap interval: {ci}\n"
        f"Parse failures: {c.parse_failures}; errors: {c.errors}; missing verdicts: {c.missing}\n"
        f"Coverage: verdicts on {c.items - c.missing} of {c.items} items ({c.missing} missing); "
        f"the reference {c.reference} on {c.items - c.reference_missing} ({c.reference_missing} missing)\n"
        f"Consistency rate (conclusive share): {_value(c, 'consistency_rate')}\n"
        f"Length bias (decisive verdicts won by the longer answer): {_value(c, 'length_bias')}\n"
    )


def render_text(metrics: RunMetrics, *, title: str | None = None) -> str:
    ref = metrics.reference_stats
    lines = []
    if title:
        lines.append(title)
    lines.append(f"Reference judge: {metrics.reference}; number of inconclusives: {ref.inconclusive} "
                 f"of {ref.items} (parse failures {ref.parse_failures}, errors {ref.errors}); "
                 f"missing verdicts: {ref.missing} of {ref.items} (reference coverage "
                 f"{_num(metrics.reference_coverage, 4)})")
    for frame in FRAMES:
        lines.append("")
        lines.append(f"== {_FRAME_TITLES[frame]} ==")
        for frames in metrics.judges.values():
            lines.append("")
            lines.append(_block(frames[frame]).rstrip("\n"))
    return "\n".join(lines) + "\n"


def render_json(metrics: RunMetrics) -> str:
    return json.dumps(metrics.to_json(), indent=2) + "\n"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(text: object) -> str:
    """Text safe inside one Markdown table cell (or one line): ``|`` escaped, newlines as spaces."""
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").splitlines()) or " "


def _line(text: object) -> str:
    """Text safe on one Markdown line: newlines as spaces."""
    return " ".join(str(text).splitlines())


def render_markdown(metrics: RunMetrics, *, title: str | None = None) -> str:
    """One table per frame, for a pull-request comment or a CI step summary."""
    ref = metrics.reference_stats
    lines = [f"### {_line(title or 'judge_eval report')}", "",
             f"Reference judge **{_cell(metrics.reference)}**: {ref.inconclusive} inconclusive of {ref.items} "
             f"(parse failures {ref.parse_failures}, errors {ref.errors}); missing verdicts {ref.missing} "
             f"of {ref.items} (reference coverage {_num(metrics.reference_coverage)}).", ""]
    for frame in FRAMES:
        lines += [f"**{_FRAME_TITLES[frame]}**", "",
                  "| judge | inconclusive | parse failures | errors | agreements | agreement rate | 95% interval "
                  "| correlation | Jaccard | Cohen's kappa | missing |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for name, frames in metrics.judges.items():
            c = frames[frame]
            ci = f"[{_num(c.agreement_ci[0])}, {_num(c.agreement_ci[1])}]" if c.agreement_ci else "n/a"
            lines.append(f"| {_cell(name)} | {c.inconclusive} | {c.parse_failures} | {c.errors} | {c.agreements} of "
                         f"{c.total} | {_num(c.agreement_rate)} | {ci} | {_num(c.correlation)} | "
                         f"{_num(c.jaccard)} | {_num(c.kappa)} | {c.missing} of {c.items} |")
        lines.append("")
    return "\n".join(lines)


def render(metrics: RunMetrics, fmt: str = "text", *, title: str | None = None) -> str:
    if fmt == "text":
        return render_text(metrics, title=title)
    if fmt == "json":
        return render_json(metrics)
    if fmt == "markdown":
        return render_markdown(metrics, title=title)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")

"""Reports of a run's metrics: a compact table, text in the study's layout, Markdown, and JSON.

The compact table (``render_compact``, what ``judge-eval report`` and the pytest summary show by
default) is one row per judge in one frame and one tie mode, 3 significant digits, gated judges
marked ``*``, one reason line per judge with an undefined metric, then one PASS/FAIL line per gate
(``judge_eval.gating.gates.gate_results``). The study's layout (``render_text``: every metric of
every judge in both frames at full precision, reproducing the published printout) is
``--format study`` and ``pytest --judge-report=full``.

Every format shows coverage: how many items each judge, and the reference, has no verdict on
(agreement only ever sees the items where both have one).

Every format says which tie mode it shows: text and Markdown show one (``ties="with"`` by
default, MT-Bench's S1, the published table) in full and the other's agreement, interval and
kappa beside it; JSON carries both in full (``judges`` with ties, ``judges_without_ties``).
Annotator groups (``judge_eval.core.groups``) get a section of their own: the group's own
agreement as the ceiling, and every other judge's agreement with the group's majority and per
vote, placed against that ceiling.

Score judges (pointwise items, ``judge_eval.core.scores``) get a table of their own under the
pairwise one (alone in a run of pointwise items only): missing, parse failures, errors, exact
and within-1 agreement (matches / compared items, share), MAE, Pearson r, Spearman rho, Kendall
tau-b, quadratic-weighted kappa and the 95% interval of the metric the profile gates
(``score_interval``), 3 significant digits, the scale and the score reference named in its title.
The study layout gives each a full block at full precision; JSON carries them under
``score_judges``.
"""

from __future__ import annotations

import json

from typing import TYPE_CHECKING, Iterable, Sequence

from judge_eval.core.groups import GroupMetrics, Tally
from judge_eval.core.items import scale_text
from judge_eval.core.metrics import FRAMES, TIES, Comparison, RunMetrics, check_ties
from judge_eval.core.scores import SCORE_METRICS, ScoreComparison
from judge_eval.errors import JudgeEvalError
from judge_eval.gating.gates import passes

if TYPE_CHECKING:
    from judge_eval.gating.gates import GateResult

#: text: the compact table (and gate lines); study: every metric in both frames at full
#: precision, the study's layout; markdown: the compact table, then every table.
FORMATS = ("text", "study", "json", "markdown")

_FRAME_TITLES = {
    "study": "study frame: raw scores, as the published notebook compared them",
    "corrected": "corrected frame: scores normalised to 'first answer wins'",
}

_TIES_TITLES = {
    "with": "ties with (MT-Bench S1: a tie is a verdict; every item where both judges are conclusive)",
    "without": "ties without (MT-Bench S2: items where either judge says tie dropped)",
}

#: The frame the group sections of the text and Markdown reports show (JSON carries both).
GROUP_FRAME = "corrected"


def _items(n: int) -> str:
    return f"{n} item{'' if n == 1 else 's'}"


def _other(ties: str) -> str:
    return TIES[1 - TIES.index(ties)]


def _ties_line(c: Comparison) -> str:
    """The other tie mode's agreement, in one line under a judge's block."""
    ci = (f"[{c.agreement_ci[0]}, {c.agreement_ci[1]}]" if c.agreement_ci
          else f"undefined ({c.notes.get('agreement_ci', 'no items')})")
    how = f"{_items(c.tie_items)} where either says tie {'dropped' if c.ties == 'without' else 'included'}"
    return (f"Ties {c.ties} (MT-Bench {'S2' if c.ties == 'without' else 'S1'}; {how}): "
            f"{c.agreements} agreements out of {c.total}; agreement rate {_value(c, 'agreement_rate')}; "
            f"Cohen's kappa {_value(c, 'kappa')}; 95% interval {ci}")


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


def _tally(t: Tally, digits: int = 4) -> str:
    return f"{t.agreements} of {t.comparisons} ({_num(t.rate, digits)})"


def _group_lines(g: GroupMetrics, ties: str, frame: str = GROUP_FRAME) -> list[str]:
    """One group in the text report: its ceiling, then two lines per other judge."""
    modes = (ties, _other(ties))
    view = g.view(frame, ties)
    lines = [f"== annotator group {g.group} ({frame} frame): {len(g.members)} annotators "
             f"({', '.join(g.members)}); {g.votes} votes ({g.conclusive_votes} conclusive) on "
             f"{g.items_voted} of {g.items} items; majority: {g.majority_source} ==",
             f"Majority verdicts: {view.majority_conclusive} conclusive, {view.majority_inconclusive} "
             f"inconclusive (no strict majority), {view.majority_missing} missing (no vote)",
             f"{g.group}-{g.group} agreement (the ceiling): "
             + "; ".join(f"ties {t} {_tally(g.view(frame, t).ceiling)}" for t in modes)]
    for judge in view.judges:
        lines.append(f"{judge}: agreement with the {g.group} majority: " + "; ".join(
            f"ties {t} {_majority(g.view(frame, t).judges[judge].majority)}" for t in modes))
        lines.append(f"{judge}: per-vote agreement: " + "; ".join(
            f"ties {t} {_tally(g.view(frame, t).judges[judge].per_vote)} vs {g.group}-{g.group} "
            f"{_num(g.view(frame, t).ceiling.rate, 4)}" for t in modes))
    return lines


def _majority(c: Comparison, digits: int = 4) -> str:
    return f"{c.agreements} of {c.total} ({_num(c.agreement_rate, digits)}, kappa {_num(c.kappa, digits)})"


def _reference_line(metrics: RunMetrics) -> str:
    ref = metrics.reference_stats
    return (f"Reference judge: {metrics.reference}; number of inconclusives: {ref.inconclusive} "
            f"of {ref.items} (parse failures {ref.parse_failures}, errors {ref.errors}); "
            f"missing verdicts: {ref.missing} of {ref.items} (reference coverage "
            f"{_num(metrics.reference_coverage, 4)})")


def render_text(metrics: RunMetrics, *, title: str | None = None, ties: str = "with") -> str:
    check_ties(ties)
    lines = []
    if title:
        lines.append(title)
    if metrics.has_pairwise:
        lines.append(_reference_line(metrics))
        lines.append(f"Shown: {_TIES_TITLES[ties]}; each judge's last line: ties {_other(ties)}")
        shown, other = metrics.comparisons(ties), metrics.comparisons(_other(ties))
        for frame in FRAMES:
            lines.append("")
            lines.append(f"== {_FRAME_TITLES[frame]}; ties {ties} ==")
            for name, frames in shown.items():
                lines.append("")
                lines.append(_block(frames[frame]).rstrip("\n"))
                if name in other:
                    lines.append(_ties_line(other[name][frame]))
        for group in metrics.groups.values():
            lines.append("")
            lines += _group_lines(group, ties)
        if metrics.calibration:
            lines += ["", *calibration_lines(metrics)]
    if metrics.has_scores:
        if metrics.has_pairwise:
            lines.append("")
        lines += _score_text(metrics)
    return "\n".join(lines) + "\n"


#: Labels of the score metrics in the study layout, and their short names in the tables.
_SCORE_LABELS = {"exact_agreement": "Exact agreement", "within_1_agreement": "Within-1 agreement",
                 "mae": "Mean absolute error", "pearson": "Pearson r", "spearman": "Spearman rho",
                 "kendall_tau_b": "Kendall tau-b", "quadratic_kappa": "Quadratic-weighted kappa"}
_SCORE_SHORT = {"exact_agreement": "exact", "within_1_agreement": "within-1", "mae": "MAE", "pearson": "r",
                "spearman": "rho", "kendall_tau_b": "tau-b", "quadratic_kappa": "QWK"}


def _score_reference_line(metrics: RunMetrics) -> str:
    ref = metrics.score_reference_stats
    assert ref is not None
    return (f"Score reference judge: {metrics.score_reference}; scale {scale_text(ref.scale)}; scored {ref.conclusive} "
            f"of {ref.items} pointwise items (parse failures {ref.parse_failures}, errors {ref.errors}); missing "
            f"verdicts: {ref.missing} of {ref.items} (reference coverage {_num(metrics.score_reference_coverage, 4)})")


def _score_value(c: ScoreComparison, name: str) -> str:
    value = c.metric(name)
    return f"undefined ({c.notes.get(name, 'no items')})" if value is None else str(value)


def _score_block(c: ScoreComparison) -> str:
    """A score judge at full precision: counts, every metric of ``SCORE_METRICS``, the interval."""
    matches = {"exact_agreement": f"{c.exact_matches} of {c.n}, ",
               "within_1_agreement": f"{c.within_1_matches} of {c.n}, "}
    ci = (f"[{c.interval[0]}, {c.interval[1]}]" if c.interval
          else f"undefined ({c.notes.get('interval', 'no interval computed')})")
    lines = [c.judge, "-----------------",
             f"Scored {c.conclusive} of {c.items} items; parse failures: {c.parse_failures}; errors: {c.errors}; "
             f"missing verdicts: {c.missing}",
             f"Compared items (both scored): {c.n}"]
    lines += [f"{_SCORE_LABELS[name]}: {matches.get(name, '')}{_score_value(c, name)}" for name in SCORE_METRICS]
    lines.append(f"{c.interval_metric} 95% bootstrap interval: {ci}"
                 + (f" ({c.notes['interval']})" if c.interval and "interval" in c.notes else ""))
    lines.append(f"Coverage: verdicts on {c.items - c.missing} of {c.items} items ({c.missing} missing); the reference "
                 f"{c.reference} on {c.items - c.reference_missing} ({c.reference_missing} missing)")
    return "\n".join(lines)


def _score_text(metrics: RunMetrics) -> list[str]:
    """The study layout's section of the score judges."""
    lines = [_score_reference_line(metrics), "",
             f"== score judges (pointwise items) against {metrics.score_reference} =="]
    for c in metrics.scores.values():
        lines += ["", _score_block(c)]
    if not metrics.scores:
        lines += ["", f"no score judge besides the reference {metrics.score_reference}"]
    return lines


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


def _ci_cell(c: Comparison) -> str:
    """The agreement interval as a Markdown cell, 3 decimals, or n/a."""
    return f"[{_num(c.agreement_ci[0])}, {_num(c.agreement_ci[1])}]" if c.agreement_ci else "n/a"


def render_markdown(metrics: RunMetrics, *, title: str | None = None, ties: str = "with") -> str:
    """One table per frame, for a pull-request comment or a CI step summary, in the tie mode
    ``ties``; the other mode's agreement as a list under each table; a table per annotator group."""
    check_ties(ties)
    ref = metrics.reference_stats
    other = metrics.comparisons(_other(ties))
    lines = [f"### {_line(title or 'judge_eval report')}", ""]
    if metrics.has_pairwise:
        lines += [f"Reference judge **{_cell(metrics.reference)}**: {ref.inconclusive} inconclusive of {ref.items} "
                  f"(parse failures {ref.parse_failures}, errors {ref.errors}); missing verdicts {ref.missing} "
                  f"of {ref.items} (reference coverage {_num(metrics.reference_coverage)}).", "",
                  f"Tables: {_TIES_TITLES[ties]}.", ""]
    for frame in FRAMES if metrics.has_pairwise else ():
        lines += [f"**{_FRAME_TITLES[frame]}; ties {ties}**", "",
                  "| judge | inconclusive | parse failures | errors | agreements | agreement rate | 95% interval "
                  "| correlation | Jaccard | Cohen's kappa | missing |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for name, frames in metrics.comparisons(ties).items():
            c = frames[frame]
            ci = _ci_cell(c)
            lines.append(f"| {_cell(name)} | {c.inconclusive} | {c.parse_failures} | {c.errors} | {c.agreements} of "
                         f"{c.total} | {_num(c.agreement_rate)} | {ci} | {_num(c.correlation)} | "
                         f"{_num(c.jaccard)} | {_num(c.kappa)} | {c.missing} of {c.items} |")
        lines.append("")
        if other:
            title = _TIES_TITLES[_other(ties)]
            lines += [f"{title[0].upper()}{title[1:]}:", ""]
            for name, frames in other.items():
                o = frames[frame]
                ci = _ci_cell(o)
                lines.append(f"- {_line(_cell(name))}: {o.agreements} of {o.total} agreements "
                             f"({_num(o.agreement_rate)}), 95% interval {ci}, Cohen's kappa {_num(o.kappa)}; "
                             f"{_items(o.tie_items)} where either says tie")
            lines.append("")
    for group in metrics.groups.values():
        lines += _group_markdown(group, ties)
    if metrics.has_scores:
        lines += _score_markdown(metrics)
    return "\n".join(lines)


def _score_markdown(metrics: RunMetrics) -> list[str]:
    """The score judges at 4 decimals, with the counts behind each share."""
    ref = metrics.score_reference_stats
    assert ref is not None
    lines = [f"**Score judges (pointwise items)**: score reference **{_cell(metrics.score_reference)}**, scale "
             f"{scale_text(ref.scale)}: scored {ref.conclusive} of {ref.items} (parse failures {ref.parse_failures}, "
             f"errors {ref.errors}); missing verdicts {ref.missing} of {ref.items} (reference coverage "
             f"{_num(metrics.score_reference_coverage)}).", "",
             "| judge | scored | parse failures | errors | missing | exact | within-1 | MAE | Pearson r | Spearman rho "
             f"| Kendall tau-b | quadratic kappa | 95% interval ({_cell(metrics.score_interval)}) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, c in metrics.scores.items():
        ci = f"[{_num(c.interval[0], 4)}, {_num(c.interval[1], 4)}]" if c.interval else "n/a"
        lines.append(f"| {_cell(name)} | {c.conclusive} | {c.parse_failures} | {c.errors} | {c.missing} of {c.items} | "
                     f"{c.exact_matches} of {c.n} ({_num(c.exact_agreement, 4)}) | {c.within_1_matches} of {c.n} "
                     f"({_num(c.within_1_agreement, 4)}) | {_num(c.mae, 4)} | {_num(c.pearson, 4)} | "
                     f"{_num(c.spearman, 4)} | {_num(c.kendall_tau_b, 4)} | {_num(c.quadratic_kappa, 4)} | {ci} |")
    lines.append("")
    return lines


def _group_markdown(g: GroupMetrics, ties: str, frame: str = GROUP_FRAME) -> list[str]:
    modes = (ties, _other(ties))
    view = g.view(frame, ties)
    lines = [f"**annotator group {_cell(g.group)} ({frame} frame)**: {len(g.members)} annotators "
             f"({_cell(', '.join(g.members))}); {g.votes} votes ({g.conclusive_votes} conclusive) on "
             f"{g.items_voted} of {g.items} items; majority: {_cell(g.majority_source)} "
             f"({view.majority_conclusive} conclusive, {view.majority_inconclusive} inconclusive, "
             f"{view.majority_missing} missing). {_cell(g.group)}-{_cell(g.group)} agreement (the ceiling): "
             + "; ".join(f"ties {t} {_tally(g.view(frame, t).ceiling, 3)}" for t in modes) + ".", "",
             f"| judge | ties | agreement with the majority | Cohen's kappa | per-vote agreement | "
             f"{_cell(g.group)}-{_cell(g.group)} (ceiling) |",
             "|---|---|---:|---:|---:|---:|"]
    for judge in view.judges:
        for t in modes:
            v = g.view(frame, t)
            j = v.judges[judge]
            lines.append(f"| {_cell(judge)} | {t} | {j.majority.agreements} of {j.majority.total} "
                         f"({_num(j.majority.agreement_rate)}) | {_num(j.majority.kappa)} | "
                         f"{_tally(j.per_vote, 3)} | {_num(v.ceiling.rate)} |")
    lines.append("")
    return lines


# --------------------------------------------------------------------------- the compact table

_TIES_SHORT = {"with": "ties with (MT-Bench S1)", "without": "ties without (MT-Bench S2: tie items dropped)"}
_NOT_MET = {">=": "<", "<=": ">", ">": "<="}
_PAIRWISE = frozenset({"agreement_rate", "correlation", "agreement_ci_low", "kappa_ci_low",
                       "compared"})  # gates that depend on frame and ties
_STAR = " \\*"  # the gated mark in Markdown, escaped: a bare * would start emphasis


def sig(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros kept (``1.00``); None is ``n/a``."""
    if value is None:
        return "n/a"
    text = f"{value:#.{digits}g}"
    return text if "e" in text else text.rstrip(".")


def _reason(note: str) -> str:
    return note.removeprefix("undefined: ")


def _check_frame(frame: str) -> None:
    if frame not in FRAMES:
        raise JudgeEvalError(f"unknown frame {frame!r}; known frames: {', '.join(FRAMES)}")


def _table_title(metrics: RunMetrics, frame: str, ties: str, marked: bool) -> str:
    return (f"{frame} frame, {_TIES_SHORT[ties]}; agreement, r and kappa against the reference "
            f"{metrics.reference}" + ("; * gated" if marked else ""))


_HEADER = ("judge", "inconclusive", "missing", "parse fail", "errors", "agreement [95% CI]", "r", "kappa")


def _reference_row(metrics: RunMetrics) -> tuple[str, ...]:
    ref = metrics.reference_stats
    return (f"{ref.inconclusive}/{ref.items}", str(ref.missing), str(ref.parse_failures), str(ref.errors), "-",
            "-", "-")


def _row(c: Comparison) -> tuple[str, ...]:
    agreement = f"{c.agreements}/{c.total} {sig(c.agreement_rate)}"
    if c.agreement_ci:
        agreement += f" [{sig(c.agreement_ci[0])}, {sig(c.agreement_ci[1])}]"
    return (f"{c.inconclusive}/{c.items}", str(c.missing), str(c.parse_failures), str(c.errors), agreement,
            sig(c.correlation), sig(c.kappa))


def _conclusive(c: Comparison) -> int:
    """The judge's conclusive verdicts among ``c``'s items."""
    return c.items - c.missing - c.inconclusive - c.parse_failures - c.errors


def na_lines(comparisons: Iterable[Comparison], reference_conclusive: int | None = None) -> list[str]:
    """``na_line`` of each judge, in order, except that judges with nothing compared for the same
    reason share one line (``n/a a, a@choice: no item where ... (conclusive verdicts of 64: a 0,
    a@choice 0, ref 60)``): one cause, said once, every judge and count still named."""
    entries: list[str | tuple[str, list[Comparison]]] = []  # a line, or a reason and its judges
    shared: dict[str, list[Comparison]] = {}
    for c in comparisons:
        if c.total != 0:
            if (line := na_line(c, reference_conclusive)) is not None:
                entries.append(line)
            continue
        why = _nothing_compared_reason(c)
        if why not in shared:
            shared[why] = []
            entries.append((why, shared[why]))
        shared[why].append(c)
    return [e if isinstance(e, str) else _nothing_compared(*e, reference_conclusive) for e in entries]


def _nothing_compared_reason(c: Comparison) -> str:
    return _reason(c.notes.get("agreement_rate", "no item where both judges are conclusive"))


def _nothing_compared(why: str, judges: list[Comparison], reference_conclusive: int | None) -> str:
    """The n/a line of judges compared on no item, for reason ``why``."""
    counts = [f"{c.judge} {_conclusive(c)}" for c in judges]
    if reference_conclusive is not None:
        counts.append(f"{judges[0].reference} {reference_conclusive}")
    return (f"n/a {', '.join(c.judge for c in judges)}: {why} (conclusive verdicts of {judges[0].items}: "
            f"{', '.join(counts)})")


def na_line(c: Comparison, reference_conclusive: int | None = None) -> str | None:
    """One short line saying why a judge's agreement, r or kappa is n/a (None when all are defined)."""
    undefined = [(label, key) for label, key in (("agreement", "agreement_rate"), ("r", "correlation"),
                                                 ("kappa", "kappa")) if getattr(c, key) is None]
    if not undefined:
        return None
    if c.total == 0:  # one cause for all of them
        return _nothing_compared(_nothing_compared_reason(c), [c], reference_conclusive)
    reasons: dict[str, list[str]] = {}
    for label, key in undefined:
        reasons.setdefault(_reason(c.notes.get(key, "undefined")), []).append(label)
    return f"n/a {c.judge}: " + "; ".join(f"{', '.join(labels)}: {why}" for why, labels in reasons.items())


def _measured(r: GateResult) -> str:
    """The measured value to 3 significant digits, or more when 3 would put it on the wrong side of
    (or onto) the threshold the line says it passes or misses."""
    value = r.measured
    if isinstance(value, int) or value is None:
        return str(value)
    for digits in range(3, 18):
        text = sig(value, digits)
        shown = float(text)
        ok = passes(shown, r.op, r.allowed)
        if ok == r.passed:
            return text
    return repr(value)


def gate_line(r: GateResult) -> str:
    """``PASS ft_gpt_3p5 agreement_rate 0.936 (44/47) >= allowed 0.85`` or
    ``FAIL gpt_3p5 inconclusive_rate 0.375 (24/64) > allowed 0.25``."""
    status = "PASS" if r.passed else "FAIL"
    who = r.judge if r.role == "judge" else f"{r.judge} (reference)"
    if r.measured is None:
        return f"{status} {who} {r.metric} n/a, allowed {r.op} {r.allowed}: {_reason(r.note)}"
    counts = f" ({r.counts})" if r.counts else ""
    op = r.op if r.passed else _NOT_MET[r.op]
    return f"{status} {who} {r.metric} {_measured(r)}{counts} {op} allowed {r.allowed}"


def _elsewhere(r: GateResult, frame: str, ties: str) -> str:
    """Names the frame and tie mode a gate read when the table above shows another."""
    if r.metric not in _PAIRWISE or not r.frame or (r.frame, r.ties) == (frame, ties):  # "": a score judge's gate
        return ""
    return f" ({r.frame} frame, ties {r.ties})"


def _group_line(g: GroupMetrics, frame: str, ties: str) -> str:
    ceiling = g.view(frame, ties).ceiling
    return (f"annotator group {g.group} ({len(g.members)} annotators): {g.group}-{g.group} agreement "
            f"{ceiling.agreements}/{ceiling.comparisons} {sig(ceiling.rate)} (the ceiling); agreement with "
            "its majority and per vote in the full report")


def calibration_lines(metrics: RunMetrics) -> list[str]:
    """One line per judge with verdict probabilities (``<judge>@choice``): Brier, ECE and AUC of
    P(first answer wins) against the reference's decisive verdicts, with n; a reason per undefined
    metric. Empty when no judge has probabilities."""
    lines = []
    for name, c in metrics.calibration.items():
        cells = ", ".join(f"{label} {_num(getattr(c, key), 4)}" for key, label in
                          (("brier", "Brier"), ("ece", "ECE"), ("auc", "AUC")))
        line = (f"Verdict probabilities of {name} against {c.reference}'s decisive verdicts (n={c.n}, "
                f"{c.positives} first-answer wins): {cells}")
        reasons = "; ".join(f"{key}: {note}" for key, note in c.notes.items())
        lines.append(line + (f" ({reasons})" if reasons else ""))
    return lines


def render_compact(metrics: RunMetrics, *, frame: str = "corrected", ties: str = "with",
                   gated: Iterable[str] = (), title: str | None = None,
                   gates: Sequence[GateResult] | None = None) -> str:
    """One table: a row per judge in ``frame`` and tie mode ``ties`` (gated judges marked ``*``),
    a reason line per judge with an undefined metric, a line per annotator group; the score
    judges' table and its reason lines (a run of pointwise items only has that table alone); then
    one PASS/FAIL line per gate in ``gates``."""
    _check_frame(frame)
    check_ties(ties)
    gated = set(gated)
    lines = [title] if title else []
    if metrics.has_pairwise:
        shown = metrics.comparisons(ties)
        marked = bool(gated & set(shown))
        rows = [(f"  {_HEADER[0]}", *_HEADER[1:]), (f"  {metrics.reference} (reference)", *_reference_row(metrics))]
        rows += [(f"{'*' if name in gated else ' '} {name}", *_row(frames[frame])) for name, frames in shown.items()]
        lines.append(_table_title(metrics, frame, ties, marked))
        lines += _aligned(rows, {0, 5})  # judge and agreement read left to right; counts and numbers align right
        ref_conclusive = metrics.reference_stats.conclusive
        lines += na_lines((frames[frame] for frames in shown.values()), ref_conclusive)
        lines += [_group_line(g, frame, ties) for g in metrics.groups.values()]
        lines += calibration_lines(metrics)
    if metrics.has_scores:
        rows = [(f"  {_SCORE_HEADER[0]}", *_SCORE_HEADER[1:]),
                (f"  {metrics.score_reference} (reference)", *_score_reference_row(metrics))]
        rows += [(f"{'*' if name in gated else ' '} {name}", *_score_row(c)) for name, c in metrics.scores.items()]
        lines.append(_score_table_title(metrics, bool(gated & set(metrics.scores))))
        lines += _aligned(rows, {0, 4, 5, 11})
        lines += [line for c in metrics.scores.values() if (line := score_na_line(c, _score_ref_conclusive(metrics)))]
    lines += [gate_line(r) + _elsewhere(r, frame, ties) for r in gates or ()]
    return "\n".join(lines) + "\n"


def _aligned(rows: Sequence[tuple[str, ...]], left: set[int]) -> list[str]:
    """``rows`` as text columns two spaces apart: columns in ``left`` flush left, the rest right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]


# --------------------------------------------------------------------------- score judges, compact

_SCORE_HEADER = ("judge", "missing", "parse fail", "errors", "exact", "within-1", "MAE", "r", "rho", "tau-b", "QWK",
                 "95% CI")


def _score_table_title(metrics: RunMetrics, marked: bool) -> str:
    ref = metrics.score_reference_stats
    assert ref is not None
    return (f"score judges on {_items(ref.items)} (pointwise), scale {scale_text(ref.scale)}; exact, within-1, MAE, "
            f"r, rho, tau-b and QWK against the reference {metrics.score_reference}; 95% CI of {metrics.score_interval}"
            + ("; * gated" if marked else ""))


def _score_reference_row(metrics: RunMetrics) -> tuple[str, ...]:
    ref = metrics.score_reference_stats
    assert ref is not None
    return (str(ref.missing), str(ref.parse_failures), str(ref.errors), *("-" for _ in range(8)))


def _score_ref_conclusive(metrics: RunMetrics) -> int | None:
    ref = metrics.score_reference_stats
    return ref.conclusive if ref is not None else None


def _score_row(c: ScoreComparison) -> tuple[str, ...]:
    ci = f"[{sig(c.interval[0])}, {sig(c.interval[1])}]" if c.interval else "n/a"
    return (str(c.missing), str(c.parse_failures), str(c.errors),
            f"{c.exact_matches}/{c.n} {sig(c.exact_agreement)}",
            f"{c.within_1_matches}/{c.n} {sig(c.within_1_agreement)}",
            sig(c.mae), sig(c.pearson), sig(c.spearman), sig(c.kendall_tau_b), sig(c.quadratic_kappa), ci)


def score_na_line(c: ScoreComparison, reference_scored: int | None = None) -> str | None:
    """One short line saying why a score judge's metrics or interval are n/a (None when all are
    defined)."""
    undefined = [name for name in SCORE_METRICS if c.metric(name) is None]
    if c.interval is None and c.interval_metric is not None:
        undefined.append("interval")
    if not undefined:
        return None
    if c.n == 0:  # one cause for all of them
        ref = f", {c.reference} {reference_scored}" if reference_scored is not None else ""
        return (f"n/a {c.judge}: no item where both judges gave a score (scored verdicts of {c.items}: "
                f"{c.judge} {c.conclusive}{ref})")
    reasons: dict[str, list[str]] = {}
    for name in undefined:
        label = "95% CI" if name == "interval" else _SCORE_SHORT[name]
        reasons.setdefault(_reason(c.notes.get(name, "undefined")), []).append(label)
    return f"n/a {c.judge}: " + "; ".join(f"{', '.join(labels)}: {why}" for why, labels in reasons.items())


def render_compact_markdown(metrics: RunMetrics, *, frame: str = "corrected", ties: str = "with",
                            gated: Iterable[str] = (), title: str | None = None,
                            gates: Sequence[GateResult] | None = None) -> str:
    """The compact table as Markdown, its reason lines and one PASS/FAIL item per gate."""
    _check_frame(frame)
    check_ties(ties)
    gated = set(gated)
    lines = [f"### {_line(title or 'judge_eval report')}", ""]
    notes = []
    if metrics.has_pairwise:
        shown = metrics.comparisons(ties)
        marked = bool(gated & set(shown))
        lines += [_cell(_table_title(metrics, frame, ties, marked)).replace("*", _STAR.strip()), "",
                  "| judge | inconclusive | missing | parse failures | errors | agreement [95% CI] | r | kappa |",
                  "|---|---:|---:|---:|---:|---|---:|---:|",
                  f"| {_cell(metrics.reference)} (reference) | " + " | ".join(_reference_row(metrics)) + " |"]
        for name, frames in shown.items():
            mark = _STAR if name in gated else ""
            lines.append(f"| {_cell(name)}{mark} | " + " | ".join(_cell(cell) for cell in _row(frames[frame])) + " |")
        notes += na_lines((frames[frame] for frames in shown.values()), metrics.reference_stats.conclusive)
        notes += [_group_line(g, frame, ties) for g in metrics.groups.values()]
        notes += calibration_lines(metrics)
    if metrics.has_scores:
        if metrics.has_pairwise:
            lines.append("")
        lines += [_cell(_score_table_title(metrics, bool(gated & set(metrics.scores)))).replace("*", _STAR.strip()),
                  "", "| " + " | ".join(_SCORE_HEADER) + " |",
                  "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|",
                  f"| {_cell(metrics.score_reference)} (reference) | "
                  + " | ".join(_score_reference_row(metrics)) + " |"]
        for name, c in metrics.scores.items():
            mark = _STAR if name in gated else ""
            lines.append(f"| {_cell(name)}{mark} | " + " | ".join(_cell(cell) for cell in _score_row(c)) + " |")
        notes += [line for c in metrics.scores.values() if (line := score_na_line(c, _score_ref_conclusive(metrics)))]
    if notes:
        lines += [""] + [f"- {_cell(note)}" for note in notes]
    if gates:
        lines += [""] + [f"- {_cell(gate_line(r) + _elsewhere(r, frame, ties))}" if r.passed
                         else f"- **{_cell(gate_line(r) + _elsewhere(r, frame, ties))}**" for r in gates]
    return "\n".join(lines) + "\n"


def render_markdown_report(metrics: RunMetrics, *, frame: str = "corrected", ties: str = "with",
                           gated: Iterable[str] = (), title: str | None = None,
                           gates: Sequence[GateResult] | None = None) -> str:
    """The compact Markdown table and gate lines, then every table (``render_markdown``) folded in
    a ``<details>`` block."""
    gated = tuple(gated)
    every = render_markdown(metrics, ties=ties).partition("\n\n")[2]  # without its heading: the summary names it
    summary = "Every metric, both frames" if metrics.has_pairwise else "Every metric"
    return (render_compact_markdown(metrics, frame=frame, ties=ties, gated=gated, title=title, gates=gates)
            + f"\n<details><summary>{summary}</summary>\n\n" + every + "\n</details>\n")


def render(metrics: RunMetrics, fmt: str = "text", *, title: str | None = None, ties: str = "with",
           frame: str = "corrected", gated: Iterable[str] = (), gates: Sequence[GateResult] | None = None) -> str:
    """``text``: the compact table in ``frame`` and ``ties`` (gated judges marked, then a line per
    gate of ``gates``); ``study``: the study's layout, both frames in full, ``ties`` shown in full;
    ``markdown``: the compact table and gate lines, then every table; ``json``: every metric, both
    frames and both tie modes, at full precision."""
    if fmt == "text":
        return render_compact(metrics, frame=frame, ties=ties, gated=gated, title=title, gates=gates)
    if fmt == "study":
        return render_text(metrics, title=title, ties=ties)
    if fmt == "json":
        return render_json(metrics)
    if fmt == "markdown":
        return render_markdown_report(metrics, frame=frame, ties=ties, gated=gated, title=title, gates=gates)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")

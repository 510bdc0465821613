"""Compare two runs over the same test items: what a new judge (or a new version of one) changed.

Per judge present in both runs: every metric with its old and new value (counts as counts), a
paired bootstrap interval for the agreement delta, the items whose verdict changed, and two exact
two-sided McNemar tests (a binomial test on the discordant items): on "agrees with the
reference" (a conclusive verdict equal to the reference's, corrected frame; anything else counts as
not agreeing) and on "gave a conclusive verdict". A gated judge fails the comparison when

* its agreement drops significantly (p < alpha and more items lost agreement than gained it);
* it loses conclusive verdicts significantly (p < alpha and more items went from conclusive to
  inconclusive, unparseable, error or missing than the other way): a judge that stops answering
  never loses agreement on the items it no longer answers, so the first test cannot see it;
* its parse failures or errors in the new run are above the profile's ``max_parse_failures`` or
  ``max_errors``;
* or a gate it passed on the old run fails on the new one.

A single moved verdict is reported (with its item), never a failure on its own: with one
discordant item no exact test can be significant.

Every gated judge must have verdicts in both runs (else a ``JudgeEvalError`` names the judge and
the run that lacks it): a gated judge that was renamed or dropped must never pass by omission.
A judge found in only one run is listed as removed (only in the old run) or added (only in the
new one), in the text and the JSON output.

The profile comes from ``--profile``, else from the runs' ``run.json`` (``profile_from_runs``):
a comparison read with the wrong profile's reference and gated judges is worse than none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from judge_eval.errors import JudgeEvalError, RunFileError
from judge_eval.core.metrics import (Comparison, Items, JudgeStats, VerdictTable, as_table, bootstrap_means,
                                     discover_judges, frame_score, run_metrics)
from judge_eval.core.items import QAItem

FRAME = "corrected"

#: The counts compared per judge (``Comparison`` fields), with the label the text shows.
COUNTS = {"inconclusive": "inconclusive", "parse_failures": "parse failures", "errors": "errors",
          "missing": "missing", "agreements": "agreements", "total": "compared items", "tie_items": "tie items"}
#: The rates and statistics compared per judge, with their label.
RATES = {"agreement_rate": "agreement rate", "correlation": "r", "jaccard": "Jaccard", "kappa": "kappa",
         "agreement_ci_low": "agreement CI low", "agreement_ci_high": "agreement CI high",
         "kappa_ci_low": "kappa CI low", "kappa_ci_high": "kappa CI high",
         "inconclusive_rate": "inconclusive rate", "consistency_rate": "consistency rate",
         "length_bias": "length bias"}
#: The reference judge's own counts (``JudgeStats`` fields): its verdicts bound every agreement.
REFERENCE_COUNTS = {"inconclusive": "inconclusive", "parse_failures": "parse failures", "errors": "errors",
                    "missing": "missing"}
#: The profile thresholds a gated judge's new run must not exceed, whatever the old run did.
MAX_THRESHOLDS = {"parse_failures": "max_parse_failures", "errors": "max_errors"}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # sum of comb(n, i) for i <= k, each term from the last (exact integers: comb(n, i) called
    # afresh for every i took minutes at 15,000 discordant pairs)
    term = total = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    tail = total / 2 ** n
    return min(1.0, 2 * tail)


def agreement_vector(items: Items, judge: str, reference: str) -> np.ndarray:
    if isinstance(items, VerdictTable):
        r, c = items.column(reference), items.column(judge)
        agree = r.conclusive & c.conclusive & (r.frame_scores(FRAME) == c.frame_scores(FRAME))
        return agree.astype(float)
    out = []
    for item in items:
        r, c = item.verdict(reference), item.verdict(judge)
        agree = (r is not None and c is not None and r.conclusive and c.conclusive
                 and frame_score(r, FRAME) == frame_score(c, FRAME))
        out.append(1.0 if agree else 0.0)
    return np.array(out)


# --------------------------------------------------------------------------- which profile


PROFILE_KEY = "profile"  # the key of run.json that names the profile a recording ran with


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a comparison reads and where its name came from (shown in the header)."""

    name: str
    origin: str


def run_profile(path: Path | str) -> tuple[str | None, str]:
    """The profile named in run ``path``'s ``run.json`` (``None`` without one) and what the file
    says about it, for the messages: "names profile 'local'", "no run.json", ...

    Only ``run.json`` is read: the test items are checked later, by the comparison itself."""
    from judge_eval.core.store import RUN_JSON, read_run

    option = "or pass --profile NAME (compare then does not read run.json)"
    try:
        meta = read_run(path, require=(), parts=("meta",)).meta
    except RunFileError as exc:
        if exc.path.name != RUN_JSON:
            raise
        raise RunFileError(exc.path, exc.problem, line=exc.line, field=exc.field,
                           fix=f"fix {RUN_JSON}, {option}") from None
    if not meta and not (Path(path) / RUN_JSON).exists():
        return None, f"no {RUN_JSON}"
    name = meta.get(PROFILE_KEY)
    if name is None:
        return None, f"{RUN_JSON} names no profile (no key {PROFILE_KEY!r}; an import writes none)"
    if not isinstance(name, str) or not name:
        raise RunFileError(Path(path) / RUN_JSON, f"key {PROFILE_KEY!r} should name a profile, found {name!r}",
                           fix=f"fix {RUN_JSON}, {option}")
    return name, f"{RUN_JSON} names profile {name!r}"


def profile_from_runs(old: Path | str, new: Path | str, *, known: Sequence[str] = ()) -> ProfileChoice:
    """The profile both runs' ``run.json`` name; when only one run names one, that one (the other
    run, an import or a run without ``run.json``, cannot contradict it, and the header says so).
    Runs naming different profiles, or none, are an error asking for ``--profile``: the profile
    decides the reference, the gated judges and the thresholds."""
    (old_name, old_says), (new_name, new_says) = run_profile(old), run_profile(new)
    choices = f" (profiles in the project: {', '.join(known)})" if known else ""
    if old_name is not None and new_name is not None:
        if old_name == new_name:
            return ProfileChoice(old_name, "run.json of both runs")
        raise JudgeEvalError(
            f"the runs name different profiles: {old}: {old_says}; {new}: {new_says}. Which profile's "
            f"reference, gated judges and thresholds apply is yours to say: pass --profile NAME "
            f"(--profile {old_name} or --profile {new_name}){choices}")
    if old_name is None and new_name is None:
        raise JudgeEvalError(
            f"no profile to compare with: {old}: {old_says}; {new}: {new_says}. Pass --profile NAME, the "
            f"profile whose reference, gated judges and thresholds apply{choices}")
    if new_name is not None:
        return ProfileChoice(new_name, f"run.json of {new}; {old}: {old_says}")
    assert old_name is not None
    return ProfileChoice(old_name, f"run.json of {old}; {new}: {new_says}")


# --------------------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class ChangedItem:
    id: str
    old: str  # "source score"
    new: str


@dataclass(frozen=True)
class OverMax:
    """A count of the new run above the profile's maximum for it."""

    metric: str  # "parse_failures" or "errors"
    threshold: str  # "max_parse_failures" or "max_errors"
    old: int
    new: int
    allowed: int

    @property
    def text(self) -> str:
        return f"{COUNTS[self.metric]} {self.new} > {self.threshold} {self.allowed} (was {self.old})"


@dataclass(frozen=True)
class JudgeComparison:
    judge: str
    gated: bool
    deltas: dict[str, float | int | None]  # new - old, corrected frame, ties with (None: a side undefined)
    agreement_delta_ci: tuple[float, float]  # paired bootstrap over items, share agreeing with the reference
    lost_agreement: int  # McNemar b: agreed before, not now
    gained_agreement: int  # McNemar c
    p_value: float
    significant_drop: bool
    changed: list[ChangedItem] = field(default_factory=list)
    new_gate_failures: list[str] = field(default_factory=list)
    old: dict[str, float | int | None] = field(default_factory=dict)  # every metric of COUNTS and RATES
    new: dict[str, float | int | None] = field(default_factory=dict)
    lost_conclusive: int = 0  # conclusive before, not now (inconclusive, parse failure, error, missing)
    gained_conclusive: int = 0
    conclusive_p_value: float = 1.0
    significant_conclusive_loss: bool = False
    over_max: list[OverMax] = field(default_factory=list)  # only for a gated judge with a profile

    def fail_reasons(self, alpha: float) -> list[str]:
        """Each rule that fails this judge, in words (empty: it does not fail)."""
        if not self.gated:
            return []
        reasons = []
        if self.significant_drop:
            reasons.append(f"agreement with the reference dropped significantly (lost on {self.lost_agreement} "
                           f"item(s), gained on {self.gained_agreement}, p = {sig(self.p_value)} < alpha {alpha})")
        if self.significant_conclusive_loss:
            reasons.append(f"conclusive verdicts lost significantly (lost on {self.lost_conclusive} item(s), "
                           f"gained on {self.gained_conclusive}, p = {sig(self.conclusive_p_value)} < alpha "
                           f"{alpha})")
        reasons += [m.text for m in self.over_max]
        if self.new_gate_failures:
            reasons.append(f"gate(s) passed before and fail now: {', '.join(self.new_gate_failures)}")
        return reasons

    @property
    def fails(self) -> bool:
        return self.gated and (self.significant_drop or self.significant_conclusive_loss or bool(self.over_max)
                               or bool(self.new_gate_failures))


@dataclass(frozen=True)
class RunComparison:
    old: str
    new: str
    reference: str
    alpha: float
    judges: list[JudgeComparison]
    removed: list[str] = field(default_factory=list)  # judges with verdicts in the old run only
    added: list[str] = field(default_factory=list)  # judges with verdicts in the new run only
    profile: str | None = None  # the profile whose gates and thresholds applied
    profile_origin: str = ""  # where its name came from: "--profile", "run.json of both runs", ...
    gated: list[str] = field(default_factory=list)
    items: int = 0
    reference_old: dict[str, int] = field(default_factory=dict)  # the reference's REFERENCE_COUNTS
    reference_new: dict[str, int] = field(default_factory=dict)

    @property
    def fails(self) -> bool:
        return any(j.fails for j in self.judges)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for j, data in zip(self.judges, out["judges"]):
            data["fails"] = j.fails
            data["fail_reasons"] = j.fail_reasons(self.alpha)
        out["fails"] = self.fails
        return out


def _verdict_str(item: QAItem, judge: str) -> str:
    v = item.verdict(judge)
    return "missing" if v is None else f"{v.source} {v.score}"


def _values(c: Comparison) -> dict[str, float | int | None]:
    """Every metric of COUNTS and RATES of one judge in one run."""
    ci = c.agreement_ci
    kci = getattr(c, "kappa_ci", None)  # the kappa interval, where the metrics compute one
    extra = {"agreement_ci_low": ci[0] if ci else None, "agreement_ci_high": ci[1] if ci else None,
             "kappa_ci_low": kci[0] if kci else None, "kappa_ci_high": kci[1] if kci else None,
             "inconclusive_rate": c.inconclusive_rate}
    return {k: extra[k] if k in extra else getattr(c, k) for k in (*COUNTS, *RATES)}


def _delta(old: float | int | None, new: float | int | None) -> float | int | None:
    if old is None or new is None:
        return None
    return new - old if isinstance(old, int) and isinstance(new, int) else float(new - old)


def _reference_counts(stats: JudgeStats) -> dict[str, int]:
    return {k: getattr(stats, k) for k in REFERENCE_COUNTS}


def _over_max(old: dict[str, Any], new: dict[str, Any], profile: Any) -> list[OverMax]:
    out = []
    for metric, threshold in MAX_THRESHOLDS.items():
        allowed = getattr(profile.thresholds, threshold)
        if allowed is not None and new[metric] > allowed:
            out.append(OverMax(metric, threshold, old[metric], new[metric], allowed))
    return out


def compare_runs(old: Items, new: Items, *, reference: str = "gpt_4",
                 gated: Sequence[str] = (), profile: Any = None, old_path: str = "OLD", new_path: str = "NEW",
                 alpha: float = 0.05, seed: int = 0, resamples: int = 2000,
                 profile_origin: str = "") -> RunComparison:
    """``old`` and ``new``: each a run's items or their ``VerdictTable`` (what ``load_table``
    reads, a few arrays where 1,000,000 items take gigabytes). ``profile`` (a ``Profile``) adds
    its gates and its ``max_parse_failures``/``max_errors`` to the rules of the gated judges."""
    old_t, new_t = as_table(old), as_table(new)
    old_by_id = {i: pos for pos, i in enumerate(old_t.ids)}
    new_by_id = {i: pos for pos, i in enumerate(new_t.ids)}
    if old_by_id.keys() != new_by_id.keys():
        only_old = sorted(set(old_by_id) - set(new_by_id))
        only_new = sorted(set(new_by_id) - set(old_by_id))
        raise JudgeEvalError(f"the runs do not hold the same test items: {len(only_old)} only in {old_path} "
                             f"({', '.join(only_old[:3])}), {len(only_new)} only in {new_path} "
                             f"({', '.join(only_new[:3])}); compare runs of the same test set")
    # the bootstrap order of metrics.compare: by the old items' order_key
    old_pos = sorted(old_by_id.values(), key=old_t.rank.__getitem__)
    ids = [old_t.ids[p] for p in old_pos]
    new_pos = [new_by_id[i] for i in ids]
    del old_by_id, new_by_id
    old_items, new_items = old_t.take(old_pos), new_t.take(new_pos)
    old_found, new_found = discover_judges(old_items), discover_judges(new_items)
    for j in dict.fromkeys([reference, *gated]):
        lacking = [path for path, found in ((old_path, old_found), (new_path, new_found)) if j not in found]
        if lacking:
            role, key = ("reference judge", "reference") if j == reference else ("gated judge", "gated")
            present = [path for path in (old_path, new_path) if path not in lacking]
            raise JudgeEvalError(
                f"{role} {j!r} has no verdict in run {' nor in run '.join(lacking)}"
                f"{f' (run {present[0]} has its verdicts)' if present else ''}; judges found in {old_path}: "
                f"{', '.join(old_found) or 'none'}; in {new_path}: {', '.join(new_found) or 'none'}. "
                f"A {role} must be in both runs to be compared: if it was renamed or dropped, fix the run "
                f"or `{key}` of the profile")
    # judge groups need the items themselves (judge_eval.core.groups); a table has none
    old_m = run_metrics(old_items if isinstance(old, VerdictTable) else [old[p] for p in old_pos], reference,
                        seed=seed, resamples=resamples)
    new_m = run_metrics(new_items if isinstance(new, VerdictTable) else [new[p] for p in new_pos], reference,
                        seed=seed, resamples=resamples)
    judges = [j for j in old_m.judges if j in new_m.judges]
    removed = [j for j in old_m.judges if j not in new_m.judges]
    added = [j for j in new_m.judges if j not in old_m.judges]
    old_failures: dict[str, set[str]] = {}
    new_failures: dict[str, set[str]] = {}
    if profile is not None:
        from judge_eval.gating.gates import check_judge

        for j in judges:
            if j in gated:
                old_failures[j] = {f.metric for f in check_judge(old_m, j, profile, run_dir=old_path)}
                new_failures[j] = {f.metric for f in check_judge(new_m, j, profile, run_dir=new_path)}
    results = []
    for j in judges:
        a_old = agreement_vector(old_items, j, reference)
        a_new = agreement_vector(new_items, j, reference)
        b = int(((a_old == 1) & (a_new == 0)).sum())
        c = int(((a_old == 0) & (a_new == 1)).sum())
        p = mcnemar_exact(b, c)
        if ids:
            # Paired: bootstrap_means resamples both runs' vectors alike (one index table, or
            # above 10,000 items one multinomial over the four agree/disagree cells).
            new_means, old_means = bootstrap_means(a_new, a_old, seed=seed, resamples=resamples)
            diffs = new_means - old_means
            ci = tuple(float(x) for x in np.percentile(diffs, [2.5, 97.5]))
        else:
            ci = (0.0, 0.0)
        oc, nc = old_items.column(j), new_items.column(j)
        lost_c = int((oc.conclusive & ~nc.conclusive).sum())
        gained_c = int((~oc.conclusive & nc.conclusive).sum())
        p_c = mcnemar_exact(lost_c, gained_c)
        old_v, new_v = _values(old_m.judges[j][FRAME]), _values(new_m.judges[j][FRAME])
        same_score = (oc.score == nc.score) | (np.isnan(oc.score) & np.isnan(nc.score))
        changed = [ChangedItem(ids[i], oc.verdict_str(i), nc.verdict_str(i))
                   for i in np.flatnonzero((oc.source != nc.source) | ~same_score).tolist()]
        is_gated = j in gated
        results.append(JudgeComparison(
            judge=j, gated=is_gated, deltas={k: _delta(old_v[k], new_v[k]) for k in old_v},
            agreement_delta_ci=ci, lost_agreement=b, gained_agreement=c, p_value=p,
            significant_drop=p < alpha and b > c, changed=changed,
            new_gate_failures=sorted(new_failures.get(j, set()) - old_failures.get(j, set())),
            old=old_v, new=new_v, lost_conclusive=lost_c, gained_conclusive=gained_c, conclusive_p_value=p_c,
            significant_conclusive_loss=p_c < alpha and lost_c > gained_c,
            over_max=_over_max(old_v, new_v, profile) if is_gated and profile is not None else [],
        ))
    return RunComparison(old=old_path, new=new_path, reference=reference, alpha=alpha, judges=results,
                         removed=removed, added=added, profile=profile.name if profile is not None else None,
                         profile_origin=profile_origin, gated=list(gated), items=len(ids),
                         reference_old=_reference_counts(old_m.reference_stats),
                         reference_new=_reference_counts(new_m.reference_stats))


# --------------------------------------------------------------------------- text


def sig(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros kept (``1.00``); None is ``n/a``
    (the compact report's format; gating sits below reporting, so it has its own copy)."""
    if value is None:
        return "n/a"
    text = f"{value:#.{digits}g}"
    return text if "e" in text else text.rstrip(".")


def _signed(value: float) -> str:
    text = f"{value:+#.3g}"
    return text if "e" in text else text.rstrip(".")


def _rate_change(label: str, old: float | None, new: float | None) -> str:
    """``agreement rate 0.936 -> 0.915 (-0.0213)``: 3 significant digits, more when 3 would
    show two different values alike."""
    if old is None or new is None:
        return f"{label} {sig(old)} -> {sig(new)}"
    digits = 3
    while digits < 17 and sig(old, digits) == sig(new, digits):
        digits += 1
    return f"{label} {sig(old, digits)} -> {sig(new, digits)} ({_signed(new - old)})"


def _count_change(label: str, old: int, new: int) -> str:
    return f"{label} {old} -> {new} ({new - old:+d})"


def _changes_line(title: str, labels: dict[str, str], old: dict[str, Any], new: dict[str, Any],
                  counts: bool) -> str:
    """``title: <every changed value, old -> new>; unchanged: <the others, with their value>``, or
    ``title unchanged: ...`` when nothing changed."""
    changed, same = [], []
    for key, label in labels.items():
        x, y = old[key], new[key]
        if x == y:
            same.append(f"{label} {x if counts else sig(x)}")
        else:
            changed.append(_count_change(label, x, y) if counts else _rate_change(label, x, y))
    unchanged = f"unchanged: {', '.join(same)}"
    if not changed:
        return f"  {title} {unchanged}"
    return f"  {title}: {', '.join(changed)}" + (f"; {unchanged}" if same else "")


def _last_line(cmp: RunComparison) -> str:
    """``FAIL``/``OK`` and, per gated judge, the rules that fired (or that none did)."""
    gated = [j for j in cmp.judges if j.gated]
    if cmp.fails:
        return "FAIL: a gated judge got worse: " + "; ".join(
            f"{j.judge}: {'; '.join(j.fail_reasons(cmp.alpha))}" for j in gated if j.fails)
    if not gated:
        return "OK: no gated judge to check"
    return "OK: no gated judge got worse (" + "; ".join(f"{j.judge}: no failure rule fired" for j in gated) + ")"


def render_comparison(cmp: RunComparison) -> str:
    lines = [f"Comparing {cmp.old} -> {cmp.new} against reference {cmp.reference} ({FRAME} frame, ties with; "
             f"exact McNemar tests, alpha {cmp.alpha})"]
    where = f"profile {cmp.profile} (from {cmp.profile_origin})" if cmp.profile else "no profile"
    lines.append(f"{where}; gated judge(s): {', '.join(cmp.gated) or 'none'}; {cmp.items} test items")
    if cmp.reference_old:
        lines.append(_changes_line(f"reference {cmp.reference} counts", REFERENCE_COUNTS, cmp.reference_old,
                                   cmp.reference_new, counts=True).lstrip())
    for j in cmp.judges:
        lines += ["", f"{j.judge}{' (gated)' if j.gated else ''}"]
        if j.old:
            lines += [_changes_line("counts", COUNTS, j.old, j.new, counts=True),
                      _changes_line("metrics", RATES, j.old, j.new, counts=False)]
        lines += [f"  share of items agreeing with the reference: 95% interval of the change "
                  f"[{_signed(j.agreement_delta_ci[0])}, {_signed(j.agreement_delta_ci[1])}]",
                  f"  lost agreement on {j.lost_agreement} item(s), gained on {j.gained_agreement}; "
                  f"p = {sig(j.p_value)}{' -> SIGNIFICANT DROP' if j.significant_drop else ''}",
                  f"  conclusive verdicts: lost on {j.lost_conclusive} item(s), gained on {j.gained_conclusive}; "
                  f"p = {sig(j.conclusive_p_value)}"
                  + (" -> SIGNIFICANT LOSS" if j.significant_conclusive_loss
                     else " (reported, not significant)" if j.lost_conclusive > j.gained_conclusive else ""),
                  f"  verdicts changed on {len(j.changed)} item(s)"]
        lines += [f"    {c.id}: {c.old} -> {c.new}" for c in j.changed]
        if j.over_max:
            lines.append(f"  above the profile's maximum: {', '.join(m.text for m in j.over_max)}")
        if j.new_gate_failures:
            lines.append(f"  gates that passed before and fail now: {', '.join(j.new_gate_failures)}")
    if cmp.removed or cmp.added:
        lines.append("")
    if cmp.removed:
        lines.append(f"removed: judge(s) with verdicts in {cmp.old} only, not compared: {', '.join(cmp.removed)}")
    if cmp.added:
        lines.append(f"added: judge(s) with verdicts in {cmp.new} only, not compared: {', '.join(cmp.added)}")
    lines += ["", _last_line(cmp)]
    return "\n".join(lines) + "\n"


def load_items(path: Path | str) -> list[QAItem]:
    from judge_eval.core.store import read_run

    return list(read_run(path, require=("test",)).test)


def load_table(path: Path | str) -> VerdictTable:
    """The test items of run ``path`` as a ``VerdictTable``, read a line at a time: what report,
    gate and compare need of them, with ``read_run``'s checks and errors."""
    from judge_eval.core.store import stream_split

    return VerdictTable.from_rows(stream_split(path, "test"))


def load_for_metrics(path: Path | str) -> Items:
    """``load_table``, or the items themselves when the run has judge groups (``<group>:<id>``
    judges), whose metrics need them (``judge_eval.core.groups``)."""
    from judge_eval.core.groups import discover_groups

    table = load_table(path)
    return load_items(path) if discover_groups(table.judges) else table

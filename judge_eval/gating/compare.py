"""Compare two runs over the same test items: what a new judge (or a new version of one) changed.

Per judge present in both runs: the metric deltas with a paired bootstrap interval for the
agreement delta, the items whose verdict changed, and an exact two-sided McNemar test on
"agrees with the reference" (a conclusive verdict equal to the reference's, corrected frame;
anything else counts as not agreeing). A gated judge fails the comparison when its agreement
drops significantly (p < alpha and more items lost agreement than gained it) or when a gate it
passed on the old run fails on the new one.

Every gated judge must have verdicts in both runs (else a ``JudgeEvalError`` names the judge and
the run that lacks it): a gated judge that was renamed or dropped must never pass by omission.
A judge found in only one run is listed as removed (only in the old run) or added (only in the
new one), in the text and the JSON output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from judge_eval.errors import JudgeEvalError
from judge_eval.core.metrics import (Items, VerdictTable, as_table, bootstrap_means, discover_judges, frame_score,
                                     run_metrics)
from judge_eval.core.items import QAItem

FRAME = "corrected"


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


@dataclass(frozen=True)
class ChangedItem:
    id: str
    old: str  # "source score"
    new: str


@dataclass(frozen=True)
class JudgeComparison:
    judge: str
    gated: bool
    deltas: dict[str, float | None]  # new - old, corrected frame
    agreement_delta_ci: tuple[float, float]  # paired bootstrap over items, share agreeing with the reference
    lost_agreement: int  # McNemar b: agreed before, not now
    gained_agreement: int  # McNemar c
    p_value: float
    significant_drop: bool
    changed: list[ChangedItem] = field(default_factory=list)
    new_gate_failures: list[str] = field(default_factory=list)

    @property
    def fails(self) -> bool:
        return self.gated and (self.significant_drop or bool(self.new_gate_failures))


@dataclass(frozen=True)
class RunComparison:
    old: str
    new: str
    reference: str
    alpha: float
    judges: list[JudgeComparison]
    removed: list[str] = field(default_factory=list)  # judges with verdicts in the old run only
    added: list[str] = field(default_factory=list)  # judges with verdicts in the new run only

    @property
    def fails(self) -> bool:
        return any(j.fails for j in self.judges)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["fails"] = self.fails
        return out


def _verdict_str(item: QAItem, judge: str) -> str:
    v = item.verdict(judge)
    return "missing" if v is None else f"{v.source} {v.score}"


def compare_runs(old: Items, new: Items, *, reference: str = "gpt_4",
                 gated: Sequence[str] = (), profile: Any = None, old_path: str = "OLD", new_path: str = "NEW",
                 alpha: float = 0.05, seed: int = 0, resamples: int = 2000) -> RunComparison:
    """``old`` and ``new``: each a run's items or their ``VerdictTable`` (what ``load_table``
    reads, a few arrays where 1,000,000 items take gigabytes)."""
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
    old_m = run_metrics(old_items if isinstance(old, VerdictTable) else [old[p] for p in old_pos], reference)
    new_m = run_metrics(new_items if isinstance(new, VerdictTable) else [new[p] for p in new_pos], reference)
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
        o, n = old_m.judges[j][FRAME], new_m.judges[j][FRAME]

        def delta(name: str) -> float | None:
            x, y = getattr(o, name), getattr(n, name)
            return None if x is None or y is None else float(y - x)

        oc, nc = old_items.column(j), new_items.column(j)
        same_score = (oc.score == nc.score) | (np.isnan(oc.score) & np.isnan(nc.score))
        changed = [ChangedItem(ids[i], oc.verdict_str(i), nc.verdict_str(i))
                   for i in np.flatnonzero((oc.source != nc.source) | ~same_score).tolist()]
        results.append(JudgeComparison(
            judge=j, gated=j in gated,
            deltas={k: delta(k) for k in ("agreement_rate", "correlation", "jaccard", "kappa",
                                          "inconclusive", "parse_failures", "errors")},
            agreement_delta_ci=ci, lost_agreement=b, gained_agreement=c, p_value=p,
            significant_drop=p < alpha and b > c, changed=changed,
            new_gate_failures=sorted(new_failures.get(j, set()) - old_failures.get(j, set())),
        ))
    return RunComparison(old=old_path, new=new_path, reference=reference, alpha=alpha, judges=results,
                         removed=removed, added=added)


def render_comparison(cmp: RunComparison) -> str:
    lines = [f"Comparing {cmp.old} -> {cmp.new} against reference {cmp.reference} (corrected frame, "
             f"McNemar exact, alpha {cmp.alpha})"]
    for j in cmp.judges:
        d = j.deltas
        fmt = lambda v: "n/a" if v is None else f"{v:+.4f}"  # noqa: E731
        lines += ["", f"{j.judge}{' (gated)' if j.gated else ''}",
                  f"  agreement rate {fmt(d['agreement_rate'])}, correlation {fmt(d['correlation'])}, "
                  f"Jaccard {fmt(d['jaccard'])}, kappa {fmt(d['kappa'])}, inconclusive {fmt(d['inconclusive'])}",
                  f"  share of items agreeing with the reference: 95% interval of the change "
                  f"[{j.agreement_delta_ci[0]:+.4f}, {j.agreement_delta_ci[1]:+.4f}]",
                  f"  lost agreement on {j.lost_agreement} item(s), gained on {j.gained_agreement}; "
                  f"p = {j.p_value:.4g}{' -> SIGNIFICANT DROP' if j.significant_drop else ''}",
                  f"  verdicts changed on {len(j.changed)} item(s)"]
        lines += [f"    {c.id}: {c.old} -> {c.new}" for c in j.changed]
        if j.new_gate_failures:
            lines.append(f"  gates that passed before and fail now: {', '.join(j.new_gate_failures)}")
    if cmp.removed or cmp.added:
        lines.append("")
    if cmp.removed:
        lines.append(f"removed: judge(s) with verdicts in {cmp.old} only, not compared: {', '.join(cmp.removed)}")
    if cmp.added:
        lines.append(f"added: judge(s) with verdicts in {cmp.new} only, not compared: {', '.join(cmp.added)}")
    lines += ["", "FAIL: a gated judge got significantly worse" if cmp.fails else "OK: no gated judge got worse"]
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

"""The distillation recipe table (README, "Choosing a distillation recipe"), from recorded runs.

    python benchmarks/recipes.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--reference gpt_4]

Each RUN_DIR is the run folder of one `judge-eval record --profile study-local --run-dir RUN_DIR
--keep-workdir` (a profile with `pipeline.validation_every`, so the run holds `validation/`).
Every run gives up to three rows, one per verdict source of its distilled student:

- `text`: the parsed text verdicts, as the study's evaluator resolves both orders;
- `choice per order`: each order's most probable letter at the verdict position, the two orders
  resolved as the text verdicts are (``judge_eval.core.choice.orders_choice_verdict``);
- `choice debiased`: both orders' probabilities combined before deciding, with the margin
  ``pick_margin`` chooses on the validation slice (``choice_verdict``).

The rows are ranked by the README's rule (most validation hits; ties: fewer inconclusive verdicts
on the slice, then the shorter training), with an exact McNemar test between the winner's and the
runner-up's paired validation hits. Test figures are shown for information: they never rank.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from judge_eval.core.choice import (  # noqa: E402
    CHOICE_SUFFIX, ORDERS_SUFFIX, choice_judges, pick_margin, with_choice_verdicts, with_orders_choice_verdicts,
)
from judge_eval.core.metrics import as_table, judge_stats, run_metrics  # noqa: E402
from judge_eval.core.store import read_run  # noqa: E402
from judge_eval.gating.compare import mcnemar_exact  # noqa: E402


@dataclass
class Row:
    recipe: str
    verdicts: str
    judge: str
    margin: float | None
    hits: dict[str, bool]  # validation item id -> hit, over the items where the reference is conclusive
    val_inconclusive: int
    val_unparseable: int
    val_items: int
    train_seconds: float
    test: Any  # the corrected-frame Comparison on the test pairs
    test_items: int

    @property
    def hit_count(self) -> int:
        return sum(self.hits.values())


#: The README's last tie-break: the simpler verdict source first.
SOURCES = ("text", "choice per order", "choice debiased")


def _hits(items: list, judge: str, reference: str) -> dict[str, bool]:
    table = as_table(items)
    r, c = table.column(reference), table.column(judge)
    same = (r.frame_scores("corrected") == c.frame_scores("corrected")) & c.conclusive
    return {item.id: bool(s) for item, s, ok in zip(items, same, r.conclusive) if ok}


class RecipeError(Exception):
    """A run the table cannot use, with what to do."""


def rows_of(name: str, run_dir: Path, reference: str) -> list[Row]:
    meta = json.loads((run_dir / "run.json").read_text("utf-8"))
    student = meta["judges"]["distilled_student"]
    seconds = float(meta["distillation"].get("train_seconds") or 0.0)
    validation = list(read_run(run_dir / "validation", require=("test",)).test)
    test = list(read_run(run_dir, require=("test",)).test)
    for part, items in (("validation/", validation), ("test", test)):
        missing = [i.id for i in items if i.verdict(reference) is None or i.verdict(student) is None]
        if missing:
            raise RecipeError(f"{run_dir} {part}: {len(missing)} item(s) lack a verdict of {reference} or {student} "
                              f"(first {missing[0]}); record the run again")
    variants: list[tuple[str, str, float | None]] = [("text", student, None)]
    if student in choice_judges(validation) and student in choice_judges(test):
        margin = pick_margin(validation, student, reference).margin
        variants += [("choice per order", student + ORDERS_SUFFIX, None),
                     ("choice debiased", student + CHOICE_SUFFIX, margin)]
    test = with_orders_choice_verdicts(test)
    metrics: dict[float, Any] = {}  # the test metrics per margin, computed once each
    out = []
    for label, judge, margin in variants:
        val = with_orders_choice_verdicts(with_choice_verdicts(validation, margin or 0.0))
        if (margin or 0.0) not in metrics:
            metrics[margin or 0.0] = run_metrics(test, reference, choice_margin=margin or 0.0)
        stats = judge_stats(val, judge)
        out.append(Row(recipe=name, verdicts=label, judge=judge, margin=margin, hits=_hits(val, judge, reference),
                       val_inconclusive=stats.inconclusive, val_unparseable=stats.parse_failures + stats.errors,
                       val_items=stats.items, train_seconds=seconds,
                       test=metrics[margin or 0.0].judges[judge]["corrected"], test_items=len(test)))
    return out


def _rank(row: Row) -> tuple[int, int, float, int, str]:
    return (-row.hit_count, row.val_inconclusive, row.train_seconds, SOURCES.index(row.verdicts), row.recipe)


def _ci(c: Any) -> str:
    if c.agreement_rate is None:
        return "n/a"
    low, high = c.agreement_ci if c.agreement_ci else (None, None)
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
    return f"{c.agreement_rate:.3f} ({c.agreements}/{c.total}){interval}"


def table(rows: list[Row]) -> str:
    ranked = sorted(rows, key=_rank)
    lines = ["| recipe | verdicts | validation hits | validation inconclusive | test inconclusive | "
             "test parse failures | test agreement [95%] | kappa [95%] | training |",
             "|---|---|---:|---:|---:|---:|---|---|---:|"]
    for row in rows:
        c = row.test
        kappa = "n/a" if c.kappa is None else f"{c.kappa:.3f}" + (
            f" [{c.kappa_ci[0]:.2f}, {c.kappa_ci[1]:.2f}]" if c.kappa_ci else "")
        verdicts = row.verdicts + (f" (margin {row.margin:g})" if row.margin is not None else "")
        mark = " **(chosen)**" if row is ranked[0] else ""
        lines.append(f"| {row.recipe}{mark} | {verdicts} | {row.hit_count}/{len(row.hits)} | "
                     f"{row.val_inconclusive}/{row.val_items} | {c.inconclusive}/{row.test_items} | "
                     f"{c.parse_failures}/{row.test_items} | {_ci(c)} | {kappa} | {row.train_seconds:,.0f} s |")
    if len(ranked) > 1:
        first, second = ranked[0], ranked[1]
        if first.hits.keys() == second.hits.keys():  # paired by item
            b = sum(1 for k, x in first.hits.items() if x and not second.hits[k])
            c = sum(1 for k, y in second.hits.items() if y and not first.hits[k])
            p = mcnemar_exact(b, c)
            told = "told apart" if p < 0.05 else "could not be told apart"
            lines.append("")
            lines.append(f"Winner {first.recipe} / {first.verdicts} vs runner-up {second.recipe} / {second.verdicts} "
                         f"on the validation slice: hits only the winner has {b}, only the runner-up {c}, exact "
                         f"McNemar p = {p:.3g}: {told} at alpha 0.05.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    parser.add_argument("--reference", default="gpt_4")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for spec in args.runs:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path, "validation").is_dir():
            parser.error(f"{spec!r}: give NAME=RUN_DIR, RUN_DIR a recorded run with a validation/ folder")
        try:
            rows += rows_of(name, Path(path), args.reference)
        except RecipeError as exc:
            parser.error(str(exc))
    slices = {frozenset(r.hits) for r in rows}
    if len(slices) > 1:
        parser.error("the runs' validation slices hold different items (or GPT-4 is conclusive on different ones); "
                     "recipes are compared on one slice: record them with the same pipeline.validation_every")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

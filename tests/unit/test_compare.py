"""judge-eval compare: the items that changed, McNemar, exit status."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from judge_eval.cli import main
from judge_eval.gating.compare import mcnemar_exact
from judge_eval.errors import JudgeEvalError

ROOT = Path(__file__).resolve().parents[2]


def test_mcnemar_exact_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2 ** 10)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(6, 1) == pytest.approx(2 * (1 + 7) / 2 ** 7)


def invert_ten_agreeing(study_dir: Path, out: Path) -> list[str]:
    """A copy of the study's run in which ten ft_gpt_3p5 verdicts that agreed with GPT-4 (score 0
    or 1, corrected frame) have their score inverted."""
    from judge_eval.core.items import item_id

    lines, changed = [], []
    for line in (study_dir / "test_qa_complete.jsonl").read_text().splitlines():
        row = json.loads(line)
        ev = {e["llm"]: e for e in row["evaluations"]}
        ref, ft = ev["gpt_4"], ev["ft_gpt_3p5"]
        if (len(changed) < 10 and ref["source"] == "original" and ft["source"] == "original"
                and ref["score"] == ft["score"] and ft["score"] in (0.0, 1.0)):
            ft["score"] = 1.0 - ft["score"]
            changed.append(item_id("test", row["question"]))
        lines.append(json.dumps(row))
    out.mkdir()
    (out / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    assert len(changed) == 10
    return changed


def test_ten_inverted_verdicts_are_reported_and_fail(study_dir: Path, tmp_path: Path, capsys) -> None:
    changed = invert_ten_agreeing(study_dir, tmp_path / "new")
    code = main(["compare", str(study_dir), str(tmp_path / "new"), "--config", str(ROOT / "pyproject.toml"),
                 "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["fails"]
    ft = next(j for j in data["judges"] if j["judge"] == "ft_gpt_3p5")
    assert sorted(c["id"] for c in ft["changed"]) == sorted(changed)
    assert (ft["lost_agreement"], ft["gained_agreement"]) == (10, 0)
    assert ft["p_value"] == pytest.approx(2 / 2 ** 10) and ft["significant_drop"]
    other = next(j for j in data["judges"] if j["judge"] == "gpt_3p5")
    assert other["changed"] == [] and not other["gated"]


def test_text_output_names_the_items(study_dir: Path, tmp_path: Path, capsys) -> None:
    changed = invert_ten_agreeing(study_dir, tmp_path / "new")
    assert main(["compare", str(study_dir), str(tmp_path / "new"), "--config", str(ROOT / "pyproject.toml")]) == 1
    out = capsys.readouterr().out
    for item in changed:
        assert f"    {item}: original 1.0 -> original 0.0" in out or f"    {item}: original 0.0 -> original 1.0" in out
    assert "SIGNIFICANT DROP" in out and out.rstrip().endswith("FAIL: a gated judge got significantly worse")


def test_a_run_compared_with_itself_exits_zero(study_dir: Path, capsys) -> None:
    assert main(["compare", str(study_dir), str(study_dir), "--config", str(ROOT / "pyproject.toml")]) == 0
    assert "OK: no gated judge got worse" in capsys.readouterr().out


def test_runs_of_different_test_items_are_refused(study_dir: Path, tmp_path: Path) -> None:
    from judge_eval.gating.compare import compare_runs, load_items

    items = load_items(study_dir)
    with pytest.raises(JudgeEvalError, match=f"do not hold the same test items: 0 only in OLD .*1 only in NEW "
                                             f"\\({items[-1].id}\\)"):
        compare_runs(items[:-1], items)


def percentile_by_hand(values, q: float) -> float:
    """Linear interpolation between order statistics (numpy's default method), from a sort."""
    s = sorted(float(v) for v in values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def agreement_by_hand(run_dir: Path, judge: str) -> dict[str, float]:
    """Item id -> 1 when ``judge`` and gpt_4 are both conclusive and agree in the corrected frame
    (1 - score for a "flipped" verdict), else 0; read from the raw file."""
    from judge_eval.core.items import item_id

    def first(e: dict) -> float:
        return 1.0 - e["score"] if e["source"] == "flipped" else e["score"]

    out = {}
    for line in (run_dir / "test_qa_complete.jsonl").read_text().splitlines():
        row = json.loads(line)
        ev = {e["llm"]: e for e in row["evaluations"]}
        r, c = ev["gpt_4"], ev[judge]
        agree = r["source"] in ("original", "flipped") and c["source"] in ("original", "flipped") \
            and first(r) == first(c)
        out[item_id("test", row["question"])] = 1.0 if agree else 0.0
    return out


def test_the_agreement_change_interval_is_a_paired_bootstrap(study_dir: Path, tmp_path: Path) -> None:
    from judge_eval.gating.compare import compare_runs, load_items

    invert_ten_agreeing(study_dir, tmp_path / "new")
    result = compare_runs(load_items(study_dir), load_items(tmp_path / "new"))
    ft, other = (next(j for j in result.judges if j.judge == name) for name in ("ft_gpt_3p5", "gpt_3p5"))
    old, new = agreement_by_hand(study_dir, "ft_gpt_3p5"), agreement_by_hand(tmp_path / "new", "ft_gpt_3p5")
    ids = sorted(old)
    # Paired: resample items, and take the mean of the per-item changes in the same items.
    change = np.array([new[i] - old[i] for i in ids])
    idx = np.random.default_rng(0).integers(0, len(ids), size=(2000, len(ids)))
    deltas = change[idx].sum(axis=1) / len(ids)
    low, high = percentile_by_hand(deltas, 0.025), percentile_by_hand(deltas, 0.975)
    assert abs(ft.agreement_delta_ci[0] - low) <= 1e-12 and abs(ft.agreement_delta_ci[1] - high) <= 1e-12
    assert ft.agreement_delta_ci[1] < 0
    # 10 of the published 47 compared items stop agreeing.
    assert ft.deltas["agreement_rate"] == pytest.approx(-10 / 47, rel=1e-12)
    # Unchanged verdicts: a paired resample of identical vectors moves nothing.
    assert other.agreement_delta_ci == (0.0, 0.0) and other.deltas["agreement_rate"] == 0.0

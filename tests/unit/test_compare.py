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
#: The study's runs have no run.json to name their profile: compare is told it.
STUDY = ("--config", str(ROOT / "pyproject.toml"), "--profile", "study")


def test_mcnemar_exact_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2 ** 10)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(6, 1) == pytest.approx(2 * (1 + 7) / 2 ** 7)


def invert_ten_agreeing(study_dir: Path, out: Path) -> list[str]:
    """A copy of the study's run in which ten ft_gpt_3p5 verdicts that agreed with GPT-4 (score 0
    or 1, corrected frame) have their score inverted."""
    from judge_eval.core.items import Answer, item_id

    lines, changed = [], []
    for line in (study_dir / "test_qa_complete.jsonl").read_text().splitlines():
        row = json.loads(line)
        ev = {e["llm"]: e for e in row["evaluations"]}
        ref, ft = ev["gpt_4"], ev["ft_gpt_3p5"]
        if (len(changed) < 10 and ref["source"] == "original" and ft["source"] == "original"
                and ref["score"] == ft["score"] and ft["score"] in (0.0, 1.0)):
            ft["score"] = 1.0 - ft["score"]
            answers = [Answer(a["model"], a["text"]) for a in row["answers"]]
            changed.append(item_id("test", row["question"], answers))
        lines.append(json.dumps(row))
    out.mkdir()
    (out / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    assert len(changed) == 10
    return changed


def test_ten_inverted_verdicts_are_reported_and_fail(study_dir: Path, tmp_path: Path, capsys) -> None:
    changed = invert_ten_agreeing(study_dir, tmp_path / "new")
    code = main(["compare", str(study_dir), str(tmp_path / "new"), *STUDY, "--format", "json"])
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
    assert main(["compare", str(study_dir), str(tmp_path / "new"), *STUDY]) == 1
    out = capsys.readouterr().out
    for item in changed:
        assert f"    {item}: original 1.0 -> original 0.0" in out or f"    {item}: original 0.0 -> original 1.0" in out
    assert "SIGNIFICANT DROP" in out
    # The last line names the judge and each rule that fired: the drop (p = 2 / 2**10), and the
    # study's min_agreement gate, passed at 44/47 and failed at 34/47.
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith("FAIL: a gated judge got worse: ft_gpt_3p5: agreement with the reference dropped "
                           "significantly (lost on 10 item(s), gained on 0, p = 0.00195 < alpha 0.05); ")
    assert "; gate(s) passed before and fail now: " in last and "agreement_rate" in last


def test_a_run_compared_with_itself_exits_zero(study_dir: Path, capsys) -> None:
    assert main(["compare", str(study_dir), str(study_dir), *STUDY]) == 0
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


# ------------------------------------------------------------------ judges present in one run only


def copy_with(study_dir: Path, out: Path, change) -> Path:
    """A copy of the study's test file in ``out``, each verdict passed through ``change(item,
    verdict)``, which returns the verdict to keep (possibly renamed) or None to drop it."""
    import dataclasses

    from judge_eval.core.store import read_run, write_qa

    items = []
    for item in read_run(study_dir, require=("test",)).test:
        kept = tuple(v2 for v in item.evaluations if (v2 := change(item, v)) is not None)
        items.append(dataclasses.replace(item, evaluations=kept))
    out.mkdir()
    write_qa(out / "test_qa_complete.jsonl", items)
    return out


def rename(old: str, new: str):
    import dataclasses

    return lambda item, v: dataclasses.replace(v, llm=new) if v.llm == old else v


@pytest.mark.parametrize("how", ["removed", "renamed"])
@pytest.mark.parametrize("side", ["old", "new"])
def test_a_gated_judge_absent_from_a_run_exits_2_naming_judge_and_run(study_dir: Path, tmp_path: Path, capsys,
                                                                      how: str, side: str) -> None:
    change = rename("ft_gpt_3p5", "ft_gpt_3p5_v2") if how == "renamed" else \
        (lambda item, v: None if v.llm == "ft_gpt_3p5" else v)
    lacking = copy_with(study_dir, tmp_path / "lacking", change)
    old, new = (lacking, study_dir) if side == "old" else (study_dir, lacking)
    assert main(["compare", str(old), str(new), *STUDY]) == 2
    captured = capsys.readouterr()
    assert "OK" not in captured.out
    assert f"judge-eval: error: gated judge 'ft_gpt_3p5' has no verdict in run {lacking} " in captured.err


def test_a_gated_judge_absent_from_both_runs_names_both(study_dir: Path, tmp_path: Path) -> None:
    from judge_eval.gating.compare import compare_runs, load_items

    items = load_items(study_dir)
    with pytest.raises(JudgeEvalError, match="gated judge 'ghost' has no verdict in run OLD nor in run NEW"):
        compare_runs(items, items, gated=("ghost",))


def test_a_renamed_judge_that_is_not_gated_is_reported_removed_and_added(study_dir: Path, tmp_path: Path,
                                                                         capsys) -> None:
    new = copy_with(study_dir, tmp_path / "new", rename("gpt_3p5", "gpt_3p5_v2"))
    args = ["compare", str(study_dir), str(new), *STUDY]
    assert main(args) == 0  # only reported: gpt_3p5 is not gated
    out = capsys.readouterr().out
    assert f"removed: judge(s) with verdicts in {study_dir} only, not compared: gpt_3p5\n" in out
    assert f"added: judge(s) with verdicts in {new} only, not compared: gpt_3p5_v2\n" in out
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["removed"], data["added"]) == (["gpt_3p5"], ["gpt_3p5_v2"])
    assert [j["judge"] for j in data["judges"]] == ["ft_gpt_3p5"]


def test_verdicts_removed_in_the_new_run_fail_the_comparison_on_missing(study_dir: Path, tmp_path: Path,
                                                                        capsys) -> None:
    """ft_gpt_3p5's verdict removed on three items it was inconclusive on (source "neither", read
    from the raw file): no item loses agreement, yet a gate that passed now fails."""
    from judge_eval.core.items import Answer, item_id

    neither = []
    for line in (study_dir / "test_qa_complete.jsonl").read_text().splitlines():
        row = json.loads(line)
        if len(neither) < 3 and any(e["llm"] == "ft_gpt_3p5" and e["source"] == "neither" for e in row["evaluations"]):
            answers = [Answer(a["model"], a["text"]) for a in row["answers"]]
            neither.append(item_id("test", row["question"], answers))
    assert len(neither) == 3
    new = copy_with(study_dir, tmp_path / "new", lambda item, v: None if v.llm == "ft_gpt_3p5" and item.id in neither else v)
    assert main(["compare", str(study_dir), str(new), *STUDY, "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    ft = next(j for j in data["judges"] if j["judge"] == "ft_gpt_3p5")
    assert (ft["lost_agreement"], ft["gained_agreement"]) == (0, 0)
    assert ft["new_gate_failures"] == ["missing"] and data["fails"]
    assert sorted(c["id"] for c in ft["changed"]) == sorted(neither)
    assert all(c["new"] == "missing" for c in ft["changed"])

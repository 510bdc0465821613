"""benchmarks/recipes.py: the recipe table's rows and the README's selection rule, on a tiny run whose
every figure is counted by hand (the items of tests/unit/test_choice_margin.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from judge_eval.core.store import write_qa
from tests.unit.test_choice_margin import RUN

ROOT = Path(__file__).resolve().parents[2]


def recorded(tmp_path: Path, name: str, seconds: float) -> Path:
    run = tmp_path / name
    (run / "validation").mkdir(parents=True)
    write_qa(run / "test_qa_complete.jsonl", RUN)
    write_qa(run / "validation" / "test_qa_complete.jsonl", RUN)
    (run / "run.json").write_text(json.dumps({"judges": {"distilled_student": "student"},
                                              "distillation": {"train_seconds": seconds}}))
    return run


def test_rows_and_the_selection_rule(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipes.py"), f"r1={recorded(tmp_path, 'a', 100)}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| r1")]
    # The student's text always says [[A]] (first wins): hits where GPT-4 says first, t0 t2 t3 = 3/4.
    # Per order: t0 A/B, t1 B/A, t2 A/B (0.6 vs 0.54), t3 B/A -> first, second, first, second: hits t0 t1 t2.
    # Debiased: margins 0, 0.05 and 0.1 keep 0/4 inconclusive with 3/4 agreement (0.15 and 0.2 make t2,
    # lead 0.14, inconclusive: 2/3; from 0.45 t3 too, 2/4 > 25%): ties go to the smaller margin, 0.
    assert [r.split(" | ")[1:3] for r in rows] == [["text", "3/4"], ["choice per order", "3/4"],
                                                   ["choice debiased (margin 0)", "3/4"]]
    # All tie on hits, inconclusives (0) and training time: the first row, the plain text, is chosen.
    assert "**(chosen)**" in rows[0] and all("chosen" not in r for r in rows[1:])
    # Test agreement of the text verdicts: 3 of 4 (the same items here).
    assert "0.750 (3/4)" in rows[0]
    # text vs per order: only text hits t3, only per order hits t1 -> b = c = 1, p = 1.
    assert ("hits only the winner has 1, only the runner-up 1, exact McNemar p = 1: could not be told apart"
            in out.stdout)


def test_a_run_without_a_validation_slice_is_refused(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipes.py"), f"x={tmp_path}"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "a recorded run with a validation/ folder" in out.stderr


def test_the_rule_does_not_depend_on_the_order_of_the_runs(tmp_path: Path) -> None:
    # Two runs alike but for training time: every row ties on hits (3/4) and inconclusives (0), so the
    # shorter training (run "b", 50 s) wins, with its simplest source (text), whichever run is named first.
    script = str(ROOT / "benchmarks" / "recipes.py")
    a, b = recorded(tmp_path, "a", 100), recorded(tmp_path, "b", 50)
    for order in ([f"a={a}", f"b={b}"], [f"b={b}", f"a={a}"]):
        out = subprocess.run([sys.executable, script, *order], capture_output=True, text=True)
        chosen = [line for line in out.stdout.splitlines() if "**(chosen)**" in line]
        assert len(chosen) == 1 and chosen[0].startswith("| b **(chosen)** | text |"), out.stdout + out.stderr


def test_runs_on_different_slices_are_refused(tmp_path: Path) -> None:
    from tests.unit.test_choice_margin import item, ref, student

    a = recorded(tmp_path, "a", 100)
    b = recorded(tmp_path, "b", 100)
    write_qa(b / "validation" / "test_qa_complete.jsonl", [item(9, ref(1.0), student(0.9, 0.1, 0.1, 0.9))])
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipes.py"), f"a={a}", f"b={b}"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "validation slices hold different items" in out.stderr

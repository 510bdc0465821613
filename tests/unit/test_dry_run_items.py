"""The dry run of ``judge-eval record`` for a profile whose pairs are given (source "items"):
its plan counts the item files' pairs instead of reading the (absent) question counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.config.profiles import load_profile
from judge_eval.core.items import Answer, QAItem, item_id
from judge_eval.core.store import QA_FILES, write_qa
from judge_eval.errors import JudgeEvalError
from judge_eval.live.pipeline import STAGES, Context, planned_calls

ROOT = Path(__file__).resolve().parents[2]


def pairs(split: str, n: int) -> list[QAItem]:
    return [QAItem(id=item_id(split, f"{split} q{k}"), split=split, question=f"{split} q{k}",
                   answers=(Answer("m1", f"first {k}"), Answer("m2", f"second {k}")), source="given")
            for k in range(n)]


def items_context(tmp_path: Path, folder: Path) -> Context:
    profile = load_profile("openai", ROOT / "pyproject.toml")
    cfg = profile.pipeline
    profile = profile.model_copy(update={"pipeline": cfg.model_copy(update={
        "source": "items", "items": folder, "corpus": None, "questions": None})})
    return Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / "run",
                   modes={s: "all" for s in STAGES})


def test_the_plan_for_given_items_counts_the_item_files(tmp_path: Path) -> None:
    folder = tmp_path / "items"
    write_qa(folder / QA_FILES["train"], pairs("train", 7))
    write_qa(folder / QA_FILES["test"], pairs("test", 5))
    rows = planned_calls(items_context(tmp_path, folder))
    plan = {stage: calls for stage, calls, _ in rows}
    assert [stage for stage, _, _ in rows] == ["teacher-train", "teacher-test", "distill", "students"]
    assert plan["teacher-train"] == "<= 14" and plan["teacher-test"] == "<= 10"
    assert plan["students"] == "<= 20"  # 2 students x 5 test pairs x 2 orders
    assert plan["distill"] == "2 + status polls"  # the openai profile fine-tunes through the API
    why = {stage: reason for stage, _, reason in rows}
    assert why["teacher-train"].startswith("7 given pairs") and why["students"] == "2 students x 5 pairs x 2 orders"
    assert not any(stage.startswith(("corpus", "questions", "answers")) for stage in plan)


def test_the_plan_for_missing_item_files_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "items"
    write_qa(folder / QA_FILES["test"], pairs("test", 2))
    with pytest.raises(JudgeEvalError, match=QA_FILES["train"]):
        planned_calls(items_context(tmp_path, folder))

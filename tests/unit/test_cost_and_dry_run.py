"""Cost estimates from the price table, and the dry run's call counts against a real recording."""

from __future__ import annotations

from pathlib import Path

import yaml

from judge_eval.config.profiles import load_profile
from judge_eval.live.pipeline import STAGES, Context, planned_calls

ROOT = Path(__file__).resolve().parents[2]


def context(name: str, tmp_path: Path) -> Context:
    return Context(profile=load_profile(name, ROOT / "pyproject.toml"), cassette_root=ROOT / "cassettes",
                   run_dir=tmp_path, modes={s: "none" for s in STAGES})


def test_cost_uses_the_price_table_and_prefixes(tmp_path: Path) -> None:
    ctx = context("openai", tmp_path)
    usage = {"gpt-4-0613": {"prompt_tokens": 1_000_000, "completion_tokens": 500_000},
             "ft:gpt-3.5-turbo-0613:org::abc": {"prompt_tokens": 2_000_000, "completion_tokens": 0}}
    assert ctx.cost(usage) == 30.0 + 30.0 + 6.0
    assert ctx.cost({"some-other-model": {"prompt_tokens": 1, "completion_tokens": 1}}) is None
    assert context("local", tmp_path).cost({"smollm2-135m-instruct": {"prompt_tokens": 10, "completion_tokens": 5}}) is None


def test_dry_run_counts_match_the_committed_local_recording(tmp_path: Path) -> None:
    planned = {stage: calls for stage, calls, _ in planned_calls(context("local", tmp_path))}
    for name in ("questions-train", "questions-test", "answers-train", "answers-test", "teacher-train",
                 "teacher-test"):
        recorded = len(yaml.load((ROOT / "cassettes" / "local" / f"{name}.yaml").read_text(),
                                 Loader=yaml.CSafeLoader)["interactions"])
        calls = planned[name]
        if calls.startswith("<= "):
            bound = sum(int(part) for part in calls[3:].split(" + "))
            assert recorded <= bound, (name, recorded, calls)
        else:
            assert recorded == int(calls), (name, recorded, calls)

"""Cost estimates from the price table, and the dry run's call counts against a real recording."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from judge_eval.cli import main
from judge_eval.config.profiles import load_profile, load_profiles
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


def project_without_study_profile(tmp_path: Path) -> Path:
    """A project whose only profile is the `local` one (renamed `mine`), with the files its
    relative paths name: no `study` profile at all."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    start = text.index("[tool.judge_eval.profiles.local]")
    # up to the first table header that is not local's (or the end of the file)
    other = re.compile(r"^\[\[?(?!\[|tool\.judge_eval\.profiles\.local[.\]])", re.M).search(text, start + 1)
    table = text[start:other.start() if other else len(text)]
    table = table.replace("tool.judge_eval.profiles.local", "tool.judge_eval.profiles.mine")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "fixtures" / "corpus", project / "fixtures" / "corpus")
    shutil.copytree(ROOT / "fixtures" / "grammars", project / "fixtures" / "grammars")
    (project / "pyproject.toml").write_text(table, "utf-8")
    profiles = load_profiles(project / "pyproject.toml")
    assert sorted(profiles) == ["mine"] and profiles["mine"].pipeline is not None
    return project / "pyproject.toml"


def test_dry_run_without_a_study_profile_prints_its_plan(tmp_path: Path, capsys) -> None:
    # Regression: `record --dry-run` looked up the `study` profile and raised KeyError: 'study'.
    pyproject = project_without_study_profile(tmp_path)
    assert main(["record", "--profile", "mine", "--config", str(pyproject), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "dry run of `judge-eval record --profile mine`: no call is made"
    # The same plan as the repository's own `local` profile, whose table was copied.
    planned = planned_calls(context("local", tmp_path))
    assert lines[1:] == [f"  {stage:<18} {calls:<28} {why}" for stage, calls, why in planned]

"""Profiles and gates: validation errors and failure messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.config.profiles import Thresholds, load_profile, load_profiles
from judge_eval.errors import ConfigError, JudgeEvalError
from judge_eval.gating.gates import check_comparison, check_run
from judge_eval.core.metrics import compare, run_metrics
from judge_eval.core.items import Answer, QAItem, Verdict, item_id

ROOT = Path(__file__).resolve().parents[2]


def write_profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.judge_eval.profiles.p]\ngated = [\"cand\"]\n{body}\n")
    return path


def test_the_project_profiles_load() -> None:
    profiles = load_profiles(ROOT / "pyproject.toml")
    study = profiles["study"]
    assert study.reference == "gpt_4" and study.gated == ("ft_gpt_3p5",) and study.frame == "corrected"
    assert study.data == (ROOT / "../shared/seed_run").resolve()


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown profile .nope.*known profiles: local, openai, study"):
        load_profile("nope", ROOT / "pyproject.toml")


P = "tool.judge_eval.profiles.p"


@pytest.mark.parametrize(("body", "message"), [
    ("[tool.judge_eval.profiles.p.thresholds]\nmin_agreement = 1.5",
     f"{P}.thresholds.min_agreement = 1.5: Input should be less than or equal to 1"),
    ("[tool.judge_eval.profiles.p.thresholds]\nmax_parse_failures = -1",
     f"{P}.thresholds.max_parse_failures = -1: Input should be greater than or equal to 0"),
    ("[tool.judge_eval.profiles.p.thresholds]\nmax_errors = 0.5",
     f"{P}.thresholds.max_errors = 0.5: Input should be a valid integer"),
    ("[tool.judge_eval.profiles.p.thresholds]\nmin_agreemnt = 0.5",
     f"{P}.thresholds = {{'min_agreemnt': 0.5}}: unknown key(s) min_agreemnt; allowed keys: min_agreement, "),
    ("frame = \"sideways\"", f"{P}.frame = 'sideways': Input should be 'study' or 'corrected'"),
    ("colour = 1", "unknown key(s) colour; allowed keys: description, reference, gated, frame, data"),
    ("bootstrap_resamples = 0", f"{P}.bootstrap_resamples = 0: Input should be greater than or equal to 1"),
])
def test_bad_profile_values_are_named(tmp_path: Path, body: str, message: str) -> None:
    path = write_profile(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_profiles(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_broken_toml_is_reported_with_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = \"x\"\n[tool\n")
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*\(at line 3, column 6\)"):
        load_profiles(tmp_path / "pyproject.toml")


def items(scores: list[tuple[float, float]]) -> list[QAItem]:
    return [QAItem(id=item_id("test", str(n)), split="test", question=str(n),
                   answers=(Answer("a", "1"), Answer("b", "22")), source="",
                   evaluations=(Verdict("ref", r, "", "original"),
                                Verdict("cand", c, "", "original" if c is not None else "error")))
            for n, (r, c) in enumerate(scores)]


def test_undefined_metric_fails_its_gate_with_the_reason() -> None:
    c = compare(items([(1.0, 1.0), (1.0, 0.0)]), "cand", "ref")
    (failure,) = check_comparison(c, Thresholds(min_correlation=0.5), run_dir="RUN", profile="p")
    assert failure.metric == "correlation"
    assert "measured undefined [undefined: the reference's scores are constant" in failure.message
    assert "allowed >= 0.5" in failure.message and "run RUN" in failure.message


def test_errors_and_parse_failures_have_their_own_gates() -> None:
    c = compare(items([(1.0, 1.0), (1.0, None)]), "cand", "ref")
    failures = check_comparison(c, Thresholds(max_errors=0, max_parse_failures=0), run_dir="R", profile="p")
    assert [(f.metric, f.measured) for f in failures] == [("errors", "1")]


def test_a_gated_judge_missing_from_the_run_is_a_clear_error(tmp_path: Path) -> None:
    profile = load_profile("p", write_profile(tmp_path, "")).model_copy(update={"gated": ("ghost",)})
    metrics = run_metrics(items([(1.0, 1.0)]), "ref")
    with pytest.raises(JudgeEvalError, match="gates judge 'ghost', but the run R has no verdicts by it"):
        check_run(metrics, profile, run_dir="R")


def test_missing_verdicts_fail_the_default_coverage_gates() -> None:
    """Four items, by hand: cand has no verdict on item 3, ref none on item 2; both agree on 0, 1."""
    scores = [(1.0, 1.0), (0.0, 0.0), (None, 1.0), (1.0, None)]
    its = [QAItem(id=item_id("test", str(n)), split="test", question=str(n),
                  answers=(Answer("a", "1"), Answer("b", "22")), source="",
                  evaluations=tuple(Verdict(name, s, "", "original")
                                    for name, s in (("ref", r), ("cand", c)) if s is not None))
           for n, (r, c) in enumerate(scores)]
    c = compare(its, "cand", "ref")
    assert (c.agreements, c.total) == (2, 2)  # the agreement alone would pass any threshold
    failures = check_comparison(c, Thresholds(min_agreement=0.85), run_dir="R", profile="p")
    assert [(f.judge, f.metric) for f in failures] == [("cand", "missing"), ("ref", "reference_coverage")]
    assert failures[0].message == ("gate failed: judge 'cand', missing: measured 1 of 4 items without a verdict, "
                                   "allowed <= 0 (run R, corrected frame, profile p)")
    assert failures[1].message == ("gate failed: reference judge 'ref', reference_coverage: measured 0.7500 "
                                   "(3 of 4 items have a verdict by the reference; 1 missing), allowed >= 1.0 "
                                   "(run R, corrected frame, profile p)")
    # lowered on purpose (sparse labels): both pass
    assert check_comparison(c, Thresholds(max_missing=1, min_reference_coverage=0.75), run_dir="R",
                            profile="p") == []

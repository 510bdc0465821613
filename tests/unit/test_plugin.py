"""The pytest plugin's options, their ini/env twins, skips and the terminal summary (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sklearn.metrics  # noqa: F401  # imported here so pytester's in-process runs keep it loaded

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch) -> None:
    """CI runs with JUDGE_EVAL_STRICT=1 (.ci/run); these in-process sessions decide it themselves."""
    monkeypatch.delenv("JUDGE_EVAL_STRICT", raising=False)

TEST = """
def test_uses_study(study_metrics):
    assert study_metrics.reference == "gpt_4"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A copy of this project's configuration in a fresh folder (no study data beside it)."""
    pytester.makepyprojecttoml((ROOT / "pyproject.toml").read_text())
    grammar = pytester.path / "fixtures" / "grammars"
    grammar.mkdir(parents=True)
    (grammar / "verdict.gbnf").write_text((ROOT / "fixtures" / "grammars" / "verdict.gbnf").read_text())
    pytester.makeconftest('pytest_plugins = ["fixtures.study"]')
    pytester.makepyfile(**{"tests/test_study": TEST})
    return pytester


def test_missing_study_data_skips_with_the_fetch_command(project: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("JUDGE_EVAL_STUDY_DIR", raising=False)
    result = project.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([
        "SKIPPED*missing data (the study's data is missing): get it with `judge-eval fetch-study DIR`, then pass "
        "--study-dir=DIR or set JUDGE_EVAL_STUDY_DIR=DIR (looked in *)"])
    result.stdout.fnmatch_lines(
        ["judge_eval: 1 test(s) skipped: the study's data is missing (--judge-strict makes this an error)"])


@pytest.mark.parametrize("how", [["--judge-strict"], ["-o", "judge_eval_strict=true"], "env"])
def test_strict_mode_makes_missing_study_data_an_error(project: pytest.Pytester, monkeypatch, how) -> None:
    monkeypatch.delenv("JUDGE_EVAL_STUDY_DIR", raising=False)
    if how == "env":
        monkeypatch.setenv("JUDGE_EVAL_STRICT", "1")
        how = []
    result = project.runpytest("-p", "no:cacheprovider", *how)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*missing data (the study's data is missing): get it with `judge-eval fetch-study DIR`*"
                                 "(--judge-strict: missing data is an error)"])


def test_a_project_that_needs_no_study_data_is_not_asked_for_it(project: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("JUDGE_EVAL_STUDY_DIR", raising=False)
    project.makepyfile(**{"tests/test_study": "def test_plain():\n    assert True\n"})
    result = project.runpytest("-p", "no:cacheprovider", "--judge-strict")
    result.assert_outcomes(passed=1)


def test_study_dir_option_env_and_ini_in_that_order(project: pytest.Pytester, study_dir: Path,
                                                    monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_EVAL_STUDY_DIR", str(project.path / "nowhere-env"))
    result = project.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*judge_eval: profile local; study data *nowhere-env (from JUDGE_EVAL_STUDY_DIR)*"])

    result = project.runpytest("-p", "no:cacheprovider", f"--study-dir={study_dir}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*study data {study_dir} (from --study-dir)*"])

    # The documented form for a folder outside the project (see README): `=`, tilde expanded here.
    (project.path / "home").mkdir()
    (project.path / "home" / "study").symlink_to(study_dir)
    monkeypatch.setenv("HOME", str(project.path / "home"))
    result = project.runpytest("-p", "no:cacheprovider", "--study-dir=~/study")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*study data {study_dir.resolve()} (from --study-dir)*"])

    monkeypatch.delenv("JUDGE_EVAL_STUDY_DIR")
    result = project.runpytest("-p", "no:cacheprovider", "-o", f"judge_eval_study_dir={study_dir}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*(from ini judge_eval_study_dir)*"])


def test_terminal_summary_prints_the_table(project: pytest.Pytester, study_dir: Path) -> None:
    result = project.runpytest("-p", "no:cacheprovider", f"--study-dir={study_dir}", "--judge-report=full")
    result.stdout.fnmatch_lines([
        "*= judge_eval: study run*",
        "profile study; gated: ft_gpt_3p5 (corrected frame)",
        "*== study frame*",
        "ft_gpt_3p5",
        "-----------------",
        "Number of inconclusives: 15",
        "Number of agreements with gpt_4: 41 out of 47",
        "Agreement rate: 0.8723404255319149",
        "Correlation: 0.765365523658036",
        "Jaccard: 0.773126734505088",
    ])


def test_unknown_profile_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "no:cacheprovider", "--judge-profile=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--judge-profile: unknown profile 'nope'; known profiles: local, openai, study*"])


def test_bad_thresholds_are_a_usage_error(project: pytest.Pytester) -> None:
    text = (ROOT / "pyproject.toml").read_text().replace("min_agreement = 0.85", "min_agreement = 85")
    project.makepyprojecttoml(text)
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tool.judge_eval.profiles.study.thresholds.min_agreement = 85: Input should be less than or equal to 1"])


def test_a_profile_without_cassettes_skips_in_one_line_naming_the_record_command(project: pytest.Pytester) -> None:
    project.makeconftest('pytest_plugins = ["fixtures.study", "fixtures.pipeline"]')
    project.makepyfile(**{"tests/test_live": "def test_run(pipeline_run):\n    assert pipeline_run\n"})
    result = project.runpytest("-rs", "-p", "no:cacheprovider", "--judge-profile=openai", "tests/test_live.py")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*missing data (profile openai has no cassettes): none in *cassettes/openai and "
                                 "--record-mode none; record them with: judge-eval record --profile openai"])
    result = project.runpytest("-p", "no:cacheprovider", "--judge-profile=openai", "--judge-strict", "tests/test_live.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*missing data (profile openai has no cassettes): *(--judge-strict: missing data is "
                                 "an error)"])


def test_baseline_option_fails_the_release_test_on_a_significant_drop(pytester: pytest.Pytester,
                                                                      study_dir: Path, tmp_path: Path) -> None:
    """The baseline check, run through pytest on a profile whose run is the study's own files."""
    from tests.unit.test_compare import invert_ten_agreeing

    worse = tmp_path / "worse"
    invert_ten_agreeing(study_dir, worse)
    pytester.makepyprojecttoml((ROOT / "pyproject.toml").read_text())
    grammar = pytester.path / "fixtures" / "grammars"
    grammar.mkdir(parents=True)
    (grammar / "verdict.gbnf").write_text((ROOT / "fixtures" / "grammars" / "verdict.gbnf").read_text())
    pytester.makeconftest(f"""
import pytest
from pathlib import Path
pytest_plugins = ["fixtures.study"]

@pytest.fixture(scope="session")
def pipeline_run():
    return Path({str(worse)!r})

@pytest.fixture(scope="session")
def pipeline_profile(study_profile):
    return study_profile
""")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_baseline.py").write_text((ROOT / "tests/release/test_baseline.py").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", f"--baseline-run={study_dir}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*lost agreement on 10 item(s), gained on 0*SIGNIFICANT DROP*"])
    result = pytester.runpytest("-p", "no:cacheprovider", f"--baseline-run={worse}")
    result.assert_outcomes(passed=1)


def test_markdown_report_file(project: pytest.Pytester, study_dir: Path) -> None:
    target = project.path / "summary.md"
    result = project.runpytest("-p", "no:cacheprovider", f"--study-dir={study_dir}", f"--judge-report-md={target}")
    result.assert_outcomes(passed=1)
    text = target.read_text()
    assert "| ft_gpt_3p5 | 15 | 0 | 0 | 44 of 47 | 0.936 |" in text
    result.stdout.fnmatch_lines([f"judge_eval: Markdown report written to {target}"])

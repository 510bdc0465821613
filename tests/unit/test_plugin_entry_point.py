"""The plugin as another project meets it: registered by its pytest11 entry point, inert without
``[tool.judge_eval]``, and running a foreign project's gates from a one-line test (pytester)."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import sklearn.metrics  # noqa: F401  # loaded here: pytester's in-process runs unload what they import,
# and a C extension cannot be loaded twice in one process

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch) -> None:
    """CI runs with JUDGE_EVAL_STRICT=1 (.ci/run); these in-process sessions decide it themselves."""
    monkeypatch.delenv("JUDGE_EVAL_STRICT", raising=False)

GATE_TEST = "def test_gates(judge_gate):\n    judge_gate.check()\n"

FOREIGN = """
[tool.judge_eval.profiles.release]
reference = "teacher"
gated = ["good", "bad"]
data = "runs/candidate"

[tool.judge_eval.profiles.release.thresholds]
min_agreement = 0.8
max_errors = 0
"""


def write_run(folder: Path) -> None:
    """Ten pairs. By hand: `good` agrees with `teacher` on all 10; `bad` agrees on items 0-4, says
    the opposite on items 5-8, and its call on item 9 failed (an `error` verdict): 5 of 9."""
    folder.mkdir(parents=True)
    lines = []
    for n in range(10):
        bad = {"llm": "bad", "score": 0.0, "text": "[[B]]", "source": "original"} if n >= 5 else \
              {"llm": "bad", "score": 1.0, "text": "[[A]]", "source": "original"}
        if n == 9:
            bad = {"llm": "bad", "score": None, "text": "", "source": "error"}
        lines.append(json.dumps({
            "question": f"Question {n}?", "source": "",
            "answers": [{"model": "x", "text": f"first {n}"}, {"model": "y", "text": f"second {n}"}],
            "evaluations": [{"llm": "teacher", "score": 1.0, "text": "[[A]]", "source": "original"},
                            {"llm": "good", "score": 1.0, "text": "[[A]]", "source": "original"}, bad]}))
    (folder / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")


def test_the_entry_point_registers_the_plugin() -> None:
    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.name == "judge_eval"]
    assert ep.value == "judge_eval.plugin"


def test_a_foreign_project_runs_its_gates_from_a_one_line_test(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(FOREIGN)
    write_run(pytester.path / "runs" / "candidate")
    pytester.makepyfile(test_release=GATE_TEST)
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "-p", "no:randomly")
    # The two thresholds set, plus the coverage gates that are on by default: max_missing and
    # min_compared per gated judge, min_reference_coverage once per profile (named after the
    # reference). Every judge has a verdict on all 10 items (bad's error on item 9 is a verdict,
    # gated by max_errors), and each is compared on at least one.
    result.assert_outcomes(passed=7, failed=2)
    result.stdout.fnmatch_lines([
        "*test_gates?release:good:min_agreement? PASSED*",
        "*test_gates?release:good:max_errors? PASSED*",
        "*test_gates?release:good:max_missing? PASSED*",
        "*test_gates?release:good:min_compared? PASSED*",
        "*test_gates?release:bad:min_agreement? FAILED*",
        "*test_gates?release:bad:max_errors? FAILED*",
        "*test_gates?release:bad:max_missing? PASSED*",
        "*test_gates?release:bad:min_compared? PASSED*",
        "*test_gates?release:teacher:min_reference_coverage? PASSED*",
    ])
    # 5 of 9 conclusive pairs agree (item 9 is an error): 0.5556, by hand
    result.stdout.fnmatch_lines([
        "*gate failed: judge 'bad', agreement_rate: measured 0.5556 (5 of 9), allowed >= 0.8 "
        "(run *runs/candidate, corrected frame, profile release)",
        "*gate failed: judge 'bad', errors: measured 1, allowed <= 0 (run *runs/candidate, corrected frame, "
        "profile release)",
    ])
    result.stdout.fnmatch_lines(["*judge_eval: release run *runs/candidate*"])  # the terminal summary


def test_a_foreign_project_with_the_run_missing_skips_naming_the_key(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(FOREIGN)
    pytester.makepyfile(test_release=GATE_TEST)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=9)  # 2 judges x (2 thresholds + max_missing + min_compared) + reference coverage
    result.stdout.fnmatch_lines(["*missing data (profile release: no run at *runs/candidate): test_qa_complete.jsonl missing; "
                                 "set `data` of ?tool.judge_eval.profiles.release?"])
    result.stdout.fnmatch_lines(["judge_eval: 9 test(s) skipped: profile release: no run at *runs/candidate "
                                 "(--judge-strict makes this an error)"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-strict")
    result.assert_outcomes(failed=9)


@pytest.mark.parametrize("pyproject", ["[project]\nname = \"unrelated\"\n", None])
def test_an_unrelated_project_sees_nothing(pytester: pytest.Pytester, pyproject: str | None) -> None:
    if pyproject is not None:
        pytester.makepyprojecttoml(pyproject)
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "judge_eval" not in result.stdout.str()
    # its options still parse (they exist before rootdir detection), and do nothing
    result = pytester.runpytest("-p", "no:cacheprovider", "--study-dir", str(pytester.path))
    result.assert_outcomes(passed=1)
    assert "judge_eval" not in result.stdout.str()


def test_listing_the_plugin_in_a_conftest_as_well_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(FOREIGN)
    pytester.makeconftest('pytest_plugins = ["judge_eval.plugin"]')
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != pytest.ExitCode.OK
    assert "already registered" in result.stdout.str() + result.stderr.str()


def test_study_dir_with_a_space_before_the_path(pytester: pytest.Pytester, study_dir: Path) -> None:
    """A separate path argument outside the project: the option is known before pytest looks for
    test paths, so the folder is taken as the option's value (it used to be a test path)."""
    pytester.makepyprojecttoml('[tool.judge_eval.profiles.study]\ngated = ["ft_gpt_3p5"]\n'
                               'data = "nowhere"\n[tool.judge_eval.profiles.study.thresholds]\nmin_agreement = 0.85\n')
    pytester.makepyfile(test_release=GATE_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "--study-dir", str(study_dir))
    result.assert_outcomes(passed=4)  # min_agreement; the default max_missing, min_compared, min_reference_coverage
    result.stdout.fnmatch_lines([f"*study data {study_dir} (from --study-dir)*", f"rootdir: {pytester.path}",
                                 "configfile: pyproject.toml"])


def test_an_unsupported_record_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(FOREIGN)
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--record-mode=rewrite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--record-mode=rewrite: judge_eval's cassettes support none, once, new_episodes, "
                                 "all*"])


def test_parallel_runs_report_every_table_once(pytester: pytest.Pytester) -> None:
    """pytest -n 2: the workers compute the tables, the controller prints and writes each once."""
    profiles = ""
    for name in ("alpha", "beta", "gamma"):
        profiles += (f'[tool.judge_eval.profiles.{name}]\nreference = "teacher"\ngated = ["good"]\n'
                     f'data = "runs/{name}"\n[tool.judge_eval.profiles.{name}.thresholds]\nmin_agreement = 0.8\n\n')
        write_run(pytester.path / "runs" / name)
    pytester.makepyprojecttoml(profiles)
    pytester.makepyfile(test_release=GATE_TEST)
    target = pytester.path / "summary.md"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--judge-report-md={target}")
    # per profile: min_agreement, max_missing and min_compared (good), min_reference_coverage: 12 gates, all pass
    result.assert_outcomes(passed=12)
    out = result.stdout.str()
    markdown = target.read_text()
    for name in ("alpha", "beta", "gamma"):
        assert out.count(f"judge_eval: {name} run ") == 1, out
        assert markdown.count(f"### judge_eval: profile {name};") == 1, markdown
    assert out.count("Markdown report written to") == 1

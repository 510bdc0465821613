"""The default-on ``min_compared`` gate: a gated judge compared with the reference on no item (every
output unreadable, failed or inconclusive, or the reference inconclusive wherever the judge is
conclusive) fails, even in a profile that sets no metric threshold. Without it, such a judge
passed every gate of a defaults-only profile: ``max_missing`` counts absent verdicts, and an
unreadable output is a verdict.

Counts are by hand: four pairs (or four pointwise items), stated in each test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.config.profiles import load_profile
from judge_eval.core.metrics import run_metrics
from judge_eval.core.store import read_run
from judge_eval.errors import ConfigError
from judge_eval.gating.gates import check_run, gate_results

pytest_plugins = ["pytester"]

SOURCES = {"A": (1.0, "original"), "B": (0.0, "original"), "tie": (None, "neither"), "tied": (0.5, "original"),
           "parse": (None, "output-cannot-be-parsed"), "error": (None, "error")}


@pytest.fixture(autouse=True)
def _decide_strictness_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI runs with JUDGE_EVAL_STRICT=1 (.ci/run); the in-process pytester sessions decide it themselves."""
    monkeypatch.delenv("JUDGE_EVAL_STRICT", raising=False)


def pair_run(folder: Path, teacher: list[str], cand: list[str]) -> Path:
    """One pair per position; each verdict one of SOURCES' keys."""
    lines = []
    for n, (t, c) in enumerate(zip(teacher, cand)):
        evals = [{"llm": llm, "score": SOURCES[v][0], "text": "?", "source": SOURCES[v][1]}
                 for llm, v in (("teacher", t), ("cand", c))]
        lines.append(json.dumps({"question": f"Q{n}?", "source": "", "evaluations": evals,
                                 "answers": [{"model": "x", "text": f"a {n}"}, {"model": "y", "text": f"b {n}"}]}))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def score_run(folder: Path, teacher: list, cand: list) -> Path:
    """Pointwise items on a 1-5 scale; a verdict is a score or "parse"."""
    def one(llm: str, v) -> dict:
        if v == "parse":
            return {"llm": llm, "score": None, "text": "?", "source": "output-cannot-be-parsed", "kind": "score",
                    "scale": [1, 2, 3, 4, 5]}
        return {"llm": llm, "score": v, "text": str(v), "source": "scored", "kind": "score", "scale": [1, 2, 3, 4, 5]}
    lines = [json.dumps({"question": f"Q{n}?", "source": "", "answers": [{"model": "m", "text": f"a {n}"}],
                         "evaluations": [one("teacher", t), one("cand", c)]}) for n, (t, c) in
             enumerate(zip(teacher, cand))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def profile_file(tmp_path: Path, thresholds: str = "") -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.judge_eval.profiles.p]\nreference = "teacher"\ngated = ["cand"]\ndata = "run"\n'
                    f"[tool.judge_eval.profiles.p.thresholds]\n{thresholds}\n")
    return path


def failures(run: Path, path: Path) -> list[str]:
    profile = load_profile("p", path)
    metrics = run_metrics(read_run(run).test, "teacher")
    return [f.message for f in check_run(metrics, profile, run_dir="R")]


def test_an_all_unparseable_judge_fails_a_profile_that_sets_no_threshold(tmp_path: Path, capsys) -> None:
    run = pair_run(tmp_path / "run", ["A", "B", "A", "B"], ["parse"] * 4)
    path = profile_file(tmp_path)
    assert failures(run, path) == [
        "gate failed: judge 'cand', compared: measured 0 of 4 items where both the judge and the reference are "
        "conclusive (judge: 0 inconclusive, 4 parse failures, 0 errors, 0 missing; reference: 0 not conclusive, "
        "0 missing), allowed >= 1 (run R, corrected frame, profile p)"]
    # the other default gates pass: every verdict is there and the reference covers every item
    results = gate_results(run_metrics(read_run(run).test, "teacher"), load_profile("p", path), run_dir="R")
    assert [(r.threshold, r.passed) for r in results] == [
        ("max_missing", True), ("min_compared", False), ("min_reference_coverage", True)]
    assert main(["gate", str(run), "--profile", "p", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL cand compared 0 (of 4) < allowed 1" in out.splitlines()
    assert out.rstrip().endswith("FAIL: profile p, gated judge(s) cand, 1 gate failure(s)")


@pytest.mark.parametrize(("teacher", "cand", "why"), [
    # every output of the judge inconclusive
    (["A", "B", "A", "B"], ["tie"] * 4, "judge: 4 inconclusive, 0 parse failures, 0 errors, 0 missing; "
                                        "reference: 0 not conclusive, 0 missing"),
    # every call failed
    (["A", "B", "A", "B"], ["error"] * 4, "judge: 0 inconclusive, 0 parse failures, 4 errors, 0 missing; "
                                          "reference: 0 not conclusive, 0 missing"),
    # a mix: nothing left to compare
    (["A", "B", "A", "B"], ["tie", "parse", "error", "tie"],
     "judge: 2 inconclusive, 1 parse failures, 1 errors, 0 missing; reference: 0 not conclusive, 0 missing"),
    # the judge decides every pair, but the reference decides none of them
    (["tie"] * 4, ["A", "B", "A", "B"], "judge: 0 inconclusive, 0 parse failures, 0 errors, 0 missing; "
                                        "reference: 4 not conclusive, 0 missing"),
])
def test_nothing_to_compare_fails_and_says_where_the_items_went(tmp_path: Path, teacher, cand, why) -> None:
    run = pair_run(tmp_path / "run", teacher, cand)
    (message,) = failures(run, profile_file(tmp_path))
    assert message.startswith("gate failed: judge 'cand', compared: measured 0 of 4 items where both")
    assert f"({why}), allowed >= 1" in message


def test_one_compared_pair_passes_the_default_and_a_profile_can_ask_for_more(tmp_path: Path) -> None:
    # compared: pair 0 only (A vs A); pairs 1-3 unreadable
    run = pair_run(tmp_path / "run", ["A", "B", "A", "B"], ["A", "parse", "parse", "parse"])
    assert failures(run, profile_file(tmp_path)) == []
    (message,) = failures(run, profile_file(tmp_path, "min_compared = 2"))
    assert message.startswith("gate failed: judge 'cand', compared: measured 1 of 4 items")
    assert ("(judge: 0 inconclusive, 3 parse failures, 0 errors, 0 missing; reference: 0 not conclusive, 0 missing), "
            "allowed >= 2") in message


def test_min_compared_0_turns_the_gate_off_on_purpose(tmp_path: Path) -> None:
    run = pair_run(tmp_path / "run", ["A", "B", "A", "B"], ["parse"] * 4)
    path = profile_file(tmp_path, "min_compared = 0")
    assert failures(run, path) == []  # 0 >= 0: what the profile asked for, stated in it
    results = gate_results(run_metrics(read_run(run).test, "teacher"), load_profile("p", path), run_dir="R")
    assert ("min_compared", True) in [(r.threshold, r.passed) for r in results]


def test_a_score_judge_with_no_score_fails_with_both_sides_counts(tmp_path: Path) -> None:
    run = score_run(tmp_path / "run", [1, 2, 3, 4], ["parse"] * 4)
    assert failures(run, profile_file(tmp_path)) == [
        "gate failed: judge 'cand', compared: measured 0 of 4 items scored by both the judge and the reference "
        "(judge: 4 parse failures, 0 errors, 0 missing; reference: 0 parse failures, 0 errors, 0 missing), "
        "allowed >= 1 (run R, profile p)"]
    # three of four scored by both: passes the default
    assert failures(score_run(tmp_path / "run3", [1, 2, 3, 4], [1, 2, 3, "parse"]), profile_file(tmp_path)) == []


@pytest.mark.parametrize("value", ["-1", "0.5", '"one"'])
def test_a_min_compared_that_is_not_a_count_is_a_config_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"min_compared"):
        load_profile("p", profile_file(tmp_path, f"min_compared = {value}"))


def test_the_plugin_fails_the_min_compared_case_with_its_message(pytester: pytest.Pytester) -> None:
    pair_run(pytester.path / "run", ["A", "B", "A", "B"], ["parse"] * 4)
    profile_file(pytester.path)
    pytester.makepyfile(test_release="def test_gates(judge_gate):\n    judge_gate.check()\n")
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_gates?p:cand:max_missing? PASSED*",
        "*test_gates?p:cand:min_compared? FAILED*",
        "*test_gates?p:teacher:min_reference_coverage? PASSED*",
    ])
    result.stdout.fnmatch_lines(["*gate failed: judge 'cand', compared: measured 0 of 4 items where both the judge "
                                 "and the reference are conclusive*allowed >= 1 (run *run, corrected frame, profile p)"])


def test_without_ties_the_message_says_how_many_items_were_dropped_as_ties(tmp_path: Path) -> None:
    # the judge says tie on all 4 pairs (a conclusive verdict): with ties they are compared, 4 of 4
    # (and disagree); without ties all 4 are dropped, so nothing is compared
    run = pair_run(tmp_path / "run", ["A", "B", "A", "B"], ["tied"] * 4)
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.judge_eval.profiles.p]\nreference = "teacher"\ngated = ["cand"]\nties = "without"\n')
    (message,) = failures(run, path)
    assert message == (
        "gate failed: judge 'cand', compared: measured 0 of 4 items where both the judge and the reference are "
        "conclusive and neither says tie (judge: 0 inconclusive, 0 parse failures, 0 errors, 0 missing; reference: "
        "0 not conclusive, 0 missing; 4 dropped as ties), allowed >= 1 (run R, corrected frame, ties without, "
        "profile p)")
    with_ties = tmp_path / "with.toml"
    with_ties.write_text('[tool.judge_eval.profiles.p]\nreference = "teacher"\ngated = ["cand"]\n')
    assert failures(run, with_ties) == []
    # a report that shows the table with ties names the tie mode the gate read
    from judge_eval.reporting.report import gate_line, _elsewhere

    (result,) = [r for r in gate_results(run_metrics(read_run(run).test, "teacher"), load_profile("p", path),
                                         run_dir="R") if r.threshold == "min_compared"]
    assert gate_line(result) + _elsewhere(result, "corrected", "with") == \
        "FAIL cand compared 0 (of 4) < allowed 1 (corrected frame, ties without)"

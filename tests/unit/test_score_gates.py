"""Gates on score judges (pointwise items): each score threshold passes and fails with its message,
a threshold of the other kind of judge fails naming the key to use instead, the score reference
has its coverage gate, and the pytest plugin makes a test case of each (pytester).

Every run is written here line by line as JSON (the documented schema of a pointwise item), with
its hand counts in comments; every statistic is checked against scipy / scikit-learn or a
bootstrap written here, never against judge_eval's own output.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics  # noqa: F401  # loaded here: pytester's in-process runs unload what they import
from scipy.stats import pearsonr
from sklearn.metrics import cohen_kappa_score

from judge_eval.cli import main
from judge_eval.config.profiles import load_profile
from judge_eval.core.items import question_key
from judge_eval.core.metrics import run_metrics
from judge_eval.core.store import read_run
from judge_eval.errors import ConfigError, JudgeEvalError
from judge_eval.gating.gates import check_judge, check_run, gate_results
from judge_eval.plugin import Settings, gate_cases

pytest_plugins = ["pytester"]

SCALE = [1, 2, 3, 4, 5]
# Ten pointwise items. The student's verdict on item 7 is unparseable, so 9 items are compared:
#   item     0  1  2  3  4  5  6  7  8  9
#   teacher  1  2  3  4  5  3  2  4  5  1
#   student  1  2  3  5  4  3  3  -  5  1
#   |diff|   0  0  0  1  1  0  1  .  0  0   -> exact 6 of 9, within-1 9 of 9, MAE 3/9
TEACHER = [1, 2, 3, 4, 5, 3, 2, 4, 5, 1]
STUDENT = [1, 2, 3, 5, 4, 3, 3, "parse", 5, 1]
COMPARED = [i for i in range(10) if i != 7]


@pytest.fixture(autouse=True)
def _decide_strictness_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI runs with JUDGE_EVAL_STRICT=1 (.ci/run); the in-process pytester sessions decide it themselves."""
    monkeypatch.delenv("JUDGE_EVAL_STRICT", raising=False)


def score_eval(llm: str, score, scale=SCALE) -> dict:
    """One score verdict as a line holds it; ``score`` "parse" / "error" for the two null sources."""
    if score in ("parse", "error"):
        source = "output-cannot-be-parsed" if score == "parse" else "error"
        return {"llm": llm, "score": None, "text": "?", "source": source, "kind": "score", "scale": scale}
    return {"llm": llm, "score": score, "text": f"{score}", "source": "scored", "kind": "score", "scale": scale}


def point_line(n: int, verdicts: dict) -> dict:
    """Pointwise item ``n``: one answer, a score verdict per judge (None: no verdict)."""
    return {"question": f"Question {n}?", "answers": [{"model": "m", "text": f"answer {n}"}], "source": "",
            "evaluations": [score_eval(llm, score) for llm, score in verdicts.items() if score is not None]}


def pair_line(n: int, verdicts: dict) -> dict:
    """Pairwise item ``n``: two answers, a pairwise verdict per judge (score 1.0 original, or "neither")."""
    evals = [{"llm": llm, "score": None if v == "neither" else v, "text": "[[A]]",
              "source": "neither" if v == "neither" else "original"} for llm, v in verdicts.items()]
    return {"question": f"Pair {n}?", "answers": [{"model": "x", "text": f"a {n}"}, {"model": "y", "text": f"b {n}"}],
            "source": "", "evaluations": evals}


def write_run(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_qa_complete.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def student_run(folder: Path, student=STUDENT, teacher=TEACHER) -> Path:
    return write_run(folder, [point_line(n, {"teacher": t, "student": s}) for n, (t, s) in
                              enumerate(zip(teacher, student))])


def write_profile(tmp_path: Path, thresholds: str, extra: str = "", gated: str = '["student"]',
                  reference: str = "teacher") -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[tool.judge_eval.profiles.p]\nreference = "{reference}"\ngated = {gated}\ndata = "run"\n{extra}\n'
                    f"[tool.judge_eval.profiles.p.thresholds]\n{thresholds}\n")
    return path


def sklearn_qwk(ref: list, cand: list) -> float:
    return float(cohen_kappa_score(ref, cand, weights="quadratic", labels=SCALE))


def compared() -> tuple[list[int], list[int]]:
    return [TEACHER[i] for i in COMPARED], [STUDENT[i] for i in COMPARED]


# --------------------------------------------------------------------------- each threshold


def test_score_thresholds_pass_and_fail_each_with_its_message(tmp_path: Path) -> None:
    run = student_run(tmp_path / "run")
    ref, cand = compared()
    qwk = sklearn_qwk(ref, cand)
    r = float(pearsonr(ref, cand).statistic)
    profile = load_profile("p", write_profile(
        tmp_path, "min_exact_agreement = 0.7\nmin_within_1_agreement = 1.0\nmax_mae = 0.3\n"
                  f"min_pearson = {r - 0.01:.4f}\nmin_quadratic_kappa = {qwk + 0.01:.4f}\nmax_parse_failures = 0"))
    metrics = run_metrics(read_run(run).test, "teacher")
    failures = check_run(metrics, profile, run_dir="R")
    assert [f.message for f in failures] == [
        "gate failed: judge 'student', parse_failures: measured 1, allowed <= 0 (run R, profile p)",
        "gate failed: judge 'student', exact_agreement: measured 0.6667 (6 of 9), allowed >= 0.7 (run R, profile p)",
        "gate failed: judge 'student', mae: measured 0.3333 (n 9), allowed <= 0.3 (run R, profile p)",
        f"gate failed: judge 'student', quadratic_kappa: measured {qwk:.4f} (n 9), allowed >= {qwk + 0.01:.4f} "
        "(run R, profile p)",
    ]
    results = {g.threshold: g for g in gate_results(metrics, profile, run_dir="R")}
    # in the order of the thresholds, each passed or failed; the default-on coverage gates included
    assert list(results) == ["max_parse_failures", "max_missing", "min_compared", "min_exact_agreement",
                             "min_within_1_agreement", "max_mae", "min_pearson", "min_quadratic_kappa",
                             "min_reference_coverage"]
    assert [k for k, g in results.items() if g.passed] == ["max_missing", "min_compared", "min_within_1_agreement",
                                                           "min_pearson", "min_reference_coverage"]
    assert (results["min_compared"].measured, results["min_compared"].counts) == (len(COMPARED), "of 10")
    assert results["min_within_1_agreement"].measured == 1.0 and results["min_within_1_agreement"].counts == "9/9"
    assert results["min_pearson"].measured == pytest.approx(r, abs=1e-12)
    assert results["min_quadratic_kappa"].frame == "" and results["min_quadratic_kappa"].failure is not None


def test_the_same_thresholds_met_pass_and_the_gate_command_exits_0_then_1(tmp_path: Path, capsys) -> None:
    student_run(tmp_path / "run")
    ref, cand = compared()
    qwk = sklearn_qwk(ref, cand)
    passing = write_profile(tmp_path, "min_exact_agreement = 0.6\nmax_mae = 0.34\nmax_parse_failures = 1\n"
                                      f"min_quadratic_kappa = {qwk - 0.01:.4f}")
    args = ["gate", str(tmp_path / "run"), "--profile", "p", "--config", str(passing)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "PASS student exact_agreement 0.667 (6/9) >= allowed 0.6" in out
    assert "PASS student mae 0.333 (n 9) <= allowed 0.34" in out
    assert f"PASS student quadratic_kappa {qwk:.3g} (n 9) >= allowed {qwk - 0.01:.4f}" in out
    assert "PASS teacher (reference) reference_coverage 1.00 (10/10) >= allowed 1.0" in out
    assert out.rstrip().endswith("PASS: profile p, gated judge(s) student, 0 gate failure(s)")
    write_profile(tmp_path, "min_exact_agreement = 0.7\nmax_mae = 0.34")
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL student exact_agreement 0.667 (6/9) < allowed 0.7" in out
    assert ("gate failed: judge 'student', exact_agreement: measured 0.6667 (6 of 9), allowed >= 0.7 "
            f"(run {tmp_path / 'run'}, profile p)") in out
    assert out.rstrip().endswith("FAIL: profile p, gated judge(s) student, 1 gate failure(s)")


def test_an_undefined_metric_fails_with_its_reason(tmp_path: Path) -> None:
    # the student gives 3 everywhere: Pearson r is undefined (scipy: NaN), so its gate fails
    run = student_run(tmp_path / "run", student=[3] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(pearsonr(TEACHER, [3] * 10).statistic)
    profile = load_profile("p", write_profile(tmp_path, "min_pearson = 0.5"))
    (failure,) = check_run(run_metrics(read_run(run).test, "teacher"), profile, run_dir="R")
    assert failure.message == ("gate failed: judge 'student', pearson: measured undefined (n 10) [undefined: the "
                               "judge's scores are constant (3) on the compared items], allowed >= 0.5 (run R, "
                               "profile p)")


def order_key_positions() -> list[int]:
    """The compared items in the order every bootstrap draws them: by question key, then id (the
    documented ``QAItem.order_key``; every id here is derived, so the question key decides)."""
    return sorted(COMPARED, key=lambda i: question_key("test", f"Question {i}?"))


def bootstrap_interval(metric, resamples: int, seed: int = 0) -> tuple[float, float]:
    """The documented percentile bootstrap, written here: a (resamples, n) index table of
    default_rng(seed).integers(0, n) over the compared items in order_key order, the metric of
    each resample (undefined ones left out), percentiles 2.5 and 97.5."""
    order = order_key_positions()
    ref = np.array([TEACHER[i] for i in order], dtype=float)
    cand = np.array([STUDENT[i] for i in order], dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(order), size=(resamples, len(order)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.array([metric(ref[row], cand[row]) for row in idx])
    values = values[~np.isnan(values)]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def test_the_interval_of_the_gated_metric_is_gated_by_its_bound(tmp_path: Path) -> None:
    run = student_run(tmp_path / "run")
    items = read_run(run).test
    low, _ = bootstrap_interval(lambda r, c: cohen_kappa_score(r, c, weights="quadratic", labels=SCALE), 300)
    extra = 'score_interval = "quadratic_kappa"\nbootstrap_resamples = 300'
    profile = load_profile("p", write_profile(tmp_path, f"min_score_ci_low = {low + 0.001:.4f}", extra))
    metrics = run_metrics(items, "teacher", resamples=300, score_interval="quadratic_kappa")
    assert metrics.scores["student"].interval[0] == pytest.approx(low, abs=1e-12)
    (failure,) = check_run(metrics, profile, run_dir="R")
    assert failure.message == (f"gate failed: judge 'student', quadratic_kappa_ci_low: measured {low:.4f} (lower bound "
                               f"of the 95% interval of quadratic_kappa, n 9), allowed >= {low + 0.001:.4f} (run R, "
                               "profile p)")
    profile = load_profile("p", write_profile(tmp_path, f"min_score_ci_low = {low - 0.001:.4f}", extra))
    assert check_run(metrics, profile, run_dir="R") == []
    # MAE: lower is better, so its upper bound is the one gated
    _, high = bootstrap_interval(lambda r, c: np.mean(np.abs(r - c)), 300)
    extra = 'score_interval = "mae"\nbootstrap_resamples = 300'
    profile = load_profile("p", write_profile(tmp_path, f"max_score_ci_high = {high - 0.001:.4f}", extra))
    metrics = run_metrics(items, "teacher", resamples=300, score_interval="mae")
    (failure,) = check_run(metrics, profile, run_dir="R")
    assert failure.message == (f"gate failed: judge 'student', mae_ci_high: measured {high:.4f} (upper bound of the "
                               f"95% interval of mae, n 9), allowed <= {high - 0.001:.4f} (run R, profile p)")
    # metrics carrying another interval than the profile gates are refused, not read as the wrong one
    wrong = run_metrics(items, "teacher", resamples=300)
    with pytest.raises(JudgeEvalError, match=r"gates the 95% interval of mae of score judge 'student', but the "
                                             r"metrics carry the interval of exact_agreement"):
        check_run(wrong, profile, run_dir="R")


def test_an_interval_bound_that_does_not_fit_the_metric_is_a_config_error(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "min_score_ci_low = 0.2", 'score_interval = "mae"')
    with pytest.raises(ConfigError, match=r"thresholds.min_score_ci_low = 0.2 does not fit score_interval = 'mae' "
                                          r"\(lower is better\): gate its interval with max_score_ci_high"):
        load_profile("p", path)
    path = write_profile(tmp_path, "max_score_ci_high = 0.2", 'score_interval = "spearman"')
    with pytest.raises(ConfigError, match=r"max_score_ci_high = 0.2 does not fit score_interval = 'spearman' "
                                          r"\(higher is better\): gate its interval with min_score_ci_low"):
        load_profile("p", path)
    path = write_profile(tmp_path, "", 'score_interval = "qwk"')
    with pytest.raises(ConfigError, match=r"score_interval = 'qwk': Input should be 'exact_agreement'"):
        load_profile("p", path)


# --------------------------------------------------------------------------- a key of the other kind


def test_a_pairwise_key_on_a_score_judge_fails_naming_the_key_to_use(tmp_path: Path) -> None:
    run = student_run(tmp_path / "run")
    profile = load_profile("p", write_profile(tmp_path, "min_agreement = 0.5\nmax_inconclusive_rate = 0.2"))
    failures = check_run(run_metrics(read_run(run).test, "teacher"), profile, run_dir="R")
    assert [f.message for f in failures] == [
        "gate failed: judge 'student', agreement_rate: measured n/a [min_agreement gates pairwise judges; 'student' "
        "is a score judge (scale [1, 2, 3, 4, 5]): use min_exact_agreement], allowed >= 0.5 (run R, profile p)",
        "gate failed: judge 'student', inconclusive_rate: measured n/a [max_inconclusive_rate gates pairwise judges; "
        "'student' is a score judge (scale [1, 2, 3, 4, 5]): a score verdict is never inconclusive (unreadable "
        "outputs count in max_parse_failures)], allowed <= 0.2 (run R, profile p)",
    ]


def mixed_run(folder: Path) -> Path:
    """Four pairs judged by gpt_4 and cand (cand inconclusive on pair 3: agreement 3 of 3) and the
    ten pointwise items of TEACHER / STUDENT."""
    pairs = [pair_line(n, {"gpt_4": 1.0, "cand": "neither" if n == 3 else 1.0}) for n in range(4)]
    points = [point_line(n, {"teacher": t, "student": s}) for n, (t, s) in enumerate(zip(TEACHER, STUDENT))]
    return write_run(folder, pairs + points)


def test_a_score_key_on_a_pairwise_judge_fails_and_a_mixed_run_gates_both_kinds(tmp_path: Path) -> None:
    run = mixed_run(tmp_path / "run")
    profile = load_profile("p", write_profile(tmp_path, "min_agreement = 0.9\nmax_mae = 0.5",
                                              'score_reference = "teacher"', gated='["cand", "student"]',
                                              reference="gpt_4"))
    metrics = run_metrics(read_run(run).test, "gpt_4", score_reference="teacher")
    assert list(metrics.judges) == ["cand"] and list(metrics.scores) == ["student"]
    results = gate_results(metrics, profile, run_dir="R")
    assert [(g.judge, g.threshold, g.passed) for g in results] == [
        ("cand", "min_agreement", True), ("cand", "max_missing", True), ("cand", "min_compared", True),
        ("cand", "max_mae", False),
        ("student", "min_agreement", False), ("student", "max_missing", True), ("student", "min_compared", True),
        ("student", "max_mae", True),
        ("gpt_4", "min_reference_coverage", True), ("teacher", "min_reference_coverage", True)]
    assert [f.message for f in check_run(metrics, profile, run_dir="R")] == [
        "gate failed: judge 'cand', mae: measured n/a [max_mae gates score judges; 'cand' is a pairwise judge: use "
        "min_agreement], allowed <= 0.5 (run R, corrected frame, profile p)",
        "gate failed: judge 'student', agreement_rate: measured n/a [min_agreement gates pairwise judges; 'student' "
        "is a score judge (scale [1, 2, 3, 4, 5]): use min_exact_agreement], allowed >= 0.9 (run R, profile p)",
    ]


def test_the_score_reference_has_its_coverage_gate(tmp_path: Path) -> None:
    teacher = list(TEACHER)
    teacher[2] = None  # no teacher verdict on item 2: 9 of 10 items covered
    run = student_run(tmp_path / "run", teacher=teacher)
    profile = load_profile("p", write_profile(tmp_path, ""))
    metrics = run_metrics(read_run(run).test, "teacher")
    assert [f.message for f in check_run(metrics, profile, run_dir="R")] == [
        "gate failed: reference judge 'teacher', reference_coverage: measured 0.9000 (9 of 10 items have a verdict by "
        "the reference; 1 missing), allowed >= 1.0 (run R, profile p)"]
    # check_judge with the reference gate names it too; without it, the judge alone passes
    assert len(check_judge(metrics, "student", profile, run_dir="R")) == 1
    assert check_judge(metrics, "student", profile, run_dir="R", reference=False) == []


# --------------------------------------------------------------------------- which reference


def test_a_reference_without_score_verdicts_is_an_error_naming_the_judges_and_kinds(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run")
    with pytest.raises(JudgeEvalError) as info:
        run_metrics(read_run(run).test, "gpt_4")
    assert str(info.value) == (
        "reference judge 'gpt_4' has no score verdict on the run's 10 pointwise item(s), so its score judges have no "
        "reference; judges found: teacher (score, scale [1, 2, 3, 4, 5]), student (score, scale [1, 2, 3, 4, 5]). "
        "Pass --reference NAME with a score judge (profile key reference)")
    assert main(["report", str(run)]) == 2
    assert "judge-eval: error: reference judge 'gpt_4' has no score verdict" in capsys.readouterr().err
    mixed = mixed_run(tmp_path / "mixed")
    with pytest.raises(JudgeEvalError, match=r"reference judge 'gpt_4' has no score verdict on the run's 10 pointwise "
                                             r"item\(s\).*judges found: gpt_4 \(pairwise\), cand \(pairwise\), teacher "
                                             r"\(score, scale \[1, 2, 3, 4, 5\]\), student .*Pass --score-reference "
                                             r"NAME with a score judge \(profile key score_reference\)"):
        run_metrics(read_run(mixed).test, "gpt_4")
    with pytest.raises(JudgeEvalError, match=r"reference judge 'teacher' has no pairwise verdict on the run's 4 "
                                             r"pairwise item\(s\)"):
        run_metrics(read_run(mixed).test, "teacher")


def test_a_gated_judge_of_neither_kind_is_named_with_the_judges_found(tmp_path: Path) -> None:
    run = student_run(tmp_path / "run")
    profile = load_profile("p", write_profile(tmp_path, "", gated='["ghost"]'))
    with pytest.raises(JudgeEvalError, match=r"gates judge 'ghost', but the run R has no verdicts by it; judges "
                                             r"found: student\."):
        gate_results(run_metrics(read_run(run).test, "teacher"), profile, run_dir="R")


# --------------------------------------------------------------------------- the pytest plugin


def test_the_plugin_makes_a_case_per_score_threshold_and_per_reference(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "max_mae = 0.5\nmin_quadratic_kappa = 0.6", 'score_reference = "teacher"',
                         gated='["student"]', reference="gpt_4")
    from judge_eval.config.profiles import load_profiles

    s = Settings(profile_name=None, study_dir=tmp_path, study_dir_from="test", pyproject=path,
                 profiles=load_profiles(path))
    assert gate_cases(s) == [("p", "student", "max_missing"), ("p", "student", "min_compared"), ("p", "student", "max_mae"),
                             ("p", "student", "min_quadratic_kappa"), ("p", "gpt_4", "min_reference_coverage"),
                             ("p", "teacher", "min_reference_coverage")]


PROJECT = """
[tool.judge_eval.profiles.scores]
reference = "teacher"
gated = ["student"]
data = "runs/scores"
score_interval = "quadratic_kappa"

[tool.judge_eval.profiles.scores.thresholds]
min_exact_agreement = 0.6
max_mae = 0.3
min_agreement = 0.8
"""


def test_plugin_gates_a_score_judge_each_case_with_its_own_message(pytester: pytest.Pytester) -> None:
    """TEACHER / STUDENT: exact 6 of 9 (passes 0.6), MAE 3/9 (fails 0.3), min_agreement fails by kind, no
    verdict missing, the teacher covers every item."""
    student_run(pytester.path / "runs" / "scores")
    pytester.makepyprojecttoml(PROJECT)
    pytester.makepyfile(test_release="def test_gates(judge_gate):\n    judge_gate.check()\n")
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines([
        "*test_gates?scores:student:min_agreement? FAILED*",
        "*test_gates?scores:student:max_missing? PASSED*",
        "*test_gates?scores:student:min_compared? PASSED*",
        "*test_gates?scores:student:min_exact_agreement? PASSED*",
        "*test_gates?scores:student:max_mae? FAILED*",
        "*test_gates?scores:teacher:min_reference_coverage? PASSED*",
    ])
    result.stdout.fnmatch_lines([
        "*gate failed: judge 'student', agreement_rate: measured n/a ?min_agreement gates pairwise judges; "
        "'student' is a score judge (scale ?1, 2, 3, 4, 5?): use min_exact_agreement?, allowed >= 0.8 "
        "(run *runs/scores, profile scores)",
        "*gate failed: judge 'student', mae: measured 0.3333 (n 9), allowed <= 0.3 (run *runs/scores, profile scores)",
    ])
    # the terminal summary shows the score table and one line per gate
    result.stdout.fnmatch_lines(["*score judges on 10 items (pointwise), scale ?1, 2, 3, 4, 5?*95% CI of "
                                 "quadratic_kappa; ? gated",
                                 "FAIL student mae 0.333 (n 9) > allowed 0.3"])

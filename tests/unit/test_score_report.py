"""Score judges (pointwise items) in ``report`` (text, study, JSON, Markdown), ``plot`` and
``compare``, end to end through ``judge_eval.cli.main`` on runs written here line by line.

Hand counts are in comments; every statistic is checked against scipy / scikit-learn (or a
bootstrap written here), never against judge_eval's own output.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, kendalltau, pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from judge_eval.cli import main
from judge_eval.core.items import question_key
from judge_eval.core.metrics import VerdictTable, run_metrics
from judge_eval.core.store import read_run, stream_split
from judge_eval.reporting.plot import build_figure

SCALE = [1, 2, 3, 4, 5]
# Ten pointwise items; the student's verdict on item 7 is unparseable, so 9 items are compared:
#   item     0  1  2  3  4  5  6  7  8  9
#   teacher  1  2  3  4  5  3  2  4  5  1
#   student  1  2  3  5  4  3  3  -  5  1
#   |diff|   0  0  0  1  1  0  1  .  0  0   -> exact 6 of 9, within-1 9 of 9, MAE 3/9
TEACHER = [1, 2, 3, 4, 5, 3, 2, 4, 5, 1]
STUDENT = [1, 2, 3, 5, 4, 3, 3, "parse", 5, 1]
COMPARED = [i for i in range(10) if i != 7]


def score_eval(llm: str, score, scale=SCALE) -> dict:
    if score in ("parse", "error"):
        source = "output-cannot-be-parsed" if score == "parse" else "error"
        return {"llm": llm, "score": None, "text": "?", "source": source, "kind": "score", "scale": scale}
    return {"llm": llm, "score": score, "text": f"{score}", "source": "scored", "kind": "score", "scale": scale}


def point_line(n: int, verdicts: dict, scale=SCALE) -> dict:
    return {"question": f"Question {n}?", "answers": [{"model": "m", "text": f"answer {n}"}], "source": "",
            "evaluations": [score_eval(llm, s, scale) for llm, s in verdicts.items() if s is not None]}


def pair_line(n: int, verdicts: dict) -> dict:
    evals = [{"llm": llm, "score": None if v == "neither" else v, "text": "[[A]]",
              "source": "neither" if v == "neither" else "original"} for llm, v in verdicts.items()]
    return {"question": f"Pair {n}?", "answers": [{"model": "x", "text": f"a {n}"}, {"model": "y", "text": f"b {n}"}],
            "source": "", "evaluations": evals}


def write_run(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_qa_complete.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def student_run(folder: Path, student=STUDENT, teacher=TEACHER, scale=SCALE) -> Path:
    return write_run(folder, [point_line(n, {"teacher": t, "student": s}, scale)
                              for n, (t, s) in enumerate(zip(teacher, student))])


def mixed_run(folder: Path) -> Path:
    """Four pairs (cand inconclusive on pair 3: agreement 3 of 3) and the ten pointwise items."""
    pairs = [pair_line(n, {"gpt_4": 1.0, "cand": "neither" if n == 3 else 1.0}) for n in range(4)]
    return write_run(folder, pairs + [point_line(n, {"teacher": t, "student": s})
                                      for n, (t, s) in enumerate(zip(TEACHER, STUDENT))])


def g3(value: float) -> str:
    """3 significant digits, trailing zeros kept: the report's documented format."""
    text = f"{value:#.3g}"
    return text if "e" in text else text.rstrip(".")


def expected_metrics() -> dict[str, float]:
    ref = [TEACHER[i] for i in COMPARED]
    cand = [STUDENT[i] for i in COMPARED]
    return {"exact_agreement": 6 / 9, "within_1_agreement": 1.0, "mae": 3 / 9,
            "pearson": float(pearsonr(ref, cand).statistic), "spearman": float(spearmanr(ref, cand).statistic),
            "kendall_tau_b": float(kendalltau(ref, cand, variant="b").statistic),
            "quadratic_kappa": float(cohen_kappa_score(ref, cand, weights="quadratic", labels=SCALE))}


def write_profile(tmp_path: Path, thresholds: str = "", extra: str = "", gated: str = '["student"]',
                  reference: str = "teacher") -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[tool.judge_eval.profiles.p]\nreference = "{reference}"\ngated = {gated}\n{extra}\n'
                    f"[tool.judge_eval.profiles.p.thresholds]\n{thresholds}\n")
    return path


# --------------------------------------------------------------------------- reading pointwise runs


def test_pointwise_items_are_no_pairs_in_a_verdict_table(tmp_path: Path) -> None:
    """A pointwise item has no second answer: the pairwise table skips it instead of reading
    answers[1] (IndexError) or counting its score judges as missing."""
    run = mixed_run(tmp_path / "run")
    items = read_run(run).test
    from_items, from_rows = VerdictTable.from_items(items), VerdictTable.from_rows(stream_split(run))
    assert len(from_items) == len(from_rows) == 4  # the four pairs
    assert list(from_items.judges) == list(from_rows.judges) == ["gpt_4", "cand"]
    metrics = run_metrics(items, "gpt_4", score_reference="teacher", resamples=50)
    assert list(metrics.judges) == ["cand"] and list(metrics.scores) == ["student"]
    assert (metrics.reference_stats.items, metrics.score_reference_stats.items) == (4, 10)


# --------------------------------------------------------------------------- report


def test_report_text_shows_the_score_table_at_3_significant_digits(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run")
    assert main(["report", str(run), "--reference", "teacher"]) == 0
    out = capsys.readouterr().out.splitlines()
    m = expected_metrics()
    assert out[0] == ("score judges on 10 items (pointwise), scale [1, 2, 3, 4, 5]; exact, within-1, MAE, r, rho, "
                      "tau-b and QWK against the reference teacher; 95% CI of exact_agreement")
    assert out[1].split() == ["judge", "missing", "parse", "fail", "errors", "exact", "within-1", "MAE", "r", "rho",
                              "tau-b", "QWK", "95%", "CI"]
    assert out[2].split() == ["teacher", "(reference)", "0", "0", "0", *["-"] * 8]
    row = out[3].split()
    assert row[:8] == ["student", "0", "1", "0", "6/9", g3(6 / 9), "9/9", "1.00"]
    assert row[8:13] == [g3(m["mae"]), g3(m["pearson"]), g3(m["spearman"]), g3(m["kendall_tau_b"]),
                         g3(m["quadratic_kappa"])]
    assert row[13].startswith("[") and row[14].endswith("]")
    assert len(out) == 4  # no pairwise table: the run has no pair; nobody is "missing"
    assert not any("inconclusive" in line for line in out)


def test_report_json_carries_every_score_metric_at_full_precision(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run")
    assert main(["report", str(run), "--reference", "teacher", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    student = data["score_judges"]["student"]
    for name, value in expected_metrics().items():
        assert student[name] == pytest.approx(value, abs=1e-12), name
    assert (student["n"], student["exact_matches"], student["within_1_matches"]) == (9, 6, 9)
    assert (student["items"], student["conclusive"], student["parse_failures"], student["missing"]) == (10, 9, 1, 0)
    assert student["scale"] == SCALE and student["interval_metric"] == "exact_agreement"
    assert (data["score_reference"], data["score_items"], data["score_reference_coverage"]) == ("teacher", 10, 1.0)
    assert data["judges"] == {} and data["items"] == 0  # no pairwise item


def test_report_study_layout_gives_each_score_judge_a_full_block(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run")
    assert main(["report", str(run), "--reference", "teacher", "--format", "study"]) == 0
    out = capsys.readouterr().out
    m = expected_metrics()
    assert out.startswith("Score reference judge: teacher; scale [1, 2, 3, 4, 5]; scored 10 of 10 pointwise items "
                          "(parse failures 0, errors 0); missing verdicts: 0 of 10 (reference coverage 1.0000)\n")
    block = out.split("\nstudent\n-----------------\n", 1)[1].splitlines()
    assert block[0] == "Scored 9 of 10 items; parse failures: 1; errors: 0; missing verdicts: 0"
    assert block[1] == "Compared items (both scored): 9"
    assert block[2] == f"Exact agreement: 6 of 9, {6 / 9!r}"
    assert block[3] == "Within-1 agreement: 9 of 9, 1.0"
    assert block[4] == f"Mean absolute error: {3 / 9!r}"
    for line, (label, name) in zip(block[5:9], [("Pearson r", "pearson"), ("Spearman rho", "spearman"),
                                                 ("Kendall tau-b", "kendall_tau_b"),
                                                 ("Quadratic-weighted kappa", "quadratic_kappa")]):
        head, value = line.split(": ")
        assert head == label and float(value) == pytest.approx(m[name], abs=1e-12)
    assert block[9].startswith("exact_agreement 95% bootstrap interval: [")


def test_report_markdown_has_the_score_table_with_the_gated_judge_marked(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run")
    config = write_profile(tmp_path, "max_mae = 0.5", 'score_interval = "quadratic_kappa"')
    assert main(["report", str(run), "--format", "markdown", "--profile", "p", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    m = expected_metrics()
    assert ("| student \\* | 0 | 1 | 0 | 6/9 0.667 | 9/9 1.00 | "
            f"{g3(m['mae'])} | {g3(m['pearson'])} | {g3(m['spearman'])} | {g3(m['kendall_tau_b'])} | "
            f"{g3(m['quadratic_kappa'])} | [") in out
    assert "95% CI of quadratic_kappa; \\* gated" in out
    assert f"- PASS student mae {g3(m['mae'])} (n 9) <= allowed 0.5" in out
    assert "<details><summary>Every metric</summary>" in out  # no frames: no pair
    assert (f"| student | 9 | 1 | 0 | 0 of 10 | 6 of 9 ({6 / 9:.4f}) | 9 of 9 (1.0000) | {3 / 9:.4f} | "
            f"{m['pearson']:.4f} |") in out


def test_a_mixed_run_reports_both_tables(tmp_path: Path, capsys) -> None:
    run = mixed_run(tmp_path / "run")
    assert main(["report", str(run), "--score-reference", "teacher", "--resamples", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("corrected frame, ties with (MT-Bench S1); agreement, r and kappa against the reference "
                             "gpt_4")
    assert out[3].split()[:6] == ["cand", "1/4", "0", "0", "0", "3/3"]  # inconclusive on pair 3
    scores_at = next(i for i, line in enumerate(out) if line.startswith("score judges on 10 items"))
    assert out[scores_at + 3].split()[:5] == ["student", "0", "1", "0", "6/9"]


def test_an_undefined_score_metric_reads_n_a_with_its_reason(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run", student=[3] * 10)  # a constant judge: no correlation (scipy: NaN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(spearmanr(TEACHER, [3] * 10).statistic)
    assert main(["report", str(run), "--reference", "teacher"]) == 0
    out = capsys.readouterr().out
    assert "n/a student: r, rho, tau-b: the judge's scores are constant (3) on the compared items" in out


# --------------------------------------------------------------------------- plot


def test_plot_draws_the_confusion_matrix_over_the_scale_and_a_scatter(tmp_path: Path, capsys) -> None:
    run = student_run(tmp_path / "run")
    out = tmp_path / "scores.png"
    assert main(["plot", str(run), "--reference", "teacher", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    items = read_run(run).test
    fig = build_figure(run_metrics(items, "teacher", resamples=50), items)
    assert fig.get_suptitle() == ("Scores of 1 score judge(s) against teacher on 10 pointwise items, scale "
                                  "[1, 2, 3, 4, 5]")
    matrix, scatter = fig.axes
    assert matrix.get_title() == "student vs teacher: counts\n(9 items both scored)"
    expected = confusion_matrix([TEACHER[i] for i in COMPARED], [STUDENT[i] for i in COMPARED], labels=SCALE)
    assert np.array_equal(matrix.get_images()[0].get_array(), expected)  # rows reference, columns judge
    assert [t.get_text() for t in matrix.get_xticklabels()] == ["1", "2", "3", "4", "5"]
    assert (matrix.get_xlabel(), matrix.get_ylabel()) == ("student (score)", "teacher (score)")
    assert scatter.get_title().startswith("student vs teacher: scores\n(MAE 0.333, QWK ")
    points = scatter.collections[0].get_offsets()
    assert len(points) == 9
    # each point is its item's (reference, judge) pair, moved by at most a third of a step
    pairs = sorted((TEACHER[i], STUDENT[i]) for i in COMPARED)
    assert sorted(tuple(np.round(p).astype(int)) for p in points) == pairs
    assert np.all(np.abs(points - np.round(points)) <= 1 / 3)
    fig.canvas.draw()
    legend = scatter.get_legend().get_window_extent()
    for x, y in scatter.transData.transform(points):
        assert not legend.contains(x, y), "the legend covers a point"


def test_plot_of_a_mixed_run_has_the_bars_the_pair_matrices_and_the_score_panels(tmp_path: Path) -> None:
    run = mixed_run(tmp_path / "run")
    items = read_run(run).test
    fig = build_figure(run_metrics(items, "gpt_4", score_reference="teacher", resamples=50), items)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["agreement, 95% bootstrap interval", "cand vs gpt_4\n(corrected frame)",
                      "student vs teacher: counts\n(9 items both scored)", titles[3]]
    assert titles[3].startswith("student vs teacher: scores")
    assert fig.get_suptitle() == ("Agreement of 1 judge(s) with gpt_4 on 4 pairs; scores of 1 score judge(s) against "
                                  "teacher on 10 pointwise items, scale [1, 2, 3, 4, 5]")


# --------------------------------------------------------------------------- compare

# The new student, against the same teacher: worse on six items, as it was on the other three.
#   item        0  1  2  3  4  5  6  7  8  9
#   teacher     1  2  3  4  5  3  2  4  5  1
#   old         1  2  3  5  4  3  3  -  5  1     |err| 0 0 0 1 1 0 1 . 0 0
#   new         2  3  4  5  4  4  3  -  4  2     |err| 1 1 1 1 1 1 1 . 1 1
# |error| worsened on 0 1 2 5 8 9 (6), improved on none, unchanged on 3 4 6 (3);
# exact lost on the same 6, gained on none; the score went up on 0 1 2 5 9 (5), down on 8 (1).
WORSE = [2, 3, 4, 5, 4, 4, 3, "parse", 4, 2]


def compare(tmp_path: Path, capsys, old: Path, new: Path, *extra: str) -> tuple[int, str]:
    code = main(["compare", str(old), str(new), "--profile", "p", "--config", str(tmp_path / "pyproject.toml"),
                 *extra])
    return code, capsys.readouterr().out


def paired_interval(old: list[float], new: list[float], resamples: int = 2000) -> tuple[float, float]:
    """The paired bootstrap written here: one index table over the paired items, in order_key order."""
    idx = np.random.default_rng(0).integers(0, len(old), size=(resamples, len(old)))
    diffs = np.asarray(new)[idx].mean(axis=1) - np.asarray(old)[idx].mean(axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def test_compare_fails_a_gated_score_judge_whose_mae_rises_significantly(tmp_path: Path, capsys) -> None:
    old, new = student_run(tmp_path / "old"), student_run(tmp_path / "new", student=WORSE)
    write_profile(tmp_path)
    code, out = compare(tmp_path, capsys, old, new, "--format", "json")
    assert code == 1
    (j,) = json.loads(out)["score_judges"]
    assert (j["worsened"], j["improved"], j["unchanged"]) == (6, 0, 3)
    assert j["error_p_value"] == pytest.approx(binomtest(0, 6, 0.5).pvalue, abs=1e-15)  # 2 / 2**6
    assert (j["lost_exact"], j["gained_exact"]) == (6, 0)
    assert j["exact_p_value"] == pytest.approx(binomtest(0, 6, 0.5).pvalue, abs=1e-15)
    assert (j["shift_up"], j["shift_down"]) == (5, 1)
    assert j["shift_p_value"] == pytest.approx(binomtest(1, 6, 0.5).pvalue, abs=1e-15)
    assert j["significant_mae_rise"] and j["significant_exact_drop"] and not j["significant_scored_loss"]
    assert (j["old"]["mae"], j["new"]["mae"]) == (pytest.approx(3 / 9), pytest.approx(1.0))
    assert (j["old"]["exact_matches"], j["new"]["exact_matches"], j["deltas"]["exact_matches"]) == (6, 0, -6)
    # the paired intervals, over the 9 paired items in order_key order
    order = sorted(COMPARED, key=lambda i: question_key("test", f"Question {i}?"))
    old_err = [abs(STUDENT[i] - TEACHER[i]) for i in order]
    new_err = [abs(WORSE[i] - TEACHER[i]) for i in order]
    assert j["mae_delta_ci"] == pytest.approx(paired_interval(old_err, new_err), abs=1e-12)
    assert j["exact_delta_ci"] == pytest.approx(
        paired_interval([float(e == 0) for e in old_err], [float(e == 0) for e in new_err]), abs=1e-12)
    assert j["fails"]
    assert j["fail_reasons"][0].startswith("MAE rose significantly (absolute error worsened on 6 item(s)")

    code, out = compare(tmp_path, capsys, old, new)
    assert code == 1
    p = g3(binomtest(0, 6, 0.5).pvalue)
    assert f"absolute error worsened on 6 item(s), improved on 0, unchanged on 3; p = {p} -> SIGNIFICANT RISE" in out
    assert f"lost on 6 item(s), gained on 0; p = {p} -> SIGNIFICANT DROP" in out
    assert f"higher on 5 item(s), lower on 1; p = {g3(binomtest(1, 6, 0.5).pvalue)} (reported" in out
    assert "metrics: exact agreement 0.667 -> 0.00 (-0.667)" in out
    assert ("counts: exact matches 6 -> 0 (-6); unchanged: scored 9, parse failures 1, errors 0, missing 0, "
            "compared items 9, within-1 matches 9") in out
    assert "verdicts changed on 6 item(s)" in out
    assert out.splitlines()[-1] == (
        f"FAIL: a gated judge got worse: student: MAE rose significantly (absolute error worsened on 6 item(s), "
        f"improved on 0, p = {p} < alpha 0.05); exact agreement with the reference dropped significantly (lost on 6 "
        f"item(s), gained on 0, p = {p} < alpha 0.05)")


def test_compare_a_run_with_itself_and_a_single_moved_score_exit_0(tmp_path: Path, capsys) -> None:
    old = student_run(tmp_path / "old")
    write_profile(tmp_path)
    code, out = compare(tmp_path, capsys, old, old)
    assert code == 0 and out.splitlines()[-1] == "OK: no gated judge got worse (student: no failure rule fired)"
    one = list(STUDENT)
    one[0] = 2  # one item worse: a sign test on one item cannot be significant (p = 1)
    new = student_run(tmp_path / "new", student=one)
    code, out = compare(tmp_path, capsys, old, new)
    assert code == 0
    assert f"worsened on 1 item(s), improved on 0, unchanged on 8; p = {g3(binomtest(0, 1, 0.5).pvalue)}" in out
    assert "verdicts changed on 1 item(s)" in out and ": scored 1 -> scored 2" in out


def test_compare_fails_on_lost_scored_verdicts_and_on_parse_failures_above_the_maximum(tmp_path: Path,
                                                                                      capsys) -> None:
    old = student_run(tmp_path / "old")
    gone = list(STUDENT)
    for i in (0, 1, 2, 3, 4, 5):
        gone[i] = None  # six scored verdicts gone: lost 6, gained 0
    new = student_run(tmp_path / "new", student=gone)
    write_profile(tmp_path, "max_missing = 10")
    code, out = compare(tmp_path, capsys, old, new)
    assert code == 1
    p = g3(binomtest(0, 6, 0.5).pvalue)
    assert f"scored verdicts: lost on 6 item(s), gained on 0; p = {p} -> SIGNIFICANT LOSS" in out
    assert f"scored verdicts lost significantly (lost on 6 item(s), gained on 0, p = {p} < alpha 0.05)" in out
    two = list(STUDENT)
    two[0] = "parse"  # parse failures 1 -> 2, above max_parse_failures = 1
    new = student_run(tmp_path / "new2", student=two)
    write_profile(tmp_path, "max_parse_failures = 1")
    code, out = compare(tmp_path, capsys, old, new)
    assert code == 1
    assert out.splitlines()[-1].endswith("student: parse failures 2 > max_parse_failures 1 (was 1); gate(s) passed "
                                         "before and fail now: parse_failures")


def test_compare_refuses_a_judge_that_changed_its_scale(tmp_path: Path, capsys) -> None:
    old = student_run(tmp_path / "old")
    write_profile(tmp_path)
    ten = list(range(1, 11))
    # both judges now score on 1..10: the scores of the two runs mean different things
    new = student_run(tmp_path / "new", scale=ten)
    assert main(["compare", str(old), str(new), "--profile", "p", "--config", str(tmp_path / "pyproject.toml")]) == 2
    err = capsys.readouterr().err
    assert (f"score judge 'student' scores on [1, 2, 3, 4, 5] in run {old} but on {ten} in run {new}; a score means "
            "something else on another scale") in err
    # only the student on 1..10: it cannot be compared with its reference at all
    mixed = write_run(tmp_path / "mixed", [
        {**point_line(n, {}), "evaluations": [score_eval("teacher", t), score_eval("student", s, ten)]}
        for n, (t, s) in enumerate(zip(TEACHER, STUDENT))])
    assert main(["compare", str(old), str(mixed), "--profile", "p", "--config", str(tmp_path / "pyproject.toml")]) == 2
    assert "judge 'student' scores on [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] but the reference 'teacher' on [1, 2, 3, 4, 5]" \
        in capsys.readouterr().err


def test_compare_of_mixed_runs_reports_both_kinds(tmp_path: Path, capsys) -> None:
    old = mixed_run(tmp_path / "old")
    new = mixed_run(tmp_path / "new")
    lines = (new / "test_qa_complete.jsonl").read_text().splitlines()
    lines[4 + 3] = json.dumps(point_line(3, {"teacher": 4, "student": 4}))  # item 3: student 5 -> 4, now exact
    (new / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    write_profile(tmp_path, "", 'score_reference = "teacher"', gated='["cand", "student"]', reference="gpt_4")
    code, out = compare(tmp_path, capsys, old, new)
    assert code == 0
    assert out.splitlines()[1] == ("profile p (from --profile); gated judge(s): cand, student; 4 pairwise and 10 "
                                   "pointwise test items")
    assert "\ncand (gated)\n" in out and "\nstudent (gated; score judge, scale [1, 2, 3, 4, 5])\n" in out
    assert "absolute error worsened on 0 item(s), improved on 1, unchanged on 8" in out
    assert "counts: exact matches 6 -> 7 (+1)" in out

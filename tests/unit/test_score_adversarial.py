"""Score judges under inputs a real team produces: numbers too large for a float, scale specs with
too many values, confusion matrices whose every cell is well filled, a profile that gates its own
reference, a run holding judges on two scales, a judge column with no verdict at all, and a mixed
(pairwise and pointwise) profile through the pytest plugin.

Every input is written here; every expected value is a hand count (in a comment) or comes from
scipy, never from judge_eval's own output.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from judge_eval.cli import main
from judge_eval.config.import_maps import MAX_SCALE_VALUES, parse_scale
from judge_eval.core.metrics import run_metrics
from judge_eval.core.store import read_run
from judge_eval.errors import ConfigError, JudgeEvalError

pytest_plugins = ["pytester"]

SCALE = [1, 2, 3, 4, 5]
#: An integer with more digits than Python converts to or from text by default (4300).
HUGE = "1" + "0" * 5000
#: An integer that JSON reads exactly but no 64-bit float holds.
TOO_BIG_FOR_A_FLOAT = "1" + "0" * 400


@pytest.fixture(autouse=True)
def _decide_strictness_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI runs with JUDGE_EVAL_STRICT=1 (.ci/run); the in-process pytester sessions decide it themselves."""
    monkeypatch.delenv("JUDGE_EVAL_STRICT", raising=False)


def score_eval(llm: str, score, scale=SCALE) -> dict:
    return {"llm": llm, "score": score, "text": f"{score}", "source": "scored", "kind": "score", "scale": scale}


def point_line(n: int, verdicts: dict, scales: dict | None = None) -> dict:
    """Pointwise item ``n``: one answer, a score verdict per judge (None: no verdict)."""
    scales = scales or {}
    return {"question": f"Question {n}?", "answers": [{"model": "m", "text": f"answer {n}"}], "source": "",
            "evaluations": [score_eval(llm, s, scales.get(llm, SCALE)) for llm, s in verdicts.items() if s is not None]}


def pair_line(n: int, verdicts: dict) -> dict:
    """Pairwise item ``n``: two answers, a conclusive verdict (score 1.0, 0.0 or 0.5) per judge."""
    evals = [{"llm": llm, "score": v, "text": "[[A]]", "source": "original"} for llm, v in verdicts.items()]
    return {"question": f"Pair {n}?", "answers": [{"model": "x", "text": f"a {n}"}, {"model": "y", "text": f"b {n}"}],
            "source": "", "evaluations": evals}


def write_lines(folder: Path, lines: list) -> Path:
    """A run directory whose test file holds ``lines`` (dicts as JSON, strings as they are)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (folder / "test_qa_complete.jsonl").write_text(text)
    return folder


def one_error_line(err: str) -> str:
    """The one line ``judge-eval`` writes for bad input (never a traceback)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("judge-eval: error: "), err
    return lines[0]


# --------------------------------------------------------------------------- numbers no float holds


def test_a_jsonl_score_too_large_for_a_float_names_file_line_and_column(tmp_path: Path, capsys) -> None:
    src = tmp_path / "ratings.jsonl"
    src.write_text('{"question": "q1", "answer": "a1", "t": 4}\n'
                   f'{{"question": "q2", "answer": "a2", "t": {TOO_BIG_FOR_A_FLOAT}}}\n')
    out = tmp_path / "run"
    assert main(["import", "scores", str(src), str(out), "--judge", "t=t", "--scale", "1-5"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{src}:2: field 't':" in line and "not a finite number" in line
    assert not out.exists()


@pytest.mark.parametrize("where", ["import", "run"])
def test_an_integer_of_more_digits_than_python_reads_is_a_file_error(tmp_path: Path, capsys, where: str) -> None:
    """json.loads raises a plain ValueError (not JSONDecodeError) on an integer of more than 4300
    digits; it must still be the file's error, with file and line."""
    if where == "import":
        src = tmp_path / "ratings.jsonl"
        src.write_text('{"question": "q1", "answer": "a1", "t": 4}\n'
                       f'{{"question": "q2", "answer": "a2", "t": {HUGE}}}\n')
        code = main(["import", "scores", str(src), str(tmp_path / "run"), "--judge", "t=t", "--scale", "1-5"])
    else:
        run = write_lines(tmp_path / "run", [point_line(0, {"t": 3, "u": 4}),
                                             json.dumps(point_line(1, {"t": 3, "u": 4})).replace('"score": 4',
                                                                                                 f'"score": {HUGE}')])
        src = run / "test_qa_complete.jsonl"
        code = main(["report", str(run), "--reference", "t"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{src}:2:" in line and "digits" in line
    assert "set_int_max_str_digits" not in line  # advice for programmers, not for the file's owner


@pytest.mark.parametrize("spec", [
    "1-1" + "0" * 30,  # 10**30 values: more digits than Decimal's 28 of precision
    "0-1:0." + "0" * 30 + "1",  # a step of 1e-31
])
def test_a_scale_spec_with_too_many_values_is_refused_not_a_traceback(tmp_path: Path, capsys, spec: str) -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_SCALE_VALUES}"):
        parse_scale(spec)
    src = tmp_path / "r.csv"
    src.write_text("question,answer,t\nq,a,1\n")
    assert main(["import", "scores", str(src), str(tmp_path / "run"), "--judge", "t=t", "--scale", spec]) == 2
    assert f"at most {MAX_SCALE_VALUES}" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("spec", [f"1,{TOO_BIG_FOR_A_FLOAT}", [1, int(TOO_BIG_FOR_A_FLOAT)]])
def test_a_scale_value_no_float_holds_is_refused(tmp_path: Path, capsys, spec) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        parse_scale(spec)
    if isinstance(spec, str):
        src = tmp_path / "r.csv"
        src.write_text("question,answer,t\nq,a,1\n")
        assert main(["import", "scores", str(src), str(tmp_path / "run"), "--judge", "t=t", "--scale", spec]) == 2
        assert "--scale" in one_error_line(capsys.readouterr().err)


def test_a_pyproject_integer_of_more_digits_than_python_reads_is_a_config_error(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(f'[tool.judge_eval.imports.m]\nformat = "scores"\njudges = {{ t = "t" }}\nscale = [1, {HUGE}]\n')
    src = tmp_path / "r.csv"
    src.write_text("question,answer,t\nq,a,1\n")
    assert main(["import", "scores", str(src), str(tmp_path / "run"), "--map", "m", "--config", str(config)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(config) in line and "digits" in line


# --------------------------------------------------------------------------- the plot's counts


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _matrix_contrasts(fig) -> list[tuple[str, float]]:
    """(count shown, |luminance of the text - luminance of its cell|) of every count written on a
    confusion matrix of the figure."""
    from matplotlib.colors import to_rgba

    out = []
    for ax in fig.axes:
        if not ax.images:
            continue
        image = ax.images[0]
        counts = np.asarray(image.get_array())
        for text in ax.texts:
            col, row = (int(round(v)) for v in text.get_position())
            cell = image.cmap(image.norm(counts[row, col]))
            out.append((text.get_text(), abs(_luminance(to_rgba(text.get_color())) - _luminance(cell))))
    return out


def test_every_count_of_a_score_matrix_is_readable_when_every_cell_is_well_filled(tmp_path: Path) -> None:
    from judge_eval.reporting.plot import build_figure

    # 0/1 scale, the four (teacher, judge) cells held 44, 48, 49 and 59 times: the smallest count is
    # above half the largest, so the lightest cell is no empty one.
    cells = [(0, 0)] * 44 + [(0, 1)] * 48 + [(1, 0)] * 49 + [(1, 1)] * 59
    run = write_lines(tmp_path / "run", [point_line(n, {"teacher": t, "j": j}, {"teacher": [0, 1], "j": [0, 1]})
                                         for n, (t, j) in enumerate(cells)])
    items = read_run(run, require=("test",)).test
    fig = build_figure(run_metrics(items, "teacher"), items)
    shown = _matrix_contrasts(fig)
    assert sorted(int(t) for t, _ in shown) == [44, 48, 49, 59]
    assert all(contrast > 0.35 for _, contrast in shown), shown


def test_every_count_of_a_pairwise_matrix_is_readable_when_every_cell_is_well_filled(tmp_path: Path) -> None:
    from judge_eval.reporting.plot import build_figure

    # Every (reference, judge) combination of 0 / 0.5 / 1 ten times, (1, 1) twelve times: 92 pairs.
    combos = [(r, j) for r in (0.0, 0.5, 1.0) for j in (0.0, 0.5, 1.0)]
    cells = [c for c in combos for _ in range(10)] + [(1.0, 1.0)] * 2
    run = write_lines(tmp_path / "run", [pair_line(n, {"gpt_4": r, "j": j}) for n, (r, j) in enumerate(cells)])
    items = read_run(run, require=("test",)).test
    fig = build_figure(run_metrics(items, "gpt_4"), items)
    shown = _matrix_contrasts(fig)
    assert sorted(int(t) for t, _ in shown) == [10] * 8 + [12]
    assert all(contrast > 0.35 for _, contrast in shown), shown


# --------------------------------------------------------------------------- a profile gating its reference


PROFILE = """
[tool.judge_eval.profiles.p]
reference = "{reference}"
gated = ["{gated}"]
data = "run"

[tool.judge_eval.profiles.p.thresholds]
{threshold}
"""


@pytest.mark.parametrize("kind", ["score", "pairwise"])
def test_gating_the_reference_itself_says_so(tmp_path: Path, capsys, kind: str) -> None:
    """The reference has verdicts on every item; a message saying the run has none by it sends
    the user looking for data that is there."""
    if kind == "score":
        run = write_lines(tmp_path / "run", [point_line(n, {"teacher": 1 + n % 5, "student": 1 + (n + 1) % 5})
                                             for n in range(6)])
        threshold = "min_exact_agreement = 0.5"
    else:
        run = write_lines(tmp_path / "run", [pair_line(n, {"teacher": 1.0, "student": 0.0}) for n in range(6)])
        threshold = "min_agreement = 0.5"
    config = tmp_path / "pyproject.toml"
    config.write_text(PROFILE.format(reference="teacher", gated="teacher", threshold=threshold))
    assert main(["gate", str(run), "--profile", "p", "--config", str(config)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "has no verdicts by it" not in line
    assert "'teacher' is the reference" in line and "gated" in line


# --------------------------------------------------------------------------- judges on two scales


def test_a_run_with_judges_on_two_scales_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    run = write_lines(tmp_path / "run", [point_line(n, {"teacher": 1 + n % 5, "student": 1 + (n + 2) % 5,
                                                        "faithful": n % 2}, {"faithful": [0, 1]}) for n in range(6)])
    assert main(["report", str(run), "--reference", "teacher"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'faithful' scores on [0, 1]" in line and "[1, 2, 3, 4, 5]" in line
    assert "How to fix:" in line and "run directory of its own" in line


# --------------------------------------------------------------------------- an empty judge column


def test_the_import_summary_counts_every_judges_missing_and_unreadable_verdicts(tmp_path: Path, capsys) -> None:
    # rows:      t    u    v
    #   q1       4    -    ???   (- an empty cell: no verdict; ??? mapped to unparseable)
    #   q2       5    -    3
    #   q3       -    -    error
    src = tmp_path / "r.csv"
    src.write_text("question,answer,t,u,v\nq1,a1,4,,???\nq2,a2,5,,3\nq3,a3,,,error\n")
    out = tmp_path / "run"
    assert main(["import", "scores", str(src), str(out), "--judge", "t=t", "--judge", "u=u", "--judge", "v=v",
                 "--scale", "1-5", "--verdicts", "???=unparseable,error=error"]) == 0
    printed = capsys.readouterr().out
    assert "t: 2 scored, 0 unparseable, 0 errors, 1 missing" in printed
    assert "u: 0 scored, 0 unparseable, 0 errors, 3 missing" in printed  # in no item of the run at all
    assert "v: 1 scored, 1 unparseable, 1 errors, 0 missing" in printed
    assert "judge-eval report OUT_DIR --reference t" in printed.splitlines()[-1]  # still the closing note


# --------------------------------------------------------------------------- profile messages


def test_an_interval_bound_of_the_wrong_direction_names_the_setting_that_fits(tmp_path: Path) -> None:
    from judge_eval.config.profiles import load_profile

    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.judge_eval.profiles.p]\nreference = "t"\ngated = ["s"]\n'
                      "[tool.judge_eval.profiles.p.thresholds]\nmax_score_ci_high = 1.0\n")
    with pytest.raises(ConfigError) as caught:
        load_profile("p", config)
    message = str(caught.value)
    assert "to a metric mae" not in message
    assert 'score_interval = "mae"' in message and "min_score_ci_low" in message


# --------------------------------------------------------------------------- speed


def test_the_exact_mcnemar_test_is_fast_and_right_with_800000_discordant_items() -> None:
    """A comparison of two runs of a million items can have hundreds of thousands of discordant
    ones: the exact integer sum took 76 s at 800,000."""
    from judge_eval.gating.compare import mcnemar_exact

    for b, c in [(400_000, 401_200), (399_000, 401_000), (10_000, 790_000), (30_000, 30_000)]:
        start = time.perf_counter()
        p = mcnemar_exact(b, c)
        assert time.perf_counter() - start < 2.0
        expected = binomtest(min(b, c), b + c, 0.5).pvalue
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-300), (b, c)
        assert p == mcnemar_exact(c, b)


@pytest.mark.parametrize("b, c", [(10_000, 10_500), (9_000, 11_001), (12_000, 12_500), (14_000, 16_000),
                                  (20_000, 21_000), (10_000, 10_002)])
def test_above_the_exact_sum_the_mcnemar_p_value_keeps_twelve_digits(b: int, c: int) -> None:
    from judge_eval.gating.compare import EXACT_SUM_MAX, mcnemar_exact

    assert b + c > EXACT_SUM_MAX
    # twice the binomial tail, summed here in exact integers: comb(n, i + 1) = comb(n, i) (n - i) / (i + 1)
    n, k = b + c, min(b, c)
    term = total = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    expected = min(1.0, 2 * (total / 2 ** n))
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def _score_table(n: int, seed: int):
    from judge_eval.core.scores import ScoreColumn, ScoreTable

    rng = np.random.default_rng(seed)
    scale = tuple(float(v) for v in SCALE)
    judges = {j: ScoreColumn(scale=scale, score=rng.integers(1, 6, n).astype(np.float64),
                             source=np.zeros(n, dtype=np.int8)) for j in ("teacher", "student")}
    return ScoreTable(ids=[f"item-{i:07d}" for i in range(n)], rank=np.arange(n, dtype=np.int64), judges=judges)


def test_compare_lists_a_hundred_thousand_changed_scores_in_linear_time() -> None:
    """Each changed item's old and new verdict is looked up by position, never by recomputing a
    whole column (which made listing n changes O(n^2): 15 s at 200,000 items)."""
    from judge_eval.gating.compare import compare_runs

    timings = {}
    for n in (25_000, 200_000):
        old, new = _score_table(n, 1), _score_table(n, 2)
        start = time.perf_counter()
        result = compare_runs([], [], reference="teacher", gated=["student"], old_scores=old, new_scores=new,
                              resamples=200)
        timings[n] = time.perf_counter() - start
        (student,) = result.score_judges
        # hand count: an item changed where the student's old and new scores differ
        o, w = old.judges["student"].score, new.judges["student"].score
        assert len(student.changed) == int(np.count_nonzero(o != w))
    assert timings[200_000] < 8.0, timings
    assert timings[200_000] < 20 * timings[25_000] + 1.0, timings  # 8 times the items: linear, not 64 times


# --------------------------------------------------------------------------- a mixed profile in a project


MIXED_PROJECT = """
[tool.judge_eval.profiles.mixed]
reference = "gpt_4"
score_reference = "teacher"
gated = ["cand", "student"]
data = "runs/mixed"

[tool.judge_eval.profiles.mixed.thresholds]
min_agreement = 0.5
max_mae = 1.0

[tool.judge_eval.profiles.self]
reference = "gpt_4"
score_reference = "teacher"
gated = ["teacher"]
data = "runs/mixed"

[tool.judge_eval.profiles.self.thresholds]
max_mae = 1.0
"""


def test_plugin_gates_a_mixed_profile_and_refuses_to_gate_a_reference(pytester: pytest.Pytester) -> None:
    # 8 pairs: gpt_4 says 1.0 on all; cand 1.0 on pairs 0-5, 0.0 on 6-7 -> agreement 6/8 = 0.75 >= 0.5.
    # 6 pointwise items: teacher 1..5,3; student 1,2,3,5,5,3 -> |diff| 0,0,0,1,0,0 -> MAE 1/6 <= 1.0.
    pairs = [pair_line(n, {"gpt_4": 1.0, "cand": 1.0 if n < 6 else 0.0}) for n in range(8)]
    points = [point_line(n, {"teacher": t, "student": s}) for n, (t, s) in
              enumerate(zip([1, 2, 3, 4, 5, 3], [1, 2, 3, 5, 5, 3]))]
    write_lines(pytester.path / "runs" / "mixed", [*pairs, *points])
    pytester.makepyprojecttoml(MIXED_PROJECT)
    pytester.makepyfile(test_release="def test_gates(judge_gate):\n    judge_gate.check()\n")
    result = pytester.runpytest("-p", "no:randomly", "-rA")
    outcomes = result.parseoutcomes()
    text = result.stdout.str()
    for case in ("mixed:cand:min_agreement", "mixed:student:max_mae", "mixed:cand:max_missing",
                 "mixed:student:max_missing", "mixed:cand:min_compared", "mixed:student:min_compared",
                 "mixed:gpt_4:min_reference_coverage",
                 "mixed:teacher:min_reference_coverage", "self:gpt_4:min_reference_coverage",
                 "self:teacher:min_reference_coverage"):
        assert f"PASSED test_release.py::test_gates[{case}]" in text, case
    # keys of the other kind fail, naming the key to use
    assert "FAILED test_release.py::test_gates[mixed:cand:max_mae]" in text
    assert "FAILED test_release.py::test_gates[mixed:student:min_agreement]" in text
    # a profile gating its own score reference fails each of its cases, saying why
    assert "FAILED test_release.py::test_gates[self:teacher:max_mae]" in text
    assert "FAILED test_release.py::test_gates[self:teacher:max_missing]" in text
    assert "FAILED test_release.py::test_gates[self:teacher:min_compared]" in text
    assert "'teacher' is the reference" in text
    assert outcomes == {"passed": 10, "failed": 5}

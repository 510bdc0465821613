"""The compact report: one table per run (3 significant digits, gated judges marked, one reason
line per judge with an undefined metric), one PASS/FAIL line per gate; in `judge-eval report`,
`judge-eval gate` and the pytest summary, whose default run fits in 60 lines.

Expected values are hand counts (the study: ft_gpt_3p5 15 inconclusive, 0 missing, 44 of 47
agreements in the corrected frame; gpt_3p5 24 inconclusive, 34 of 38) or computed here from the
raw file, independently of judge_eval's metrics (helpers of tests/unit/test_cli.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sklearn.metrics  # noqa: F401  # loaded here: pytester's in-process runs unload what they import

from judge_eval.cli import main
from judge_eval.config.profiles import load_profiles
from judge_eval.core.metrics import run_metrics
from judge_eval.core.store import read_run
from judge_eval.gating.gates import GateResult, check_run, gate_results
from judge_eval.reporting.report import gate_line, render_text
from tests.unit.test_cli import agreement, correlation, frame_scores, percentile_bootstrap

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "pyproject.toml")
ITEMS = 64
HEADER = re.compile(r"^  judge +inconclusive +missing +parse fail +errors +agreement \[95% CI\] +r +kappa$")
GATE = re.compile(r"^(PASS|FAIL) ")

#: The study's thresholds, gating both GPT-3.5 judges: the base one fails on inconclusives.
BOTH = """
[tool.judge_eval.profiles.both]
reference = "gpt_4"
gated = ["ft_gpt_3p5", "gpt_3p5"]

[tool.judge_eval.profiles.both.thresholds]
min_agreement = 0.85
min_correlation = 0.75
max_inconclusive_rate = 0.25
max_parse_failures = 0
max_errors = 0
min_agreement_ci_low = 0.75
"""


def sig3(value: float) -> str:
    """3 significant digits, trailing zeros kept, as the issue asks ("1.00")."""
    return f"{value:#.3g}".rstrip(".")


def kappa(rows: list[tuple[str, float, float]]) -> float:
    """Cohen's kappa over the labels 0 / 0.5 / 1, by its definition."""
    n = len(rows)
    p_o = sum(r == c for _, r, c in rows) / n
    p_e = sum((sum(r == lab for _, r, _ in rows) / n) * (sum(c == lab for _, _, c in rows) / n)
              for lab in (0.0, 0.5, 1.0))
    return (p_o - p_e) / (1 - p_e)


def inconclusive(study_dir: Path, judge: str) -> int:
    return sum(1 for line in (study_dir / "test_qa_complete.jsonl").read_text("utf-8").splitlines()
               if line.strip() and {v["llm"]: v for v in json.loads(line)["evaluations"]}[judge]["source"] == "neither")


def table(out: str) -> dict[str, list[str]]:
    """The compact table's rows: judge -> cells (the gated mark dropped), from the header on."""
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if HEADER.match(line))
    rows = {}
    for line in lines[start + 1:]:
        if not line.startswith(("  ", "* ")):
            break
        cells = re.split(r"\s{2,}", line[2:].strip())
        rows[cells[0]] = cells[1:]
    return rows


# ------------------------------------------------------------------ the table, by hand


def test_report_prints_one_compact_table_with_the_hand_counts(study_dir: Path, capsys) -> None:
    assert (inconclusive(study_dir, "ft_gpt_3p5"), inconclusive(study_dir, "gpt_3p5")) == (15, 24)
    assert main(["report", str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "corrected frame, ties with (MT-Bench S1); agreement, r and kappa against the " \
                                  "reference gpt_4"
    assert sum(1 for line in out.splitlines() if HEADER.match(line)) == 1
    assert "-----------------" not in out and "0.9361702127659575" not in out  # no block, no full precision
    rows = table(out)
    assert rows["gpt_4 (reference)"] == ["4/64", "0", "0", "0", "-", "-", "-"]
    for judge, incon, hand in (("ft_gpt_3p5", 15, (44, 47)), ("gpt_3p5", 24, (34, 38))):
        scores = frame_scores(study_dir, judge, "corrected")
        assert agreement(scores) == hand
        low, high = percentile_bootstrap(scores)
        assert rows[judge] == [f"{incon}/{ITEMS}", "0", "0", "0",
                               f"{hand[0]}/{hand[1]} {sig3(hand[0] / hand[1])} [{sig3(low)}, {sig3(high)}]",
                               sig3(correlation(scores)), sig3(kappa(scores))], judge
    # the example, literally
    assert "44/47 0.936 [0.851, 1.00]" in out and "34/38 0.895 [0.789, 0.974]" in out


def test_the_table_names_its_frame_and_tie_mode(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--frame", "study", "--ties", "without"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("study frame, ties without (MT-Bench S2: tie items dropped);")
    # without ties: items where either judge says tie dropped (study frame, counted here)
    rows = [r for r in frame_scores(study_dir, "ft_gpt_3p5", "study") if 0.5 not in (r[1], r[2])]
    assert agreement(rows) == (36, 41)
    assert table(out)["ft_gpt_3p5"][4].startswith(f"36/41 {sig3(36 / 41)} [")


def test_format_study_is_the_study_layout_unchanged(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--format", "study"]) == 0
    out = capsys.readouterr().out
    assert out == render_text(run_metrics(read_run(study_dir, require=("test",)).test))
    assert "Agreement rate: 0.8723404255319149\n" in out  # what the study printed


def test_markdown_is_the_compact_table_then_every_table(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--format", "markdown", "--profile", "study", "--config", CONFIG]) == 0
    out = capsys.readouterr().out
    compact, every = out.split("<details>", 1)
    assert "| ft_gpt_3p5 \\* | 15/64 | 0 | 0 | 0 | 44/47 0.936 [0.851, 1.00] |" in compact
    assert "| gpt_3p5 | 24/64 | 0 | 0 | 0 | 34/38 0.895 [0.789, 0.974] |" in compact
    assert "- PASS ft_gpt_3p5 inconclusive_rate 0.234 (15/64) <= allowed 0.25" in compact
    assert "| ft_gpt_3p5 | 15 | 0 | 0 | 41 of 47 | 0.872 |" in every  # the study frame's full table


# ------------------------------------------------------------------ undefined metrics: one reason line


def write_run(folder: Path, rows: list[dict[str, tuple[float | None, str]]]) -> Path:
    """A run: one item per row, judge -> (score, source)."""
    folder.mkdir(parents=True)
    lines = [json.dumps({"question": f"Question {n}?", "source": "",
                         "answers": [{"model": "x", "text": f"first {n}"}, {"model": "y", "text": f"second {n}!"}],
                         "evaluations": [{"llm": j, "score": s, "text": "", "source": src}
                                         for j, (s, src) in row.items()]})
             for n, row in enumerate(rows)]
    (folder / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_undefined_metrics_show_na_and_one_reason_line_per_judge(tmp_path: Path, capsys) -> None:
    # 4 items. `mute` never writes a verdict; `flat` agrees on 2 of 3 compared items, but the
    # teacher says "first" on all of them, so r is undefined (constant reference) while kappa is 0.
    rows = [{"teacher": (1.0, "original"), "mute": (None, "output-cannot-be-parsed"), "flat": (1.0, "original")},
            {"teacher": (1.0, "original"), "mute": (None, "output-cannot-be-parsed"), "flat": (1.0, "original")},
            {"teacher": (1.0, "original"), "mute": (None, "output-cannot-be-parsed"), "flat": (0.0, "original")},
            {"teacher": (None, "neither"), "mute": (None, "output-cannot-be-parsed"), "flat": (1.0, "original")}]
    run = write_run(tmp_path / "run", rows)
    assert main(["report", str(run), "--reference", "teacher"]) == 0
    out = capsys.readouterr().out
    cells = table(out)
    assert cells["mute"] == ["0/4", "0", "4", "0", "0/0 n/a", "n/a", "n/a"]
    # kappa by hand: p_o = 2/3; the teacher always says 1, flat says 1 on 2 of 3: p_e = 2/3; kappa 0
    assert cells["flat"][:4] == ["0/4", "0", "0", "0"] and cells["flat"][4].startswith("2/3 0.667 [")
    assert cells["flat"][5:] == ["n/a", "0.00"]
    reasons = [line for line in out.splitlines() if line.startswith("n/a ")]
    assert reasons == [
        "n/a mute: no item where both judges are conclusive (conclusive verdicts of 4: mute 0, teacher 3)",
        "n/a flat: r: the reference's scores are constant (1.0) on the compared items",
    ]


def test_judges_with_nothing_compared_for_one_reason_share_one_line(tmp_path: Path, capsys) -> None:
    # 3 items. `mute` never writes a verdict; `shy` is conclusive on item 2 only, where the teacher
    # says "neither": neither is compared on any item, for the same reason. `fine` agrees on 2 of 2.
    rows = [{"teacher": (1.0, "original"), "mute": (None, "output-cannot-be-parsed"), "shy": (None, "neither"),
             "fine": (1.0, "original")},
            {"teacher": (0.0, "original"), "mute": (None, "output-cannot-be-parsed"), "shy": (None, "neither"),
             "fine": (0.0, "original")},
            {"teacher": (None, "neither"), "mute": (None, "output-cannot-be-parsed"), "shy": (1.0, "original"),
             "fine": (1.0, "original")}]
    run = write_run(tmp_path / "run", rows)
    assert main(["report", str(run), "--reference", "teacher"]) == 0
    out = capsys.readouterr().out
    # `fine` (r 1.0 and kappa 1.0 on its 2 items) has no reason line; the other two share one
    assert [line for line in out.splitlines() if line.startswith("n/a ")] == [
        "n/a mute, shy: no item where both judges are conclusive (conclusive verdicts of 3: mute 0, shy 1, "
        "teacher 2)"]
    assert table(out)["shy"][:5] == ["2/3", "0", "0", "0", "0/0 n/a"]


# ------------------------------------------------------------------ gate lines


def test_gate_prints_the_table_and_one_line_per_gate_and_exits_0(study_dir: Path, capsys) -> None:
    assert main(["gate", str(study_dir), "--config", CONFIG]) == 0
    out = capsys.readouterr().out
    assert sum(1 for line in out.splitlines() if HEADER.match(line)) == 1
    gates = [line for line in out.splitlines() if GATE.match(line)]
    # above chance: kappa 0.893 on 47 pairs (the study's table); its interval's lower bound is
    # well above 0, and the line says by which comparison it passes
    assert re.fullmatch(r"PASS ft_gpt_3p5 kappa_ci_low 0\.[5-9]\d* > allowed 0\.0", gates.pop(-2)), gates
    assert gates == [
        "PASS ft_gpt_3p5 agreement_rate 0.936 (44/47) >= allowed 0.85",
        "PASS ft_gpt_3p5 correlation 0.893 >= allowed 0.75",
        "PASS ft_gpt_3p5 inconclusive_rate 0.234 (15/64) <= allowed 0.25",
        "PASS ft_gpt_3p5 parse_failures 0 <= allowed 0",
        "PASS ft_gpt_3p5 errors 0 <= allowed 0",
        "PASS ft_gpt_3p5 agreement_ci_low 0.851 >= allowed 0.75",
        "PASS ft_gpt_3p5 missing 0 (of 64) <= allowed 0",  # on by default
        "PASS ft_gpt_3p5 compared 47 (of 64) >= allowed 1",  # on by default; the study's 47 pairs
        "PASS gpt_4 (reference) reference_coverage 1.00 (64/64) >= allowed 1.0",  # on by default
    ]
    assert table(out)["ft_gpt_3p5"][0] == "15/64" and out.splitlines()[3].startswith("* ft_gpt_3p5 ")
    assert out.rstrip().endswith("PASS: profile study, gated judge(s) ft_gpt_3p5, 0 gate failure(s)")


def test_a_failing_gate_line_shows_measured_and_allowed_and_gate_exits_1(study_dir: Path, tmp_path: Path,
                                                                         capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(BOTH)
    assert main(["gate", str(study_dir), "--profile", "both", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    # 24 of 64 = 0.375 inconclusive, by hand; 34 of 38 agreements
    assert "FAIL gpt_3p5 inconclusive_rate 0.375 (24/64) > allowed 0.25" in lines
    assert "PASS gpt_3p5 agreement_rate 0.895 (34/38) >= allowed 0.85" in lines
    assert "PASS ft_gpt_3p5 inconclusive_rate 0.234 (15/64) <= allowed 0.25" in lines
    assert [line for line in lines if line.startswith("FAIL ")] == [
        "FAIL gpt_3p5 inconclusive_rate 0.375 (24/64) > allowed 0.25"]
    assert len([line for line in lines if GATE.match(line)]) == 2 * 8 + 1  # 6 set + max_missing + min_compared, twice; coverage
    assert ("gate failed: judge 'gpt_3p5', inconclusive_rate: measured 0.3750 (24 of 64), allowed <= 0.25 "
            f"(run {study_dir}, corrected frame, profile both)") in lines
    assert [n for n, line in enumerate(lines) if line.startswith("* ")] == [3, 4]  # both marked gated
    assert out.rstrip().endswith("FAIL: profile both, gated judge(s) ft_gpt_3p5, gpt_3p5, 1 gate failure(s)")


def test_gate_results_fail_exactly_where_check_run_does(study_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(BOTH)
    metrics = run_metrics(read_run(study_dir, require=("test",)).test, "gpt_4")
    for profile in (load_profiles(CONFIG)["study"], load_profiles(config)["both"]):
        results = gate_results(metrics, profile, run_dir=study_dir)
        failures = check_run(metrics, profile, run_dir=study_dir)
        assert sorted(r.failure.message for r in results if not r.passed) == sorted(f.message for f in failures)
        set_ = [k for k, v in profile.thresholds.model_dump().items()
                if v is not None and k != "min_reference_coverage"]
        assert [(r.judge, r.threshold) for r in results] == (
            [(j, k) for j in profile.gated for k in set_] + [("gpt_4", "min_reference_coverage")])


@pytest.mark.parametrize(("measured", "passed", "line"), [
    (0.84996, False, "FAIL j agreement_rate 0.84996 < allowed 0.85"),  # 3 digits would read 0.850
    (0.85, True, "PASS j agreement_rate 0.850 >= allowed 0.85"),
    (0.912345, True, "PASS j agreement_rate 0.912 >= allowed 0.85"),
    (None, False, "FAIL j agreement_rate n/a, allowed >= 0.85: no item where both judges are conclusive"),
])
def test_a_gate_line_never_rounds_onto_the_wrong_side(measured: float | None, passed: bool, line: str) -> None:
    from judge_eval.gating.gates import GateFailure

    failure = None if passed else GateFailure("j", "agreement_rate", "", "", "", "corrected", "p")
    r = GateResult(judge="j", threshold="min_agreement", metric="agreement_rate", measured=measured, allowed=0.85,
                   op=">=", note="undefined: no item where both judges are conclusive" if measured is None else "",
                   failure=failure)
    assert gate_line(r) == line


# ------------------------------------------------------------------ the pytest summary


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A copy of this project's configuration in a fresh folder (as tests/unit/test_plugin.py)."""
    pytester.makepyprojecttoml((ROOT / "pyproject.toml").read_text())
    grammar = pytester.path / "fixtures" / "grammars"
    grammar.mkdir(parents=True)
    (grammar / "verdict.gbnf").write_text((ROOT / "fixtures" / "grammars" / "verdict.gbnf").read_text())
    pytester.makeconftest('pytest_plugins = ["fixtures.study"]')
    pytester.makepyfile(**{"tests/test_study": "def test_uses_study(study_metrics):\n    assert study_metrics\n"})
    return pytester


def test_the_summary_is_compact_by_default(project: pytest.Pytester, study_dir: Path) -> None:
    result = project.runpytest("-p", "no:cacheprovider", f"--study-dir={study_dir}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*= judge_eval: study run*",
        "profile study; gated: ft_gpt_3p5 (corrected frame)",
        "corrected frame, ties with (MT-Bench S1); agreement, r and kappa against the reference gpt_4; * gated",
        "  judge * agreement ?95% CI?*kappa",
        "  gpt_4 (reference) * 4/64 * 0 * 0 * 0 * -*",
        "? ft_gpt_3p5 * 15/64 * 0 * 0 * 0 * 44/47 0.936 ?0.851, 1.00? * 0.893 * 0.893",
        "  gpt_3p5 * 24/64 * 0 * 0 * 0 * 34/38 0.895 ?0.789, 0.974? * 0.797 * 0.826",
        "PASS ft_gpt_3p5 agreement_rate 0.936 (44/47) >= allowed 0.85",
        "PASS gpt_4 (reference) reference_coverage 1.00 (64/64) >= allowed 1.0",
    ])
    assert "-----------------" not in result.stdout.str()


@pytest.mark.parametrize("how", [["--judge-report=full"], ["--judge-report", "full"],
                                 ["-o", "judge_eval_report=full"]])
def test_judge_report_full_shows_the_study_layout_and_the_gate_lines(project: pytest.Pytester, study_dir: Path,
                                                                    how: list[str]) -> None:
    result = project.runpytest("-p", "no:cacheprovider", f"--study-dir={study_dir}", *how)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ft_gpt_3p5", "-----------------", "Number of inconclusives: 15",
                                 "Agreement rate: 0.8723404255319149",
                                 "PASS ft_gpt_3p5 inconclusive_rate 0.234 (15/64) <= allowed 0.25"])


@pytest.mark.parametrize(("how", "named"), [(["--judge-report=wide"], "--judge-report=wide"),
                                            (["-o", "judge_eval_report=wide"], "judge_eval_report = 'wide'")])
def test_a_bad_report_mode_is_a_usage_error_listing_the_allowed_ones(project: pytest.Pytester, how: list[str],
                                                                     named: str) -> None:
    result = project.runpytest("-p", "no:cacheprovider", *how)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{named}: unknown report mode; allowed: compact, full*"])


def test_the_default_runs_summary_has_one_table_per_run_one_line_per_gate_and_fits_in_60_lines(
        pytestconfig: pytest.Config, study_metrics, study_run, pipeline_run: Path, study_local_run: Path) -> None:
    """The three runs of this repository's default session (the study, `local` replayed,
    `study-local`), through the function the terminal summary prints with."""
    from judge_eval.plugin import summary_sections

    profiles = load_profiles(CONFIG)
    expected = {f"judge_eval: study run {study_run.path}": profiles["study"],
                f"judge_eval: local pipeline run {pipeline_run}": profiles["local"],
                f"judge_eval: study-local run {study_local_run}": profiles["study-local"]}
    sections = dict(summary_sections(pytestconfig, "compact"))
    assert set(expected) <= set(sections), sorted(sections)
    for title, profile in expected.items():
        lines = sections[title].splitlines()
        assert sum(1 for line in lines if HEADER.match(line)) == 1, title
        set_ = [k for k, v in profile.thresholds.model_dump().items()
                if v is not None and k != "min_reference_coverage"]
        gates = [line for line in lines if GATE.match(line)]
        assert len(gates) == len(profile.gated) * len(set_) + 1, (title, gates)
    assert len([line for line in sections[f"judge_eval: study run {study_run.path}"].splitlines()
                if GATE.match(line)]) == 10  # 7 thresholds, max_missing and min_compared for ft_gpt_3p5, reference coverage
    # local and study-local carry the study's thresholds: every gate shown, in threshold order
    for title in list(expected)[1:]:
        assert [re.match(r"^(?:PASS|FAIL) \S+(?: \(reference\))? (\S+) ", line).group(1)
                for line in sections[title].splitlines() if GATE.match(line)] == [
            "agreement_rate", "correlation", "inconclusive_rate", "parse_failures", "errors", "agreement_ci_low",
            "missing", "compared", "kappa_ci_low", "reference_coverage"]
    printed = sum(1 + text.count("\n") for text in sections.values())  # a separator line, then the text
    assert printed <= 60, "\n".join(f"{t}\n{x}" for t, x in sections.items())

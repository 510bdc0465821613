"""Coverage gates: a missing verdict (of a gated judge, or of the reference) fails the gate instead
of silently shrinking the items agreement is computed over.

Expected numbers are hand counts (stated in the brief that reported the holes: 20 items, 22
items, 64 items) or computed here from the raw file, independently of judge_eval's metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable

import pytest
import sklearn.metrics  # noqa: F401  # loaded here: pytester's in-process runs unload what they import

from judge_eval.cli import main
from judge_eval.config.profiles import Thresholds, load_profile, load_profiles
from judge_eval.core.items import Answer, QAItem, Verdict, item_id
from judge_eval.core.metrics import run_metrics
from judge_eval.core.store import read_run, write_qa
from judge_eval.errors import JudgeEvalError
from judge_eval.gating.gates import check_judge, check_run
from judge_eval.reporting.report import render_json, render_markdown

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "pyproject.toml")
CONCLUSIVE = ("original", "flipped")
ITEMS = 64  # the study's test pairs


def raw_rows(study_dir: Path) -> list[tuple[str, dict[str, dict]]]:
    """(item id, judge -> verdict) per line of the raw file, in file order; ids as documented
    (sha256 of the JSON of split, question and each answer's model and text), computed here."""
    rows = []
    for line in (study_dir / "test_qa_complete.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            content = json.dumps(["test", obj["question"], *([a["model"], a["text"]] for a in obj["answers"])])
            iid = "test-" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
            rows.append((iid, {v["llm"]: v for v in obj["evaluations"]}))
    return rows


def first_answer_score(v: dict) -> float:
    return 1.0 - v["score"] if v["source"] == "flipped" else v["score"]


def ft_not_agreeing(study_dir: Path) -> set[str]:
    """Items where ft_gpt_3p5 was inconclusive or did not agree with a conclusive gpt_4 (corrected
    frame): the ones a tester deletes to make the gate read 44 of 44."""
    out = set()
    for iid, ev in raw_rows(study_dir):
        r, c = ev["gpt_4"], ev["ft_gpt_3p5"]
        if not (r["source"] in CONCLUSIVE and c["source"] in CONCLUSIVE
                and first_answer_score(r) == first_answer_score(c)):
            out.add(iid)
    return out


def copy_without(study_dir: Path, out: Path, drop: Callable[[int, QAItem, Verdict], bool]) -> Path:
    """A copy of the study's test file in ``out`` without the verdicts ``drop(position, item,
    verdict)`` selects (read and written with judge_eval.core.store)."""
    run = read_run(study_dir, require=("test",))
    items = [dataclasses.replace(item, evaluations=tuple(v for v in item.evaluations if not drop(n, item, v)))
             for n, item in enumerate(run.test)]
    out.mkdir()
    write_qa(out / "test_qa_complete.jsonl", items)
    return out


def gate(run_dir: Path, capsys, profile: str = "study", config: str = CONFIG) -> tuple[int, str, str]:
    code = main(["gate", str(run_dir), "--profile", profile, "--config", config, "--format", "study"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ the defaults


def test_the_coverage_gates_are_on_by_default() -> None:
    t = Thresholds()
    assert (t.max_missing, t.min_reference_coverage) == (0, 1.0)
    for name in ("study", "openai"):
        thresholds = load_profiles(ROOT / "pyproject.toml")[name].thresholds
        assert (thresholds.max_missing, thresholds.min_reference_coverage) == (0, 1.0)


def test_a_profile_can_lower_them_and_out_of_range_values_are_named(tmp_path: Path) -> None:
    from judge_eval.errors import ConfigError

    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.judge_eval.profiles.p]\ngated = ["c"]\n[tool.judge_eval.profiles.p.thresholds]\n'
                    "max_missing = 3\nmin_reference_coverage = 0.25\n")
    t = load_profile("p", path).thresholds
    assert (t.max_missing, t.min_reference_coverage) == (3, 0.25)
    path.write_text(path.read_text().replace("0.25", "1.5"))
    with pytest.raises(ConfigError, match=r"thresholds.min_reference_coverage = 1.5: Input should be less than "
                                          r"or equal to 1"):
        load_profiles(path)


# ------------------------------------------------------------------ hole 1: a gated judge's verdicts removed


def test_deleting_the_gated_judges_bad_verdicts_fails_on_missing(study_dir: Path, tmp_path: Path, capsys) -> None:
    drop = ft_not_agreeing(study_dir)
    assert len(drop) == 20  # the testers' count: 15 inconclusive, 3 disagreeing, 2 with gpt_4 inconclusive
    run_dir = copy_without(study_dir, tmp_path / "run", lambda n, item, v: v.llm == "ft_gpt_3p5" and item.id in drop)
    code, out, _ = gate(run_dir, capsys)
    assert code == 1
    # The hole, as the testers saw it: over what is left, the judge agrees on every item...
    corrected = out.split("== corrected frame", 1)[1]
    assert f"ft_gpt_3p5\n-----------------\nNumber of inconclusives: 0\nNumber of agreements with gpt_4: " \
           f"{ITEMS - 20} out of {ITEMS - 20}\nAgreement rate: 1.0\n" in corrected
    # ...and the gate now says why that does not count.
    message = (f"gate failed: judge 'ft_gpt_3p5', missing: measured 20 of {ITEMS} items without a verdict, "
               f"allowed <= 0 (run {run_dir}, corrected frame, profile study)")
    assert message in out.splitlines()
    assert out.rstrip().endswith("FAIL: profile study, gated judge(s) ft_gpt_3p5, 1 gate failure(s)")
    assert f"Coverage: verdicts on {ITEMS - 20} of {ITEMS} items (20 missing)" in corrected

    # The library call: that is the only failure.
    profile = load_profile("study", CONFIG)
    metrics = run_metrics(read_run(run_dir).test, "gpt_4")
    failures = check_run(metrics, profile, run_dir=run_dir)
    assert [(f.judge, f.metric) for f in failures] == [("ft_gpt_3p5", "missing")]
    assert failures[0].message == message


# ------------------------------------------------------------------ hole 2: reference verdicts removed


def test_removing_reference_verdicts_fails_on_reference_coverage(study_dir: Path, tmp_path: Path, capsys) -> None:
    run_dir = copy_without(study_dir, tmp_path / "run", lambda n, item, v: v.llm == "gpt_4" and n < 22)
    kept = ITEMS - 22
    # gpt_4's inconclusives among the items that keep its verdict, counted in the raw file
    inconclusive = sum(1 for _, ev in raw_rows(study_dir)[22:] if ev["gpt_4"]["source"] == "neither")
    assert inconclusive == 3  # as the testers' header read: "3 inconclusive of 64"
    code, out, _ = gate(run_dir, capsys)
    assert code == 1
    header = out.splitlines()[0]
    assert header.startswith(f"Reference judge: gpt_4; number of inconclusives: {inconclusive} of {ITEMS} ")
    assert f"missing verdicts: 22 of {ITEMS}" in header
    message = (f"gate failed: reference judge 'gpt_4', reference_coverage: measured {kept / ITEMS:.4f} "
               f"({kept} of {ITEMS} items have a verdict by the reference; 22 missing), allowed >= 1.0 "
               f"(run {run_dir}, corrected frame, profile study)")
    assert message in out.splitlines()
    assert out.rstrip().endswith("FAIL: profile study, gated judge(s) ft_gpt_3p5, 1 gate failure(s)")
    assert f"the reference gpt_4 on {kept} (22 missing)" in out

    profile = load_profile("study", CONFIG)
    metrics = run_metrics(read_run(run_dir).test, "gpt_4")
    # once per profile in check_run, and nothing else fails on this copy: coverage is what fails it
    failures = check_run(metrics, profile, run_dir=run_dir)
    assert [(f.judge, f.metric, f.message) for f in failures] == [("gpt_4", "reference_coverage", message)]
    # a single judge's gate depends on the reference's coverage too (its agreement does); without
    # that gate, this subset chosen by omission would pass
    assert [(f.judge, f.metric) for f in check_judge(metrics, "ft_gpt_3p5", profile, run_dir=run_dir)] == \
           [("gpt_4", "reference_coverage")]
    assert check_judge(metrics, "ft_gpt_3p5", profile, run_dir=run_dir, reference=False) == []

    # Reports show it: Markdown header and JSON.
    md = render_markdown(metrics)
    assert f"Reference judge **gpt_4**: {inconclusive} inconclusive of {ITEMS} (parse failures 0, errors 0); " \
           f"missing verdicts 22 of {ITEMS}" in md
    data = json.loads(render_json(metrics))
    assert (data["reference_missing"], data["items"], data["reference_coverage"]) == (22, ITEMS, kept / ITEMS)
    assert data["judges"]["ft_gpt_3p5"]["corrected"]["reference_missing"] == 22


def test_a_sparse_labels_profile_lowers_reference_coverage_on_purpose(study_dir: Path, tmp_path: Path,
                                                                      capsys) -> None:
    run_dir = copy_without(study_dir, tmp_path / "run", lambda n, item, v: v.llm == "gpt_4" and n < 22)
    # the study's thresholds, and a lower reference coverage
    thresholds = ("min_agreement = 0.85\nmin_correlation = 0.75\nmax_inconclusive_rate = 0.25\n"
                  "max_parse_failures = 0\nmax_errors = 0\nmin_agreement_ci_low = 0.75")
    config = tmp_path / "pyproject.toml"
    for coverage, expected in ((0.6, 0), (0.7, 1)):  # 42 of 64 = 0.65625 lies between
        config.write_text(f'[tool.judge_eval.profiles.sparse]\nreference = "gpt_4"\ngated = ["ft_gpt_3p5"]\n'
                          f"[tool.judge_eval.profiles.sparse.thresholds]\n{thresholds}\n"
                          f"min_reference_coverage = {coverage}\n")
        code, out, _ = gate(run_dir, capsys, profile="sparse", config=str(config))
        assert code == expected, out
        if expected:
            assert f"reference_coverage: measured 0.6562 (42 of {ITEMS} items have a verdict by the reference; " \
                   f"22 missing), allowed >= {coverage}" in out
        else:
            assert out.rstrip().endswith("PASS: profile sparse, gated judge(s) ft_gpt_3p5, 0 gate failure(s)")


def test_the_study_run_has_full_coverage_and_passes(study_dir: Path, capsys) -> None:
    code, out, _ = gate(study_dir, capsys)
    assert code == 0
    assert f"missing verdicts: 0 of {ITEMS} (reference coverage 1.0000)" in out.splitlines()[0]


# ------------------------------------------------------------------ an empty run


def test_an_empty_run_says_it_has_0_items(tmp_path: Path, capsys) -> None:
    (tmp_path / "test_qa_complete.jsonl").write_text("")
    for argv in (["report", str(tmp_path)], ["gate", str(tmp_path), "--config", CONFIG]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "the run has 0 items" in err and "has no verdict" not in err
    with pytest.raises(JudgeEvalError, match="the run has 0 items"):
        run_metrics([], "gpt_4")


# ------------------------------------------------------------------ Markdown cells


def cells(row: str) -> list[str]:
    """The cells of a GFM table row: split on pipes not escaped by a backslash."""
    out, cell, escaped = [], "", False
    for ch in row.strip():
        if escaped:
            cell, escaped = cell + ch, False
        elif ch == "\\":
            cell, escaped = cell + ch, True
        elif ch == "|":
            out.append(cell)
            cell = ""
        else:
            cell += ch
    out.append(cell)
    return out[1:-1]  # the row starts and ends with a pipe


def test_markdown_escapes_pipes_and_newlines_in_judge_names() -> None:
    name = "a|b\nc"
    items = [QAItem(id=item_id("test", str(n)), split="test", question=str(n),
                    answers=(Answer("x", "1"), Answer("y", "22")), source="",
                    evaluations=(Verdict("ref", 1.0, "", "original"), Verdict(name, float(n % 2), "", "original")))
             for n in range(4)]
    md = render_markdown(run_metrics(items, "ref"), title="two\nlines")
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 * 3  # per frame: header, separator, the one judge (no line split off)
    columns = 11  # judge, inconclusive, parse failures, errors, agreements, agreement rate, 95% interval,
    #              correlation, Jaccard, Cohen's kappa, missing
    for row in rows:
        assert len(cells(row)) == columns, row
    judge_rows = [row for row in rows if cells(row)[0].strip() not in ("judge", "---")]
    assert [cells(row)[0].strip() for row in judge_rows] == ["a\\|b c", "a\\|b c"]
    assert all(cells(row)[-1].strip() == "0 of 4" for row in judge_rows)
    assert md.splitlines()[0] == "### two lines"


# ------------------------------------------------------------------ the plugin: one test per gate


def test_the_plugin_makes_one_reference_coverage_case_per_profile() -> None:
    from judge_eval.plugin import Settings, gate_cases

    profiles = load_profiles(ROOT / "pyproject.toml")
    s = Settings(profile_name=None, study_dir=ROOT, study_dir_from="test", pyproject=ROOT / "pyproject.toml",
                 profiles=profiles)
    ft = [("study", "ft_gpt_3p5", m) for m in ("min_agreement", "min_correlation", "max_inconclusive_rate",
                                                "max_parse_failures", "max_errors", "min_agreement_ci_low",
                                                "max_missing", "min_compared", "above_chance")]
    assert gate_cases(s) == [*ft, ("study", "gpt_4", "min_reference_coverage")]


FOREIGN = """
[tool.judge_eval.profiles.release]
reference = "teacher"
gated = ["cand"]
data = "runs/candidate"

[tool.judge_eval.profiles.release.thresholds]
min_agreement = 0.8
"""


def test_plugin_gates_fail_on_missing_verdicts_each_with_its_own_message(pytester: pytest.Pytester) -> None:
    """Four pairs, by hand: `cand` agrees with `teacher` wherever both judged; it has no verdict on
    item 3, and `teacher` has none on item 2. So agreement is 2 of 2 (items 0, 1), cand misses 1 of
    4, the reference covers 3 of 4."""
    folder = pytester.path / "runs" / "candidate"
    folder.mkdir(parents=True)
    lines = []
    for n in range(4):
        evaluations = []
        if n != 2:
            evaluations.append({"llm": "teacher", "score": 1.0, "text": "[[A]]", "source": "original"})
        if n != 3:
            evaluations.append({"llm": "cand", "score": 1.0, "text": "[[A]]", "source": "original"})
        lines.append(json.dumps({"question": f"Q{n}?", "source": "", "evaluations": evaluations,
                                 "answers": [{"model": "x", "text": f"a {n}"}, {"model": "y", "text": f"b {n}"}]}))
    (folder / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    pytester.makepyprojecttoml(FOREIGN)
    pytester.makepyfile(test_release="def test_gates(judge_gate):\n    judge_gate.check()\n")
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*test_gates?release:cand:min_agreement? PASSED*",
        "*test_gates?release:cand:max_missing? FAILED*",
        "*test_gates?release:cand:min_compared? PASSED*",  # items 0 and 1
        "*test_gates?release:teacher:min_reference_coverage? FAILED*",
    ])
    result.stdout.fnmatch_lines([
        "*gate failed: judge 'cand', missing: measured 1 of 4 items without a verdict, allowed <= 0 "
        "(run *runs/candidate, corrected frame, profile release)",
        "*gate failed: reference judge 'teacher', reference_coverage: measured 0.7500 (3 of 4 items have a "
        "verdict by the reference; 1 missing), allowed >= 1.0 (run *runs/candidate, corrected frame, profile "
        "release)",
    ])

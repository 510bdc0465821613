"""judge-eval report / gate: the table, its JSON, exit codes and errors."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr

from judge_eval.cli import main

ROOT = Path(__file__).resolve().parents[2]

# Expected values below are either what the published study printed (study frame: 41 of 47,
# 0.8723404255319149, 0.765365523658036, 0.773126734505088, ...) or computed here from the
# study's file, independently of judge_eval: never copied from judge_eval's own output.
CONCLUSIVE = ("original", "flipped")


def frame_scores(study_dir: Path, judge: str, frame: str, reference: str = "gpt_4") -> list[tuple[str, float, float]]:
    """(item id, reference score, judge score) over the items where both verdicts are conclusive,
    sorted by item id (the sha256 of split and question, as documented). Corrected frame: the
    score, or 1 - score when the verdict came from the flipped order."""
    def score(verdict: dict) -> float:
        return 1.0 - verdict["score"] if frame == "corrected" and verdict["source"] == "flipped" else verdict["score"]

    rows = []
    for line in (study_dir / "test_qa_complete.jsonl").read_text("utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        verdicts = {v["llm"]: v for v in obj["evaluations"]}
        ref, cand = verdicts.get(reference), verdicts.get(judge)
        if ref is None or cand is None or ref["source"] not in CONCLUSIVE or cand["source"] not in CONCLUSIVE:
            continue
        item_id = "test-" + hashlib.sha256(f"test\n{obj['question']}".encode("utf-8")).hexdigest()[:16]
        rows.append((item_id, score(ref), score(cand)))
    return sorted(rows)


def agreement(rows: list[tuple[str, float, float]]) -> tuple[int, int]:
    return sum(r == c for _, r, c in rows), len(rows)


def percentile_bootstrap(rows: list[tuple[str, float, float]]) -> tuple[float, float]:
    """The documented interval: seed 0, 2000 resamples of the agree vector (items sorted by id),
    percentiles 2.5 and 97.5 of the resampled means."""
    agree = np.array([float(r == c) for _, r, c in rows])
    n = len(agree)
    idx = np.random.default_rng(0).integers(0, n, size=(2000, n))
    low, high = np.percentile(agree[idx].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def correlation(rows: list[tuple[str, float, float]]) -> float:
    return float(pearsonr([r for _, r, _ in rows], [c for _, _, c in rows]).statistic)


def block(text: str, judge: str) -> str:
    """One judge's block of the text report."""
    return text.split(f"\n{judge}\n-----------------\n", 1)[1].split("\n\n", 1)[0] + "\n"


def assert_correlation_line(text: str, expected: float) -> None:
    """The printed correlation is a full-precision float equal to ``expected`` up to rounding
    (scipy and numpy sum in different orders: they may differ in the last bit)."""
    printed = re.search(r"^Correlation: (\S+)$", text, re.M).group(1)
    assert repr(float(printed)) == printed, printed
    assert float(printed) == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_report_text_shows_both_frames(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--format", "study"]) == 0
    out = capsys.readouterr().out
    study, corrected = out.split("== corrected frame")
    assert "ft_gpt_3p5\n-----------------\nNumber of inconclusives: 15\n" \
           "Number of agreements with gpt_4: 41 out of 47\nAgreement rate: 0.8723404255319149\n" \
           "Correlation: 0.765365523658036\nJaccard: 0.773126734505088\n" in study
    assert "Number of agreements with gpt_4: 32 out of 38\nAgreement rate: 0.8421052631578947\n" \
           "Correlation: 0.671929323262293\nJaccard: 0.7308712958867757\n" in study
    for judge, jaccard in (("ft_gpt_3p5", "0.8792553191489362"), ("gpt_3p5", "0.8105263157894737")):
        rows = frame_scores(study_dir, judge, "corrected")
        agreements, total = agreement(rows)
        text = block(corrected, judge)
        assert re.search(rf"^Number of agreements with gpt_4: {agreements} out of {total}\n"
                         rf"Agreement rate: {re.escape(repr(agreements / total))}\nCorrelation: \S+\n"
                         rf"Jaccard: {jaccard}\n", text, re.M), text
        assert_correlation_line(text, correlation(rows))
    assert "Reference judge: gpt_4; number of inconclusives: 4 of 64" in out


def test_report_json(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "gpt_4" and data["reference_inconclusive"] == 4
    ft = data["judges"]["ft_gpt_3p5"]
    assert (ft["study"]["inconclusive"], ft["study"]["agreements"], ft["study"]["total"]) == (15, 41, 47)
    assert ft["study"]["correlation"] == 0.765365523658036
    agreements, total = agreement(frame_scores(study_dir, "ft_gpt_3p5", "corrected"))
    assert (ft["corrected"]["agreements"], ft["corrected"]["total"]) == (agreements, total)
    assert ft["corrected"]["agreement_rate"] == agreements / total
    for frame in ("study", "corrected"):
        rows = frame_scores(study_dir, "ft_gpt_3p5", frame)
        assert tuple(ft[frame]["agreement_ci"]) == percentile_bootstrap(rows)
        assert ft[frame]["correlation"] == pytest.approx(correlation(rows), rel=1e-12, abs=0.0)
    for frame in ("study", "corrected"):
        for judge in ("ft_gpt_3p5", "gpt_3p5"):
            obj = data["judges"][judge][frame]
            assert {"inconclusive", "agreements", "total", "agreement_rate", "correlation", "jaccard",
                    "kappa", "agreement_ci"} <= set(obj)
            low, high = obj["agreement_ci"]
            assert low <= obj["agreement_rate"] <= high


def test_report_on_a_dir_with_only_the_test_file_and_other_judge_names(study_dir: Path, tmp_path: Path,
                                                                       capsys) -> None:
    text = (study_dir / "test_qa_complete.jsonl").read_text()
    (tmp_path / "test_qa_complete.jsonl").write_text(
        text.replace('"gpt_4"', '"teacher"').replace('"gpt_3p5"', '"student"'))
    assert main(["report", str(tmp_path), "--format", "json", "--reference", "teacher"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "teacher" and sorted(data["judges"]) == ["ft_gpt_3p5", "student"]


def test_report_errors_exit_2_with_a_message(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "test_qa_complete.jsonl").write_text('{"question": 1}\n')
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "test_qa_complete.jsonl:1: field 'question': expected str" in err


def test_gate_command_exit_codes(study_dir: Path, tmp_path: Path, capsys) -> None:
    config = ROOT / "pyproject.toml"
    assert main(["gate", str(study_dir), "--config", str(config)]) == 0
    assert "PASS: profile study, gated judge(s) ft_gpt_3p5, 0 gate failure(s)" in capsys.readouterr().out
    # The same run with the base student's verdicts under the gated name must fail.
    text = (study_dir / "test_qa_complete.jsonl").read_text()
    swapped = text.replace('"ft_gpt_3p5"', '"tmp"').replace('"gpt_3p5"', '"ft_gpt_3p5"')
    (tmp_path / "test_qa_complete.jsonl").write_text(swapped)
    assert main(["gate", str(tmp_path), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "gate failed: judge 'ft_gpt_3p5', inconclusive_rate: measured 0.3750 (24 of 64)" in out
    assert "FAIL: profile study" in out


def test_console_script_is_installed() -> None:
    exe = shutil.which("judge-eval") or str(Path(sys.executable).parent / "judge-eval")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "fetch-study" in result.stdout


def test_report_markdown(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    study_rows = frame_scores(study_dir, "ft_gpt_3p5", "study")
    assert agreement(study_rows) == (41, 47)  # what the study printed
    low, high = percentile_bootstrap(study_rows)
    assert (f"| ft_gpt_3p5 | 15 | 0 | 0 | 41 of 47 | {0.8723404255319149:.3f} | [{low:.3f}, {high:.3f}] | "
            f"{0.765365523658036:.3f} | {0.773126734505088:.3f} |") in out
    agreements, total = agreement(frame_scores(study_dir, "ft_gpt_3p5", "corrected"))
    assert f"| ft_gpt_3p5 | 15 | 0 | 0 | {agreements} of {total} | {agreements / total:.3f} |" in out

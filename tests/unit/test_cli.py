"""judge-eval report / gate: the table, its JSON, exit codes and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from judge_eval.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_report_text_shows_both_frames(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir)]) == 0
    out = capsys.readouterr().out
    study, corrected = out.split("== corrected frame")
    assert "ft_gpt_3p5\n-----------------\nNumber of inconclusives: 15\n" \
           "Number of agreements with gpt_4: 41 out of 47\nAgreement rate: 0.8723404255319149\n" \
           "Correlation: 0.765365523658036\nJaccard: 0.773126734505088\n" in study
    assert "Number of agreements with gpt_4: 32 out of 38\nAgreement rate: 0.8421052631578947\n" \
           "Correlation: 0.671929323262293\nJaccard: 0.7308712958867757\n" in study
    assert "Agreement rate: 0.9361702127659575\nCorrelation: 0.8932162673572893\n" \
           "Jaccard: 0.8792553191489362\n" in corrected
    assert "Agreement rate: 0.8947368421052632\nCorrelation: 0.7970926285758576\n" \
           "Jaccard: 0.8105263157894737\n" in corrected
    assert "Reference judge: gpt_4; number of inconclusives: 4 of 64" in out


def test_report_json(study_dir: Path, capsys) -> None:
    assert main(["report", str(study_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "gpt_4" and data["reference_inconclusive"] == 4
    ft = data["judges"]["ft_gpt_3p5"]
    assert (ft["study"]["inconclusive"], ft["study"]["agreements"], ft["study"]["total"]) == (15, 41, 47)
    assert ft["study"]["correlation"] == 0.765365523658036
    assert ft["corrected"]["agreement_rate"] == 0.9361702127659575
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
    assert "| ft_gpt_3p5 | 15 | 0 | 0 | 41 of 47 | 0.872 | [0.766, 0.957] | 0.765 | 0.773 |" in out
    assert "| ft_gpt_3p5 | 15 | 0 | 0 | 44 of 47 | 0.936 |" in out

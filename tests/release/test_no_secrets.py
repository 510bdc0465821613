"""No key, token or organisation in any committed cassette, any run.json, or any report format."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.core.metrics import run_metrics
from judge_eval.reporting.report import FORMATS, render
from judge_eval.recording.secret_scan import find_secrets, scan_files
from judge_eval.core.store import read_run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.release


@pytest.mark.parametrize("text", [
    "Authorization: Bearer " + "sk-" + "abcdefghijklmnopqrstuvwxyz0123",  # built, so no key-shaped literal is tracked
    "token " + "hf_" + "abcdefghijklmnopqrstuvwxyz012345",
    "  authorization:\n  - Bearer abcdefghijklmnop",
    "openai-organization: org-abcdefghijklmnopqrst",
    "api-key: 1234",
])
def test_the_scanner_finds_what_it_looks_for(text: str) -> None:
    assert find_secrets(text)


def test_committed_cassettes_hold_no_secret() -> None:
    files = [p for p in (ROOT / "cassettes").rglob("*") if p.is_file()]
    assert any(p.suffix == ".yaml" for p in files), "no committed cassette to scan"
    assert scan_files(files) == {}


def test_the_produced_run_and_every_report_format_hold_no_secret(pipeline_run: Path, pipeline_profile,
                                                                 tmp_path: Path) -> None:
    assert scan_files(p for p in pipeline_run.rglob("*") if p.suffix in (".json", ".jsonl")) == {}
    metrics = run_metrics(read_run(pipeline_run).test, pipeline_profile.reference)
    for fmt in FORMATS:
        assert find_secrets(render(metrics, fmt)) == [], fmt

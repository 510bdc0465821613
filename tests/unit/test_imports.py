"""`import judge_eval` stays light: no torch, no llama_index.finetuning, no llama-index at all."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "llama_index.finetuning", "llama_index.core", "sklearn")


def test_importing_the_package_and_its_cli_loads_nothing_heavy() -> None:
    code = (
        "import sys, judge_eval, judge_eval.cli, judge_eval.core.store, judge_eval.core.metrics, "
        "judge_eval.core.events, judge_eval.gating.gates, judge_eval.reporting.report, judge_eval.plugin\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

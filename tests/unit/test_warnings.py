"""Warnings: the replayed pipeline shows no third-party warning, and the filters drop exact
messages only, so a new warning of the same libraries still shows."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from judge_eval.live.questions import FORCED_DEPRECATIONS, known_deprecations_dropped

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]


def test_only_the_two_forced_deprecations_are_dropped() -> None:
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with known_deprecations_dropped():
            for text in FORCED_DEPRECATIONS:
                # as the `deprecated` package raises them: through any filter
                with warnings.catch_warnings():
                    warnings.simplefilter("always")
                    warnings.warn(text + " which should be used instead.)", DeprecationWarning)
            warnings.warn("Call to deprecated class SomethingNew. (Deprecated in favor of X)", DeprecationWarning)
            warnings.warn("our own warning", UserWarning)
    assert [str(w.message) for w in shown] == ["Call to deprecated class SomethingNew. (Deprecated in favor of X)",
                                               "our own warning"]


def test_warnings_raised_before_an_error_still_show() -> None:
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError), known_deprecations_dropped():
            warnings.warn("something new", DeprecationWarning)
            raise RuntimeError("stage failed")
    assert [str(w.message) for w in shown] == ["something new"]


def test_the_ini_filters_match_single_messages(pytester: pytest.Pytester, pytestconfig: pytest.Config) -> None:
    filters = pytestconfig.getini("filterwarnings")
    assert filters, "no filterwarnings in pyproject.toml"
    for line in filters:
        action, message, category = line.replace('\\"', "'").split(":")[:3]
        assert action == "ignore" and len(message) >= 30 and category, line  # a message, not a module
    quoted = ",\n".join('"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"' for line in filters)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nfilterwarnings = [\n{quoted}\n]\n")
    pytester.makepyfile(test_w='''
import warnings

def test_known_and_new():
    warnings.warn("llama-index-finetuning is deprecated and no longer maintained. It will not receive "
                  "any further updates.", DeprecationWarning)
    warnings.warn("llama-index-finetuning will change its API", DeprecationWarning)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*DeprecationWarning: llama-index-finetuning will change its API*"])


def test_the_replayed_pipeline_shows_no_third_party_warning() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                             "tests/release/test_pipeline.py", "tests/release/test_study_gates.py",
                             "tests/release/test_study_local.py", "tests/release/test_gates.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "warnings summary" not in result.stdout, result.stdout[result.stdout.find("warnings summary"):][:3000]
    assert " passed" in result.stdout.splitlines()[-1] and "warning" not in result.stdout.splitlines()[-1]

"""Settings that the CLI and the pytest plugin resolve the same way, in one place.

Precedence of every setting: the command-line flag, then the environment variable (where one
exists), then the ini key (``[tool.pytest.ini_options]`` of pyproject.toml, or pytest's ``-o``),
then the profile / built-in default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

STUDY_DIR_ENV = "JUDGE_EVAL_STUDY_DIR"
STUDY_DIR_INI = "judge_eval_study_dir"
#: Where the study's files are when nothing names them and no `study` profile has `data`.
STUDY_DIR_FALLBACK = "../shared/seed_run"


@dataclass(frozen=True)
class Choice:
    """A resolved setting and where it came from (for headers and messages)."""

    value: Path | None
    origin: str


def study_dir(*, flag: str | Path | None, flag_name: str, ini: str | None, root: Path,
              profiles: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Choice:
    """The folder with the published study's run files: ``flag`` (``--study-dir``), then
    ``JUDGE_EVAL_STUDY_DIR``, then the ini key ``judge_eval_study_dir`` (relative to ``root``),
    then the ``study`` profile's ``data``, then ``../shared/seed_run`` beside ``root``.
    ``~`` is expanded (in ``--study-dir=~/x`` the shell leaves it alone)."""
    env = os.environ if env is None else env
    if flag:
        return Choice(Path(flag).expanduser().resolve(), flag_name)
    if env.get(STUDY_DIR_ENV):
        return Choice(Path(env[STUDY_DIR_ENV]).expanduser().resolve(), STUDY_DIR_ENV)
    if ini:
        return Choice((root / Path(ini).expanduser()).resolve(), f"ini {STUDY_DIR_INI}")
    study = profiles.get("study")
    if study is not None and study.data is not None:
        return Choice(study.data, "profile study `data`")
    return Choice((root / STUDY_DIR_FALLBACK).resolve(), "default ../shared/seed_run")


def ini_value(pyproject_data: Mapping[str, Any], key: str) -> str | None:
    """``key`` of ``[tool.pytest.ini_options]`` in a parsed pyproject.toml, as a string."""
    tool = pyproject_data.get("tool")
    options = tool.get("pytest", {}).get("ini_options", {}) if isinstance(tool, dict) else {}
    value = options.get(key) if isinstance(options, dict) else None
    return None if value in (None, "") else str(value)

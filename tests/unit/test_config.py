"""Config inputs a new user got wrong, each named by its full key path, its value and what is
allowed (pydantic models with strict types, literal kinds and ranges)."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.config.profiles import find_pyproject, load_profiles
from judge_eval.errors import ConfigError

PIPE = "tool.judge_eval.profiles.p.pipeline"

#: A valid study-sourced pipeline; each case below breaks one value of it.
VALID = """
[tool.judge_eval.profiles.p]
gated = ["cand"]
[tool.judge_eval.profiles.p.pipeline]
source = "study"
[tool.judge_eval.profiles.p.pipeline.distill]
kind = "local-lora"
epochs = 3
[tool.judge_eval.profiles.p.pipeline.models.student]
api = "openai-like"
model = "m"
base_url = "http://127.0.0.1:1/v1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def test_the_valid_sample_loads(tmp_path: Path) -> None:
    profile = load_profiles(write(tmp_path, VALID))["p"]
    assert profile.pipeline.student.chat is True and profile.pipeline.distill.epochs == 3
    assert profile.pipeline.student.role == "student" and profile.pipeline.student.label == "m"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('source = "study"', 'source = "study"\ncorpus = "x"',
     f"{PIPE}.corpus = 'x': Input should be a valid dictionary or instance of Corpus"),
    ('base_url = "http://127.0.0.1:1/v1"', 'base_url = "http://127.0.0.1:1/v1"\ntimeout = "slow"',
     f"{PIPE}.models.student.timeout = 'slow': Input should be a valid number"),
    ("epochs = 3", 'epochs = "six"', f"{PIPE}.distill.epochs = 'six': Input should be a valid integer"),
    ('base_url = "http://127.0.0.1:1/v1"', 'base_url = "http://127.0.0.1:1/v1"\nchat = "no"',
     f"{PIPE}.models.student.chat = 'no': Input should be a valid boolean"),
    ('kind = "local-lora"', 'kind = "local-lorra"',
     f"{PIPE}.distill.kind = 'local-lorra': Input should be 'openai' or 'local-lora'"),
    ('api = "openai-like"', 'api = "anthropic"',
     f"{PIPE}.models.student.api = 'anthropic': Input should be 'openai', 'openai-like' or 'hf-inference'"),
    ('source = "study"', 'source = "study"\nconcurrency = 0',
     f"{PIPE}.concurrency = 0: Input should be greater than or equal to 1"),
    ('source = "study"', 'source = "build"', f"{PIPE} = "),  # build needs a corpus, questions, models
    ('base_url = "http://127.0.0.1:1/v1"', 'base_url = "http://127.0.0.1:1/v1"\nrole = "teacher"',
     f"{PIPE}.models.student = "),  # role is the table's key, not a setting
])
def test_each_bad_input_names_key_value_and_what_is_allowed(tmp_path: Path, old: str, new: str,
                                                            message: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_profiles(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_build_pipeline_lists_everything_it_lacks(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('source = "study"', 'source = "build"'))
    with pytest.raises(ConfigError, match="source 'build' needs models.question_writer, models.embeddings, "
                                          "models.teacher, corpus, questions, models.answerers"):
        load_profiles(path)


def test_a_broken_pyproject_is_a_syntax_error_not_a_missing_file(tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    write(tmp_path, VALID + "\n[tool.judge_eval.profiles.q\n")
    # line 14: a blank first line, 11 of VALID, a blank one, then the 27-character header
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*\(at line 14, column 28\)"):
        find_pyproject(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["gate", str(tmp_path), "--profile", "p"]) == 2
    err = capsys.readouterr().err
    assert "TOML syntax error" in err and "line 14" in err and "Traceback" not in err

"""judge-eval's sub-commands: dispatch, defaults resolved in one place, help with examples,
options checked while parsing, the study's folder chosen as in pytest, messages naming the
CLI's own flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from judge_eval.cli import _parser, main, resolve
from judge_eval.config.profiles import find_pyproject
from judge_eval.config.settings import STUDY_DIR_ENV
from judge_eval.core.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED
from judge_eval.live.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("report", "gate", "plot", "compare", "record", "import", "fetch-study", "canary")

#: A profile that distils the study's run (only a student model and a distiller are needed).
STUDY_SOURCE_PROFILE = """
[tool.judge_eval.profiles.sl]
reference = "gpt_4"
gated = ["lora"]

[tool.judge_eval.profiles.sl.pipeline]
source = "study"

[tool.judge_eval.profiles.sl.pipeline.distill]
kind = "local-lora"

[tool.judge_eval.profiles.sl.pipeline.models.student]
api = "openai-like"
model = "m"
base_url = "http://127.0.0.1:1/v1"
"""


@pytest.fixture(autouse=True)
def no_study_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI may set JUDGE_EVAL_STUDY_DIR; these tests set it themselves where they need it."""
    monkeypatch.delenv(STUDY_DIR_ENV, raising=False)


def write_project(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pyproject.toml"
    path.write_text(text, "utf-8")
    return path


def parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


# --- dispatch --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ("report", "RUN"), ("gate", "RUN"), ("plot", "RUN", "-o", "x.png"), ("compare", "A", "B"),
    ("record",), ("fetch-study", "DEST"),
])
def test_every_command_has_its_own_function(argv: tuple[str, ...]) -> None:
    import judge_eval.cli as cli

    args = parse(*argv)
    assert args.func is getattr(cli, "cmd_" + argv[0].replace("-", "_"))


# --- help ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"\nexample:\n  judge-eval {command} " in out


def test_record_help_lists_the_stages(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["record", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert " -> ".join(STAGES) in out
    assert "--stage {" + ",".join(STAGES) + "}" in out


def test_an_unknown_stage_is_refused_while_parsing(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["record", "--stage", "teachers", "--dry-run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "judge-eval record: error: argument --stage: invalid choice: 'teachers'" in err


# --- numeric options -------------------------------------------------------------------------

BAD_NUMBERS = [
    *[(cmd, "--resamples", value, message) for cmd in ("report", "gate", "plot") for value, message in (
        ("0", "must be a whole number >= 1, got 0"),
        ("-5", "must be a whole number >= 1, got -5"),
        ("1.5", "expected a whole number >= 1, got '1.5'"),
        ("many", "expected a whole number >= 1, got 'many'"))],
    *[(cmd, "--seed", value, message) for cmd in ("report", "gate", "plot") for value, message in (
        ("-1", "must be a whole number >= 0, got -1"),
        ("0.5", "expected a whole number >= 0, got '0.5'"),
        ("x", "expected a whole number >= 0, got 'x'"))],
    *[("compare", "--alpha", value, message) for value, message in (
        ("0", "must be strictly between 0 and 1, got 0"),
        ("1", "must be strictly between 0 and 1, got 1"),
        ("1.5", "must be strictly between 0 and 1, got 1.5"),
        ("-0.05", "must be strictly between 0 and 1, got -0.05"),
        ("nan", "must be strictly between 0 and 1, got nan"),
        ("inf", "must be strictly between 0 and 1, got inf"),
        ("five", "expected a number strictly between 0 and 1, got 'five'"))],
    *[("record", "--concurrency", value, message) for value, message in (
        ("0", "must be a whole number >= 1, got 0"),
        ("-2", "must be a whole number >= 1, got -2"),
        ("2.5", "expected a whole number >= 1, got '2.5'"))],
]

POSITIONALS = {"report": ["RUN"], "gate": ["RUN"], "plot": ["RUN", "-o", "x.png"], "compare": ["A", "B"],
               "record": ["--dry-run"]}


@pytest.mark.parametrize(("command", "flag", "value", "message"), BAD_NUMBERS)
def test_numeric_options_are_checked_while_parsing(command: str, flag: str, value: str, message: str,
                                                   capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, *POSITIONALS[command], f"{flag}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"judge-eval {command}: error: argument {flag}: {message}\n" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("command", "flag", "value", "expected"), [
    ("report", "--resamples", "1", 1), ("gate", "--resamples", "2000", 2000), ("plot", "--seed", "0", 0),
    ("report", "--seed", "12345", 12345), ("compare", "--alpha", "0.01", 0.01),
    ("compare", "--alpha", "0.999", 0.999), ("record", "--concurrency", "1", 1),
    ("record", "--concurrency", "8", 8),
])
def test_valid_numbers_are_accepted(command: str, flag: str, value: str, expected: Any) -> None:
    args = parse(command, *POSITIONALS[command], flag, value)
    assert getattr(args, flag.lstrip("-")) == expected


# --- defaults, resolved in one place -----------------------------------------------------------

PROFILE_P = """
[tool.judge_eval.profiles.p]
reference = "teacher"
gated = ["student"]
bootstrap_seed = 7
bootstrap_resamples = 300
"""


def test_defaults_come_from_the_profile_then_the_built_ins(tmp_path: Path) -> None:
    config = str(write_project(tmp_path, PROFILE_P))
    for argv in (("gate", "RUN", "--profile", "p", "--config", config),
                 ("compare", "A", "B", "--profile", "p", "--config", config)):
        s = resolve(parse(*argv))
        assert s.profile is not None and s.profile.name == "p"
        assert (s.reference, s.seed, s.resamples) == ("teacher", 7, 300)
    s = resolve(parse("gate", "RUN", "--profile", "p", "--config", config, "--reference", "r",
                      "--seed", "0", "--resamples", "5"))
    assert (s.reference, s.seed, s.resamples) == ("r", 0, 5)  # a flag wins, 0 included
    s = resolve(parse("compare", "A", "B", "--profile", "p", "--config", config, "--reference", "r"))
    assert (s.reference, s.seed, s.resamples) == ("r", 7, 300)
    for argv in (("report", "RUN"), ("plot", "RUN", "-o", "x.png")):
        s = resolve(parse(*argv))
        assert s.profile is None
        assert (s.reference, s.seed, s.resamples) == (DEFAULT_REFERENCE, DEFAULT_SEED, DEFAULT_RESAMPLES)
    assert resolve(parse("report", "RUN", "--seed", "3")).seed == 3


@pytest.mark.parametrize(("argv", "default"), [(("gate", "RUN"), "study"), (("record", "--dry-run"), "local")])
def test_the_default_profile_is_named_with_the_cli_flag(argv: tuple[str, ...], default: str, tmp_path: Path,
                                                       capsys) -> None:
    config = write_project(tmp_path, PROFILE_P)
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"judge-eval: error: unknown profile {default!r} in {config.resolve()}; known "
                          "profiles: p.")
    assert err.rstrip("\n").endswith("pick a known one with --profile") and err.count("\n") == 1
    assert "--judge-profile" not in err and "Traceback" not in err


def test_without_a_pyproject_the_message_names_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys) -> None:
    if find_pyproject(tmp_path) is not None:
        pytest.skip("a pyproject.toml with [tool.judge_eval] sits above the temporary folder")
    monkeypatch.chdir(tmp_path)
    assert main(["gate", str(tmp_path)]) == 2
    assert "pass --config PATH" in capsys.readouterr().err


# --- the study's folder, chosen as in pytest ---------------------------------------------------

@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the recording itself: what `judge-eval record` would pass to it."""
    import judge_eval.orchestration.rerecord as rerecord

    seen: dict[str, Any] = {}

    def fake_record(profile: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, profile=profile)
        return {"profile": profile.name, "seconds": 0.0, "run_dir": "RUN", "cassettes": "CASSETTES",
                "workdir": "kept the work folder RUN (0.0 MB)"}

    monkeypatch.setattr(rerecord, "record", fake_record)
    return seen


def test_record_honours_the_study_dir_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           recorded: dict[str, Any], capsys) -> None:
    # Regression: the CLI ignored JUDGE_EVAL_STUDY_DIR and always used the study profile's data.
    monkeypatch.setenv(STUDY_DIR_ENV, str(tmp_path / "from-env"))
    assert main(["record", "--profile", "study-local", "--config", str(ROOT / "pyproject.toml"),
                 "--no-install"]) == 0
    assert recorded["study_dir"] == (tmp_path / "from-env").resolve()
    assert recorded["profile"].name == "study-local" and recorded["install"] is False
    assert "run directory: RUN" in capsys.readouterr().out
    # The dry run says which folder it would read, and why.
    assert main(["record", "--profile", "study-local", "--config", str(ROOT / "pyproject.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"  study data: {(tmp_path / 'from-env').resolve()} (from {STUDY_DIR_ENV})\n" in out


@pytest.mark.parametrize(("flag", "env", "ini", "study_profile", "expected"), [
    ("flag", "env", "ini", True, "flag"),
    (None, "env", "ini", True, "env"),
    (None, None, "ini", True, "ini"),
    (None, None, None, True, "profile-data"),
    (None, None, None, False, "../shared/seed_run"),  # no study profile: no KeyError, the fallback
])
def test_record_chooses_the_study_dir_as_pytest_does(flag: str | None, env: str | None, ini: str | None,
                                                     study_profile: bool, expected: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     recorded: dict[str, Any]) -> None:
    project = tmp_path / "project"
    text = STUDY_SOURCE_PROFILE
    if ini:
        text = f'[tool.pytest.ini_options]\njudge_eval_study_dir = "{ini}"\n' + text
    if study_profile:
        text += '\n[tool.judge_eval.profiles.study]\ndata = "profile-data"\n'
    config = write_project(project, text)
    if env:
        monkeypatch.setenv(STUDY_DIR_ENV, str(tmp_path / env))
    argv = ["record", "--profile", "sl", "--config", str(config), "--no-install"]
    if flag:
        argv += ["--study-dir", str(tmp_path / flag)]
    assert main(argv) == 0
    base = tmp_path if expected in ("flag", "env") else project
    assert recorded["study_dir"] == (base / expected).resolve()

"""The pytest plugin: options (each with an ini twin), the report header, parametrisation of the
release gates over a profile's gated judges, and the metrics table as a terminal summary.

Precedence of every setting: command line, then environment variable (where one exists), then
the ini key, then the profile / built-in default. Bad values raise ``pytest.UsageError`` listing
what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from judge_eval.errors import ConfigError

STUDY_DIR_ENV = "JUDGE_EVAL_STUDY_DIR"


@dataclass(frozen=True)
class Settings:
    profile_name: str
    study_dir: Path
    study_dir_from: str  # where the value came from, for the report header
    pyproject: Path


@dataclass
class Reported:
    """A run whose metrics the session computed; printed in the terminal summary."""

    title: str
    text: str
    markdown: str = ""


SETTINGS_KEY = pytest.StashKey[Settings]()
REPORTS_KEY = pytest.StashKey[list[Reported]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("judge_eval", "LLM judge regression gates")
    group.addoption("--judge-profile", default=None,
                    help="profile whose live pipeline the session replays or records (ini: judge_eval_profile; "
                         "default: local)")
    parser.addini("judge_eval_profile", "default profile name", default="local")
    group.addoption("--study-dir", default=None,
                    help=f"folder with the published study's run files (env: {STUDY_DIR_ENV}; ini: "
                         "judge_eval_study_dir; default: the study profile's `data`, ../shared/seed_run)")
    parser.addini("judge_eval_study_dir", "folder with the published study's run files", default="")
    group.addoption("--judge-concurrency", default=None, type=int,
                    help="live stages: items in flight at once while recording (ini: judge_eval_concurrency; "
                         "default: the profile's pipeline.concurrency, else 1)")
    parser.addini("judge_eval_concurrency", "items in flight at once in live stages", default="")
    group.addoption("--judge-report-md", default=None,
                    help="also write the session's metrics tables as Markdown to this file, e.g. "
                         "$GITHUB_STEP_SUMMARY (ini: judge_eval_report_md)")
    parser.addini("judge_eval_report_md", "file for the Markdown metrics tables", default="")
    group.addoption("--baseline-run", default=None,
                    help="a previous run directory of the same test items: the release tests fail when a gated "
                         "judge's agreement dropped significantly since (ini: judge_eval_baseline_run)")
    parser.addini("judge_eval_baseline_run", "baseline run directory for regression checks", default="")


def _settings(config: pytest.Config) -> Settings:
    from judge_eval.config import load_profiles

    pyproject = config.rootpath / "pyproject.toml"
    try:
        profiles = load_profiles(pyproject)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    name = config.getoption("--judge-profile") or config.getini("judge_eval_profile")
    if name not in profiles:
        raise pytest.UsageError(f"--judge-profile: unknown profile {name!r}; known profiles: "
                                f"{', '.join(sorted(profiles)) or 'none'} (from {pyproject})")
    if config.getoption("--study-dir"):
        # expanduser: in `--study-dir=~/x` the shell leaves the tilde alone
        study_dir, origin = Path(config.getoption("--study-dir")).expanduser(), "--study-dir"
    elif os.environ.get(STUDY_DIR_ENV):
        study_dir, origin = Path(os.environ[STUDY_DIR_ENV]).expanduser(), STUDY_DIR_ENV
    elif config.getini("judge_eval_study_dir"):
        study_dir, origin = config.rootpath / config.getini("judge_eval_study_dir"), "ini judge_eval_study_dir"
    else:
        study = profiles.get("study")
        default = study.data if study and study.data else config.rootpath / "../shared/seed_run"
        study_dir, origin = default, "profile study `data`"
    return Settings(profile_name=name, study_dir=study_dir.resolve(), study_dir_from=origin,
                    pyproject=pyproject)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS_KEY] = _settings(config)
    config.stash[REPORTS_KEY] = []


def settings(config: pytest.Config) -> Settings:
    return config.stash[SETTINGS_KEY]


def concurrency(config: pytest.Config, profile_default: int) -> int:
    """--judge-concurrency, then the ini key, then the profile's setting."""
    value = config.getoption("--judge-concurrency")
    if value is None and config.getini("judge_eval_concurrency"):
        try:
            value = int(config.getini("judge_eval_concurrency"))
        except ValueError:
            raise pytest.UsageError(f"judge_eval_concurrency = {config.getini('judge_eval_concurrency')!r}: "
                                    "it must be a whole number >= 1") from None
    if value is None:
        return profile_default
    if value < 1:
        raise pytest.UsageError(f"--judge-concurrency {value}: it must be a whole number >= 1")
    return value


def report_run(config: pytest.Config, label: str, items, profile, title: str):
    """Compute ``items``' metrics against the profile's reference and show them in the terminal
    summary (and the --judge-report-md file). Returns the metrics."""
    from judge_eval.metrics import run_metrics
    from judge_eval.report import render_markdown, render_text

    metrics = run_metrics(items, profile.reference, seed=profile.bootstrap_seed,
                          resamples=profile.bootstrap_resamples)
    add_report(config, label, render_text(metrics, title=title), render_markdown(metrics, title=f"judge_eval: {title}"))
    return metrics


def add_report(config: pytest.Config, title: str, text: str, markdown: str = "") -> None:
    """Show ``text`` under ``title`` in the session's terminal summary (and ``markdown`` in the
    file of --judge-report-md)."""
    config.stash[REPORTS_KEY].append(Reported(title, text, markdown))


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = settings(config)
    return [f"judge_eval: profile {s.profile_name}; study data {s.study_dir} (from {s.study_dir_from})"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``gated_judge``: one test per judge the study profile gates."""
    if "gated_judge" in metafunc.fixturenames:
        from judge_eval.config import load_profile

        profile = load_profile("study", settings(metafunc.config).pyproject)
        metafunc.parametrize("gated_judge", profile.gated)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    reports = config.stash.get(REPORTS_KEY, [])
    for report in reports:
        terminalreporter.write_sep("=", f"judge_eval: {report.title}")
        terminalreporter.write(report.text)
    target = config.getoption("--judge-report-md") or config.getini("judge_eval_report_md")
    if target and reports:
        from judge_eval.store import atomic_write_bytes

        atomic_write_bytes(target, "\n".join(r.markdown or f"### {r.title}\n\n```\n{r.text}```\n"
                                             for r in reports).encode())
        terminalreporter.write_line(f"judge_eval: Markdown report written to {target}")

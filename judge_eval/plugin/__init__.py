"""The pytest plugin, registered by the ``pytest11`` entry point ``judge_eval``.

Because the entry point loads it before pytest looks for a rootdir, its options exist from the
start (``pytest --study-dir DIR`` works with a space). It is inert in a project whose
pyproject.toml has no ``[tool.judge_eval]`` table: no header, no summary, no gate items.

In a project that has one, it gives:

- options, each with an ini twin (command line, then environment, then ini, then default);
- **gates as tests**: a one-line test ``def test_gates(judge_gate): judge_gate.check()`` becomes
  one test per profile that names a run directory (``data``), gated judge and threshold, e.g.
  ``test_gates[study:ft_gpt_3p5:min_agreement]``, each failing with the gate's own message;
- the report header, and the metrics tables as a terminal summary (and Markdown, on request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from judge_eval.errors import ConfigError

INERT_KEY = pytest.StashKey[bool]()


@dataclass(frozen=True)
class Settings:
    profile_name: str | None  # the live pipeline the session replays or records
    study_dir: Path | None
    study_dir_from: str  # where the value came from, for the report header
    pyproject: Path
    profiles: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass
class Reported:
    """A run whose metrics the session computed; printed in the terminal summary: ``text`` (the
    compact table and gate lines) by default, ``full`` (the study's layout) with --judge-report=full."""

    title: str
    text: str
    markdown: str = ""
    full: str = ""


SETTINGS_KEY = pytest.StashKey[Settings]()
#: --judge-report / judge_eval_report: what the terminal summary shows of each run.
REPORT_MODES = ("compact", "full")
MISSING_PREFIX = "missing data ("
STRICT_ENV = "JUDGE_EVAL_STRICT"
REPORTS_KEY = pytest.StashKey[list[Reported]]()
GATE_CACHE_KEY = pytest.StashKey[dict[tuple[str, str], Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    from judge_eval.config.settings import STUDY_DIR_ENV

    group = parser.getgroup("judge_eval", "LLM judge regression gates")
    group.addoption("--judge-profile", default=None,
                    help="profile whose live pipeline the session replays or records (ini: judge_eval_profile)")
    parser.addini("judge_eval_profile", "profile whose live pipeline the session replays or records", default="")
    group.addoption("--study-dir", default=None,
                    help=f"folder with the published study's run files (env: {STUDY_DIR_ENV}; ini: "
                         "judge_eval_study_dir; default: the study profile's `data`)")
    parser.addini("judge_eval_study_dir", "folder with the published study's run files", default="")
    group.addoption("--judge-concurrency", default=None, type=int,
                    help="live stages: items in flight at once while recording (ini: judge_eval_concurrency; "
                         "default: the profile's pipeline.concurrency, else 1)")
    parser.addini("judge_eval_concurrency", "items in flight at once in live stages", default="")
    group.addoption("--judge-report-md", default=None,
                    help="also write the session's metrics tables as Markdown to this file, e.g. "
                         "$GITHUB_STEP_SUMMARY (ini: judge_eval_report_md)")
    parser.addini("judge_eval_report_md", "file for the Markdown metrics tables", default="")
    group.addoption("--judge-report", default=None, metavar="{compact,full}",
                    help="terminal summary of each run: compact (default: one table, 3 significant digits, one "
                         "PASS/FAIL line per gate) or full (every metric in both frames at full precision, the "
                         "study's layout, then the gate lines) (ini: judge_eval_report)")
    parser.addini("judge_eval_report", "terminal summary of each run: compact or full", default="")
    group.addoption("--baseline-run", default=None,
                    help="a previous run directory of the same test items: the release tests fail when a gated "
                         "judge's agreement dropped significantly since (ini: judge_eval_baseline_run)")
    parser.addini("judge_eval_baseline_run", "baseline run directory for regression checks", default="")
    group.addoption("--judge-strict", action="store_true", default=None,
                    help="CI: data a collected test needs (the study's files, a profile's cassettes or run) is an "
                         f"error when missing, not a skip (ini: judge_eval_strict; env: {STRICT_ENV}=1)")
    parser.addini("judge_eval_strict", "missing data is an error, not a skip", type="bool", default=False)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """``pytest --study-dir DIR`` with a space: pytest chose the rootdir from DIR before this
    plugin's options existed; choose it again (judge_eval.plugin.rootdir)."""
    from judge_eval.plugin.rootdir import correct_setup

    correct_setup(early_config, args)


def _pyproject(config: pytest.Config) -> Path:
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    return config.rootpath / "pyproject.toml"


def _settings(config: pytest.Config, pyproject: Path) -> Settings:
    from judge_eval.config.profiles import load_profiles
    from judge_eval.config.settings import study_dir

    try:
        profiles = load_profiles(pyproject)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    name = config.getoption("--judge-profile") or config.getini("judge_eval_profile") or None
    if name is not None and name not in profiles:
        raise pytest.UsageError(f"--judge-profile: unknown profile {name!r}; known profiles: "
                                f"{', '.join(sorted(profiles)) or 'none'} (from {pyproject})")
    choice = study_dir(flag=config.getoption("--study-dir"), flag_name="--study-dir",
                       ini=config.getini("judge_eval_study_dir") or None, root=pyproject.parent,
                       profiles=profiles)
    return Settings(profile_name=name, study_dir=choice.value, study_dir_from=choice.origin,
                    pyproject=pyproject, profiles=profiles)


def _check_record_mode(config: pytest.Config) -> None:
    from judge_eval.recording.cassettes import RECORD_MODES

    try:
        mode = config.getoption("--record-mode")
    except ValueError:  # pytest-recording not installed
        return
    if mode is not None and mode not in RECORD_MODES:
        raise pytest.UsageError(f"--record-mode={mode}: judge_eval's cassettes support "
                                f"{', '.join(RECORD_MODES)} (none replays; all re-records)")


def pytest_configure(config: pytest.Config) -> None:
    from judge_eval.config.profiles import has_judge_eval, read_pyproject

    pyproject = _pyproject(config)
    data: dict[str, Any] = {}
    if pyproject.is_file():
        try:
            data = read_pyproject(pyproject)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[INERT_KEY] = not has_judge_eval(data)
    if config.stash[INERT_KEY]:
        return
    _check_record_mode(config)
    report_mode(config)  # a bad value is a usage error before any test runs
    config.stash[SETTINGS_KEY] = _settings(config, pyproject)
    config.stash[REPORTS_KEY] = []
    config.stash[GATE_CACHE_KEY] = {}
    if config.pluginmanager.hasplugin("xdist") and not _is_worker(config):
        config.pluginmanager.register(_CollectWorkerReports(config), "judge_eval.xdist")


# --------------------------------------------------------------------------- pytest -n N (xdist)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class _CollectWorkerReports:
    """Under pytest-xdist every worker computes the tables of the runs its tests touched; the
    controller gathers them (``workeroutput``), keeps each once, and is the only process that
    prints the summary and writes the Markdown file."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        for raw in getattr(node, "workeroutput", {}).get("judge_eval_reports", []):
            add_report(self.config, raw["title"], raw["text"], raw["markdown"], raw.get("full", ""))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if active(config) and _is_worker(config):
        config.workeroutput["judge_eval_reports"] = [  # type: ignore[attr-defined]
            {"title": r.title, "text": r.text, "markdown": r.markdown, "full": r.full}
            for r in config.stash[REPORTS_KEY]]


def active(config: pytest.Config) -> bool:
    """Whether the project configures judge_eval (the plugin is inert otherwise)."""
    return not config.stash.get(INERT_KEY, True)


def settings(config: pytest.Config) -> Settings:
    if not active(config):
        raise pytest.UsageError(f"judge_eval: {_pyproject(config)} has no [tool.judge_eval] table; add "
                                "[tool.judge_eval.profiles.NAME] to use judge_eval's fixtures")
    return config.stash[SETTINGS_KEY]


def strict(config: pytest.Config) -> bool:
    """--judge-strict, then JUDGE_EVAL_STRICT, then the ini key judge_eval_strict."""
    import os

    if config.getoption("--judge-strict"):
        return True
    env = os.environ.get(STRICT_ENV, "").strip().lower()
    if env:
        return env in ("1", "true", "yes", "on")
    return bool(config.getini("judge_eval_strict"))


def missing_data(config: pytest.Config, cause: str, detail: str) -> None:
    """Data a test needs is not there. In strict mode (CI) the test fails with ``cause`` and
    ``detail``; otherwise it is skipped with them, and the summary counts the skips per cause."""
    message = f"{MISSING_PREFIX}{cause}): {detail}"
    if strict(config):
        pytest.fail(f"{message} (--judge-strict: missing data is an error)", pytrace=False)
    pytest.skip(message)


def _missing_data_skips(reports: list[Any]) -> dict[str, int]:
    """Tests skipped per missing-data cause (a session fixture skips once, and every test that
    uses it is skipped with the same reason)."""
    counts: dict[str, int] = {}
    for report in reports:
        longrepr = getattr(report, "longrepr", None)
        if not isinstance(longrepr, tuple):
            continue
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(MISSING_PREFIX):
            cause = reason[len(MISSING_PREFIX):].split("): ", 1)[0]
            counts[cause] = counts.get(cause, 0) + 1
    return counts


def study_data_hint(s: Settings) -> str:
    return (f"get it with `judge-eval fetch-study DIR`, then pass --study-dir=DIR or set "
            f"JUDGE_EVAL_STUDY_DIR=DIR (looked in {s.study_dir}, from {s.study_dir_from})")


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


def report_mode(config: pytest.Config) -> str:
    """--judge-report, then the ini key judge_eval_report, then ``compact``."""
    option = config.getoption("--judge-report")
    value, where = (option, f"--judge-report={option}") if option is not None else (
        config.getini("judge_eval_report"), f"judge_eval_report = {config.getini('judge_eval_report')!r}")
    if not value:
        return REPORT_MODES[0]
    if value not in REPORT_MODES:
        raise pytest.UsageError(f"{where}: unknown report mode; allowed: {', '.join(REPORT_MODES)} "
                                "(compact: one table and one PASS/FAIL line per gate; full: every metric in "
                                "both frames at full precision)")
    return value


def report_run(config: pytest.Config, label: str, items, profile, title: str, *, run_dir: Path | str | None = None):
    """Compute ``items``' metrics against the profile's reference and show them in the terminal
    summary (and the --judge-report-md file): one compact table in the profile's frame and tie mode,
    gated judges marked, then one PASS/FAIL line per gate of the profile (the study's full layout
    with --judge-report=full). Returns the metrics."""
    from judge_eval.core.metrics import run_metrics
    from judge_eval.errors import JudgeEvalError
    from judge_eval.gating.gates import gate_results
    from judge_eval.reporting.report import gate_line, render_compact, render_markdown_report, render_text

    metrics = run_metrics(items, profile.reference, seed=profile.bootstrap_seed,
                          resamples=profile.bootstrap_resamples, score_reference=profile.score_reference,
                          score_interval=profile.score_interval, choice_margin=profile.choice_margin)
    problem = []
    try:
        gates = gate_results(metrics, profile, run_dir=run_dir if run_dir is not None else label)
    except JudgeEvalError as exc:  # a gated judge without verdicts in the run; its gate tests fail on it too
        gates, problem = [], [f"FAIL gates not checked: {exc}"]
    view = {"frame": profile.frame, "ties": profile.ties, "gated": profile.gated}
    text = render_compact(metrics, title=title, gates=gates, **view) + "".join(f"{line}\n" for line in problem)
    lines = [gate_line(r) for r in gates] + problem
    full = render_text(metrics, title=title, ties=profile.ties) + ("\n" + "".join(f"{line}\n" for line in lines)
                                                                   if lines else "")
    markdown = render_markdown_report(metrics, title=f"judge_eval: {title}", gates=gates, **view)
    add_report(config, label, text, markdown, full)
    return metrics


def add_report(config: pytest.Config, title: str, text: str, markdown: str = "", full: str = "") -> None:
    """Show ``text`` under ``title`` in the session's terminal summary (``full`` instead with
    --judge-report=full, when given), and ``markdown`` in the file of --judge-report-md."""
    reported = Reported(title, text, markdown, full)
    if reported not in config.stash[REPORTS_KEY]:  # the same run reported by two fixtures: once
        config.stash[REPORTS_KEY].append(reported)


def summary_sections(config: pytest.Config, mode: str | None = None) -> list[tuple[str, str]]:
    """(separator title, text) of every run the session reported, as the terminal summary prints
    them: sorted by title, so that the order does not depend on which worker finished first; each
    in the form ``mode`` names (default: the one --judge-report chose)."""
    full = (mode or report_mode(config)) == "full"
    reports = sorted(config.stash.get(REPORTS_KEY, []), key=lambda r: r.title)
    return [(f"judge_eval: {r.title}", r.full if full and r.full else r.text) for r in reports]


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not active(config):
        return []
    s = settings(config)
    return [f"judge_eval: profile {s.profile_name or '(none)'}; study data {s.study_dir} (from {s.study_dir_from})"]


# --------------------------------------------------------------------------- gates as tests


def run_dir_of(s: Settings, profile: Any) -> Path | None:
    """The run directory a profile gates: ``data``; for the ``study`` profile, the study folder
    as --study-dir / JUDGE_EVAL_STUDY_DIR / the ini key choose it."""
    return s.study_dir if profile.name == "study" else profile.data


def gate_cases(s: Settings) -> list[tuple[str, str, str]]:
    """(profile, judge, threshold) for every profile that names a run directory: one case per
    gated judge and threshold set (the coverage gates ``max_missing`` and ``min_compared`` are on by default; score
    judges' keys too: a key that does not fit the judge's kind fails its case, naming the key to
    use), then one per profile for ``min_reference_coverage`` (also on by default), named after the
    reference, e.g. ``study:gpt_4:min_reference_coverage``, and one more after the
    ``score_reference`` of a profile that names one."""
    cases = []
    for name, profile in sorted(s.profiles.items()):
        if run_dir_of(s, profile) is None or profile.data is None:
            continue
        set_thresholds = [k for k, v in profile.thresholds.model_dump().items()
                          if v is not None and v is not False and k != "min_reference_coverage"]
        cases += [(name, judge, metric) for judge in profile.gated for metric in set_thresholds]
        if profile.thresholds.min_reference_coverage is not None and profile.gated:
            for reference in dict.fromkeys([profile.reference, profile.score_reference or profile.reference]):
                cases.append((name, reference, "min_reference_coverage"))
    return cases


@dataclass
class JudgeGate:
    """One gate of one judge of one profile; ``check()`` fails the test with the gate's message."""

    config: pytest.Config
    profile_name: str
    judge: str
    metric: str

    def check(self) -> None:
        from judge_eval.config.profiles import Thresholds
        from judge_eval.errors import JudgeEvalError
        from judge_eval.gating.gates import check_judge, reference_results

        s = settings(self.config)
        profile = s.profiles[self.profile_name]
        run_dir, metrics = self._metrics(s, profile)
        # This one threshold alone: every other one (the default-on coverage gates too) unset.
        alone = {name: None for name in Thresholds.model_fields}
        alone[self.metric] = getattr(profile.thresholds, self.metric)
        only = profile.model_copy(update={"thresholds": Thresholds(**alone)})
        if self.metric == "min_reference_coverage":  # per profile: self.judge is the (score) reference
            mine = [r for r in reference_results(metrics, only, run_dir=run_dir) if r.judge == self.judge]
            if not mine:
                kind = "pairwise" if self.judge == profile.reference else "pointwise"
                pytest.fail(f"profile {profile.name!r} names {self.judge!r} the reference of the {kind} items, but "
                            f"the run {run_dir} holds none; remove the key that names it (score_reference, or "
                            f"reference in favour of score_reference) from [tool.judge_eval.profiles.{profile.name}]",
                            pytrace=False)
            failures = [r.failure for r in mine if r.failure is not None]
        else:
            try:
                failures = check_judge(metrics, self.judge, only, run_dir=run_dir, reference=False)
            except JudgeEvalError as exc:  # e.g. a gated judge the run has no verdict by
                pytest.fail(str(exc), pytrace=False)
        if failures:
            pytest.fail("\n".join(f.message for f in failures), pytrace=False)

    def _metrics(self, s: Settings, profile: Any) -> tuple[Path, Any]:
        from judge_eval.core.store import read_run
        from judge_eval.errors import JudgeEvalError

        run_dir = run_dir_of(s, profile)
        cache = self.config.stash[GATE_CACHE_KEY]
        key = (profile.name, str(run_dir))
        if key not in cache:
            if not (run_dir / "test_qa_complete.jsonl").is_file():
                cache[key] = None
            else:
                try:
                    run = read_run(run_dir, require=("test",))
                    title = f"profile {profile.name}; gated: {', '.join(profile.gated)} ({profile.frame} frame)"
                    cache[key] = report_run(self.config, f"{profile.name} run {run_dir}", run.test, profile, title)
                except JudgeEvalError as exc:
                    cache[key] = exc
        result = cache[key]
        if result is None:
            if profile.name == "study":
                missing_data(self.config, "the study's data is missing", study_data_hint(s))
            missing_data(self.config, f"profile {profile.name}: no run at {run_dir}",
                         f"test_qa_complete.jsonl missing; set `data` of [tool.judge_eval.profiles.{profile.name}]")
        if isinstance(result, Exception):
            pytest.fail(str(result), pytrace=False)
        return run_dir, result


@pytest.fixture
def judge_gate(request: pytest.FixtureRequest) -> JudgeGate:
    """One release gate (profile, gated judge, threshold); the plugin makes one test of each."""
    if not hasattr(request, "param"):
        raise pytest.UsageError("judge_gate: no profile in pyproject.toml names a run directory (`data`) "
                                "with gated judges and thresholds, so there is no gate to run")
    profile, judge, metric = request.param
    return JudgeGate(request.config, profile, judge, metric)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not active(metafunc.config):
        return
    s = settings(metafunc.config)
    if "judge_gate" in metafunc.fixturenames:
        cases = gate_cases(s)
        if cases:
            metafunc.parametrize("judge_gate", cases, indirect=True, ids=[":".join(c) for c in cases])


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not active(config):
        return
    if _is_worker(config):
        return  # the controller prints and writes what the workers computed
    for cause, count in sorted(_missing_data_skips(terminalreporter.stats.get("skipped", [])).items()):
        terminalreporter.write_line(f"judge_eval: {count} test(s) skipped: {cause} "
                                    "(--judge-strict makes this an error)")
    for title, text in summary_sections(config):
        terminalreporter.write_sep("=", title)
        terminalreporter.write(text)
    reports = sorted(config.stash.get(REPORTS_KEY, []), key=lambda r: r.title)
    target = config.getoption("--judge-report-md") or config.getini("judge_eval_report_md")
    if target and reports:
        from judge_eval.core.store import atomic_write_bytes

        atomic_write_bytes(target, "\n".join(r.markdown or f"### {r.title}\n\n```\n{r.text}```\n"
                                             for r in reports).encode())
        terminalreporter.write_line(f"judge_eval: Markdown report written to {target}")

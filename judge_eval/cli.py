"""``judge-eval``: report on a run, gate it, fetch the study's data.

Exit status: 0 on success, 1 when a gate fails, 2 on bad input (with a message that says what
failed and how to fix it).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from judge_eval.errors import JudgeEvalError

if TYPE_CHECKING:  # the CLI module stays light: profiles (pydantic) load when a command runs
    from judge_eval.config.profiles import Profile
    from judge_eval.config.settings import Choice
    from judge_eval.core.metrics import RunMetrics
    from judge_eval.core.store import Run

PROG = "judge-eval"

#: The profile each command reads when ``--profile`` is not given.
DEFAULT_PROFILES = {"gate": "study", "compare": "study", "record": "local"}


# ---------------------------------------------------------------------------------------------
# Defaults, resolved in one place
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    """What a command runs with once its defaults are applied: the flag, else the profile's
    value (commands that take ``--profile``), else the built-in default."""

    profile: Profile | None
    reference: str
    seed: int
    resamples: int


def resolve(args: argparse.Namespace) -> Resolved:
    """The one place where the defaults of the reference judge, the bootstrap seed and
    resamples, and the profile are applied."""
    from judge_eval.core.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED

    profile = _load_profile(args) if args.command in DEFAULT_PROFILES else None
    reference = getattr(args, "reference", None)
    seed = getattr(args, "seed", None)
    resamples = getattr(args, "resamples", None)
    return Resolved(
        profile=profile,
        reference=reference or (profile.reference if profile else DEFAULT_REFERENCE),
        seed=seed if seed is not None else (profile.bootstrap_seed if profile else DEFAULT_SEED),
        resamples=resamples if resamples is not None else (profile.bootstrap_resamples if profile
                                                           else DEFAULT_RESAMPLES),
    )


def _load_profile(args: argparse.Namespace) -> Profile:
    from judge_eval.config.profiles import find_pyproject, load_profile
    from judge_eval.errors import ConfigError

    config = args.config or find_pyproject()
    if config is None:
        raise ConfigError("no pyproject.toml with [tool.judge_eval.profiles] at or above the current "
                          "folder; pass --config PATH")
    return load_profile(args.profile or DEFAULT_PROFILES[args.command], config, option="--profile")


def _study_dir(args: argparse.Namespace, profile: Profile) -> Choice:
    """The study's data folder, chosen as the pytest plugin chooses it: ``--study-dir``, then
    ``JUDGE_EVAL_STUDY_DIR``, then the ini key ``judge_eval_study_dir`` of the profile's
    pyproject.toml, then the ``study`` profile's ``data``, then ``../shared/seed_run``."""
    from judge_eval.config.profiles import load_profiles, read_pyproject
    from judge_eval.config.settings import STUDY_DIR_INI, ini_value, study_dir

    pyproject = profile.source
    return study_dir(flag=args.study_dir, flag_name="--study-dir",
                     ini=ini_value(read_pyproject(pyproject), STUDY_DIR_INI), root=pyproject.parent,
                     profiles=load_profiles(pyproject))


# ---------------------------------------------------------------------------------------------
# Numeric options, checked while parsing
# ---------------------------------------------------------------------------------------------

def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {value}")
        return value

    return parse


def _probability(text: str) -> float:
    """A float strictly between 0 and 1 (a significance level)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


# ---------------------------------------------------------------------------------------------
# Commands: each gets the parsed arguments and the resolved defaults, returns the exit status
# ---------------------------------------------------------------------------------------------

def _test_run(run_dir: Path) -> Run:
    """The run's test items only: report, gate, plot and compare never open the other files, so
    a broken train_qa.jsonl or run.json does not stop them."""
    from judge_eval.core.store import read_run

    return read_run(run_dir, require=("test",), parts=("test",))


def _run_and_metrics(run_dir: Path, s: Resolved) -> tuple[Run, RunMetrics]:
    from judge_eval.core.metrics import run_metrics

    run = _test_run(run_dir)
    return run, run_metrics(run.test, s.reference, seed=s.seed, resamples=s.resamples)


def cmd_report(args: argparse.Namespace, s: Resolved) -> int:
    from judge_eval.reporting.report import render

    _, metrics = _run_and_metrics(args.run_dir, s)
    sys.stdout.write(render(metrics, args.format))
    return 0


def cmd_gate(args: argparse.Namespace, s: Resolved) -> int:
    from judge_eval.gating.gates import check_run
    from judge_eval.reporting.report import render

    profile = s.profile
    assert profile is not None
    _, metrics = _run_and_metrics(args.run_dir, s)
    sys.stdout.write(render(metrics, "text"))
    failures = check_run(metrics, profile, run_dir=args.run_dir)
    print()
    for failure in failures:
        print(failure.message)
    gated = ", ".join(profile.gated)
    print(f"{'FAIL' if failures else 'PASS'}: profile {profile.name}, gated judge(s) {gated}, "
          f"{len(failures)} gate failure(s)")
    return 1 if failures else 0


def cmd_plot(args: argparse.Namespace, s: Resolved) -> int:
    from judge_eval.reporting.plot import plot_run

    run, metrics = _run_and_metrics(args.run_dir, s)
    out = plot_run(metrics, run.test, args.output, title=args.title, source=args.run_dir)
    print(f"wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace, s: Resolved) -> int:
    import json

    from judge_eval.gating.compare import compare_runs, render_comparison

    profile = s.profile
    assert profile is not None
    result = compare_runs(list(_test_run(args.old_run).test), list(_test_run(args.new_run).test),
                          reference=s.reference, gated=profile.gated, profile=profile,
                          old_path=str(args.old_run), new_path=str(args.new_run),
                          alpha=args.alpha, seed=s.seed, resamples=s.resamples)
    sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n" if args.format == "json"
                     else render_comparison(result))
    return 1 if result.fails else 0


def cmd_record(args: argparse.Namespace, s: Resolved) -> int:
    profile = s.profile
    assert profile is not None
    root = profile.source.parent
    study = _study_dir(args, profile)
    if args.dry_run:
        import tempfile

        from judge_eval.live.pipeline import Context, modes_from, planned_calls

        ctx = Context(profile=profile, cassette_root=root / "cassettes",
                      run_dir=Path(tempfile.gettempdir()), modes=modes_from(args.stage, "all"))
        rows = planned_calls(ctx)  # before any output: a profile without a pipeline is an error
        print(f"dry run of `judge-eval record --profile {profile.name}`: no call is made")
        if ctx.config.source == "study":
            print(f"  study data: {study.value} (from {study.origin})")
        for stage, calls, why in rows:
            print(f"  {stage:<18} {calls:<28} {why}")
        return 0

    import json

    from judge_eval.orchestration.rerecord import record

    summary = record(profile, cassette_root=root / "cassettes", run_dir=args.run_dir,
                     stage=args.stage, install=not args.no_install, project_root=root,
                     resume=args.resume, study_dir=study.value, concurrency=args.concurrency)
    print(json.dumps(summary, indent=2))
    print(f"cassettes: {summary['cassettes']}\nrun directory: {summary['run_dir']}\n"
          f"wall time: {summary['seconds']} s")
    return 0


def cmd_fetch_study(args: argparse.Namespace, s: Resolved) -> int:
    from judge_eval.orchestration.fetch_study import STUDY_BASE_URL, fetch_study

    dest = fetch_study(args.dest, base_url=args.base_url or STUDY_BASE_URL)
    print(f"fetched the study's four files into {dest} (sha256 verified)")
    return 0


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------

def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _add_command(sub: Any, name: str, func: Callable[[argparse.Namespace, Resolved], int], *, help: str,
                 example: str, description: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=textwrap.fill(description or help, 79), epilog=example,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _add_metric_options(p: argparse.ArgumentParser, *, profile_default: bool = False) -> None:
    where = "the profile's, else " if profile_default else ""
    p.add_argument("run_dir", type=Path, help="run directory (at least test_qa_complete.jsonl)")
    p.add_argument("--reference", default=None, help=f"reference judge name (default: {where}gpt_4)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help=f"bootstrap seed, an integer >= 0 (default: {where}0)")
    p.add_argument("--resamples", type=positive_int, default=None,
                   help=f"bootstrap resamples, an integer >= 1 (default: {where}2000)")


def _add_profile_options(p: argparse.ArgumentParser, command: str, what: str) -> None:
    default = DEFAULT_PROFILES[command]
    p.add_argument("--profile", default=None, help=f"{what} (default: {default})")
    p.add_argument("--config", type=Path, default=None,
                   help="pyproject.toml holding the profiles (default: the nearest one above the current "
                        "folder)")


def _parser() -> argparse.ArgumentParser:
    from judge_eval.live.pipeline import STAGES  # lazy: `import judge_eval.cli` stays light

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    report = _add_command(sub, "report", cmd_report, help="print every judge's agreement with the reference",
                          example=_example("judge-eval report ../shared/seed_run --format markdown"))
    _add_metric_options(report)
    report.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    report.add_argument("--json", dest="format", action="store_const", const="json",
                        help="alias of --format json")

    gate = _add_command(sub, "gate", cmd_gate, help="check a run against a profile's release thresholds",
                        example=_example("judge-eval gate ../shared/seed_run --profile study"))
    _add_metric_options(gate, profile_default=True)
    _add_profile_options(gate, "gate", "profile name")

    plot = _add_command(sub, "plot", cmd_plot,
                        help="PNG: agreement per judge with its interval, and confusion matrices",
                        example=_example("judge-eval plot ../shared/seed_run -o agreement.png"))
    _add_metric_options(plot)
    plot.add_argument("-o", "--output", type=Path, required=True, help="the PNG file to write")
    plot.add_argument("--title", default="", help="a title over the figure")

    cmp = _add_command(sub, "compare", cmd_compare,
                       help="what changed between two runs of the same test items; exit 1 when a gated "
                            "judge's agreement drops significantly or a passing gate now fails",
                       example=_example("judge-eval compare OLD_RUN NEW_RUN --profile study --alpha 0.01"))
    cmp.add_argument("old_run", type=Path)
    cmp.add_argument("new_run", type=Path)
    cmp.add_argument("--reference", default=None, help="reference judge (default: the profile's, else gpt_4)")
    _add_profile_options(cmp, "compare", "profile whose gated judges and gates apply")
    cmp.add_argument("--alpha", type=_probability, default=0.05,
                     help="significance level, strictly between 0 and 1 (default 0.05)")
    cmp.add_argument("--format", choices=("text", "json"), default="text")

    rec = _add_command(
        sub, "record", cmd_record,
        help="re-record a profile's cassettes against real servers (starts local llama.cpp servers for "
             "the local profile)",
        example=(f"stages, in data-flow order (re-recording one re-records every stage after it):\n"
                 f"  {' -> '.join(STAGES)}\n\n"
                 + _example("judge-eval record --profile local --stage teacher --dry-run")))
    _add_profile_options(rec, "record", "profile with a pipeline")
    rec.add_argument("--stage", choices=STAGES, default=None,
                     help="re-record from this stage on (default: all stages)")
    rec.add_argument("--run-dir", type=Path, default=None, help="where the recorded run goes (default: a "
                     "new temporary folder)")
    rec.add_argument("--no-install", action="store_true", help="do not install the recording packages")
    rec.add_argument("--dry-run", action="store_true", help="count the calls a recording would make, make none")
    rec.add_argument("--concurrency", type=positive_int, default=None, help="items in flight at once, an "
                     "integer >= 1 (default: the profile's pipeline.concurrency, else 1); bounded by the "
                     "provider's rate limit")
    rec.add_argument("--resume", action="store_true", help="continue an interrupted recording in --run-dir: "
                     "no finished call is made again")
    rec.add_argument("--study-dir", type=Path, default=None, help="the study's run files, for profiles that "
                     "distil it (default: JUDGE_EVAL_STUDY_DIR, else the ini key judge_eval_study_dir, else "
                     "the study profile's data, else ../shared/seed_run)")

    fetch = _add_command(sub, "fetch-study", cmd_fetch_study,
                         help="download the published study's run files and verify their sha256",
                         example=_example("judge-eval fetch-study ~/data/study"))
    fetch.add_argument("dest", type=Path)
    fetch.add_argument("--base-url", default=None, help="where the four files are (default: the study's "
                       "repository at its pinned commit)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args, resolve(args))
    except JudgeEvalError as exc:
        message = f"{PROG}: error: {exc}\n"
        # A path or value that is not valid text (undecodable bytes in a file name) must not
        # turn the message into a UnicodeEncodeError: such characters are written escaped.
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        sys.stderr.write(message.encode(encoding, "backslashreplace").decode(encoding, "replace"))
        return 2


if __name__ == "__main__":
    sys.exit(main())

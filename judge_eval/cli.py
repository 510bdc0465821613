"""``judge-eval``: report on a run, gate it, fetch the study's data.

Exit status: 0 on success, 1 when a gate fails, 2 on bad input (with a message that says what
failed and how to fix it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from judge_eval.errors import JudgeEvalError


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="run directory (at least test_qa_complete.jsonl)")
    p.add_argument("--reference", default=None,
                   help="reference judge name (default: the profile's, else gpt_4)")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the profile's, else 0)")
    p.add_argument("--resamples", type=int, default=None,
                   help="bootstrap resamples (default: the profile's, else 2000)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="judge-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    report = sub.add_parser("report", help="print every judge's agreement with the reference")
    _add_metric_options(report)
    report.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    report.add_argument("--json", dest="format", action="store_const", const="json",
                        help="alias of --format json")

    gate = sub.add_parser("gate", help="check a run against a profile's release thresholds")
    _add_metric_options(gate)
    gate.add_argument("--profile", default="study", help="profile name (default: study)")
    gate.add_argument("--config", type=Path, default=None,
                      help="pyproject.toml holding the profiles (default: the nearest one above the "
                           "current folder)")

    plot = sub.add_parser("plot", help="PNG: agreement per judge with its interval, and confusion matrices")
    _add_metric_options(plot)
    plot.add_argument("-o", "--output", type=Path, required=True, help="the PNG file to write")
    plot.add_argument("--title", default="", help="a title over the figure")

    cmp = sub.add_parser("compare", help="what changed between two runs of the same test items; exit 1 when a "
                         "gated judge's agreement drops significantly or a passing gate now fails")
    cmp.add_argument("old_run", type=Path)
    cmp.add_argument("new_run", type=Path)
    cmp.add_argument("--reference", default=None, help="reference judge (default: the profile's, else gpt_4)")
    cmp.add_argument("--profile", default="study", help="profile whose gated judges and gates apply (default: study)")
    cmp.add_argument("--config", type=Path, default=None, help="pyproject.toml holding the profiles")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    cmp.add_argument("--format", choices=("text", "json"), default="text")

    rec = sub.add_parser("record", help="re-record a profile's cassettes against real servers (starts "
                         "local llama.cpp servers for the local profile)")
    rec.add_argument("--profile", default="local", help="profile with a pipeline (default: local)")
    rec.add_argument("--stage", default=None, help="re-record from this stage on (default: all stages)")
    rec.add_argument("--run-dir", type=Path, default=None, help="where the recorded run goes (default: a "
                     "new temporary folder)")
    rec.add_argument("--no-install", action="store_true", help="do not install the recording packages")
    rec.add_argument("--dry-run", action="store_true", help="count the calls a recording would make, make none")
    rec.add_argument("--concurrency", type=int, default=None, help="items in flight at once (default: the "
                     "profile's pipeline.concurrency, else 1); bounded by the provider's rate limit")
    rec.add_argument("--resume", action="store_true", help="continue an interrupted recording in --run-dir: "
                     "no finished call is made again")
    rec.add_argument("--config", type=Path, default=None, help="pyproject.toml holding the profiles")
    rec.add_argument("--study-dir", type=Path, default=None, help="the study's run files, for profiles that "
                     "distil it (default: the study profile's data, ../shared/seed_run)")

    fetch = sub.add_parser("fetch-study", help="download the published study's run files and verify "
                           "their sha256")
    fetch.add_argument("dest", type=Path)
    fetch.add_argument("--base-url", default=None, help="where the four files are (default: the study's "
                       "repository at its pinned commit)")
    return parser


def _metrics(args: argparse.Namespace, reference: str, seed: int, resamples: int):
    from judge_eval.core.metrics import run_metrics
    from judge_eval.core.store import read_run

    run = read_run(args.run_dir, require=("test",))
    return run_metrics(run.test, reference, seed=seed, resamples=resamples)


def _profile(args: argparse.Namespace):
    from judge_eval.config.profiles import find_pyproject, load_profile
    from judge_eval.errors import ConfigError

    config = args.config or find_pyproject()
    if config is None:
        raise ConfigError("no pyproject.toml with [tool.judge_eval.profiles] at or above the current "
                          "folder; pass --config PATH")
    return load_profile(args.profile, config)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "report":
            from judge_eval.core.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED
            from judge_eval.reporting.report import render

            metrics = _metrics(args, args.reference or DEFAULT_REFERENCE,
                               DEFAULT_SEED if args.seed is None else args.seed,
                               DEFAULT_RESAMPLES if args.resamples is None else args.resamples)
            sys.stdout.write(render(metrics, args.format))
            return 0
        if args.command == "gate":
            from judge_eval.gating.gates import check_run
            from judge_eval.reporting.report import render

            profile = _profile(args)
            metrics = _metrics(args, args.reference or profile.reference,
                               profile.bootstrap_seed if args.seed is None else args.seed,
                               profile.bootstrap_resamples if args.resamples is None else args.resamples)
            sys.stdout.write(render(metrics, "text"))
            failures = check_run(metrics, profile, run_dir=args.run_dir)
            print()
            for failure in failures:
                print(failure.message)
            gated = ", ".join(profile.gated)
            print(f"{'FAIL' if failures else 'PASS'}: profile {profile.name}, gated judge(s) {gated}, "
                  f"{len(failures)} gate failure(s)")
            return 1 if failures else 0
        if args.command == "plot":
            from judge_eval.core.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED
            from judge_eval.reporting.plot import plot_run
            from judge_eval.core.store import read_run

            metrics = _metrics(args, args.reference or DEFAULT_REFERENCE,
                               DEFAULT_SEED if args.seed is None else args.seed,
                               DEFAULT_RESAMPLES if args.resamples is None else args.resamples)
            out = plot_run(metrics, read_run(args.run_dir).test, args.output, title=args.title)
            print(f"wrote {out}")
            return 0
        if args.command == "compare":
            import json

            from judge_eval.gating.compare import compare_runs, load_items, render_comparison

            profile = _profile(args)
            result = compare_runs(load_items(args.old_run), load_items(args.new_run),
                                  reference=args.reference or profile.reference, gated=profile.gated,
                                  profile=profile, old_path=str(args.old_run), new_path=str(args.new_run),
                                  alpha=args.alpha, seed=profile.bootstrap_seed,
                                  resamples=profile.bootstrap_resamples)
            sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n" if args.format == "json"
                             else render_comparison(result))
            return 1 if result.fails else 0
        if args.command == "record":
            import json

            from judge_eval.orchestration.rerecord import record

            from judge_eval.config.profiles import load_profiles

            profile = _profile(args)
            root = profile.source.parent
            study_dir = args.study_dir or load_profiles(profile.source)["study"].data
            if args.dry_run:
                import tempfile

                from judge_eval.live.pipeline import Context, modes_from, planned_calls

                ctx = Context(profile=profile, cassette_root=root / "cassettes",
                              run_dir=Path(tempfile.gettempdir()), modes=modes_from(args.stage, "all"))
                print(f"dry run of `judge-eval record --profile {profile.name}`: no call is made")
                for stage, calls, why in planned_calls(ctx):
                    print(f"  {stage:<18} {calls:<28} {why}")
                return 0
            summary = record(profile, cassette_root=root / "cassettes", run_dir=args.run_dir,
                             stage=args.stage, install=not args.no_install, project_root=root,
                             resume=args.resume, study_dir=study_dir, concurrency=args.concurrency)
            print(json.dumps(summary, indent=2))
            print(f"cassettes: {summary['cassettes']}\nrun directory: {summary['run_dir']}\n"
                  f"wall time: {summary['seconds']} s")
            return 0
        if args.command == "fetch-study":
            from judge_eval.orchestration.fetch_study import STUDY_BASE_URL, fetch_study

            dest = fetch_study(args.dest, base_url=args.base_url or STUDY_BASE_URL)
            print(f"fetched the study's four files into {dest} (sha256 verified)")
            return 0
    except JudgeEvalError as exc:
        print(f"judge-eval: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse makes this unreachable


if __name__ == "__main__":
    sys.exit(main())

"""``judge-eval``: report on a run, gate it, import other teams' data, fetch the study's data.

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

#: The profile each command reads when ``--profile`` is not given (``compare`` reads the one its
#: runs' run.json name: ``_compare_profile``).
DEFAULT_PROFILES = {"gate": "study", "record": "local"}


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
    profile_origin: str = ""  # where the profile's name came from, when a command shows it (compare)
    score_reference: str | None = None  # the score judges' reference (None: ``reference``)
    score_interval: str = "exact_agreement"  # the score metric whose bootstrap interval is computed
    choice_margin: float = 0.0  # the ``<judge>@choice`` margin: the profile's ``choice_margin``, else 0.0


def resolve(args: argparse.Namespace) -> Resolved:
    """The one place where the defaults of the reference judge, the bootstrap seed and
    resamples, and the profile are applied."""
    from judge_eval.core.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED

    origin = ""
    if args.command == "compare":
        profile, origin = _compare_profile(args)
    else:
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
        profile_origin=origin,
        **_score_options(args, profile),
    )


def _score_options(args: argparse.Namespace, profile: Profile | None) -> dict[str, Any]:
    """The score judges' reference (``--score-reference``, else the profile's ``score_reference``,
    else None: the reference), interval metric (the profile's ``score_interval``) and the margin of
    the ``<judge>@choice`` verdicts (the profile's ``choice_margin``, else 0.0)."""
    score_reference = getattr(args, "score_reference", None) or (profile.score_reference if profile else None)
    return {"score_reference": score_reference,
            "score_interval": profile.score_interval if profile else "exact_agreement",
            "choice_margin": profile.choice_margin if profile else 0.0}


def _load_profile(args: argparse.Namespace) -> Profile:
    from judge_eval.config.profiles import find_pyproject, load_profile
    from judge_eval.errors import ConfigError

    config = args.config or find_pyproject()
    if config is None:
        raise ConfigError("no pyproject.toml with [tool.judge_eval.profiles] at or above the current "
                          "folder; pass --config PATH")
    return load_profile(args.profile or DEFAULT_PROFILES[args.command], config, option="--profile")


def _compare_profile(args: argparse.Namespace) -> tuple[Profile, str]:
    """``--profile`` when given (run.json is then not read), else the profile the runs' run.json
    name (``gating.compare.profile_from_runs``); with where the name came from."""
    from judge_eval.config.profiles import find_pyproject, load_profiles
    from judge_eval.errors import ConfigError
    from judge_eval.gating.compare import profile_from_runs

    if args.profile:
        return _load_profile(args), "--profile"
    config = args.config or find_pyproject()
    if config is None:
        raise ConfigError("no pyproject.toml with [tool.judge_eval.profiles] at or above the current "
                          "folder; pass --config PATH (or --profile NAME with it)")
    profiles = load_profiles(config)
    choice = profile_from_runs(args.old_run, args.new_run, known=sorted(profiles))
    if choice.name not in profiles:
        raise ConfigError(f"profile {choice.name!r} (from {choice.origin}) is not defined in "
                          f"{Path(config).resolve()}; known profiles: {', '.join(sorted(profiles)) or 'none'}. "
                          f"Pass --config PATH of the project that recorded the runs, or pick a profile with "
                          f"--profile")
    return profiles[choice.name], choice.origin


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
    return run, run_metrics(run.test, s.reference, seed=s.seed, resamples=s.resamples,
                            score_reference=s.score_reference, score_interval=s.score_interval,
                            choice_margin=s.choice_margin)


def _metrics(run_dir: Path, s: Resolved) -> RunMetrics:
    """The metrics of the run's test items, parsed a line at a time into a compact table (report,
    gate: 1,000,000 items take about 1 GB, not 3 GB per 100,000; gating.compare.load_metrics_input)."""
    from judge_eval.core.metrics import run_metrics
    from judge_eval.gating.compare import load_metrics_input

    items, scores = load_metrics_input(run_dir)
    return run_metrics(items, s.reference, seed=s.seed, resamples=s.resamples, scores=scores,
                       score_reference=s.score_reference, score_interval=s.score_interval,
                       choice_margin=s.choice_margin)


def cmd_report(args: argparse.Namespace, s: Resolved) -> int:
    """``text`` (default): the compact table; ``study``: every metric in both frames at full
    precision, the study's layout; ``markdown``: the compact table, then every table; ``json``.
    With ``--profile``, the table is in the profile's frame and tie mode, its gated judges are
    marked, and one PASS/FAIL line per gate follows (the exit status stays 0: that is ``gate``)."""
    from judge_eval.reporting.report import render

    profile = None
    if args.profile:  # report takes no default profile: load the one named, its defaults under the flags
        profile = _load_profile(args)
        s = Resolved(profile=profile, reference=args.reference or profile.reference,
                     seed=args.seed if args.seed is not None else profile.bootstrap_seed,
                     resamples=args.resamples if args.resamples is not None else profile.bootstrap_resamples,
                     **_score_options(args, profile))
    metrics = _metrics(args.run_dir, s)
    gates = None
    if profile is not None:
        from judge_eval.gating.gates import gate_results

        gates = gate_results(metrics, profile, run_dir=args.run_dir)
    sys.stdout.write(render(metrics, args.format, frame=args.frame or (profile.frame if profile else "corrected"),
                            ties=args.ties or (profile.ties if profile else "with"),
                            gated=profile.gated if profile else (), gates=gates))
    return 0


def cmd_gate(args: argparse.Namespace, s: Resolved) -> int:
    """The compact table in the profile's frame and tie mode (``--format study``: the study's full
    layout instead), one PASS/FAIL line per gate, then each failure's full message and the verdict;
    exit 1 when any gate fails."""
    from judge_eval.gating.gates import check_run, gate_results
    from judge_eval.reporting.report import gate_line, render

    profile = s.profile
    assert profile is not None
    metrics = _metrics(args.run_dir, s)
    gates = gate_results(metrics, profile, run_dir=args.run_dir)
    if args.format == "study":
        sys.stdout.write(render(metrics, "study", ties=profile.ties) + "\n"
                         + "".join(f"{gate_line(r)}\n" for r in gates))
    else:
        sys.stdout.write(render(metrics, "text", frame=profile.frame, ties=profile.ties, gated=profile.gated,
                                gates=gates))
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

    from judge_eval.gating.compare import compare_runs, load_metrics_input, render_comparison

    profile = s.profile
    assert profile is not None
    (old, old_scores), (new, new_scores) = load_metrics_input(args.old_run), load_metrics_input(args.new_run)
    result = compare_runs(old, new, reference=s.reference, gated=profile.gated, profile=profile,
                          old_path=str(args.old_run), new_path=str(args.new_run),
                          alpha=args.alpha, seed=s.seed, resamples=s.resamples, profile_origin=s.profile_origin,
                          old_scores=old_scores, new_scores=new_scores, score_reference=s.score_reference,
                          score_interval=s.score_interval, choice_margin=s.choice_margin)
    sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n" if args.format == "json"
                     else render_comparison(result))
    return 1 if result.fails else 0


def cmd_record(args: argparse.Namespace, s: Resolved) -> int:
    profile = s.profile
    assert profile is not None
    root = profile.source.parent
    study = _study_dir(args, profile)
    if args.batch and profile.pipeline is not None:  # this recording only: replays follow the cassettes
        profile = profile.model_copy(update={"pipeline": profile.pipeline.model_copy(update={"batch": True})})
    if args.dry_run:
        import tempfile

        from judge_eval.live.pipeline import Context, modes_from, planned_calls, planned_prices

        ctx = Context(profile=profile, cassette_root=root / "cassettes",
                      run_dir=Path(tempfile.gettempdir()), modes=modes_from(args.stage, "all"))
        rows = planned_calls(ctx)  # before any output: a profile without a pipeline is an error
        print(f"dry run of `judge-eval record --profile {profile.name}`: no call is made")
        if ctx.config.source == "study":
            print(f"  study data: {study.value} (from {study.origin})")
        for stage, calls, why in rows:
            print(f"  {stage:<18} {calls:<28} {why}")
        prices = planned_prices(ctx)
        if prices:
            used = "batch" if ctx.config.batch else "online"
            print(f"  prices, USD per 1M prompt / completion tokens (pipeline.prices); batch = online x "
                  f"{ctx.config.batch_discount:g} (pipeline.batch_discount); judging stages billed: {used}")
            for model, online, batch in prices:
                print(f"    {model:<24} online {online:<16} batch {batch}")
        return 0

    import json

    from judge_eval.orchestration.rerecord import record

    summary = record(profile, cassette_root=root / "cassettes", run_dir=args.run_dir,
                     stage=args.stage, install=not args.no_install, project_root=root,
                     resume=args.resume, study_dir=study.value, concurrency=args.concurrency,
                     keep_workdir=args.keep_workdir)
    print(json.dumps(summary, indent=2))
    print(f"cassettes: {summary['cassettes']}\nrun directory: {summary['run_dir']} ({summary['workdir']})\n"
          f"wall time: {summary['seconds']} s")
    return 0


def cmd_canary(args: argparse.Namespace, s: Resolved) -> int:
    """Re-ask a seeded sample of the profile's recorded judging stage live; the table, what
    changed, then PASS/FAIL. Exit 1 when a judge drifted or a gated judge could not be checked, 2
    when nothing at all was compared (``judge_eval.orchestration.canary``)."""
    from judge_eval.orchestration.canary import canary, render

    profile = _load_profile(args)
    study = _study_dir(args, profile).value if profile.pipeline is not None and profile.pipeline.source == "study" \
        else None
    result = canary(profile, sample=args.sample, seed=args.seed, out_dir=args.out, study_dir=study,
                    judges=args.judges, cassette_root=profile.source.parent / "cassettes")
    sys.stdout.write(render(result))
    if result.exit_status == 2:
        raise JudgeEvalError(f"canary of profile {profile.name}: nothing was compared (every judge skipped, or "
                             f"none of its items could be sent or answered; reasons above). Check the servers, "
                             f"the keys and the base URLs, or ask fewer judges with --judge")
    return result.exit_status


def cmd_fetch_study(args: argparse.Namespace, s: Resolved) -> int:
    from judge_eval.orchestration.fetch_study import STUDY_BASE_URL, fetch_study

    dest = fetch_study(args.dest, base_url=args.base_url or STUDY_BASE_URL)
    print(f"fetched the study's four files into {dest} (sha256 verified)")
    return 0


#: The options of ``judge-eval import`` each format takes (dest names); any other is refused.
IMPORT_OPTIONS = {
    "pairs": {"question", "answer_a", "answer_b", "model_a", "model_b", "id_column", "split_column",
              "source_column", "judges", "verdicts", "map_name", "config"},
    "preference": {"question", "chosen", "rejected", "id_column", "split_column", "source_column", "order_seed"},
    "scores": {"question", "answer_column", "model_column", "reference_answer", "id_column", "split_column",
               "source_column", "judges", "verdicts", "scale", "map_name", "config"},
    "mt-bench-human": set(),
    "mt-bench-gpt4-pair": {"questions", "answers", "into", "inconsistent_as_tie"},
}
_IMPORT_FLAGS = {"question": "--question", "answer_a": "--answer-a", "answer_b": "--answer-b",
                 "model_a": "--model-a", "model_b": "--model-b", "id_column": "--id", "split_column": "--split",
                 "source_column": "--source", "judges": "--judge", "verdicts": "--verdicts", "map_name": "--map",
                 "config": "--config", "chosen": "--chosen", "rejected": "--rejected", "order_seed": "--seed",
                 "questions": "--questions", "answers": "--answers", "into": "--into",
                 "inconsistent_as_tie": "--inconsistent-as-tie", "answer_column": "--answer",
                 "model_column": "--model", "reference_answer": "--reference-answer", "scale": "--scale"}


def _import_map(args: argparse.Namespace, fmt: str) -> Any:
    """``--map NAME``'s table of format ``fmt`` (pairs, scores), or None without ``--map``."""
    from judge_eval.config.import_maps import load_import_map
    from judge_eval.config.profiles import find_pyproject
    from judge_eval.errors import ConfigError

    if not args.map_name:
        return None
    config = args.config or find_pyproject()
    if config is None:
        raise ConfigError("--map: no pyproject.toml with [tool.judge_eval] at or above the current folder; "
                          "pass --config PATH")
    return load_import_map(args.map_name, config, fmt)


def _pairs_map(args: argparse.Namespace) -> Any:
    """The column map of ``import pairs``: ``--map NAME``'s table (else the defaults), then every
    flag given on top of it."""
    from judge_eval.config.import_maps import PairsMap
    from judge_eval.importing.tabular import parse_judges, parse_verdicts

    cmap = _import_map(args, "pairs") or PairsMap()
    update: dict[str, Any] = {key: getattr(args, dest) for key, dest in (
        ("question", "question"), ("answer_a", "answer_a"), ("answer_b", "answer_b"), ("model_a", "model_a"),
        ("model_b", "model_b"), ("id", "id_column"), ("split", "split_column"), ("source", "source_column"))
        if getattr(args, dest) is not None}
    if args.judges:
        update["judges"] = {**cmap.judges, **parse_judges(args.judges)}
    if args.verdicts is not None:
        update["verdicts"] = parse_verdicts(args.verdicts)
    return cmap.model_copy(update=update)


def _scores_map(args: argparse.Namespace) -> Any:
    """The column map of ``import scores``: ``--map NAME``'s table (``format = "scores"``; else
    the defaults), then every flag given on top of it."""
    from judge_eval.config.import_maps import ScoresMap
    from judge_eval.importing.scores_import import parse_score_verdicts, scale_option
    from judge_eval.importing.tabular import parse_judges

    cmap = _import_map(args, "scores") or ScoresMap(format="scores")
    update: dict[str, Any] = {key: getattr(args, dest) for key, dest in (
        ("question", "question"), ("answer", "answer_column"), ("model", "model_column"),
        ("reference_answer", "reference_answer"), ("id", "id_column"), ("split", "split_column"),
        ("source", "source_column")) if getattr(args, dest) is not None}
    if args.judges:
        update["judges"] = {**cmap.judges, **parse_judges(args.judges)}
    if args.verdicts is not None:
        update["verdicts"] = parse_score_verdicts(args.verdicts)
    if args.scale is not None:
        update["scale"] = scale_option(args.scale)
    return cmap.model_copy(update=update)


def cmd_import(args: argparse.Namespace, s: Resolved) -> int:
    from judge_eval.importing.output import check_out_dir, describe, write_import

    given = [dest for dest in _IMPORT_FLAGS
             if not (getattr(args, dest) is None or getattr(args, dest) is False or getattr(args, dest) == [])]
    foreign = [_IMPORT_FLAGS[dest] for dest in given if dest not in IMPORT_OPTIONS[args.format]]
    if foreign:
        raise JudgeEvalError(f"option(s) {', '.join(foreign)} do not apply to format {args.format}; see "
                             "judge-eval import --help")
    check_out_dir(args.out_dir)  # before reading a large source
    if args.format == "pairs":
        from judge_eval.importing.tabular import import_pairs

        result = import_pairs(args.src, _pairs_map(args), map_name=args.map_name)
    elif args.format == "scores":
        from judge_eval.importing.scores_import import import_scores

        result = import_scores(args.src, _scores_map(args), map_name=args.map_name,
                               verdicts_from="--verdicts" if args.verdicts is not None else None)
    elif args.format == "preference":
        from judge_eval.importing.tabular import import_preference

        result = import_preference(args.src, prompt=args.question or "prompt", chosen=args.chosen or "chosen",
                                   rejected=args.rejected or "rejected", id_column=args.id_column,
                                   split=args.split_column, source=args.source_column,
                                   seed=args.order_seed if args.order_seed is not None else 0)
    elif args.format == "mt-bench-human":
        from judge_eval.importing.mt_bench import import_human

        result = import_human(args.src)
    else:
        from judge_eval.importing.mt_bench import import_gpt4_pair

        result = import_gpt4_pair(args.src, questions=args.questions, answers=args.answers, into=args.into,
                                  inconsistent_as_tie=args.inconsistent_as_tie)
    out = write_import(result, args.out_dir)
    print(describe(result, out))
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
    p.add_argument("--score-reference", default=None, metavar="NAME",
                   help="the score judges' reference, when the run holds pairwise and pointwise items (default: "
                        "the profile's score_reference, if a profile is read, else the reference)")


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
    report.add_argument("--format", choices=("text", "study", "json", "markdown"), default="text",
                        help="text (default): one compact table, 3 significant digits; study: every metric in "
                             "both frames at full precision, the study's layout; json: every metric, full "
                             "precision; markdown: the compact table, then every table")
    report.add_argument("--json", dest="format", action="store_const", const="json",
                        help="alias of --format json")
    report.add_argument("--frame", choices=("study", "corrected"), default=None,
                        help="the frame of the compact table (default: the profile's, else corrected)")
    report.add_argument("--ties", choices=("with", "without"), default=None,
                        help="the tie mode the table (and the study layout) shows: with (MT-Bench S1) or "
                             "without (S2) (default: the profile's, else with)")
    report.add_argument("--profile", default=None,
                        help="mark this profile's gated judges and add one PASS/FAIL line per gate (its "
                             "reference, frame and tie mode are the defaults; exit status 0: see gate)")
    report.add_argument("--config", type=Path, default=None,
                        help="pyproject.toml holding the profiles (default: the nearest one above the current "
                             "folder)")

    gate = _add_command(sub, "gate", cmd_gate, help="check a run against a profile's release thresholds",
                        example=_example("judge-eval gate ../shared/seed_run --profile study"))
    _add_metric_options(gate, profile_default=True)
    _add_profile_options(gate, "gate", "profile name")
    gate.add_argument("--format", choices=("text", "study"), default="text",
                      help="text (default): the compact table; study: every metric in both frames at full "
                           "precision, the study's layout; either way one PASS/FAIL line per gate follows")

    plot = _add_command(sub, "plot", cmd_plot,
                        help="PNG: agreement per judge with its interval, and confusion matrices",
                        example=_example("judge-eval plot ../shared/seed_run -o agreement.png"))
    _add_metric_options(plot)
    plot.add_argument("-o", "--output", type=Path, required=True, help="the PNG file to write")
    plot.add_argument("--title", default="", help="a title over the figure")

    cmp = _add_command(sub, "compare", cmd_compare,
                       help="what changed between two runs of the same test items; exit 1 when a gated "
                            "judge's agreement drops or its conclusive verdicts fall significantly, its parse "
                            "failures or errors exceed the profile's maximum, or a passing gate now fails",
                       example=_example("judge-eval compare OLD_RUN NEW_RUN       # the profile their run.json name",
                                        "judge-eval compare OLD_RUN NEW_RUN --profile study --alpha 0.01"))
    cmp.add_argument("old_run", type=Path)
    cmp.add_argument("new_run", type=Path)
    cmp.add_argument("--reference", default=None, help="reference judge (default: the profile's)")
    cmp.add_argument("--score-reference", default=None, metavar="NAME",
                     help="the score judges' reference, when the runs hold pairwise and pointwise items (default: "
                          "the profile's score_reference, else the reference)")
    cmp.add_argument("--profile", default=None,
                     help="profile whose reference, gated judges, gates and thresholds apply (default: the one "
                          "the runs' run.json name; required when they name different ones or none)")
    cmp.add_argument("--config", type=Path, default=None,
                     help="pyproject.toml holding the profiles (default: the nearest one above the current "
                          "folder)")
    cmp.add_argument("--alpha", type=_probability, default=0.05,
                     help="significance level of both exact tests (agreement, conclusive verdicts), strictly "
                          "between 0 and 1 (default 0.05)")
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
    rec.add_argument("--batch", action="store_true", help="judging stages (teacher, students) through the "
                     "provider's Batch API, as pipeline.batch = true, for this recording (OpenAI: half price, "
                     "results within 24 h)")
    rec.add_argument("--concurrency", type=positive_int, default=None, help="items in flight at once, an "
                     "integer >= 1 (default: the profile's pipeline.concurrency, else 1); bounded by the "
                     "provider's rate limit")
    rec.add_argument("--resume", action="store_true", help="continue an interrupted recording in --run-dir: "
                     "no finished call is made again")
    rec.add_argument("--keep-workdir", action="store_true", help="keep the temporary work folder (the run "
                     "directory made when --run-dir is not given: server logs, adapter, journals) after a "
                     "recording that succeeded; its path and size are printed either way")
    rec.add_argument("--study-dir", type=Path, default=None, help="the study's run files, for profiles that "
                     "distil it (default: JUDGE_EVAL_STUDY_DIR, else the ini key judge_eval_study_dir, else "
                     "the study profile's data, else ../shared/seed_run)")

    can = _add_command(
        sub, "canary", cmd_canary,
        help="re-ask a seeded sample of a profile's recorded judging stage live (teacher and students) and "
             "exit 1 when a judge's verdicts moved more than chance allows",
        description="re-ask a seeded sample of the test items of a profile's recorded judging stage live, teacher "
                    "and students. Each request is rebuilt by the stage's own code and checked against the "
                    "cassette first (a mismatch is reported, not sent). Per judge: items compared, changed "
                    "items, share unchanged, and an exact McNemar test on agreement with the reference's recorded "
                    "verdicts. Exit 1 when a test is significant (the profile's canary.alpha), a share unchanged "
                    "is below canary.min_unchanged, or a gated judge could not be checked; exit 2 when nothing "
                    "could be compared. The cassettes are never written.",
        example=_example("judge-eval canary --profile openai --sample 20 --seed 0 --out canary-run  # keys in the env"))
    can.add_argument("--profile", required=True, help="profile with a recorded pipeline")
    can.add_argument("--config", type=Path, default=None,
                     help="pyproject.toml holding the profiles (default: the nearest one above the current folder)")
    can.add_argument("--sample", type=positive_int, required=True, metavar="N",
                     help="test items to re-ask, an integer >= 1 (more than the recording has: all of them)")
    can.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                     help="seed of the sample, an integer >= 0 (default 0: the same items every run)")
    can.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="the canary's run directory, new or empty (default: a new temporary folder, printed)")
    can.add_argument("--judge", dest="judges", action="append", default=None, metavar="NAME",
                     help="re-ask only this judge; repeat for each (default: teacher and both students)")
    can.add_argument("--study-dir", type=Path, default=None, help="the study's run files, for profiles that "
                     "distil it (default: JUDGE_EVAL_STUDY_DIR, else the ini key judge_eval_study_dir, else "
                     "the study profile's data, else ../shared/seed_run)")

    imp = _add_command(
        sub, "import", cmd_import,
        help="turn another team's judge data into a run directory (pairs, scores, preference, MT-Bench)",
        description="turn another team's judge data into a run directory: test_qa_complete.jsonl (and "
                    "train_qa.jsonl for train rows), every item with an explicit id, and run.json naming the "
                    "source and the options. A malformed source names file, line and field, and nothing is "
                    "written.",
        example=_example(
            "judge-eval import pairs verdicts.csv runs/mine --question prompt --answer-a response_a \\",
            "    --answer-b response_b --judge teacher=gpt4 --judge candidate=judge \\",
            "    --verdicts \"A=first,B=second,tie=tie\"",
            "judge-eval import pairs verdicts.jsonl runs/mine --map mine      # [tool.judge_eval.imports.mine]",
            "judge-eval import scores ratings.csv runs/ratings --question query --answer response \\",
            "    --judge gpt4=gpt4_score --judge mine=my_score --scale 1-5 --verdicts \"n/a=missing\"",
            "judge-eval import preference prefs.jsonl runs/prefs --seed 0",
            "judge-eval import mt-bench-human human_judgments.jsonl runs/mt-bench",
            "judge-eval import mt-bench-gpt4-pair gpt-4_pair.jsonl runs/mt-bench-gpt4 --into runs/mt-bench",
            "judge-eval import mt-bench-gpt4-pair gpt-4_pair.jsonl runs/gpt4 --questions question.jsonl \\",
            "    --answers model_answer/ --inconsistent-as-tie"))
    imp.add_argument("format", choices=("pairs", "scores", "preference", "mt-bench-human", "mt-bench-gpt4-pair"))
    imp.add_argument("src", type=Path, help="the source file (pairs, scores, preference: .jsonl or .csv; MT-Bench: "
                     ".jsonl)")
    imp.add_argument("out_dir", type=Path, help="the run directory to write (new or empty)")
    cols = imp.add_argument_group("pairs, scores and preference: columns (CSV) or keys (JSONL)")
    cols.add_argument("--question", metavar="COL", default=None,
                      help="the question (default: question; preference: prompt)")
    cols.add_argument("--answer-a", metavar="COL", default=None, help="pairs: the first answer (default: answer_a)")
    cols.add_argument("--answer-b", metavar="COL", default=None, help="pairs: the second answer (default: answer_b)")
    cols.add_argument("--model-a", metavar="COL", default=None, help="pairs: the first answer's model (default: "
                      "the model is named a)")
    cols.add_argument("--model-b", metavar="COL", default=None, help="pairs: the second answer's model (default: b)")
    cols.add_argument("--id", dest="id_column", metavar="COL", default=None,
                      help="the item's id (default: derived from split, question and answer(s))")
    cols.add_argument("--split", dest="split_column", metavar="COL", default=None,
                      help="train or test per row (default: every row is a test item)")
    cols.add_argument("--source", dest="source_column", metavar="COL", default=None,
                      help="the reference passage (default: none)")
    cols.add_argument("--answer", dest="answer_column", metavar="COL", default=None,
                      help="scores: the answer (default: answer)")
    cols.add_argument("--model", dest="model_column", metavar="COL", default=None,
                      help="scores: the answer's model (default: the model is named unknown)")
    cols.add_argument("--reference-answer", metavar="COL", default=None,
                      help="scores: a reference answer, kept on the item as reference_answer (default: none)")
    cols.add_argument("--judge", dest="judges", metavar="NAME=COL", action="append", default=[],
                      help="pairs, scores: a judge and its verdict column; repeat for each judge")
    cols.add_argument("--scale", metavar="SPEC", default=None,
                      help="scores (required, or the map's scale): the scores every judge may give, LOW-HIGH "
                           "(1-5), LOW-HIGH:STEP (1-5:0.5) or a list (0,1)")
    cols.add_argument("--verdicts", metavar="SPEC", default=None,
                      help="pairs: what each verdict value means, VALUE=MEANING,... with MEANING one of first, "
                           "second, tie, neither, missing; replaces the defaults (A/1/model_a = first, "
                           "B/2/model_b = second, tie/0/C = tie; an empty cell is missing). scores: what each "
                           "text value means, VALUE=SCORE,... with SCORE a number on the scale or one of missing, "
                           "unparseable, error; numbers on the scale need no entry; replaces the defaults "
                           "(output-cannot-be-parsed = unparseable, error = error, and on the scale 0,1 "
                           "pass/true/yes = 1, fail/false/no = 0; an empty cell is missing)")
    cols.add_argument("--map", dest="map_name", metavar="NAME", default=None,
                      help="pairs, scores: read the column map from [tool.judge_eval.imports.NAME]; flags win "
                           "over it")
    cols.add_argument("--config", type=Path, default=None, metavar="PATH",
                      help="pairs, scores: the pyproject.toml of --map (default: the nearest one above the current "
                           "folder)")
    cols.add_argument("--chosen", metavar="COL", default=None, help="preference: the chosen answer (default: chosen)")
    cols.add_argument("--rejected", metavar="COL", default=None,
                      help="preference: the rejected answer (default: rejected)")
    cols.add_argument("--seed", dest="order_seed", type=non_negative_int, default=None, metavar="N",
                      help="preference: seed of the answers' order, an integer >= 0 (default: 0)")
    gpt4 = imp.add_argument_group("mt-bench-gpt4-pair: where the answer texts come from (one of the two)")
    gpt4.add_argument("--questions", type=Path, default=None, metavar="FILE",
                      help="FastChat's question.jsonl (with --answers)")
    gpt4.add_argument("--answers", type=Path, default=None, metavar="DIR",
                      help="FastChat's model_answer/ folder, one <model>.jsonl per model (with --questions)")
    gpt4.add_argument("--into", type=Path, default=None, metavar="RUN_DIR",
                      help="a run imported with mt-bench-human: OUT_DIR is that run plus these verdicts")
    gpt4.add_argument("--inconsistent-as-tie", action="store_true",
                      help="count two orders that name different winners as a tie, as FastChat does (default: "
                           "resolve them as the study's evaluator does)")

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

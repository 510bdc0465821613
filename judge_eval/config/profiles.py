"""Profiles: named configurations in ``[tool.judge_eval.profiles.NAME]`` of pyproject.toml.

A profile names its reference judge, the candidate judge(s) it gates (``gated``; every other
judge is reported, not gated), the frame the gates read, the bootstrap settings, the run
directory it gates (``data``, relative to the pyproject file), its release thresholds, and
optionally the live pipeline that rebuilds its run. Everything is validated on load (pydantic,
``judge_eval.config.tables``): an unknown key, profile or frame, a value of the wrong type or a
threshold out of range raises ``ConfigError`` naming the key path, the value and what is allowed.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from judge_eval.config.import_maps import ImportMap
from judge_eval.config.tables import Table, resolve_path, validate
from judge_eval.config.pipeline_spec import Names, NonEmpty, PipelineConfig
from judge_eval.core.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED
from judge_eval.core.scores import LOWER_IS_BETTER, SCORE_METRICS
from judge_eval.errors import ConfigError

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Correlation = Annotated[float, Field(ge=-1.0, le=1.0)]  # also kappa, which is at most 1


class Thresholds(Table):
    """Release thresholds for a gated judge; None means "not gated on this metric".

    Three coverage gates are on by default in every profile: agreement is computed over the
    items where both judges gave a verdict, so a verdict that is simply absent would shrink that
    subset unseen. ``max_missing`` counts the items a gated judge has no verdict on;
    ``min_compared`` is the number of items it was compared on (both conclusive), so a judge whose
    every output is unreadable cannot pass a profile that sets no metric threshold;
    ``min_reference_coverage`` is the share of items with a reference verdict of any source (a
    profile over sparse human labels lowers it on purpose). A gate must not pass by omission.
    """

    min_agreement: Rate | None = None
    min_correlation: Correlation | None = None
    max_inconclusive: Count | None = None
    max_inconclusive_rate: Rate | None = None
    max_parse_failures: Count | None = None
    max_errors: Count | None = None
    min_agreement_ci_low: Rate | None = None
    max_missing: Count | None = 0
    #: items compared with the reference: both gave a conclusive verdict (a score judge: both
    #: scored), the items every agreement metric is computed on. On by default at 1, so that a
    #: judge with nothing to compare (every output unparseable, failed or inconclusive) fails
    #: even in a profile that sets no metric threshold; raise it to ask for a minimum sample
    min_compared: Count | None = 1
    min_reference_coverage: Rate | None = 1.0
    #: true: the lower bound of kappa's 95% bootstrap interval must be above 0 (the judge agrees
    #: with the reference more than chance would); false or absent: not checked
    above_chance: bool | None = None
    # Score judges (pointwise items; ``judge_eval.core.scores``): one key per metric, named after
    # it; a key of one kind set on a gated judge of the other kind fails that gate, naming the key
    # to use instead (``judge_eval.gating.gates``). max_parse_failures, max_errors, max_missing and
    # min_reference_coverage gate both kinds.
    min_exact_agreement: Rate | None = None
    min_within_1_agreement: Rate | None = None
    max_mae: Annotated[float, Field(ge=0.0)] | None = None
    min_pearson: Correlation | None = None
    min_spearman: Correlation | None = None
    min_kendall_tau_b: Correlation | None = None
    min_quadratic_kappa: Correlation | None = None
    #: bounds of the 95% bootstrap interval of the profile's ``score_interval`` metric: the lower
    #: bound of a higher-is-better metric, the upper bound of ``mae``
    min_score_ci_low: Correlation | None = None
    max_score_ci_high: Annotated[float, Field(ge=0.0)] | None = None


class Canary(Table):
    """``[tool.judge_eval.profiles.NAME.canary]``: when ``judge-eval canary`` (a live re-run of a
    seeded sample of the recorded judging stage) says a judge drifted.

    ``alpha``: the significance level of the exact McNemar test on each judge's agreement with the
    reference (recorded vs live). ``min_unchanged``: the share of a judge's verdicts that must come
    back the same. McNemar alone cannot see drift that moves as many verdicts towards agreement as
    away from it. The default of 0.9 allows one verdict in ten to move. That is room for the noise
    of a judge sampled at a temperature above 0 (the study's GPT-3.5 judges run at 0.1) and for
    the batch nondeterminism of hosted models at temperature 0. It is strict enough to catch the
    one kind of silent change measured in this project: a re-recording of the ``local`` profile
    whose weights or server differed moved 2 of 16 verdicts (0.875 unchanged; README, "Re-recording
    the local profile"). Raise it for a judge served deterministically; lower it for a noisy one."""

    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    min_unchanged: Rate = 0.9


class Profile(Table):
    internal = frozenset({"name", "source"})

    name: str = ""  # the table's key, set by the loader
    source: Path = Path("pyproject.toml")  # the file it came from, set by the loader
    description: str = ""
    reference: NonEmpty = DEFAULT_REFERENCE
    gated: Names = ()
    frame: Literal["study", "corrected"] = "corrected"
    data: Path | None = None
    # with: ties count as verdicts (MT-Bench S1); without: items where either side says tie are dropped (S2)
    ties: Literal["with", "without"] = "with"
    bootstrap_seed: Annotated[int, Field(ge=0)] = DEFAULT_SEED
    bootstrap_resamples: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_RESAMPLES
    thresholds: Thresholds = Thresholds()
    # score judges: their reference when the run also holds pairwise items (default: reference),
    # and the metric whose 95% bootstrap interval reports show and min_score_ci_low /
    # max_score_ci_high gate
    score_reference: NonEmpty | None = None
    score_interval: Literal[SCORE_METRICS] = "exact_agreement"  # type: ignore[valid-type]
    pipeline: PipelineConfig | None = None  # how to rebuild the run live (profiles local, openai)
    body_hash: bool = False  # cassettes store request-body hashes (requests carry third-party text)
    canary: Canary = Canary()  # when `judge-eval canary` says a judge drifted
    # the lead below which a `<judge>@choice` verdict is inconclusive (judge_eval.core.choice.combine);
    # set on a validation slice, never on the pairs it gates (judge_eval.core.choice.pick_margin)
    choice_margin: Rate = 0.0

    _data = field_validator("data", mode="before")(resolve_path)

    @model_validator(mode="after")
    def _interval_bound(self) -> "Profile":
        """The bound of ``score_interval``'s interval that can be gated: the lower one of a metric
        where higher is better, the upper one of ``mae``."""
        t = self.thresholds
        lower_better = self.score_interval in LOWER_IS_BETTER
        wrong = ("min_score_ci_low", t.min_score_ci_low, "max_score_ci_high") if lower_better else (
            "max_score_ci_high", t.max_score_ci_high, "min_score_ci_low")
        if wrong[1] is not None:
            better = "lower" if lower_better else "higher"
            instead = ("score_interval to a metric where higher is better" if lower_better
                       else 'score_interval = "mae"')
            raise ValueError(f"thresholds.{wrong[0]} = {wrong[1]!r} does not fit score_interval = "
                             f"{self.score_interval!r} ({better} is better): gate its interval with {wrong[2]}, "
                             f"or set {instead}")
        return self


class JudgeEvalTable(Table):
    """``[tool.judge_eval]``."""

    profiles: dict[NonEmpty, Profile] = {}
    imports: dict[NonEmpty, ImportMap] = {}  # column maps of `judge-eval import pairs|scores --map NAME`


def read_pyproject(path: Path) -> dict[str, Any]:
    """The parsed file; a missing file or a TOML syntax error (with its line and column) is a
    ConfigError."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; profiles live in [tool.judge_eval.profiles.NAME] "
                          "of the project's pyproject.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)"
        raise ConfigError(f"{path}: TOML syntax error: {exc}. Fix the file at that line and column") from None
    except ValueError:  # tomllib's plain ValueError: an integer longer than Python converts from text
        raise ConfigError(f"{path}: holds an integer of more than {sys.get_int_max_str_digits()} digits, more than "
                          "a setting can mean. Fix the file (no line is known)") from None


def has_judge_eval(data: dict[str, Any]) -> bool:
    tool = data.get("tool")
    return isinstance(tool, dict) and "judge_eval" in tool


def load_judge_eval_table(pyproject: Path | str) -> JudgeEvalTable:
    """``[tool.judge_eval]`` of ``pyproject``, validated (an absent table is an empty one)."""
    path = Path(pyproject).resolve()
    data = read_pyproject(path)
    raw = data.get("tool", {}).get("judge_eval", {}) if isinstance(data.get("tool"), dict) else {}
    return validate(JudgeEvalTable, raw, source=path, prefix="tool.judge_eval")


def load_profiles(pyproject: Path | str) -> dict[str, Profile]:
    """Every profile defined in ``pyproject``."""
    path = Path(pyproject).resolve()
    table = load_judge_eval_table(path)
    return {name: profile.model_copy(update={"name": name, "source": path})
            for name, profile in table.profiles.items()}


def load_profile(name: str, pyproject: Path | str, *, option: str = "--profile") -> Profile:
    """The profile ``name`` from ``pyproject``; an unknown name lists the known ones and the
    ``option`` that picks one (``--profile`` on the CLI, ``--judge-profile`` in pytest)."""
    profiles = load_profiles(pyproject)
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r} in {Path(pyproject).resolve()}; known profiles: "
                          f"{', '.join(sorted(profiles)) or 'none'}. Add [tool.judge_eval.profiles.{name}] "
                          f"or pick a known one with {option}")
    return profiles[name]


def find_pyproject(start: Path | str = ".") -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has a ``[tool.judge_eval]`` table.
    A pyproject.toml on the way that is not valid TOML is an error (it may be the one meant),
    never skipped as if it were absent."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and has_judge_eval(read_pyproject(candidate)):
            return candidate
    return None

"""Profiles: named configurations in ``[tool.judge_eval.profiles.NAME]`` of pyproject.toml.

A profile names its reference judge, the candidate judge(s) it gates (``gated``; every other
judge is reported, not gated), the frame the gates read, the bootstrap settings, the run data it
reads (``data``, relative to the pyproject file), and its release thresholds. Everything is
validated on load: an unknown key, profile or frame, or a threshold out of range, raises
``ConfigError`` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from judge_eval.errors import ConfigError
from judge_eval.metrics import DEFAULT_REFERENCE, DEFAULT_RESAMPLES, DEFAULT_SEED, FRAMES
from judge_eval.pipeline_config import PipelineConfig, parse_pipeline


@dataclass(frozen=True)
class Thresholds:
    """Release thresholds for a gated judge; None means "not gated on this metric"."""

    min_agreement: float | None = None
    min_correlation: float | None = None
    max_inconclusive: int | None = None
    max_inconclusive_rate: float | None = None
    max_parse_failures: int | None = None
    max_errors: int | None = None
    min_agreement_ci_low: float | None = None


#: (low, high, integer?) for each threshold.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "min_agreement": (0.0, 1.0, False),
    "min_correlation": (-1.0, 1.0, False),
    "max_inconclusive": (0, float("inf"), True),
    "max_inconclusive_rate": (0.0, 1.0, False),
    "max_parse_failures": (0, float("inf"), True),
    "max_errors": (0, float("inf"), True),
    "min_agreement_ci_low": (0.0, 1.0, False),
}


@dataclass(frozen=True)
class Profile:
    name: str
    source: Path  # the pyproject.toml it came from
    description: str = ""
    reference: str = DEFAULT_REFERENCE
    gated: tuple[str, ...] = ()
    frame: str = "corrected"
    data: Path | None = None
    bootstrap_seed: int = DEFAULT_SEED
    bootstrap_resamples: int = DEFAULT_RESAMPLES
    thresholds: Thresholds = Thresholds()
    pipeline: PipelineConfig | None = None  # how to rebuild the run live (profiles local, openai)
    body_hash: bool = False  # cassettes store request-body hashes (requests carry third-party text)


def _where(path: Path, name: str, key: str | None = None) -> str:
    table = f"[tool.judge_eval.profiles.{name}" + (".thresholds]" if key == "thresholds" else "]")
    return f"{path}: {table}"


def _parse_thresholds(raw: Any, path: Path, name: str) -> Thresholds:
    where = _where(path, name, "thresholds")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table of thresholds")
    unknown = sorted(set(raw) - set(_RANGES))
    if unknown:
        raise ConfigError(f"{where}: unknown threshold(s) {', '.join(unknown)}; known: {', '.join(_RANGES)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        low, high, integer = _RANGES[key]
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not (low <= value <= high):
            kind = "a whole number" if integer else "a number"
            span = f">= {low}" if high == float("inf") else f"from {low} to {high}"
            raise ConfigError(f"{where}: {key} = {value!r} is out of range; it must be {kind} {span}")
        values[key] = value
    return Thresholds(**values)


def _parse_profile(name: str, raw: Any, path: Path) -> Profile:
    where = _where(path, name)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    known = {f.name for f in fields(Profile)} - {"name", "source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    if "body_hash" in raw:
        if not isinstance(raw["body_hash"], bool):
            raise ConfigError(f"{where}: body_hash must be true or false, found {raw['body_hash']!r}")
        kwargs["body_hash"] = raw["body_hash"]
    for key in ("description", "reference"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise ConfigError(f"{where}: {key} must be a non-empty string, found {raw[key]!r}")
            kwargs[key] = raw[key]
    if "gated" in raw:
        gated = raw["gated"]
        if not isinstance(gated, list) or not all(isinstance(g, str) and g for g in gated):
            raise ConfigError(f"{where}: gated must be a list of judge names, found {gated!r}")
        kwargs["gated"] = tuple(gated)
    if "frame" in raw:
        if raw["frame"] not in FRAMES:
            raise ConfigError(f"{where}: frame = {raw['frame']!r}; it must be one of {', '.join(FRAMES)}")
        kwargs["frame"] = raw["frame"]
    if "data" in raw:
        if not isinstance(raw["data"], str):
            raise ConfigError(f"{where}: data must be a path string, found {raw['data']!r}")
        kwargs["data"] = (path.parent / raw["data"]).resolve()
    for key, low in (("bootstrap_seed", 0), ("bootstrap_resamples", 1)):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{where}: {key} = {value!r}; it must be a whole number >= {low}")
            kwargs[key] = value
    if "thresholds" in raw:
        kwargs["thresholds"] = _parse_thresholds(raw["thresholds"], path, name)
    if "pipeline" in raw:
        kwargs["pipeline"] = parse_pipeline(raw["pipeline"], where, path)
    return Profile(name=name, source=path, **kwargs)


def load_profiles(pyproject: Path | str) -> dict[str, Profile]:
    """Every profile defined in ``pyproject``."""
    path = Path(pyproject).resolve()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; profiles live in [tool.judge_eval.profiles.NAME] "
                          "of the project's pyproject.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    raw = data.get("tool", {}).get("judge_eval", {}).get("profiles", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [tool.judge_eval.profiles] must be a table of profiles")
    return {name: _parse_profile(name, table, path) for name, table in raw.items()}


def load_profile(name: str, pyproject: Path | str) -> Profile:
    """The profile ``name`` from ``pyproject``; an unknown name lists the known ones."""
    profiles = load_profiles(pyproject)
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r} in {Path(pyproject).resolve()}; known profiles: "
                          f"{', '.join(sorted(profiles)) or 'none'}. Add [tool.judge_eval.profiles.{name}] "
                          "or pick a known one with --judge-profile")
    return profiles[name]


def find_pyproject(start: Path | str = ".") -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that defines judge_eval profiles."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text("utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if "judge_eval" in data.get("tool", {}):
                return candidate
    return None

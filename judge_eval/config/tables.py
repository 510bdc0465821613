"""The base of every configuration model, and how a validation error reads.

Every table of ``[tool.judge_eval]`` is a frozen pydantic model with strict types (a string is
never read as a number or a boolean), literal kinds, numeric ranges and no unknown key. An error
names the full key path, the value found and what is allowed, e.g.::

    pyproject.toml: tool.judge_eval.profiles.local.pipeline.models.teacher.timeout = 'slow':
    Input should be a valid number
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator

from judge_eval.errors import ConfigError


class Table(BaseModel):
    """A TOML table: frozen, strict, no unknown key (the error lists the allowed ones)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: Fields set by the loader (a profile's name, a model's role), not by the file.
    internal: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            allowed = [name for name in cls.model_fields if name not in cls.internal]
            # Internal fields may be given in code, never in the file.
            from_file = bool((info.context or {}).get("from_file"))
            unknown = sorted(str(k) for k in data if k not in allowed and (from_file or k not in cls.internal))
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}")
        return data


def base_dir(info: ValidationInfo) -> Path:
    """The folder relative paths in the file are resolved against (the pyproject's)."""
    context = info.context or {}
    return Path(context.get("base", "."))


def resolve_path(value: Any, info: ValidationInfo) -> Any:
    """A path string, relative to the pyproject file; anything else is left for the type check."""
    if isinstance(value, str):
        if not value:
            raise ValueError("must be a non-empty path")
        return (base_dir(info) / Path(value).expanduser()).resolve()
    if isinstance(value, Path):
        return value
    raise ValueError(f"must be a path string, found {type(value).__name__}")


def _key(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def describe_errors(exc: ValidationError, *, source: Path | str, prefix: str) -> str:
    """One line per problem: ``<file>: <key path> = <value>: <what is allowed>``."""
    lines = []
    for error in exc.errors(include_url=False):
        key = _key(prefix, tuple(error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"{source}: {key} is missing; it is required")
        else:
            lines.append(f"{source}: {key} = {_shown(error['input'])}: {message}")
    return "\n".join(lines)


def validate(model: type[Table], data: Any, *, source: Path, prefix: str) -> Any:
    """``model`` validated from ``data``; a ``ConfigError`` that lists every problem otherwise."""
    try:
        return model.model_validate(data, context={"base": source.parent, "from_file": True})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source=source, prefix=prefix)) from None

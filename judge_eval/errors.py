"""One base exception; every message says what failed, what was found, what was expected, and
how to fix it."""

from __future__ import annotations

from pathlib import Path


class JudgeEvalError(Exception):
    """Base class of every error judge_eval raises on purpose."""


class RunFileError(JudgeEvalError):
    """A run-directory file is missing or has a malformed line.

    Carries ``path``, ``line`` (1-based, or None for the whole file) and ``field`` (dotted
    path inside the record, or None) so callers and tests can point at the exact spot.
    """

    def __init__(self, path: Path | str, problem: str, *, line: int | None = None,
                 field: str | None = None, fix: str | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.problem = problem
        where = str(self.path) + (f":{line}" if line is not None else "")
        what = f" field '{field}':" if field else ""
        hint = fix or ("fix or remove that line, or re-create the run directory "
                       "(for the study: judge-eval fetch-study DIR)")
        super().__init__(f"{where}:{what} {problem}. How to fix: {hint}.")


class ConfigError(JudgeEvalError):
    """A profile, threshold or option is unknown or out of range."""


class FetchError(JudgeEvalError):
    """Downloading the study's files failed or a file did not match its published hash."""


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during (``__cause__``, else
    ``__context__``), outermost first, each once (a cycle ends the walk)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain

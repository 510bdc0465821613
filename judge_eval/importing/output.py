"""What every importer shares: building items and verdicts, refusing duplicates with both source
lines, and writing the run directory all at once (a staging folder, checked, then renamed)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from judge_eval.core.items import NEITHER, ORIGINAL, Answer, FinetuneEvent, QAItem, Verdict, item_id
from judge_eval.core.store import Run, read_run, write_run
from judge_eval.errors import JudgeEvalError, RunFileError

#: A verdict's meaning -> (score, source). Scores are in the stored order: 1.0 = the first
#: answer wins. A tie is a verdict (conclusive); "neither" is inconclusive, scored 0.5 as the
#: study's evaluator scores it.
MEANING_VERDICTS: dict[str, tuple[float, str]] = {
    "first": (1.0, ORIGINAL), "second": (0.0, ORIGINAL), "tie": (0.5, ORIGINAL), "neither": (0.5, NEITHER),
}


def make_item(split: str, question: str, answers: tuple[Answer, ...], *, explicit_id: str | None = None,
              source: str = "", evaluations: Sequence[Verdict] = (), extra: Mapping[str, Any] | None = None) -> QAItem:
    """An item with an explicit ``id`` (the one given, else its content id), kept in the line:
    two answers for a pair, one for a pointwise item."""
    ident = explicit_id if explicit_id is not None else item_id(split, question, answers)
    return QAItem(id=ident, split=split, question=question, answers=answers, source=source,
                  evaluations=tuple(evaluations), extra={"id": ident, **(extra or {})})


def meaning_verdict(judge: str, meaning: str, text: str, extra: Mapping[str, Any] | None = None) -> Verdict:
    score, source = MEANING_VERDICTS[meaning]
    return Verdict(llm=judge, score=score, text=text, source=source, extra=dict(extra or {}))


@dataclass(frozen=True)
class Located:
    """An item and the source lines it came from (for messages naming both lines of a duplicate)."""

    item: QAItem
    path: Path
    line: int


def unique_items(located: Iterable[Located]) -> list[QAItem]:
    """The items, in order; two with one id in one split are an error naming both lines."""
    first: dict[tuple[str, str], Located] = {}
    out = []
    for loc in located:
        key = (loc.item.split, loc.item.id)
        if key in first:
            other = first[key]
            where = f"line {other.line}" + ("" if other.path == loc.path else f" of {other.path}")
            raise RunFileError(loc.path, f"duplicate item {loc.item.id!r} ({loc.item.split} split): {where} "
                               "holds the same item (the same id, or the same question with the same "
                               "answers)", line=loc.line, field="id",
                               fix="remove one of the two, or give them different ids (nothing was written)")
        first[key] = loc
        out.append(loc.item)
    return out


@dataclass
class ImportResult:
    """What an importer read: the items, the options it used, counts and notes to print."""

    format: str
    source: Path
    source_sha256: str
    options: dict[str, Any]
    train: list[QAItem] = field(default_factory=list)
    test: list[QAItem] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    base: Run | None = None  # a run this import merges into (its other parts are kept)

    def record(self) -> dict[str, Any]:
        """This import's entry in ``run.json``."""
        return {"format": self.format, "source": str(self.source.resolve()), "source_sha256": self.source_sha256,
                "options": self.options, "counts": self.counts,
                "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "judge_eval": _version()}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("judge_eval")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def check_out_dir(out: Path) -> None:
    """Refuse an OUT_DIR that holds anything: an import never writes over a run."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise JudgeEvalError(f"{out}: exists and is not a folder (or is a symbolic link); pass a new folder as "
                             "OUT_DIR")
    if out.is_dir() and any(out.iterdir()):
        raise JudgeEvalError(f"{out}: exists and is not empty; pass a new (or empty) folder as OUT_DIR, an "
                             "import never writes over a run")


def write_import(result: ImportResult, out: Path | str) -> Path:
    """Write ``result`` as a run directory at ``out``: into a staging folder beside it, read back
    with the run store's checks, then renamed to ``out``. On any failure ``out`` is left as it
    was (absent or empty) and the staging folder is removed."""
    out = Path(out)
    check_out_dir(out)
    base = result.base
    meta: dict[str, Any] = dict(base.meta) if base is not None else {}
    meta["imports"] = [*(meta.get("imports") or []), result.record()]
    events: tuple[FinetuneEvent, ...] = base.events if base is not None else ()
    resolved: tuple[FinetuneEvent, ...] = base.resolved if base is not None else ()
    if not result.train and not result.test:
        raise JudgeEvalError(f"{result.source}: no item to import (the file holds no record); nothing was written")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".importing", dir=out.parent))
    try:
        write_run(Run(path=staging, train=tuple(result.train), test=tuple(result.test), events=events,
                      resolved=resolved, meta=meta), staging)
        read_run(staging, require=())  # the store's own checks, before anything is in place
        if out.is_dir():
            out.rmdir()  # empty (checked above); a rename cannot replace it on every platform
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def describe(result: ImportResult, out: Path) -> str:
    """What was written, in a few lines for the terminal."""
    judges: dict[str, None] = {}
    for item in (*result.train, *result.test):
        for verdict in item.evaluations:
            judges.setdefault(verdict.llm, None)
    names = list(judges)
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    lines = [f"imported {len(result.train) + len(result.test)} item(s) ({len(result.train)} train, "
             f"{len(result.test)} test) from {result.source} ({result.format}) into {out}",
             f"judges: {shown or 'none'}"]
    lines += result.notes
    return "\n".join(lines)


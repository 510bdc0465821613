"""Reading an import's source: JSONL (one JSON object a line) or CSV (a header row, then one record
a row), as records that know their file and line, so every problem names file, line and field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from judge_eval.core.store import loads_line
from judge_eval.errors import JudgeEvalError, RunFileError

#: File name endings and the reader each one gets.
KINDS = {".jsonl": "jsonl", ".csv": "csv"}

_CONTROL = re.compile("[\x00-\x1f\x7f]")
_FIX = "fix that record in the source file and import again (nothing was written)"


@dataclass(frozen=True)
class Record:
    """One record of a source file: its values by column (CSV) or key (JSONL)."""

    path: Path
    line: int  # 1-based; for CSV the line where the row starts
    values: Mapping[str, Any]
    kind: str  # "jsonl" or "csv"

    def fail(self, field: str | None, problem: str, fix: str | None = None) -> RunFileError:
        return RunFileError(self.path, problem, line=self.line, field=field, fix=fix or _FIX)

    def has(self, key: str) -> bool:
        return key in self.values

    def raw(self, key: str) -> Any:
        if key not in self.values:
            what = "column" if self.kind == "csv" else "key"
            raise self.fail(key, f"missing (no {what} {key!r} in this record; it has "
                            f"{', '.join(map(repr, list(self.values)[:12])) or 'none'})")
        return self.values[key]

    def text(self, key: str, *, empty: bool = True) -> str:
        """A string field (``empty=False``: one that must not be blank)."""
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, found {kind_of(value)}")
        if not empty and not value.strip():
            raise self.fail(key, "empty")
        return value

    def name(self, key: str) -> str:
        """A short identifier (a model, an annotator, a question id): a non-empty string or a
        whole number, one line of printable text."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(key, f"expected a string or a whole number, found {kind_of(value)}")
        text = str(value)
        if not text.strip():
            raise self.fail(key, "empty")
        if _CONTROL.search(text):
            raise self.fail(key, "holds a control character (a newline, a tab, NUL...); it must be one "
                            "line of printable text")
        return text

    def whole(self, key: str, minimum: int) -> int:
        value = self.raw(key)
        if self.kind == "csv" and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, found {kind_of(value)}")
        if value < minimum:
            raise self.fail(key, f"must be >= {minimum}, found {value}")
        return value


def kind_of(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "number", float: "number"}.get(type(value), type(value).__name__)


def read_source(path: Path | str) -> bytes:
    """The bytes of a source file; every reason it cannot be read is a RunFileError."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RunFileError(path, "file not found", fix="check the path of the source file") from None
    except IsADirectoryError:
        raise RunFileError(path, "is a folder, not a file", fix="pass the source file itself") from None
    except PermissionError:
        raise RunFileError(path, "permission denied: cannot read this file",
                           fix="make it readable by this user") from None
    except OSError as exc:
        raise RunFileError(path, f"cannot be read ({exc.strerror or exc})", fix="check the path and the disk") from None


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def source_kind(path: Path, allowed: tuple[str, ...] = ("jsonl", "csv")) -> str:
    """``jsonl`` or ``csv``, from the file name's ending."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None or kind not in allowed:
        endings = ", ".join(e for e, k in KINDS.items() if k in allowed)
        raise JudgeEvalError(f"{path}: cannot tell the format from the name; this format reads files "
                             f"ending in {endings}. Rename the file (or convert it) to one of them")
    return kind


def records(path: Path | str, data: bytes, kind: str) -> Iterator[Record]:
    """The records of ``data`` (the bytes of ``path``), in file order; blank lines are skipped."""
    path = Path(path)
    if kind == "jsonl":
        yield from _jsonl_records(path, data)
    elif kind == "csv":
        yield from _csv_records(path, data)
    else:  # pragma: no cover - callers pass a kind from source_kind
        raise ValueError(kind)


def _jsonl_records(path: Path, data: bytes) -> Iterator[Record]:
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        value = loads_line(path, lineno, raw)
        if not isinstance(value, dict):
            raise RunFileError(path, f"expected a JSON object, found {kind_of(value)}", line=lineno, fix=_FIX)
        yield Record(path, lineno, value, "jsonl")


def _csv_records(path: Path, data: bytes) -> Iterator[Record]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise RunFileError(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})", line=line,
                           fix="save the file as UTF-8") from None
    limit = csv.field_size_limit()
    csv.field_size_limit(2 ** 31 - 1)  # long answers are longer than csv's default of 128 KiB
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise RunFileError(path, f"not valid CSV ({exc})", line=start, fix=_FIX) from None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in row]
                seen: set[str] = set()
                for name in header:
                    if not name:
                        raise RunFileError(path, "the header row has an empty column name", line=start,
                                           fix="name every column in the first row")
                    if name in seen:
                        raise RunFileError(path, f"the header row names column {name!r} twice", line=start,
                                           field=name, fix="give each column its own name")
                    seen.add(name)
                continue
            if len(row) != len(header):
                raise RunFileError(path, f"{len(row)} fields, but the header has {len(header)}", line=start,
                                   fix=_FIX + "; quote fields that hold commas")
            yield Record(path, start, dict(zip(header, row)), "csv")
        if header is None:
            raise RunFileError(path, "empty: no header row", fix="the first row of a CSV file names its columns")
    finally:
        csv.field_size_limit(limit)


"""Per-stage journals: finished items are appended as they complete, so an interrupted live run
(an exception, Ctrl-C, a killed process) resumes without repeating a finished call.

A journal is JSON lines in ``<run dir>/journal/<cassette>-<split>.jsonl``, one line per finished
item: ``{"id": ..., ...}``. Each line is flushed and fsynced before the next item starts. A
process killed mid-write can leave a truncated *last* line; that line, and only that one, is
dropped on load (and cut from the file). A malformed line anywhere else is corruption and raises
``RunFileError`` naming the line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from judge_eval.errors import RunFileError


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """Finished items by id."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        done: dict[str, dict[str, Any]] = {}
        good_bytes = 0
        for n, raw in enumerate(lines, start=1):
            is_last = n == len(lines)
            if not raw.strip():
                good_bytes += len(raw) + (0 if is_last else 1)
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    raise ValueError("not an object with an id")
            except ValueError as exc:
                if is_last:  # an unfinished write of a killed process
                    break
                raise RunFileError(self.path, f"journal line is corrupt ({exc})", line=n,
                                   fix="delete the journal to redo this stage from the start") from None
            if is_last:  # complete JSON but no newline: the write was cut before it ended
                break
            done[record["id"]] = record
            good_bytes += len(raw) + 1
        if good_bytes < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_bytes)
        return done

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write((json.dumps(record) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

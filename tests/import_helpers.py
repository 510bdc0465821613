"""What the importer tests share: writing a source in the test, running `judge-eval import`, and
checking that a refused source left nothing behind."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from judge_eval.cli import main


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_import(*argv: object) -> int:
    return main(["import", *map(str, argv)])


def assert_nothing_written(out: Path) -> None:
    """No output folder, and no staging folder of it (`.<name>.*`) left beside it."""
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")] == []


def verdicts(item) -> dict[str, tuple]:
    """Each judge's (score, source) on an item."""
    return {v.llm: (v.score, v.source) for v in item.evaluations}

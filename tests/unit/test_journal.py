"""Journals tolerate a truncated last line (a killed process) and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.errors import RunFileError
from judge_eval.core.journal import Journal


def test_append_and_load(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    assert j.load() == {}
    j.append({"id": "a", "v": 1})
    j.append({"id": "b", "v": 2})
    assert j.load() == {"a": {"id": "a", "v": 1}, "b": {"id": "b", "v": 2}}


@pytest.mark.parametrize("tail", ['{"id": "c", "v"', '{"id": "c", "v": 3}'], ids=["cut-json", "no-newline"])
def test_a_truncated_last_line_is_dropped_and_cut(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n' + tail)
    j = Journal(path)
    assert set(j.load()) == {"a", "b"}
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    j.append({"id": "c"})
    assert set(j.load()) == {"a", "b", "c"}


def test_a_corrupt_line_elsewhere_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n{"id": "b"}\n')
    with pytest.raises(RunFileError, match=r"j.jsonl:2: journal line is corrupt"):
        Journal(path).load()

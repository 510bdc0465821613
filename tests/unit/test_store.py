"""Run store: the study's files round-trip byte for byte; bad lines name file, line and field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judge_eval.errors import RunFileError
from judge_eval.core.items import Answer, QAItem, Verdict, item_id
from judge_eval.core.store import (
    EVENTS_FILE, QA_FILES, RESOLVED_FILE, Run, read_qa, read_run, write_qa, write_run,
)

STUDY_FILES = [*QA_FILES.values(), EVENTS_FILE, RESOLVED_FILE]


def qa_line(**overrides) -> dict:
    row = {
        "question": "What is a pair?",
        "answers": [{"model": "m1", "text": "one"}, {"model": "m2", "text": "two words"}],
        "source": "a context",
        "evaluations": [{"llm": "gpt_4", "score": 1.0, "text": "A is better [[A]]", "source": "original"}],
    }
    row.update(overrides)
    return row


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_study_files_round_trip_byte_identical(study_run: Run, study_dir: Path, tmp_path: Path) -> None:
    write_run(study_run, tmp_path)
    for name in STUDY_FILES:
        assert (tmp_path / name).read_bytes() == (study_dir / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(STUDY_FILES)  # no temp files left


def test_study_counts(study_run: Run) -> None:
    assert (len(study_run.train), len(study_run.test)) == (75, 64)
    assert (len(study_run.events), len(study_run.resolved)) == (150, 72)


def test_ids_are_derived_from_split_and_question_not_position(tmp_path: Path) -> None:
    rows = [qa_line(question=f"q{i}") for i in range(5)]
    forward = read_qa(write_lines(tmp_path / "a.jsonl", rows), "test")
    backward = read_qa(write_lines(tmp_path / "b.jsonl", rows[::-1]), "test")
    assert {i.question: i.id for i in forward} == {i.question: i.id for i in backward}
    assert forward[0].id == item_id("test", "q0") != item_id("train", "q0")
    # The raw text as stored: a prefix or whitespace is part of the identity.
    assert item_id("test", "Question: q0") != item_id("test", "q0")


def test_unknown_fields_are_kept_and_written_back(tmp_path: Path) -> None:
    row = qa_line(extra_top={"k": 1})
    row["answers"][0]["latency_ms"] = 12
    row["evaluations"][0]["raw"] = ["[[A]]", "[[B]]"]
    src = write_lines(tmp_path / "in.jsonl", [row])
    write_qa(tmp_path / "out.jsonl", read_qa(src, "test"))
    assert (tmp_path / "out.jsonl").read_bytes() == src.read_bytes()


def test_null_score_for_unparseable_and_error(tmp_path: Path) -> None:
    evals = [{"llm": "j1", "score": None, "text": "no verdict", "source": "output-cannot-be-parsed"},
             {"llm": "j2", "score": None, "text": "HTTP 500 after 5 tries", "source": "error"}]
    (item,) = read_qa(write_lines(tmp_path / "x.jsonl", [qa_line(evaluations=evals)]), "test")
    assert [(v.score, v.conclusive) for v in item.evaluations] == [(None, False), (None, False)]


@pytest.mark.parametrize(
    ("row", "line", "field", "problem"),
    [
        ("{not json", 2, None, "not valid JSON"),
        ([1, 2], 2, None, "expected a JSON object, found array"),
        ({k: v for k, v in qa_line().items() if k != "question"}, 2, "question", "missing"),
        (qa_line(question=7), 2, "question", "expected str, found number"),
        (qa_line(answers=[{"model": "m", "text": "t"}]), 2, "answers", "expected 2 answers, found 1"),
        (qa_line(answers=[{"model": "m"}, {"model": "m", "text": "t"}]), 2, "answers[0].text", "missing"),
        (qa_line(evaluations=[{"llm": "g", "score": 0.7, "text": "", "source": "original"}]), 2,
         "evaluations[0].score", "0.7 is not one of 0, 0.5, 1 or null"),
        (qa_line(evaluations=[{"llm": "g", "score": True, "text": "", "source": "original"}]), 2,
         "evaluations[0].score", "expected float, found boolean"),
        (qa_line(evaluations=[{"llm": "g", "score": 1.0, "text": "", "source": "sideways"}]), 2,
         "evaluations[0].source", "'sideways' is not one of original"),
        (qa_line(evaluations=[{"llm": "g", "score": None, "text": "", "source": "flipped"}]), 2,
         "evaluations[0].score", "null, but source 'flipped' needs a score"),
        (qa_line(evaluations=[{"llm": "g", "text": "", "source": "neither"}]), 2, "evaluations[0].score",
         "missing"),
        (qa_line(evaluations=[{"llm": "g", "score": 1.0, "text": "", "source": "original"},
                              {"llm": "g", "score": 0.0, "text": "", "source": "original"}]), 2,
         "evaluations[1].llm", "judge 'g' has two verdicts"),
        (qa_line(question="first"), 2, "question", "question repeated (same text as line 1)"),
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path: Path, row, line, field, problem) -> None:
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line(question="first"), row])
    with pytest.raises(RunFileError) as info:
        read_qa(path, "test")
    err = info.value
    assert (err.path, err.line, err.field) == (path, line, field)
    assert problem in str(err)
    assert f"{path}:{line}:" in str(err) and "How to fix" in str(err)


def test_missing_run_dir_and_missing_required_file(tmp_path: Path) -> None:
    with pytest.raises(RunFileError, match="run directory not found"):
        read_run(tmp_path / "nope")
    with pytest.raises(RunFileError, match="test_qa_complete.jsonl.*file not found"):
        read_run(tmp_path)


def test_a_directory_with_only_the_test_file_is_a_run(tmp_path: Path) -> None:
    write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line()])
    run = read_run(tmp_path)
    assert len(run.test) == 1 and run.train == () and run.events == () and run.meta == {}


def test_bad_run_json_is_reported(tmp_path: Path) -> None:
    write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line()])
    (tmp_path / "run.json").write_text("[1]")
    with pytest.raises(RunFileError, match="run.json.*expected a JSON object"):
        read_run(tmp_path)


def test_write_is_atomic_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line()])
    before = target.read_bytes()
    item = QAItem(id="x", split="test", question="new", answers=(Answer("a", "1"), Answer("b", "2")),
                  source="s", evaluations=(Verdict("j", 1.0, "t", "original"),))

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_qa(target, [item])
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["test_qa_complete.jsonl"]


def test_refuses_to_write_nan(tmp_path: Path) -> None:
    run = Run(path=tmp_path, meta={"x": float("nan")})
    with pytest.raises(ValueError, match="non-finite"):
        write_run(run)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["question", "answers", "source", "evaluations", "model", "text", "llm",
                         "score", "x"]), inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(json_values.map(json.dumps) | st.text(max_size=30) | st.binary(max_size=20)
                      .map(lambda b: b.decode("latin-1")), min_size=1, max_size=4))
def test_arbitrary_lines_raise_only_our_error(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    try:
        read_qa(path, "test")
    except RunFileError as err:
        assert err.path == path

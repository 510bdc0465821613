"""Pointwise items (score judges) in the store: they round-trip byte for byte, every reader
accepts them and refuses a malformed one with the same error naming file, line and field, and a
pair keeps the id it always had."""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judge_eval.core.items import (PAIRWISE, POINTWISE, SCORE, SCORED, Answer, QAItem, Verdict, item_id,
                                   question_key)
from judge_eval.core.store import (QA_FILES, ScoreEntry, _fast_row, iter_qa, iter_qa_rows, qa_row, read_qa,
                                   read_run, stream_split, verdict_from_json, verdict_to_json, write_qa)
from judge_eval.errors import RunFileError

SCALE = [1, 2, 3, 4, 5]
HALVES = [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]


def score_eval(llm: str = "ref", score=4, source: str = "scored", scale=None, **extra) -> dict:
    return {"llm": llm, "score": score, "text": f"{llm} says {score}", "source": source, "kind": "score",
            "scale": SCALE if scale is None else scale, **extra}


def point_line(question: str = "What is a point?", evaluations=None, **overrides) -> dict:
    row = {"question": question, "answers": [{"model": "m1", "text": "one answer"}], "source": "a context",
           "evaluations": [score_eval()] if evaluations is None else evaluations}
    row.update(overrides)
    return row


def pair_line(question: str = "What is a pair?", evaluations=None, **overrides) -> dict:
    row = {"question": question, "answers": [{"model": "m1", "text": "one"}, {"model": "m2", "text": "two"}],
           "source": "a context",
           "evaluations": [{"llm": "gpt_4", "score": 1.0, "text": "[[A]]", "source": "original"}]
           if evaluations is None else evaluations}
    row.update(overrides)
    return row


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def outcome(read) -> tuple:
    try:
        return ("ok", read())
    except RunFileError as exc:
        return ("error", str(exc), exc.line, exc.field)


# --------------------------------------------------------------------------- round trip


MIXED = [
    point_line("q1", [score_eval("ref", 4), score_eval("judge", 3.0, raw="3/5"),
                      score_eval("halves", 4.5, scale=HALVES)], reference="the gold answer"),
    point_line("q2", [score_eval("ref", None, "output-cannot-be-parsed"), score_eval("judge", None, "error")]),
    point_line("q3", [], id="explicit-3"),
    point_line("q4", [score_eval("ref", 1), score_eval("judge", 5)]),
    pair_line("q5"),
    pair_line("q6", [{"llm": "gpt_4", "score": 0.0, "text": "[[B]]", "source": "flipped", "kind": "pairwise",
                      "note": "kept"}]),
]


def test_a_pointwise_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", MIXED)
    items = read_qa(src, "test")
    write_qa(tmp_path / "out.jsonl", items)
    assert (tmp_path / "out.jsonl").read_bytes() == src.read_bytes()
    # the ints stay ints, the floats floats, as the line had them
    assert b'"score": 4, ' in src.read_bytes() and b'"score": 3.0, ' in src.read_bytes()
    first = items[0]
    assert first.kind == POINTWISE and items[4].kind == items[5].kind == PAIRWISE
    assert [(v.llm, v.kind, v.scale, v.score, v.conclusive) for v in first.evaluations] == [
        ("ref", SCORE, tuple(SCALE), 4, True), ("judge", SCORE, tuple(SCALE), 3.0, True),
        ("halves", SCORE, tuple(HALVES), 4.5, True)]
    assert first.extra == {"reference": "the gold answer"}
    assert first.evaluations[1].extra == {"raw": "3/5"}
    assert [v.conclusive for v in items[1].evaluations] == [False, False]
    # a pair's verdict: kind pairwise, no scale; an explicit "kind" stays in extra, where it was
    assert (items[5].evaluations[0].kind, items[5].evaluations[0].scale) == (PAIRWISE, None)
    assert items[5].evaluations[0].extra == {"kind": "pairwise", "note": "kept"}


def test_items_written_from_code_round_trip(tmp_path: Path) -> None:
    items = (
        QAItem(id=item_id("test", "q", (Answer("m", "a"),)), split="test", question="q", answers=(Answer("m", "a"),),
               source="", evaluations=(Verdict("ref", 2, "two", SCORED, kind=SCORE, scale=(0, 1, 2)),
                                       Verdict("j", None, "", "error", {"attempts": 3}, kind=SCORE, scale=(0, 1, 2)))),
    )
    write_qa(tmp_path / "a.jsonl", items)
    assert json.loads((tmp_path / "a.jsonl").read_text())["evaluations"] == [
        {"llm": "ref", "score": 2, "text": "two", "source": "scored", "kind": "score", "scale": [0, 1, 2]},
        {"llm": "j", "score": None, "text": "", "source": "error", "kind": "score", "scale": [0, 1, 2], "attempts": 3}]
    again = read_qa(tmp_path / "a.jsonl", "test")
    assert again == items
    write_qa(tmp_path / "b.jsonl", again)
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_the_writer_refuses_a_verdict_it_could_not_read_back() -> None:
    with pytest.raises(ValueError, match="'score' verdict of judge 'j' without a scale"):
        verdict_to_json(Verdict("j", 3, "", SCORED, kind=SCORE))
    with pytest.raises(ValueError, match="pairwise verdict of judge 'j' with a scale"):
        verdict_to_json(Verdict("j", 1.0, "", "original", scale=(0, 1)))


def test_a_score_verdict_survives_the_journal_form() -> None:
    verdict = Verdict("j", 1.5, "ok", SCORED, {"x": 1}, kind=SCORE, scale=(1, 1.5, 2))
    assert verdict_from_json(json.loads(json.dumps(verdict_to_json(verdict)))) == verdict


def sha_id(split: str, question: str, *answers: tuple[str, str]) -> str:
    """The id formula of ``item_id``'s docstring, written out."""
    content = json.dumps([split, question, *([m, t] for m, t in answers)])
    return f"{split}-{hashlib.sha256(content.encode('utf-8')).hexdigest()[:16]}"


def test_ids_of_points_and_pairs(tmp_path: Path) -> None:
    items = read_qa(write_lines(tmp_path / "x.jsonl", MIXED), "test")
    assert items[0].id == sha_id("test", "q1", ("m1", "one answer"))
    assert items[2].id == "explicit-3"
    assert items[4].id == sha_id("test", "q5", ("m1", "one"), ("m2", "two"))  # a pair's id as it always was
    assert items[0].id != items[4].id and items[0].order_key == f"{question_key('test', 'q1')} {items[0].id}"


def test_kind_of_an_item_built_with_another_number_of_answers() -> None:
    item = QAItem(id="x", split="test", question="q", answers=(), source="")
    with pytest.raises(ValueError, match="item 'x' has 0 answers; an item has 2 .a pair. or 1 .pointwise."):
        _ = item.kind


# --------------------------------------------------------------------------- every reader


def test_every_reader_reads_points(tmp_path: Path) -> None:
    write_lines(tmp_path / QA_FILES["test"], MIXED)
    path = tmp_path / QA_FILES["test"]
    items = read_qa(path, "test")
    assert read_run(tmp_path).test == items
    assert tuple(iter_qa(path, "test")) == items
    expected = [qa_row(i) for i in items]
    for rows in (list(iter_qa_rows(path, "test")), list(iter_qa_rows(path, "test", stream=True)),
                 list(stream_split(tmp_path))):
        assert rows == expected
        assert [r.kind for r in rows] == [POINTWISE] * 4 + [PAIRWISE] * 2
        assert [r.len_second for r in rows[:4]] == [-1] * 4
        # each score verdict unpacks as (llm, score, source) and carries its judge's scale as floats
        first = rows[0].verdicts
        assert all(isinstance(e, ScoreEntry) for e in first)
        assert [(llm, score, source, e.scale) for e, (llm, score, source) in zip(first, first)] == [
            ("ref", 4.0, SCORED, (1.0, 2.0, 3.0, 4.0, 5.0)), ("judge", 3.0, SCORED, (1.0, 2.0, 3.0, 4.0, 5.0)),
            ("halves", 4.5, SCORED, tuple(float(v) for v in HALVES))]
        assert [type(score) for _, score, _ in first] == [float, float, float]
        assert not any(isinstance(e, ScoreEntry) for r in rows[4:] for e in r.verdicts)


def test_a_plain_pointwise_line_takes_the_fast_path(tmp_path: Path) -> None:
    for line in MIXED:
        row = _fast_row(json.loads(json.dumps(line)), "test", {})
        assert row is not None, line
        (item,) = read_qa(write_lines(tmp_path / "one.jsonl", [line]), "test")
        assert row == qa_row(item)
        assert [getattr(e, "scale", None) for e in row.verdicts] == [getattr(e, "scale", None)
                                                                      for e in qa_row(item).verdicts]


def test_a_score_entry_copies_and_pickles_with_its_scale() -> None:
    entry = ScoreEntry("j", 2.0, SCORED, (1.0, 2.0))
    for twin in (copy.copy(entry), copy.deepcopy(entry), pickle.loads(pickle.dumps(entry))):
        assert twin == ("j", 2.0, SCORED) and twin.scale == (1.0, 2.0) and isinstance(twin, ScoreEntry)


# --------------------------------------------------------------------------- malformed lines


def with_eval(**changes) -> dict:
    evaluation = score_eval()
    for key, value in changes.items():
        if value is ...:
            del evaluation[key]
        else:
            evaluation[key] = value
    return point_line("bad", [evaluation])


MALFORMED = [
    # (line 2, field, problem)
    (with_eval(score=4.5), "evaluations[0].score", "4.5 is not on the declared scale [1, 2, 3, 4, 5]"),
    (with_eval(score=0), "evaluations[0].score", "0 is not on the declared scale [1, 2, 3, 4, 5]"),
    (with_eval(score=True), "evaluations[0].score", "expected float, found boolean"),
    (with_eval(score="4"), "evaluations[0].score", "expected float, found string"),
    (with_eval(score=...), "evaluations[0].score", "missing"),
    (with_eval(score=None), "evaluations[0].score", "null, but source 'scored' needs a score"),
    (with_eval(source="error"), "evaluations[0].score", "4 with source 'error'; only a 'scored' verdict has a score"),
    (with_eval(source="original"), "evaluations[0].source",
     "'original' is not one of scored, output-cannot-be-parsed, error (the sources of a score verdict)"),
    (with_eval(scale=...), "evaluations[0].scale", "missing; a score verdict declares its scale"),
    (with_eval(scale="1-5"), "evaluations[0].scale", "expected array, found string"),
    (with_eval(scale=[4]), "evaluations[0].scale", "1 value(s); a scale needs at least two scores"),
    (with_eval(scale=[]), "evaluations[0].scale", "0 value(s); a scale needs at least two scores"),
    (with_eval(scale=[1, 3, 2, 4]), "evaluations[0].scale[2]", "2 does not come after 3"),
    (with_eval(scale=[1, 1, 4]), "evaluations[0].scale[1]", "1 does not come after 1"),
    (with_eval(scale=["1", 4]), "evaluations[0].scale[0]", "expected number, found string"),
    (with_eval(scale=[False, 4]), "evaluations[0].scale[0]", "expected number, found boolean"),
    (with_eval(scale=[1, None]), "evaluations[0].scale[1]", "expected number, found null"),
    (json.dumps(with_eval(scale=[1, 4])).replace("[1, 4]", "[1, 1e400]"), "evaluations[0].scale[1]",
     "inf is not a finite number"),
    (json.dumps(with_eval(scale=[1, 4])).replace("[1, 4]", "[NaN, 4]"), "evaluations[0].scale[0]",
     "nan is not a finite number"),
    (json.dumps(with_eval(scale=[1, 4])).replace("[1, 4]", "[1, " + "9" * 400 + "]"), "evaluations[0].scale[1]",
     "is not a finite number (within the range of a 64-bit float)"),
    (with_eval(kind="rating"), "evaluations[0].kind", "'rating' is not one of pairwise, score"),
    (with_eval(kind=5), "evaluations[0].kind", "expected string, found number"),
    # a verdict of the wrong kind for the item's answers
    (point_line("bad", [{"llm": "gpt_4", "score": 1.0, "text": "", "source": "original"}]), "answers",
     "expected 2 answers, found 1: evaluations[0] (judge 'gpt_4') is a pairwise verdict"),
    (point_line("bad", [score_eval("ref", 3), {"llm": "p", "score": 1.0, "text": "", "source": "original",
                                               "kind": "pairwise"}]), "answers",
     "expected 2 answers, found 1: evaluations[1] (judge 'p') is a pairwise verdict"),
    (pair_line("bad", [score_eval("ref", 3)]), "answers",
     "expected 1 answer, found 2: evaluations[0] (judge 'ref') is a score verdict, which rates one answer"),
    (pair_line("bad", [{"llm": "gpt_4", "score": 1.0, "text": "", "source": "original", "scale": [0, 1]}]),
     "evaluations[0].scale", "a pairwise verdict has no scale"),
    (pair_line("bad", [{"llm": "gpt_4", "score": 1.0, "text": "", "source": "scored"}]), "evaluations[0].source",
     "'scored' is the source of a score verdict, which says \"kind\": \"score\""),
    (point_line("bad", answers=[]), "answers", "expected 2 answers (a pair) or 1 (a pointwise item), found 0"),
    (point_line("bad", answers=[{"model": "m", "text": str(i)} for i in range(3)]), "answers",
     "expected 2 answers (a pair) or 1 (a pointwise item), found 3"),
    (point_line("bad", answers=[{"model": "m"}]), "answers[0].text", "missing"),
    (point_line("bad", [score_eval("ref", 3), score_eval("ref", 4)]), "evaluations[1].llm",
     "judge 'ref' has two verdicts on this item"),
    # one judge, one scale and one kind per file (line 1 gives judge 'ref' the 1..5 scale)
    (point_line("bad", [score_eval("ref", 1, scale=[0, 1])]), "evaluations[0].scale",
     "judge 'ref' declares the scale [0, 1] here but [1, 2, 3, 4, 5] on line 1; a judge keeps one scale in a file"),
    (point_line("bad", [score_eval("other", 1), score_eval("ref", 1.5, scale=HALVES)]), "evaluations[1].scale",
     "judge 'ref' declares the scale [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5] here but [1, 2, 3, 4, 5] on line 1"),
    (pair_line("bad", [{"llm": "ref", "score": 1.0, "text": "", "source": "original"}]), "evaluations[0].kind",
     "judge 'ref' gives a pairwise verdict here but score verdicts on line 1; a judge has one kind in a file"),
    (point_line(), "question",
     "duplicate item: the same question and the same answer (model and text) as line 1"),
    (point_line("other", id="first-id"), "id", "duplicate id 'first-id': line 1 has the same id"),
]


@pytest.mark.parametrize(("row", "field", "problem"), MALFORMED)
def test_malformed_pointwise_line_names_file_line_and_field(tmp_path: Path, row, field, problem) -> None:
    first = point_line(id="first-id") if field == "id" else point_line()
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [first, row])
    with pytest.raises(RunFileError) as info:
        read_qa(path, "test")
    err = info.value
    assert (err.path, err.line, err.field) == (path, 2, field)
    assert problem in str(err)
    assert f"{path}:2: field '{field}':" in str(err) and "How to fix" in str(err)
    # every reader: the same error, word for word
    expected = outcome(lambda: read_qa(path, "test"))
    for read in (lambda: list(iter_qa(path, "test")), lambda: list(iter_qa_rows(path, "test")),
                 lambda: list(iter_qa_rows(path, "test", stream=True)), lambda: list(stream_split(tmp_path)),
                 lambda: read_run(tmp_path)):
        assert outcome(read) == expected


def test_the_kind_check_runs_both_ways(tmp_path: Path) -> None:
    # a pairwise judge first, the same name as a score judge later
    path = write_lines(tmp_path / "x.jsonl", [pair_line(evaluations=[{"llm": "g", "score": 1.0, "text": "",
                                                                       "source": "original"}]),
                                              point_line(evaluations=[score_eval("g", 2)])])
    for read in (lambda: read_qa(path, "test"), lambda: list(iter_qa_rows(path, "test"))):
        with pytest.raises(RunFileError) as info:
            read()
        assert (info.value.line, info.value.field) == (2, "evaluations[0].kind")
        assert "judge 'g' gives a score verdict here but pairwise verdicts on line 1" in str(info.value)
        assert "give the score judge its own name (e.g. 'g-score')" in str(info.value)


def test_a_scale_read_as_floats_is_the_same_scale(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [point_line("a"), point_line("b", [score_eval(scale=[1.0, 2.0, 3.0, 4.0, 5.0],
                                                                                             score=4.0)])])
    assert len(read_qa(path, "test")) == len(list(iter_qa_rows(path, "test"))) == 2


# --------------------------------------------------------------------------- fast path == slow path

_MUTATIONS = [
    ("score", [4, 4.0, 4.5, 0, 6, None, True, "4", [4], 1e400]),
    ("source", ["scored", "output-cannot-be-parsed", "error", "original", "neither", 3]),
    ("kind", ["score", "pairwise", "Score", None, 1, ...]),
    ("scale", [[1, 2, 3, 4, 5], [1.0, 2.0, 3.0, 4.0, 5.0], HALVES, [0, 1], [5, 4], [1], [], "x", None, [1, "2"],
               [True, 2], [1, 2, 2], [1, 1e400], ...]),
    ("llm", ["ref", "other", 7, ...]),
    ("text", ["t", None, ...]),
]


@st.composite
def pointwise_lines(draw) -> str:
    evaluations = []
    for name in ["ref", "other", "third"][:draw(st.integers(0, 3))]:
        evaluation = score_eval(name)
        for key, choices in _MUTATIONS:
            if draw(st.integers(0, 4)) == 0:  # mostly well formed, so many lines pass and take the fast path
                value = draw(st.sampled_from(choices))
                if value is ...:
                    evaluation.pop(key, None)
                else:
                    evaluation[key] = value
        evaluations.append(evaluation)
    one = [{"model": "m", "text": "t"}]
    answers = draw(st.sampled_from([one, one, one, [{"model": "m", "text": "t"}, {"model": "n", "text": "u"}],
                                    [{"model": "m", "text": 1}], []]))
    row = {"question": draw(st.sampled_from(["q", "first"])), "answers": answers, "source": "s",
           "evaluations": evaluations}
    if draw(st.booleans()):
        row["id"] = draw(st.sampled_from(["x", " ", 3]))
    return json.dumps(row).replace("Infinity", "1e400")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(pointwise_lines(), min_size=1, max_size=4))
def test_rows_accept_and_refuse_exactly_as_items_do(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "test_qa_complete.jsonl"
    path.write_text(json.dumps(point_line("first")) + "\n" + "\n".join(lines) + "\n")
    expected = outcome(lambda: [qa_row(i) for i in read_qa(path, "test")])
    for stream in (False, True):
        got = outcome(lambda: list(iter_qa_rows(path, "test", stream=stream)))
        assert got == expected
        if got[0] == "ok":  # the scales too (tuple equality does not look at them)
            assert [[getattr(e, "scale", None) for e in r.verdicts] for r in got[1]] == \
                [[getattr(e, "scale", None) for e in r.verdicts] for r in expected[1]]

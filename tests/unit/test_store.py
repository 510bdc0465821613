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
    EVENTS_FILE, MAX_DEPTH, QA_FILES, RESOLVED_FILE, Run, read_events, read_qa, read_run, write_qa,
    write_run,
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


def test_ids_are_derived_from_split_question_and_answers_not_position(tmp_path: Path) -> None:
    rows = [qa_line(question=f"q{i}") for i in range(5)]
    forward = read_qa(write_lines(tmp_path / "a.jsonl", rows), "test")
    backward = read_qa(write_lines(tmp_path / "b.jsonl", rows[::-1]), "test")
    assert {i.question: i.id for i in forward} == {i.question: i.id for i in backward}
    answers = forward[0].answers
    assert forward[0].id == item_id("test", "q0", answers) != item_id("train", "q0", answers)
    # The raw text as stored: a prefix or whitespace is part of the identity.
    assert item_id("test", "Question: q0", answers) != item_id("test", "q0", answers)


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
        (qa_line(question="first"), 2, "question",
         "duplicate item: the same question and the same two answers (models and texts) as line 1"),
        (qa_line(id=7), 2, "id", "expected string, found number"),
        (qa_line(id=" "), 2, "id", "empty; an explicit id must name the item"),
        (qa_line(id="a\tb"), 2, "id", "holds a control character"),
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


#: Strings with lone surrogates (json.dumps writes them as \\udXXX escapes).
surrogate_text = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.sampled_from("ab"),
                         min_size=1, max_size=4)


def nested(depth: int, inner: str, *, key: str | None = None) -> str:
    """``inner`` inside ``depth`` arrays (or objects with ``key``)."""
    if key is None:
        return "[" * depth + inner + "]" * depth
    return f'{{"{key}": ' * depth + inner + "}" * depth


unicode_lines = st.one_of(
    # Lone surrogate escapes, in a known field, an unknown one, or a key.
    st.builds(lambda s: json.dumps(qa_line(question=s)), surrogate_text),
    st.builds(lambda s: json.dumps(qa_line(answers=[{"model": "m", "text": s}, {"model": "n", "text": "t"}])),
              surrogate_text),
    st.builds(lambda s: json.dumps({**qa_line(), s: 1}), surrogate_text),
    st.builds(lambda s: json.dumps(s), surrogate_text),
    # Nesting on both sides of the limit and far past Python's recursion limit.
    st.builds(lambda d, k: nested(d, "1", key=k), st.integers(1, 3000), st.sampled_from([None, "x"])),
    st.builds(lambda d: json.dumps(qa_line())[:-1] + ', "x": ' + nested(d, "[]") + "}",
              st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3) | st.integers(900, 1200)),
    st.builds(lambda d: nested(d, "", key=None)[:d], st.integers(1, 3000)),  # unclosed
)


def raw_lines(texts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return texts.map(lambda t: t.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(raw_lines(json_values.map(json.dumps) | st.text(max_size=30)
                                | st.binary(max_size=20).map(lambda b: b.decode("latin-1"))
                                | unicode_lines
                                # encoded surrogates: not UTF-8
                                | surrogate_text)
                      # invalid UTF-8 bytes, alone or inside a valid line
                      | st.binary(max_size=20)
                      | st.binary(min_size=1, max_size=4).map(
                          lambda b: json.dumps(qa_line()).encode().replace(b"pair", b, 1)),
                      min_size=1, max_size=4))
def test_arbitrary_lines_raise_only_our_error(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        items = read_qa(path, "test")
    except RunFileError as err:
        assert err.path == path
        str(err).encode("utf-8")  # the message itself is printable text
    else:
        for item in items:  # what is accepted is valid Unicode throughout
            json.dumps([item.question, item.source, [a.text for a in item.answers]],
                       ensure_ascii=False).encode("utf-8")


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(raw_lines(unicode_lines | json_values.map(json.dumps)) | st.binary(max_size=20),
                      min_size=1, max_size=3))
def test_arbitrary_event_lines_raise_only_our_error(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        read_events(path)
    except RunFileError as err:
        assert err.path == path


# --- unreadable input: every case a RunFileError naming file, line and field ------------------

@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 995, 5000])
def test_deep_nesting_is_refused_with_the_line(tmp_path: Path, depth: int) -> None:
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line(question="first"), nested(depth, "1")])
    with pytest.raises(RunFileError) as info:
        read_qa(path, "test")
    err = info.value
    assert (err.path, err.line) == (path, 2)
    assert f"nested deeper than {MAX_DEPTH} levels" in str(err) and "How to fix" in str(err)


def test_deep_nesting_in_an_unknown_field_names_the_field(tmp_path: Path) -> None:
    # The record is one level, "x" adds 1 + the wrappers: MAX_DEPTH levels in all is fine.
    ok = json.dumps(qa_line(question="ok"))[:-1] + ', "x": ' + nested(MAX_DEPTH - 2, "[]") + "}"
    deep = json.dumps(qa_line(question="deep"))[:-1] + ', "x": ' + nested(MAX_DEPTH - 1, "[]") + "}"
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [ok])
    (item,) = read_qa(path, "test")
    assert item.extra["x"] == json.loads(nested(MAX_DEPTH - 2, "[]"))
    write_lines(path, [ok, deep])
    with pytest.raises(RunFileError) as info:
        read_qa(path, "test")
    assert (info.value.line, info.value.field) == (2, "x")


@pytest.mark.parametrize(("row", "field"), [
    (qa_line(question="q\ud800"), "question"),
    (qa_line(answers=[{"model": "m", "text": "t"}, {"model": "n", "text": "\udfff end"}]), "answers[1].text"),
    (qa_line(evaluations=[{"llm": "g\udc80", "score": 1.0, "text": "", "source": "original"}]),
     "evaluations[0].llm"),
    ({**qa_line(), "k\ud800": 1}, None),
])
def test_a_lone_surrogate_is_refused_with_file_line_and_field(tmp_path: Path, row: dict, field) -> None:
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line(question="first"), row])
    with pytest.raises(RunFileError) as info:
        read_qa(path, "test")
    err = info.value
    assert (err.path, err.line, err.field) == (path, 2, field)
    message = str(err)
    message.encode("utf-8")  # printable: the surrogate is shown as its escape
    assert "lone surrogate \\u" in message and "not valid Unicode text" in message
    assert "fix the line" in message


def test_a_surrogate_pair_is_one_valid_character(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line(question="smile \U0001f600")])
    assert "\\ud83d\\ude00" in path.read_text()  # json.dumps wrote the pair as two escapes
    (item,) = read_qa(path, "test")
    assert item.question == "smile \U0001f600" and item.id == item_id("test", "smile \U0001f600", item.answers)


def test_invalid_utf8_bytes_are_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "test_qa_complete.jsonl"
    path.write_bytes(json.dumps(qa_line()).encode() + b"\n" + json.dumps(qa_line(question="QQ")).encode()
                     .replace(b"QQ", b"\xff\xfe") + b"\n")
    with pytest.raises(RunFileError, match=r"test_qa_complete.jsonl:2: not valid JSON \(.*utf-8") as info:
        read_qa(path, "test")
    assert info.value.line == 2


def test_a_folder_in_place_of_a_run_file(tmp_path: Path) -> None:
    (tmp_path / "test_qa_complete.jsonl").mkdir()
    with pytest.raises(RunFileError) as info:
        read_run(tmp_path)
    err = info.value
    assert err.path == tmp_path / "test_qa_complete.jsonl" and err.line is None
    assert "is a folder, not a file" in str(err) and "How to fix" in str(err)


def deny(monkeypatch: pytest.MonkeyPatch, method: str, denied: Path) -> None:
    """Make ``Path.<method>`` raise PermissionError on ``denied`` and anything inside it, as an
    unreadable file or folder does for a user who is not root (tests may run as root)."""
    original = getattr(Path, method)

    def guarded(self: Path, *args, **kwargs):
        if self == denied or denied in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, guarded)


def test_an_unreadable_file_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line()])
    for method in ("read_bytes", "open"):  # whole-file and line-at-a-time reads
        deny(monkeypatch, method, path)
    with pytest.raises(RunFileError) as info:
        read_run(tmp_path)
    assert info.value.path == path
    assert "permission denied: cannot read this file" in str(info.value) and "chmod" in str(info.value)


def test_report_gate_and_compare_read_a_line_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows they read stream (``Path.open``, a line at a time): the file is never read whole."""
    from judge_eval.core.store import stream_split

    path = write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line(), qa_line(question="another")])
    deny(monkeypatch, "read_bytes", path)
    assert len(list(stream_split(tmp_path))) == 2


def test_an_unreadable_folder_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_lines(run / "test_qa_complete.jsonl", [qa_line()])
    deny(monkeypatch, "stat", run / "test_qa_complete.jsonl")
    with pytest.raises(RunFileError) as info:
        read_run(run)
    assert info.value.path == run
    assert "permission denied: cannot look inside this folder" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their mode; the simulated tests cover this")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_real_permissions(tmp_path: Path, what: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = write_lines(run / "test_qa_complete.jsonl", [qa_line()])
    target = path if what == "file" else run
    target.chmod(0)
    try:
        with pytest.raises(RunFileError, match="permission denied"):
            read_run(run)
    finally:
        target.chmod(0o700)


def test_parts_reads_only_what_is_asked(tmp_path: Path) -> None:
    write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line()])
    (tmp_path / "train_qa.jsonl").write_text("{broken\n")
    (tmp_path / "run.json").write_text("[1]")
    (tmp_path / EVENTS_FILE).mkdir()
    run = read_run(tmp_path, parts=("test",))
    assert len(run.test) == 1 and run.train == () and run.events == () and run.meta == {}
    # The default still reads every part present, so the broken files are reported there.
    with pytest.raises(RunFileError, match="train_qa.jsonl:1: not valid JSON"):
        read_run(tmp_path)
    with pytest.raises(RunFileError, match="run.json.*expected a JSON object"):
        read_run(tmp_path, parts=("test", "meta"))
    # A required part is read even when ``parts`` leaves it out.
    with pytest.raises(RunFileError, match="train_qa.jsonl:1"):
        read_run(tmp_path, require=("train",), parts=("test",))
    with pytest.raises(ValueError, match="unknown run parts"):
        read_run(tmp_path, parts=("tset",))


def test_a_deep_or_surrogate_run_json_is_refused(tmp_path: Path) -> None:
    write_lines(tmp_path / "test_qa_complete.jsonl", [qa_line()])
    (tmp_path / "run.json").write_text('{"a": ' + nested(5000, "1") + "}")
    with pytest.raises(RunFileError, match=f"run.json: arrays/objects nested deeper than {MAX_DEPTH}"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text('{"a": "\\ud800"}')
    with pytest.raises(RunFileError, match="run.json: field 'a': lone surrogate"):
        read_run(tmp_path)

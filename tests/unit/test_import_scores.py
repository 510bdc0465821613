"""judge-eval import scores: a team's own pointwise judgements (a score per answer and judge) into a
run directory of pointwise items. Every sample is hand-written here; every expected number is a
hand count of those rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge_eval.config.import_maps import load_import_map, parse_scale
from judge_eval.core.items import Answer, item_id
from judge_eval.core.store import QA_FILES, read_run, write_qa
from judge_eval.errors import ConfigError
from tests.import_helpers import assert_nothing_written, run_import, verdicts as scores, write_csv, write_jsonl


# --------------------------------------------------------------------------- CSV, 1-5 in halves

HEADER = ["query", "response", "model", "reference", "gpt4", "mine", "split"]
ROWS = [
    ["What is 2+2?", "4", "alpha", "four", "5", "4.5", "test"],
    ["Capital of France?", "Paris", "alpha", "Paris", "5.0", "", "test"],  # empty cell: mine has no verdict
    ["Capital of Spain?", "Lisbon", "beta", "Madrid", "1", "???", "test"],  # ??? mapped to unparseable
    ["Largest planet?", "Jupiter", "beta", "", "", "3", "train"],  # gpt4 missing; no reference answer
    ["What is 2+2?", "5", "beta", "four", "1.5", "n/a", "test"],  # same question, another answer
]
FLAGS = ["--question", "query", "--answer", "response", "--model", "model", "--reference-answer", "reference",
         "--judge", "gpt4=gpt4", "--judge", "mine=mine", "--split", "split", "--scale", "1-5:0.5",
         "--verdicts", "???=unparseable, n/a=missing"]
HALVES = (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5)


def test_a_csv_of_scores_becomes_pointwise_items(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "ratings.csv", HEADER, ROWS)
    out = tmp_path / "run"
    assert run_import("scores", src, out, *FLAGS) == 0
    printed = capsys.readouterr().out
    assert "imported 5 item(s) (1 train, 4 test)" in printed
    assert "judge-eval report OUT_DIR --reference gpt4" in printed.splitlines()[-1]
    assert "gpt4, mine" in printed.splitlines()[-1]

    run = read_run(out, require=("train", "test"))
    assert [i.kind for i in (*run.train, *run.test)] == ["pointwise"] * 5
    first, second, third, fifth = run.test
    assert first.answers == (Answer("alpha", "4"),)
    assert scores(first) == {"gpt4": (5, "scored"), "mine": (4.5, "scored")}
    assert scores(second) == {"gpt4": (5, "scored")}  # "5.0" is the scale's 5; the empty cell is no verdict
    assert scores(third) == {"gpt4": (1, "scored"), "mine": (None, "output-cannot-be-parsed")}
    assert scores(fifth) == {"gpt4": (1.5, "scored")}  # n/a mapped to missing
    assert scores(run.train[0]) == {"mine": (3, "scored")}
    for item in (*run.train, *run.test):
        assert item.explicit_id == item.id == item_id(item.split, item.question, item.answers)
        for verdict in item.evaluations:
            assert verdict.kind == "score" and verdict.scale == HALVES
    # a score stays as the scale writes it: 5, not 5.0
    line = json.loads((out / QA_FILES["test"]).read_text().splitlines()[1])
    assert line["evaluations"][0]["score"] == 5 and isinstance(line["evaluations"][0]["score"], int)
    assert line["evaluations"][0]["text"] == "5.0"  # the value as the file wrote it
    # the reference answer is kept on the item; an empty one is left out
    assert [i.extra.get("reference_answer") for i in run.test] == ["four", "Paris", "Madrid", "four"]
    assert "reference_answer" not in run.train[0].extra

    (record,) = run.meta["imports"]
    assert record["format"] == "scores" and record["source"] == str(src.resolve())
    assert record["options"]["scale"] == list(HALVES)
    # hand counts over the five rows above
    counts = record["counts"]
    assert counts["records"] == 5 and counts["items_train"] == 1 and counts["items_test"] == 4
    assert counts["scored"] == {"gpt4": 4, "mine": 2}
    assert counts["unparseable"] == {"gpt4": 0, "mine": 1}
    assert counts["errors"] == {"gpt4": 0, "mine": 0}
    assert counts["missing"] == {"gpt4": 1, "mine": 2}
    assert counts["verdicts"] == {"gpt4": 4, "mine": 3}


def test_the_reference_answer_round_trips_through_the_store(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "ratings.csv", HEADER, ROWS)
    out = tmp_path / "run"
    assert run_import("scores", src, out, *FLAGS) == 0
    written = (out / QA_FILES["test"]).read_bytes()
    line = json.loads(written.splitlines()[0])
    # an unknown field of the schema: written after the known ones, and back as it was
    assert list(line) == ["question", "answers", "source", "evaluations", "id", "reference_answer"]
    write_qa(tmp_path / "again.jsonl", read_run(out).test)
    assert (tmp_path / "again.jsonl").read_bytes() == written


# --------------------------------------------------------------------------- JSONL, pass/fail on 0/1

def test_a_jsonl_of_pass_fail_judgements_on_a_binary_scale(tmp_path: Path) -> None:
    rows = [
        {"uid": "q1", "question": "Is the sky blue?", "answer": "Yes.", "human": 1, "faith": "PASS", "llm": True},
        {"uid": "q2", "question": "Is fire cold?", "answer": "Yes.", "human": 0, "faith": "fail", "llm": False},
        {"uid": "q3", "question": "Is ice hot?", "answer": "No.", "human": "1", "faith": None, "llm": "yes"},
        {"uid": 4, "question": "Is ice hot?", "answer": "No.", "human": 1.0, "faith": "error",
         "llm": "output-cannot-be-parsed"},  # the same texts, told apart by the id
    ]
    src = write_jsonl(tmp_path / "faith.jsonl", rows)
    out = tmp_path / "run"
    assert run_import("scores", src, out, "--id", "uid", "--judge", "human=human", "--judge", "faith=faith",
                      "--judge", "llm=llm", "--scale", "0,1") == 0
    run = read_run(out)
    assert [i.id for i in run.test] == ["q1", "q2", "q3", "4"]
    assert [scores(i) for i in run.test] == [
        {"human": (1, "scored"), "faith": (1, "scored"), "llm": (1, "scored")},
        {"human": (0, "scored"), "faith": (0, "scored"), "llm": (0, "scored")},
        {"human": (1, "scored"), "llm": (1, "scored")},
        {"human": (1, "scored"), "faith": (None, "error"), "llm": (None, "output-cannot-be-parsed")},
    ]
    assert all(v.scale == (0, 1) for i in run.test for v in i.evaluations)
    assert run.test[0].answers == (Answer("unknown", "Yes."),)
    counts = run.meta["imports"][0]["counts"]
    assert counts["missing"] == {"human": 0, "faith": 1, "llm": 0}
    assert counts["errors"] == {"human": 0, "faith": 1, "llm": 0}
    assert counts["unparseable"] == {"human": 0, "faith": 0, "llm": 1}


def test_pass_fail_is_not_guessed_on_a_wider_scale(tmp_path: Path, capsys) -> None:
    src = write_jsonl(tmp_path / "s.jsonl", [{"question": "q", "answer": "a", "j": 4},
                                             {"question": "q2", "answer": "a", "j": "pass"}])
    out = tmp_path / "run"
    assert run_import("scores", src, out, "--judge", "j=j", "--scale", "1-5") == 2
    err = capsys.readouterr().err
    assert f"{src}:2: field 'j': value 'pass' of judge 'j' is neither a score on the scale [1, 2, 3, 4, 5]" in err
    assert "--verdicts VALUE=SCORE" in err
    assert_nothing_written(out)


# --------------------------------------------------------------------------- malformed sources

@pytest.mark.parametrize(("rows", "line", "field", "problem"), [
    ([["q", "a", "3"], ["q2", "a", "6"]], 3, "j", "score '6' of judge 'j' is not on the declared scale [1, 2, 3, 4, 5]"),
    ([["q", "a", "3"], ["q2", "a", "2.5"]], 3, "j", "score '2.5' of judge 'j' is not on the declared scale"),
    ([["q", "a", "3"], ["q2", "a", "great"]], 3, "j", "value 'great' of judge 'j' is neither a score on the scale"),
    ([["q", "a", "3"], ["", "a", "3"]], 3, "question", "empty"),
    ([["multi\nline question", "a", "3"], ["q", "a", "3"], ["q", "a", "4"]], 5, "id",
     "line 4 holds the same item"),
])
def test_a_malformed_csv_names_file_row_and_column_and_writes_nothing(tmp_path: Path, capsys, rows, line, field,
                                                                       problem) -> None:
    src = write_csv(tmp_path / "bad.csv", ["question", "answer", "j"], rows)
    out = tmp_path / "run"
    assert run_import("scores", src, out, "--judge", "j=j", "--scale", "1-5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err, err
    assert f"{src}:{line}: field '{field}':" in err
    assert_nothing_written(out)


def test_a_missing_column_names_file_line_and_column(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "bad.csv", ["question", "answer", "score"], [["q", "a", "3"]])
    out = tmp_path / "run"
    assert run_import("scores", src, out, "--judge", "j=gpt4_score", "--scale", "1-5") == 2
    err = capsys.readouterr().err
    assert f"{src}:2: field 'gpt4_score': missing (no column 'gpt4_score'" in err
    assert_nothing_written(out)
    jsonl = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a", "j": 3},
                                                 {"question": "q2", "j": 3}])
    assert run_import("scores", jsonl, out, "--judge", "j=j", "--scale", "1-5") == 2
    assert f"{jsonl}:2: field 'answer': missing (no key 'answer'" in capsys.readouterr().err
    assert_nothing_written(out)


def test_a_malformed_jsonl_value_names_line_and_key(tmp_path: Path, capsys) -> None:
    src = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a", "j": 3},
                                               {"question": "q2", "answer": "a", "j": [3]},
                                               {"question": "q3", "answer": "a", "j": 9}])
    out = tmp_path / "run"
    assert run_import("scores", src, out, "--judge", "j=j", "--scale", "1-5") == 2
    assert f"{src}:2: field 'j': expected a score (a number or a text label), found array" in capsys.readouterr().err
    assert_nothing_written(out)
    src = write_jsonl(src, [{"question": "q", "answer": "a", "j": 3}, {"question": "q3", "answer": "a", "j": 9}])
    assert run_import("scores", src, out, "--judge", "j=j", "--scale", "1-5") == 2
    assert f"{src}:2: field 'j': score '9' of judge 'j' is not on the declared scale" in capsys.readouterr().err
    assert_nothing_written(out)


# --------------------------------------------------------------------------- scales and options

@pytest.mark.parametrize(("spec", "values"), [
    ("1-5", (1, 2, 3, 4, 5)),
    ("0,1", (0, 1)),
    ("1-3:0.5", (1, 1.5, 2, 2.5, 3)),
    ("0-1:0.25", (0, 0.25, 0.5, 0.75, 1)),
    ("0-0.3:0.1", (0, 0.1, 0.2, 0.3)),  # counted in decimal: 0.3, not 0.30000000000000004
    ("-2-2", (-2, -1, 0, 1, 2)),
    (" 1, 2.5 ,4 ", (1, 2.5, 4)),
    ([1, 2, 3], (1, 2, 3)),
])
def test_scale_specs(spec, values) -> None:
    parsed = parse_scale(spec)
    assert parsed == values
    assert [type(v) for v in parsed] == [type(v) for v in values]  # whole values stay ints


@pytest.mark.parametrize(("spec", "problem"), [
    ("5-1", "HIGH must be above LOW"),
    ("1-5:0", "the step must be above 0"),
    ("1-5:0.3", "steps of 0.3 from 1 do not reach 5"),
    ("five", "not a scale spec"),
    ("3", "not a scale spec"),
    ("1,1,2", "1 does not come after 1"),
    ("1,nan", "'nan' is not a number"),
    ("0-100:0.01", "10001 values; a scale has at most 1001"),
])
def test_a_bad_scale_spec_is_refused_before_reading(tmp_path: Path, capsys, spec, problem) -> None:
    src = write_csv(tmp_path / "ok.csv", ["question", "answer", "j"], [["q", "a", "3"]])
    out = tmp_path / "run"
    assert run_import("scores", src, out, "--judge", "j=j", "--scale", spec) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--scale {spec!r}: {problem}" in err, err
    assert_nothing_written(out)


def test_bad_options_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "ok.csv", ["question", "answer", "j"], [["q", "a", "3"]])
    out = tmp_path / "run"
    for argv, message in [
        (["scores", src, out, "--judge", "j=j"], "needs the scale the judges score on: --scale 1-5"),
        (["scores", src, out, "--scale", "1-5"], "needs at least one judge column: --judge NAME=COLUMN"),
        (["scores", src, out, "--judge", "j=j", "--scale", "1-5", "--verdicts", "good=great"],
         "'good=great' is not VALUE=SCORE"),
        (["scores", src, out, "--judge", "j=j", "--scale", "1-5", "--verdicts", "good=7"],
         "--verdicts: good=7 maps to a score off the declared scale [1, 2, 3, 4, 5]"),
        (["scores", src, out, "--judge", "j=j", "--scale", "1-5", "--answer-a", "x"],
         "option(s) --answer-a do not apply to format scores"),
        (["pairs", src, out, "--scale", "1-5"], "option(s) --scale do not apply to format pairs"),
        (["scores", tmp_path / "ok.txt", out, "--judge", "j=j", "--scale", "1-5"], "cannot tell the format"),
    ]:
        assert run_import(*argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
        assert_nothing_written(out)


# --------------------------------------------------------------------------- a column map in pyproject.toml

PYPROJECT = """
[tool.judge_eval.imports.correctness]
format = "scores"
question = "query"
answer = "response"
model = "model"
reference_answer = "reference"
split = "split"
judges = { gpt4 = "gpt4", mine = "mine" }
scale = "1-5:0.5"
verdicts = { "???" = "unparseable", "n/a" = "missing" }

[tool.judge_eval.imports.arena]
question = "prompt"
"""


def test_scores_from_a_pyproject_map_with_flags_on_top(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(PYPROJECT)
    src = write_csv(tmp_path / "ratings.csv", HEADER, ROWS)
    assert run_import("scores", src, tmp_path / "run", "--map", "correctness", "--config", config) == 0
    run = read_run(tmp_path / "run", require=("train", "test"))
    assert scores(run.test[2]) == {"gpt4": (1, "scored"), "mine": (None, "output-cannot-be-parsed")}
    assert run.test[0].extra["reference_answer"] == "four" and run.test[0].answers == (Answer("alpha", "4"),)
    assert all(v.scale == HALVES for i in run.test for v in i.evaluations)
    record = run.meta["imports"][0]
    assert record["options"]["map"] == "correctness" and record["counts"]["missing"] == {"gpt4": 1, "mine": 2}
    # a flag wins over the table: mine now reads gpt4's column
    assert run_import("scores", src, tmp_path / "run2", "--map", "correctness", "--config", config,
                      "--judge", "mine=gpt4") == 0
    assert scores(read_run(tmp_path / "run2").test[2])["mine"] == (1, "scored")
    # the table's scale, and its list form, are the scale the verdicts declare
    config.write_text(PYPROJECT.replace('scale = "1-5:0.5"', "scale = [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]"))
    assert run_import("scores", src, tmp_path / "run3", "--map", "correctness", "--config", config) == 0
    assert read_run(tmp_path / "run3").test[0].evaluations[0].scale == HALVES


def test_a_scores_map_is_validated_and_kept_apart_from_pairs_maps(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pyproject.toml"
    src = write_csv(tmp_path / "ratings.csv", HEADER, ROWS)
    out = tmp_path / "run"
    config.write_text(PYPROJECT.replace('scale = "1-5:0.5"', "scale = [5, 4]"))
    with pytest.raises(ConfigError, match=r"tool\.judge_eval\.imports\.correctness\.scale = \[5, 4\]: 4 does not "
                                          r"come after 5"):
        load_import_map("correctness", config, "scores")
    config.write_text(PYPROJECT.replace('scale = "1-5:0.5"', 'scale = "5-1"'))
    assert run_import("scores", src, out, "--map", "correctness", "--config", config) == 2
    assert "tool.judge_eval.imports.correctness.scale = '5-1': HIGH must be above LOW" in capsys.readouterr().err
    config.write_text(PYPROJECT.replace('"n/a" = "missing"', '"n/a" = "skip"'))
    with pytest.raises(ConfigError, match=r"tool\.judge_eval\.imports\.correctness\.verdicts\.n/a"):
        load_import_map("correctness", config, "scores")
    config.write_text(PYPROJECT.replace('format = "scores"', 'format = "triples"'))
    with pytest.raises(ConfigError, match=r"imports\.correctness\.format = 'triples': Input should be 'pairs' or "
                                          r"'scores'"):
        load_import_map("correctness", config, "scores")
    config.write_text(PYPROJECT.replace('"???" = "unparseable"', '"???" = 7'))
    assert run_import("scores", src, out, "--map", "correctness", "--config", config) == 2
    assert ("[tool.judge_eval.imports.correctness].verdicts: ???=7 maps to a score off the declared scale"
            in capsys.readouterr().err)
    config.write_text(PYPROJECT)
    assert run_import("scores", src, out, "--map", "arena", "--config", config) == 2
    assert "import map 'arena'" in (err := capsys.readouterr().err) and 'add format = "scores"' in err
    assert run_import("pairs", src, out, "--map", "correctness", "--config", config) == 2
    assert "is a scores map, not a pairs map" in capsys.readouterr().err
    assert_nothing_written(out)
    # a pairs map still loads as before, with or without format = "pairs"
    assert load_import_map("arena", config).question == "prompt"
    config.write_text(PYPROJECT.replace('question = "prompt"', 'format = "pairs"\nquestion = "prompt"'))
    assert load_import_map("arena", config).question == "prompt"

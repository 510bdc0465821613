"""judge-eval import: pairs, preference, MT-Bench human and GPT-4 pair judgements into run
directories. Every sample is written here, in each public layout; none is copied data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.config.import_maps import load_import_map
from judge_eval.core.items import Answer, item_id
from judge_eval.core.resolution import resolve_orders
from judge_eval.core.store import read_run
from judge_eval.errors import ConfigError
from judge_eval.importing.mt_bench import mt_bench_id
from judge_eval.importing.tabular import chosen_first
from tests.import_helpers import assert_nothing_written, run_import, verdicts, write_csv, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- pairs


PAIRS_HEADER = ["prompt", "response_a", "response_b", "model_a", "model_b", "gpt4", "mine", "split"]
PAIRS_ROWS = [
    ["Name a prime number.", "7", "8", "alpha", "beta", "A", "A", "test"],
    ["Name a prime number.", "9", "11", "alpha", "beta", "B", "tie", "test"],  # same question, 2nd pair
    ["Name an even number.", "4", "3", "beta", "gamma", "tie", "", "train"],  # empty cell: no verdict
]
PAIRS_FLAGS = ["--question", "prompt", "--answer-a", "response_a", "--answer-b", "response_b", "--model-a",
               "model_a", "--model-b", "model_b", "--judge", "gpt4=gpt4", "--judge", "mine=mine", "--split", "split"]


def test_pairs_csv_with_flags(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "pairs.csv", PAIRS_HEADER, PAIRS_ROWS)
    out = tmp_path / "run"
    assert run_import("pairs", src, out, *PAIRS_FLAGS) == 0
    assert "imported 3 item(s) (1 train, 2 test)" in capsys.readouterr().out
    run = read_run(out, require=("train", "test"))
    first, second = run.test
    assert first.answers == (Answer("alpha", "7"), Answer("beta", "8"))
    assert verdicts(first) == {"gpt4": (1.0, "original"), "mine": (1.0, "original")}
    assert verdicts(second) == {"gpt4": (0.0, "original"), "mine": (0.5, "original")}
    assert verdicts(run.train[0]) == {"gpt4": (0.5, "original")}
    for item in (*run.train, *run.test):  # explicit ids, equal to the content ids
        assert item.explicit_id == item.id == item_id(item.split, item.question, item.answers)
    line = json.loads((out / "test_qa_complete.jsonl").read_text().splitlines()[0])
    assert line["id"] == first.id
    (record,) = run.meta["imports"]
    assert record["format"] == "pairs" and record["source"] == str(src.resolve())
    assert record["source_sha256"].startswith("sha256:") and record["options"]["judges"] == {"gpt4": "gpt4",
                                                                                             "mine": "mine"}
    assert record["options"]["verdicts"]["a"] == "first" and record["counts"]["records"] == 3
    assert main(["report", str(out), "--reference", "gpt4", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 2


def test_pairs_jsonl_numeric_verdicts_custom_map_and_id_column(tmp_path: Path) -> None:
    rows = [{"uid": "r1", "question": "q", "answer_a": "x", "answer_b": "y", "j": 1, "k": 1.0},
            {"uid": "r2", "question": "q", "answer_a": "x", "answer_b": "y", "j": 0, "k": None},
            {"uid": 3, "question": "q2", "answer_a": "x", "answer_b": "y", "j": 0.5, "k": "0"}]
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "run"
    assert run_import("pairs", src, out, "--id", "uid", "--judge", "j=j", "--judge", "k=k",
                      "--verdicts", "1=first, 0=second, 0.5=tie") == 0
    items = read_run(out).test
    assert [i.id for i in items] == ["r1", "r2", "3"]  # the same content twice: two ids, two items
    assert [verdicts(i) for i in items] == [
        {"j": (1.0, "original"), "k": (1.0, "original")},
        {"j": (0.0, "original")},
        {"j": (0.5, "original"), "k": (0.0, "original")}]
    assert items[0].answers == (Answer("a", "x"), Answer("b", "y"))


def test_pairs_neither_and_missing_meanings(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "p.jsonl", [{"question": "q", "answer_a": "x", "answer_b": "y", "j": "?"},
                                             {"question": "q", "answer_a": "x", "answer_b": "z", "j": "skip"}])
    assert run_import("pairs", src, tmp_path / "run", "--judge", "j=j", "--verdicts", "?=neither,skip=missing") == 0
    items = read_run(tmp_path / "run").test
    assert [verdicts(i) for i in items] == [{"j": (0.5, "neither")}, {}]


PYPROJECT = """
[tool.judge_eval.imports.arena]
question = "prompt"
answer_a = "response_a"
answer_b = "response_b"
model_a = "model_a"
model_b = "model_b"
split = "split"
judges = { gpt4 = "gpt4", mine = "mine" }
verdicts = { A = "first", B = "second", tie = "tie" }
"""


def test_pairs_from_a_pyproject_map_with_flags_on_top(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(PYPROJECT)
    src = write_csv(tmp_path / "pairs.csv", PAIRS_HEADER, PAIRS_ROWS)
    assert run_import("pairs", src, tmp_path / "run", "--map", "arena", "--config", config) == 0
    run = read_run(tmp_path / "run")
    assert verdicts(run.test[1]) == {"gpt4": (0.0, "original"), "mine": (0.5, "original")}
    assert run.meta["imports"][0]["options"]["map"] == "arena"
    # a flag wins over the table: only the judge's column changes
    assert run_import("pairs", src, tmp_path / "run2", "--map", "arena", "--config", config,
                      "--judge", "mine=gpt4") == 0
    assert verdicts(read_run(tmp_path / "run2").test[1])["mine"] == (0.0, "original")


def test_an_imports_table_is_validated(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(PYPROJECT.replace('tie = "tie" }', 'tie = "draw" }'))
    with pytest.raises(ConfigError, match=r"tool\.judge_eval\.imports\.arena\.verdicts\.tie = 'draw'"):
        load_import_map("arena", config)
    config.write_text(PYPROJECT + 'colour = "blue"\n')
    src = write_csv(tmp_path / "pairs.csv", PAIRS_HEADER, PAIRS_ROWS)
    assert run_import("pairs", src, tmp_path / "run", "--map", "arena", "--config", config) == 2
    assert "unknown key(s) colour" in capsys.readouterr().err
    config.write_text(PYPROJECT)
    assert run_import("pairs", src, tmp_path / "run", "--map", "nope", "--config", config) == 2
    assert "unknown import map 'nope'" in capsys.readouterr().err and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("rows", "line", "field", "problem"), [
    ([["q", "x", "y", "A"], ["q2", "x", "y", "win"]], 3, "j", "verdict 'win' of judge 'j' is not in the verdict map"),
    ([["q", "x", "y", "A"], ["", "x", "y", "A"]], 3, "question", "empty"),
    ([["multi\nline question", "x", "y", "A"], ["q", "x", "y", "A"], ["q", "x", "y", "B"]], 5, "id",
     "line 4 holds the same item"),
    ([["q", "x", "y", "A", "extra"]], 2, None, "5 fields, but the header has 4"),
])
def test_a_malformed_csv_names_file_line_and_field_and_writes_nothing(tmp_path: Path, capsys, rows, line, field,
                                                                       problem) -> None:
    src = write_csv(tmp_path / "bad.csv", ["question", "answer_a", "answer_b", "j"], rows)
    out = tmp_path / "run"
    assert run_import("pairs", src, out, "--judge", "j=j") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err
    assert f"{src}:{line}:" + (f" field '{field}':" if field else "") in err
    assert_nothing_written(out)


def test_a_malformed_jsonl_names_file_line_and_field(tmp_path: Path, capsys) -> None:
    src = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer_a": "x", "answer_b": "y", "j": "A"},
                                               {"question": "q", "answer_a": ["x"], "answer_b": "y", "j": "A"}])
    out = tmp_path / "run"
    assert run_import("pairs", src, out, "--judge", "j=j") == 2
    assert f"{src}:2: field 'answer_a': expected a string, found array" in capsys.readouterr().err
    assert_nothing_written(out)
    src.write_text('{"question": "q"\n')
    assert run_import("pairs", src, out, "--judge", "j=j") == 2
    assert f"{src}:1: not valid JSON" in capsys.readouterr().err
    assert_nothing_written(out)


def test_bad_options_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "pairs.csv", PAIRS_HEADER, PAIRS_ROWS)
    for argv, message in [
        (["pairs", src, tmp_path / "r", "--seed", "0"], "option(s) --seed do not apply to format pairs"),
        (["mt-bench-human", src, tmp_path / "r", "--judge", "a=b"], "--judge do not apply to format mt-bench-human"),
        (["pairs", src, tmp_path / "r", "--verdicts", "A=win"], "'A=win' is not VALUE=MEANING"),
        (["pairs", src, tmp_path / "r", "--judge", "nocolumn"], "--judge 'nocolumn': expected NAME=COLUMN"),
        (["pairs", tmp_path / "pairs.txt", tmp_path / "r"], "cannot tell the format from the name"),
        (["pairs", tmp_path / "absent.csv", tmp_path / "r"], "file not found"),
        (["mt-bench-gpt4-pair", tmp_path / "x.jsonl", tmp_path / "r"], "needs the answer texts"),
    ]:
        assert run_import(*argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
        assert not (tmp_path / "r").exists()


def test_an_existing_out_dir_is_never_written_over(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "pairs.csv", PAIRS_HEADER, PAIRS_ROWS)
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_import("pairs", src, out, *PAIRS_FLAGS) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()  # an empty folder is fine
    assert run_import("pairs", src, out, *PAIRS_FLAGS) == 0


# --------------------------------------------------------------------------- preference


def test_preference_places_answers_by_a_seeded_coin_and_records_it(tmp_path: Path, capsys) -> None:
    rows = [{"prompt": f"question {n}", "chosen": f"good answer {n}", "rejected": f"bad answer {n}"} for n in range(40)]
    src = write_jsonl(tmp_path / "prefs.jsonl", rows)
    assert run_import("preference", src, tmp_path / "run") == 0
    assert "--reference preference" in capsys.readouterr().out
    items = read_run(tmp_path / "run").test
    firsts = []
    for r, item in zip(rows, items):
        first = chosen_first(0, r["prompt"], r["chosen"], r["rejected"])
        firsts.append(first)
        placed = [r["chosen"], r["rejected"]] if first else [r["rejected"], r["chosen"]]
        assert [a.text for a in item.answers] == placed
        assert {a.model for a in item.answers} == {"unknown"}
        assert item.extra["preference"] == {"seed": 0, "chosen": "first" if first else "second"}
        assert verdicts(item) == {"preference": (1.0 if first else 0.0, "original")}
    assert 5 < sum(firsts) < 35  # both orders occur
    # the order depends on the seed and the content, not on the row's position
    write_jsonl(tmp_path / "reversed.jsonl", rows[::-1])
    assert run_import("preference", tmp_path / "reversed.jsonl", tmp_path / "rev") == 0
    assert {i.id: i.answers for i in read_run(tmp_path / "rev").test} == {i.id: i.answers for i in items}
    assert run_import("preference", src, tmp_path / "seed7", "--seed", "7") == 0
    seven = read_run(tmp_path / "seed7")
    assert seven.meta["imports"][0]["options"]["seed"] == 7
    assert [i.extra["preference"]["chosen"] for i in seven.test] != [i.extra["preference"]["chosen"] for i in items]


def test_preference_csv_with_columns_and_ids(tmp_path: Path, capsys) -> None:
    src = write_csv(tmp_path / "prefs.csv", ["key", "instruction", "good", "bad"],
                    [["a", "Say hi", "Hi!", "Go away."], ["b", "Say bye", "Bye!", "No."]])
    assert run_import("preference", src, tmp_path / "run", "--id", "key", "--question", "instruction",
                      "--chosen", "good", "--rejected", "bad") == 0
    items = read_run(tmp_path / "run").test
    assert [i.id for i in items] == ["a", "b"] and items[0].question == "Say hi"
    write_csv(src, ["prompt", "chosen"], [["p", "c"]])
    assert run_import("preference", src, tmp_path / "run2") == 2
    assert f"{src}:2: field 'rejected': missing" in capsys.readouterr().err
    assert_nothing_written(tmp_path / "run2")


# --------------------------------------------------------------------------- MT-Bench human


def conversation(turns: list[tuple[str, str]]) -> list[dict]:
    out = []
    for user, assistant in turns:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return out


QUESTIONS = {101: ["Write a haiku about rain.", "Now make it about snow."],
             102: ["What is 3 times 4?", "And 5 times 6?"]}
ANSWERS = {  # model -> question -> turns (invented)
    "zebra-7b": {101: ["rain haiku by zebra", "snow haiku by zebra"], 102: ["12", "30"]},
    "aardvark-13b": {101: ["rain haiku by aardvark", "snow haiku by aardvark"], 102: ["twelve", "31"]},
    "mole-3b": {101: ["rain haiku by mole", "snow haiku by mole"], 102: ["7", "11"]},
}


def human_vote(qid: int, model_a: str, model_b: str, winner: str, judge: str, turn: int = 1) -> dict:
    def conv(model: str) -> list[dict]:
        return conversation(list(zip(QUESTIONS[qid], ANSWERS[model][qid])))

    return {"question_id": qid, "model_a": model_a, "model_b": model_b, "winner": winner, "judge": judge,
            "conversation_a": conv(model_a), "conversation_b": conv(model_b), "turn": turn}


HUMAN = [
    human_vote(101, "zebra-7b", "aardvark-13b", "model_a", "expert_1"),  # zebra wins; stored second
    human_vote(101, "aardvark-13b", "zebra-7b", "model_b", "expert_2"),  # the same pair the other way round
    human_vote(101, "zebra-7b", "aardvark-13b", "tie (bothbad)", "author_3"),
    human_vote(101, "zebra-7b", "aardvark-13b", "model_b", "expert_1", turn=2),
    human_vote(101, "aardvark-13b", "zebra-7b", "model_b", "expert_2", turn=2),  # 1 vs 1: no majority
    human_vote(102, "mole-3b", "aardvark-13b", "tie", "expert_1"),
    human_vote(102, "aardvark-13b", "mole-3b", "tie", "expert_1"),  # voted twice, agreeing
    human_vote(102, "zebra-7b", "mole-3b", "model_a", "expert_2"),
    human_vote(102, "mole-3b", "zebra-7b", "model_a", "expert_2"),  # voted twice, conflicting
    human_vote(102, "zebra-7b", "mole-3b", "model_a", "author_3"),
]


def import_human(tmp_path: Path, rows: list | None = None, name: str = "human") -> Path:
    src = write_jsonl(tmp_path / f"{name}.jsonl", HUMAN if rows is None else rows)
    out = tmp_path / f"{name}-run"
    assert run_import("mt-bench-human", src, out) == 0
    return out


def test_mt_bench_human_items_annotators_and_majority(tmp_path: Path, capsys) -> None:
    run = read_run(import_human(tmp_path))
    out = capsys.readouterr().out
    assert "2 (item, annotator) pair(s) had more than one vote; 1 of them disagreed" in out
    by_id = {i.id: i for i in run.test}
    assert len(run.test) == 4
    haiku = by_id[mt_bench_id("101", 1, ("aardvark-13b", "zebra-7b"))]
    assert haiku.question == "Write a haiku about rain."
    assert haiku.answers == (Answer("aardvark-13b", "rain haiku by aardvark"),
                             Answer("zebra-7b", "rain haiku by zebra"))
    assert haiku.extra["mt_bench"] == {"question_id": "101", "turn": 1}
    assert verdicts(haiku) == {"human": (0.0, "original"), "human:author_3": (0.5, "original"),
                               "human:expert_1": (0.0, "original"), "human:expert_2": (0.0, "original")}
    assert [v.llm for v in haiku.evaluations][0] == "human"
    snow = by_id[mt_bench_id("101", 2, ("aardvark-13b", "zebra-7b"))]
    assert snow.question == "Now make it about snow." and snow.answers[0].text == "snow haiku by aardvark"
    tie = by_id[mt_bench_id("102", 1, ("aardvark-13b", "mole-3b"))]
    assert verdicts(tie) == {"human": (0.5, "original"), "human:expert_1": (0.5, "original")}
    assert tie.verdict("human:expert_1").extra == {"votes": ["tie", "tie"], "lines": [6, 7]}
    conflict = by_id[mt_bench_id("102", 1, ("mole-3b", "zebra-7b"))]
    assert verdicts(conflict) == {"human": (0.0, "original"), "human:author_3": (0.0, "original"),
                                  "human:expert_2": (0.5, "neither")}
    meta = run.meta["imports"][0]
    assert meta["format"] == "mt-bench-human" and meta["counts"]["annotator_items_with_conflicting_votes"] == 1
    assert main(["report", str(tmp_path / "human-run"), "--reference", "human", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 4


def test_snow_turn_has_no_strict_majority(tmp_path: Path) -> None:
    run = read_run(import_human(tmp_path))
    snow = next(i for i in run.test if i.id == mt_bench_id("101", 2, ("aardvark-13b", "zebra-7b")))
    # expert_1 picked aardvark (model_b), expert_2 picked zebra (model_b of a swapped record)
    assert verdicts(snow) == {"human": (0.5, "neither"), "human:expert_1": (1.0, "original"),
                              "human:expert_2": (0.0, "original")}


@pytest.mark.parametrize(("change", "line", "field", "problem"), [
    (lambda r: r.update(winner="model_c"), 2, "winner", "'model_c' is not one of model_a, model_b, tie"),
    (lambda r: r.update(turn=0), 2, "turn", "must be >= 1, found 0"),
    (lambda r: r.update(turn=3), 2, "conversation_a", "4 message(s), but turn 3 needs 6"),
    (lambda r: r["conversation_a"][0].update(role="assistant"), 2, "conversation_a[0].role", "expected 'user'"),
    (lambda r: r["conversation_b"][0].update(content="Another question?"), 2, "conversation_b[0].content",
     "turn 1's question differs from conversation_a's"),
    (lambda r: r.update(model_b=r["model_a"]), 2, "model_b", "the same model as model_a"),
    (lambda r: r.pop("judge"), 2, "judge", "missing"),
    (lambda r: r["conversation_b"][1].update(content="another text"), 2, "conversation_b[1].content",
     "differs from line 1 for the same item (question 101, turn 1, aardvark-13b vs zebra-7b)"),
])
def test_a_malformed_human_record_names_file_line_and_field(tmp_path: Path, capsys, change, line, field,
                                                            problem) -> None:
    rows = json.loads(json.dumps(HUMAN[:3]))
    change(rows[1])
    src = write_jsonl(tmp_path / "h.jsonl", rows)
    out = tmp_path / "run"
    assert run_import("mt-bench-human", src, out) == 2
    err = capsys.readouterr().err
    assert f"{src}:{line}: field '{field}':" in err and problem in err, err
    assert_nothing_written(out)


# --------------------------------------------------------------------------- MT-Bench GPT-4 pair


def pair_judgement(qid: int, model_1: str, model_2: str, g1: str, g2: str, turn: int = 1) -> dict:
    return {"question_id": qid, "model_1": model_1, "model_2": model_2, "g1_winner": g1, "g2_winner": g2,
            "judge": ["gpt-4", "pair-v2" if turn == 1 else "pair-v2-multi-turn"],
            "g1_user_prompt": "[prompt, model_1 first]", "g1_judgment": f"g1 says {g1}",
            "g2_user_prompt": "[prompt, model_2 first]", "g2_judgment": f"g2 says {g2}", "turn": turn, "tstamp": 0.0}


def fastchat_texts(tmp_path: Path) -> tuple[Path, Path]:
    questions = write_jsonl(tmp_path / "question.jsonl", [
        {"question_id": qid, "category": "writing", "turns": turns} for qid, turns in QUESTIONS.items()])
    answers = tmp_path / "model_answer"
    answers.mkdir()
    for model, by_question in ANSWERS.items():
        write_jsonl(answers / f"{model}.jsonl", [
            {"question_id": qid, "answer_id": f"{model}-{qid}", "model_id": model,
             "choices": [{"index": 0, "turns": turns}], "tstamp": 0.0} for qid, turns in by_question.items()])
    return questions, answers


PAIR_CASES = [("model_1", "model_1"), ("model_2", "model_2"), ("model_1", "model_2"), ("model_2", "model_1"),
              ("tie", "tie"), ("tie", "model_1"), ("model_2", "tie"), ("error", "model_1"), ("tie", "error")]
PAIRS = [("aardvark-13b", "mole-3b"), ("aardvark-13b", "zebra-7b"), ("mole-3b", "zebra-7b")]  # sorted
SLOTS = [(qid, turn, pair) for qid in QUESTIONS for turn in (1, 2) for pair in PAIRS]  # 12 distinct items


def expected(model_1: str, model_2: str, g1: str, g2: str, as_tie: bool) -> tuple:
    """By hand: each call's outcome in its own positions (g1 showed model_1 first, g2 model_2),
    the original order being the one that shows the first stored (sorted) model first; then the
    evaluator's resolution."""
    names = {"model_1": model_1, "model_2": model_2}
    w1, w2 = names.get(g1, g1), names.get(g2, g2)
    o1 = {model_1: "A", model_2: "B", "tie": "C"}.get(w1)
    o2 = {model_2: "A", model_1: "B", "tie": "C"}.get(w2)
    if as_tie and None not in (o1, o2) and w1 != w2:
        return 0.5, "original"
    return resolve_orders(o1, o2) if model_1 < model_2 else resolve_orders(o2, o1)


@pytest.mark.parametrize("as_tie", [False, True], ids=["study", "inconsistent-as-tie"])
@pytest.mark.parametrize("model_1_first", [True, False], ids=["g1-is-original", "g1-is-flipped"])
def test_gpt4_pair_with_fastchat_texts_resolves_both_orders(tmp_path: Path, as_tie: bool, model_1_first: bool) -> None:
    questions, answers = fastchat_texts(tmp_path)
    rows = []
    for (g1, g2), (qid, turn, pair) in zip(PAIR_CASES, SLOTS):
        model_1, model_2 = pair if model_1_first else pair[::-1]
        rows.append(pair_judgement(qid, model_1, model_2, g1, g2, turn))
    src = write_jsonl(tmp_path / "gpt-4_pair.jsonl", rows)
    out = tmp_path / "run"
    flags = ["--inconsistent-as-tie"] if as_tie else []
    assert run_import("mt-bench-gpt4-pair", src, out, "--questions", questions, "--answers", answers, *flags) == 0
    run = read_run(out)
    assert run.meta["imports"][0]["options"]["inconsistent_as_tie"] is as_tie
    by_id = {i.id: i for i in run.test}
    assert len(by_id) == len(rows) == len(PAIR_CASES)
    for r in rows:
        models = tuple(sorted((r["model_1"], r["model_2"])))
        item = by_id[mt_bench_id(str(r["question_id"]), r["turn"], models)]
        assert item.question == QUESTIONS[r["question_id"]][r["turn"] - 1]
        assert [a.text for a in item.answers] == [ANSWERS[m][r["question_id"]][r["turn"] - 1] for m in models]
        v = item.verdict("gpt-4-pair")
        assert (v.score, v.source) == expected(r["model_1"], r["model_2"], r["g1_winner"], r["g2_winner"], as_tie), r
        original = "g1" if model_1_first else "g2"
        flipped = "g2" if model_1_first else "g1"
        deciding = flipped if v.source == "flipped" else original
        assert v.text == f"{deciding} says {r[deciding + '_winner']}"
        assert v.extra["orders"]["original"]["winner"] == r[original + "_winner"]
        assert v.extra["orders"]["flipped"]["judgment"] == f"{flipped} says {r[flipped + '_winner']}"


def test_gpt4_pair_resolution_table() -> None:
    """The cases above, spelled out, in the corrected frame (1 = the first stored answer wins);
    aardvark-13b is stored first (sorted names)."""
    from judge_eval.core.items import Verdict

    def corrected(model_1: str, g1: str, g2: str, as_tie: bool = False) -> tuple:
        model_2 = "zebra-7b" if model_1 == "aardvark-13b" else "aardvark-13b"
        score, source = expected(model_1, model_2, g1, g2, as_tie)
        return Verdict("j", score, "", source).first_answer_score, source

    assert corrected("aardvark-13b", "model_1", "model_1") == (1.0, "original")
    assert corrected("zebra-7b", "model_1", "model_1") == (0.0, "original")  # zebra (stored second) wins
    assert corrected("aardvark-13b", "model_1", "model_2") == (0.5, "neither")  # both chose the first shown
    assert corrected("aardvark-13b", "model_1", "model_2", as_tie=True) == (0.5, "original")
    assert corrected("aardvark-13b", "tie", "model_1") == (1.0, "flipped")  # decided by the swapped call
    assert corrected("aardvark-13b", "tie", "model_1", as_tie=True) == (0.5, "original")  # FastChat: a tie
    assert corrected("zebra-7b", "tie", "model_1") == (0.0, "original")  # the swapped g1 is the original here
    assert corrected("aardvark-13b", "error", "model_1") == (None, "output-cannot-be-parsed")
    assert corrected("aardvark-13b", "error", "model_1", as_tie=True) == (None, "output-cannot-be-parsed")


def test_gpt4_pair_merged_into_a_human_run(tmp_path: Path, capsys) -> None:
    human = import_human(tmp_path)
    before = {p.name: p.read_bytes() for p in human.iterdir()}
    rows = [pair_judgement(101, "zebra-7b", "aardvark-13b", "model_2", "model_2"),
            pair_judgement(102, "zebra-7b", "mole-3b", "model_1", "model_1"),
            pair_judgement(102, "zebra-7b", "aardvark-13b", "tie", "tie")]  # no human judged this one
    src = write_jsonl(tmp_path / "gpt-4_pair.jsonl", rows)
    out = tmp_path / "merged"
    capsys.readouterr()
    assert run_import("mt-bench-gpt4-pair", src, out, "--into", human) == 0
    printed = capsys.readouterr().out
    assert "1 judgement(s) skipped: their item is not in" in printed
    assert "2 item(s) of" in printed and "have no judgement from this file" in printed
    assert {p.name: p.read_bytes() for p in human.iterdir()} == before  # the human run is untouched
    run = read_run(out)
    assert len(run.test) == 4
    haiku = next(i for i in run.test if i.id == mt_bench_id("101", 1, ("aardvark-13b", "zebra-7b")))
    assert haiku.verdict("gpt-4-pair").first_answer_score == 1.0  # aardvark (model_2 here) won both orders
    assert haiku.verdict("human") is not None
    assert [m["format"] for m in run.meta["imports"]] == ["mt-bench-human", "mt-bench-gpt4-pair"]
    assert run.meta["imports"][1]["counts"]["records_not_in_run"] == 1
    assert main(["report", str(out), "--reference", "human", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["judges"]["gpt-4-pair"]["corrected"]["missing"] == 2

    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.judge_eval.profiles.mt]\nreference = "human"\ngated = ["gpt-4-pair"]\n'
                      '[tool.judge_eval.profiles.mt.thresholds]\nmin_agreement = 0.5\n')
    assert main(["gate", str(out), "--profile", "mt", "--config", str(config)]) == 1  # 2 missing verdicts
    assert "gate failed: judge 'gpt-4-pair', missing" in capsys.readouterr().out
    # the same judge twice into one run is refused
    assert run_import("mt-bench-gpt4-pair", src, tmp_path / "again", "--into", out) == 2
    assert "judge 'gpt-4-pair' already has a verdict on item" in capsys.readouterr().err
    assert_nothing_written(tmp_path / "again")


def test_gpt4_pair_into_a_run_without_mt_bench_ids(tmp_path: Path, capsys) -> None:
    other = tmp_path / "other"
    src_pairs = write_csv(tmp_path / "p.csv", ["question", "answer_a", "answer_b"], [["q", "x", "y"]])
    assert run_import("pairs", src_pairs, other) == 0
    src = write_jsonl(tmp_path / "gpt-4_pair.jsonl", [pair_judgement(101, "zebra-7b", "aardvark-13b", "tie", "tie")])
    assert run_import("mt-bench-gpt4-pair", src, tmp_path / "merged", "--into", other) == 2
    assert "none of its 1 judgement(s) is about an item of" in capsys.readouterr().err
    assert_nothing_written(tmp_path / "merged")


@pytest.mark.parametrize(("change", "field", "problem"), [
    (lambda r: r.update(g1_winner="A"), "g1_winner", "'A' is not one of model_1, model_2, tie, error"),
    (lambda r: r.update(model_2="nobody-1b"), "model_2", "no answers of model 'nobody-1b'"),
    (lambda r: r.update(question_id=999), "question_id", "question 999 is not in"),
    (lambda r: r.update(judge=7), "judge", "expected [model, prompt name] or a name, found number"),
    (lambda r: r.update(turn="2"), "turn", "expected a whole number, found string"),
])
def test_a_malformed_gpt4_pair_record_names_file_line_and_field(tmp_path: Path, capsys, change, field,
                                                                problem) -> None:
    questions, answers = fastchat_texts(tmp_path)
    rows = [pair_judgement(101, "zebra-7b", "aardvark-13b", "tie", "tie"),
            pair_judgement(102, "zebra-7b", "aardvark-13b", "tie", "tie")]
    change(rows[1])
    src = write_jsonl(tmp_path / "gpt-4_pair.jsonl", rows)
    out = tmp_path / "run"
    assert run_import("mt-bench-gpt4-pair", src, out, "--questions", questions, "--answers", answers) == 2
    err = capsys.readouterr().err
    assert f"{src}:2: field '{field}':" in err and problem in err, err
    assert_nothing_written(out)


def test_a_gpt4_judgement_repeated_on_one_item_is_refused(tmp_path: Path, capsys) -> None:
    questions, answers = fastchat_texts(tmp_path)
    rows = [pair_judgement(101, "zebra-7b", "aardvark-13b", "tie", "tie"),
            pair_judgement(101, "aardvark-13b", "zebra-7b", "model_1", "model_1")]
    src = write_jsonl(tmp_path / "gpt-4_pair.jsonl", rows)
    assert run_import("mt-bench-gpt4-pair", src, tmp_path / "run", "--questions", questions, "--answers", answers) == 2
    assert "judge 'gpt-4-pair' already judged this item" in capsys.readouterr().err
    assert_nothing_written(tmp_path / "run")


def test_human_and_gpt4_importers_give_one_item_the_same_id_and_content(tmp_path: Path) -> None:
    questions, answers = fastchat_texts(tmp_path)
    human = read_run(import_human(tmp_path, HUMAN[:1]))
    src = write_jsonl(tmp_path / "gpt-4_pair.jsonl", [pair_judgement(101, "aardvark-13b", "zebra-7b", "tie", "tie")])
    assert run_import("mt-bench-gpt4-pair", src, tmp_path / "gpt4", "--questions", questions, "--answers", answers) == 0
    gpt4 = read_run(tmp_path / "gpt4")
    assert [(i.id, i.question, i.answers) for i in human.test] == [(i.id, i.question, i.answers) for i in gpt4.test]

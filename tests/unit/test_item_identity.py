"""An item is its split, question and two answers (or its explicit id): one question may carry any
number of answer pairs; the bootstrap still orders the study's items exactly as before."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.core.events import import_study_events, key_events, resolve_events
from judge_eval.core.items import Answer, item_id, question_key
from judge_eval.core.metrics import compare
from judge_eval.core.store import Run, read_qa, read_run, write_qa
from judge_eval.errors import RunFileError

PROFILE = """
[tool.judge_eval.profiles.mine]
reference = "teacher"
gated = ["candidate"]

[tool.judge_eval.profiles.mine.thresholds]
min_agreement = 0.5
"""


def verdict(llm: str, score: float, source: str = "original") -> dict:
    return {"llm": llm, "score": score, "text": f"{llm} says {score}", "source": source}


def row(question: str, a: str, b: str, teacher: float, candidate: float, **extra) -> dict:
    return {"question": question, "answers": [{"model": "m1", "text": a}, {"model": "m2", "text": b}],
            "source": "", "evaluations": [verdict("teacher", teacher), verdict("candidate", candidate)], **extra}


def three_pairs_rows() -> list[dict]:
    """One question with three answer pairs, and two other questions."""
    return [
        row("Which city is the capital of France?", "Paris", "Lyon", 1.0, 1.0),
        row("Which city is the capital of France?", "Paris", "Marseille", 1.0, 1.0),
        row("Which city is the capital of France?", "Nice", "Paris", 0.0, 0.0),
        row("How many legs has a spider?", "eight", "six", 1.0, 1.0),
        row("What is two plus two?", "five", "four", 0.0, 0.5),
    ]


def write_run_dir(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "test_qa_complete.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_question_with_three_answer_pairs_loads_with_three_ids(tmp_path: Path) -> None:
    run = read_run(write_run_dir(tmp_path / "run", three_pairs_rows()))
    ids = [i.id for i in run.test]
    assert len(set(ids)) == 5
    france = [i for i in run.test if i.question.startswith("Which city")]
    assert len(france) == 3 and len({i.order_key.split(" ")[0] for i in france}) == 1
    for item in run.test:
        assert item.id == item_id("test", item.question, item.answers)


def test_the_three_pairs_report_gate_and_compare(tmp_path: Path, capsys) -> None:
    old = write_run_dir(tmp_path / "old", three_pairs_rows())
    assert main(["report", str(old), "--reference", "teacher", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["items"] == 5
    corrected = data["judges"]["candidate"]["corrected"]
    assert (corrected["agreements"], corrected["total"]) == (4, 5)

    config = tmp_path / "pyproject.toml"
    config.write_text(PROFILE)
    assert main(["gate", str(old), "--profile", "mine", "--config", str(config)]) == 0
    assert "PASS: profile mine, gated judge(s) candidate, 0 gate failure(s)" in capsys.readouterr().out

    # The new run changes the candidate's verdict on the second of the three pairs only, and
    # lists the items in another order: compare matches them by id, not by position or question.
    rows = three_pairs_rows()
    rows[1]["evaluations"][1]["score"] = 0.0
    new = write_run_dir(tmp_path / "new", rows[::-1])
    assert main(["compare", str(old), str(new), "--profile", "mine", "--config", str(config), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (candidate,) = data["judges"]
    changed_id = item_id("test", rows[1]["question"], [Answer("m1", "Paris"), Answer("m2", "Marseille")])
    assert [c["id"] for c in candidate["changed"]] == [changed_id]
    assert (candidate["lost_agreement"], candidate["gained_agreement"]) == (1, 0)


def test_an_exact_duplicate_names_both_lines(tmp_path: Path) -> None:
    rows = three_pairs_rows()
    rows.append(row("Which city is the capital of France?", "Paris", "Marseille", 0.0, 0.0))  # verdicts differ
    path = write_run_dir(tmp_path / "run", rows) / "test_qa_complete.jsonl"
    with pytest.raises(RunFileError) as info:
        read_qa(path, "test")
    assert (info.value.line, info.value.field) == (6, "question")
    assert "the same question and the same two answers (models and texts) as line 2" in str(info.value)
    assert "line 6 or line 2" in str(info.value)


def test_the_same_texts_from_other_models_or_in_the_other_order_are_other_items(tmp_path: Path) -> None:
    base = row("q", "x", "y", 1.0, 1.0)
    swapped = row("q", "y", "x", 0.0, 0.0)
    swapped["answers"] = [{"model": "m2", "text": "y"}, {"model": "m1", "text": "x"}]
    other_model = row("q", "x", "y", 1.0, 1.0)
    other_model["answers"][0]["model"] = "m3"
    items = read_qa(write_run_dir(tmp_path / "run", [base, swapped, other_model]) / "test_qa_complete.jsonl", "test")
    assert len({i.id for i in items}) == 3
    assert item_id("train", "q", items[0].answers) != items[0].id


def test_an_explicit_id_names_the_item_round_trips_and_must_be_unique(tmp_path: Path) -> None:
    rows = [row("q", "x", "y", 1.0, 1.0, id="pair-1"), row("q", "x", "y", 1.0, 0.0, id="pair-2")]
    path = write_run_dir(tmp_path / "run", rows) / "test_qa_complete.jsonl"
    items = read_qa(path, "test")  # same content, two explicit ids: two items
    assert [i.id for i in items] == ["pair-1", "pair-2"] and items[0].explicit_id == "pair-1"
    write_qa(tmp_path / "out.jsonl", items)
    assert (tmp_path / "out.jsonl").read_bytes() == path.read_bytes()

    rows.append(row("another question", "a", "b", 1.0, 1.0, id="pair-1"))
    write_run_dir(tmp_path / "dup", rows)
    with pytest.raises(RunFileError) as info:
        read_qa(tmp_path / "dup" / "test_qa_complete.jsonl", "test")
    assert (info.value.line, info.value.field) == (3, "id")
    assert "duplicate id 'pair-1': line 1 has the same id" in str(info.value)
    assert "lines 1 and 3" in str(info.value)


def test_the_bootstrap_order_is_question_key_then_id_whatever_the_file_order(tmp_path: Path) -> None:
    rows = [row(f"q{n % 4}", f"a{n}", f"b{n}", float(n % 2), float((n // 3) % 2)) for n in range(24)]
    items = read_qa(write_run_dir(tmp_path / "run", rows) / "test_qa_complete.jsonl", "test")
    keys = [i.order_key for i in items]
    assert sorted(keys) == sorted(keys, key=lambda k: (k.split(" ")[0], k.split(" ")[1]))
    assert all(k.split(" ")[0] == question_key("test", i.question) for k, i in zip(keys, items))
    expected = compare(items, "candidate", "teacher")
    for seed in range(5):
        shuffled = list(items)
        random.Random(seed).shuffle(shuffled)
        assert compare(shuffled, "candidate", "teacher").agreement_ci == expected.agreement_ci


def test_the_studys_items_keep_their_bootstrap_order(study_run: Run) -> None:
    """Every question of the study appears once per split, so ordering by order_key is ordering by
    the question's key: the ids the published intervals were computed with."""
    for items in (study_run.train, study_run.test):
        by_order_key = [i.question for i in sorted(items, key=lambda i: i.order_key)]
        by_question_key = [i.question for i in sorted(items, key=lambda i: question_key(i.split, i.question))]
        assert by_order_key == by_question_key
    assert compare(study_run.test, "ft_gpt_3p5").agreement_ci == (0.851063829787234, 1.0)
    assert compare(study_run.test, "gpt_3p5").agreement_ci == (0.7894736842105263, 0.9736842105263158)


def test_the_studys_events_are_keyed_by_the_new_ids(study_run: Run) -> None:
    keyed = import_study_events(study_run.events, study_run.train)
    assert {e.item_id for e in keyed} == {i.id for i in study_run.train}
    resolved = resolve_events(study_run.train, key_events(keyed), teacher="gpt_4")
    assert [e.messages for e in resolved] == [e.messages for e in study_run.resolved]

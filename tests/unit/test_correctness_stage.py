"""The correctness judging stage (``pipeline.judge = "correctness"``): llama-index's
``CorrectnessEvaluator`` for the teacher and both students, recorded against the loopback fakes of
tests/fake_apis.py (chat, files, fine-tuning jobs) and tests/loopback.py into tmp cassettes, then
replayed offline. What the fake judges answer is scripted per item in the answers themselves
(``t=`` the teacher's first line, ``b=`` the base student's, ``d=`` the distilled student's), so
every expected verdict below is written by hand from the item table."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from judge_eval.config.profiles import load_profile
from judge_eval.core.items import Answer, QAItem, item_id
from judge_eval.core.store import QA_FILES, read_run, write_qa
from judge_eval.errors import ConfigError
from judge_eval.live.correctness import parse_score
from judge_eval.live.pipeline import STAGES, Context, planned_calls, run_all
from tests import fake_apis

ROOT = Path(__file__).resolve().parents[2]
HALVES = (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5)
FT_MODEL = "ft:gpt-3.5-turbo-0613:loopback::abc123"  # what tests/fake_apis.py's job reports

# --------------------------------------------------------------------------- the items
# (question, source passage, [(model, answer text)] x2); the tags script the fake judges.
TRAIN = [
    ("When did the mill close?", "The railway arrived in 1866 and the mill closed in 1950.",
     [("m1", "In 1950. t=5"), ("m2", "Long ago. t=2")]),
    ("When did the bridge open?", "A stone bridge opened in 1701.",
     [("m1", "In 1701. t=4.5"), ("m2", "No idea. t=garbage")]),
    ("Who founded Alderbrook?", "Alderbrook was founded in 1650 by millers.",
     [("m1", "Millers. t=7"), ("m2", "Monks. t=1.5")]),
]
TEST = [
    ("When was the lighthouse lit?", "Its lighthouse was lit in 1820.",
     [("m1", "In 1820. t=5 b=4 d=5"), ("m2", "Never. t=1 b=2 d=1")]),
    ("When did Brisca grow?", "Brisca grew around a harbour in 1200.",
     [("m1", "Around 1200. t=4 b=4 d=4.5"), ("m2", "In 1900. t=2 b=3.5 d=2")]),
    ("When did the ferry start?", "A ferry line to the islands started in 1930.",
     [("m1", "In the 1930s. t=3 b=3 d=3"), ("m2", "In 1930. t=4.5 b=garbage d=4.5")]),
    ("Where did the ferry go?", "A ferry line to the islands started in 1930.",
     [("m1", "To the mainland. t=1.5 b=1 d=1.5"), ("m2", "To the islands. t=3.5 b=5 d=3")]),
]
#: A pair whose answers stage failed: both of its answers get an `error` verdict without a call.
FAILED_PAIR = ("Why did the mill close?", "", [("m1", ""), ("m2", "")])


def pairs(split: str, rows: list, *, failed: bool = False) -> list[QAItem]:
    out = []
    for question, source, answers in rows + ([FAILED_PAIR] if failed else []):
        extra = {"error": "answers stage: injected failure"} if not source else {}
        out.append(QAItem(id=item_id(split, question), split=split, question=question, source=source,
                          answers=tuple(Answer(m, t) for m, t in answers), extra=extra))
    return out


def reply(body: dict) -> str:
    """The fake judge's output for one CorrectnessEvaluator call, from the tag of its model."""
    user = body["messages"][-1]["content"]
    answer = user.split("## Generated Answer\n", 1)[1]
    tag = {"teacher-m": "t", "student-m": "b", FT_MODEL: "d"}[body["model"]]
    value = re.search(rf"\b{tag}=(\S+)", answer).group(1)
    # later answers of a split finish first under concurrency: the cassette must not follow that
    time.sleep(0.02 * (3 - len(answer) % 4))
    return "I cannot rate this answer." if value == "garbage" else f"{value}\nThe answer was compared."


def is_correctness_call(body: dict) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and "expert evaluation system" in (messages[0].get("content") or "")


@pytest.fixture
def fake(monkeypatch):
    state, server = fake_apis.start()
    plain = fake_apis.answer
    judged: list[dict] = []

    def scripted(path: str, body: dict, text: str) -> dict:
        if path.endswith("/chat/completions") and is_correctness_call(body):
            judged.append(body)
            text = reply(body)
        return plain(path, body, text)

    monkeypatch.setattr(fake_apis, "answer", scripted)  # the fake's chat route answers through it
    state.judged = judged
    yield state
    server.shutdown()
    server.server_close()


PYPROJECT = """
[tool.judge_eval.profiles.corr]
reference = "teacher"
gated = ["distilled"]

[tool.judge_eval.profiles.corr.pipeline]
source = "items"
items = "items"
judge = {judge}

[tool.judge_eval.profiles.corr.pipeline.names]
base_student = "base"
distilled_student = "distilled"

[tool.judge_eval.profiles.corr.pipeline.retry]
attempts = 2
base = 0.0
cap = 0.0

[tool.judge_eval.profiles.corr.pipeline.distill]
kind = "openai"
poll_first_wait = 0.01
poll_max_wait = 0.02

[tool.judge_eval.profiles.corr.pipeline.models.teacher]
api = "openai-like"
model = "teacher-m"
base_url = "{url}"

[tool.judge_eval.profiles.corr.pipeline.models.student]
api = "openai-like"
model = "student-m"
base_url = "{url}"
"""


def project(tmp_path: Path, url: str = "http://127.0.0.1:9/v1", *, judge: str = '"correctness"',
            tables: str = "") -> Path:
    folder = tmp_path / "project"
    write_qa(folder / "items" / QA_FILES["train"], pairs("train", TRAIN, failed=True))
    write_qa(folder / "items" / QA_FILES["test"], pairs("test", TEST))
    path = folder / "pyproject.toml"
    path.write_text(PYPROJECT.format(url=url, judge=judge) + tables, "utf-8")
    return path


def run(pyproject: Path, tmp_path: Path, mode: str, name: str, concurrency: int = 1,
        cassettes: str = "cassettes") -> Path:
    ctx = Context(profile=load_profile("corr", pyproject), cassette_root=tmp_path / cassettes,
                  run_dir=tmp_path / name, modes={s: mode for s in STAGES}, concurrency=concurrency)
    try:
        return run_all(ctx)
    finally:
        ctx.close()


def verdicts(items, judge: str) -> dict[str, tuple[str, float | None]]:
    """answer text -> (source, score) of ``judge``."""
    return {i.answers[0].text: (i.verdict(judge).source, i.verdict(judge).score) for i in items}


RUN_FILES = ("train_qa.jsonl", "test_qa_complete.jsonl", "pairwise_finetuning_events.jsonl",
             "resolved_pairwise_finetuning_events.jsonl")


# --------------------------------------------------------------------------- the whole run


def test_record_then_replay_offline_gives_the_same_run(fake, tmp_path: Path) -> None:
    pyproject = project(tmp_path, f"{fake.base_url}/v1")
    recorded = run(pyproject, tmp_path, "all", "recorded")
    # by hand: 6 train answers + 8 test answers for the teacher, 8 for each student; the failed
    # pair's two answers make no call
    assert len(fake.judged) == 6 + 8 + 8 + 8
    n = len(fake.requests)
    cassettes = sorted(p.name for p in (tmp_path / "cassettes" / "corr").iterdir())
    assert cassettes == ["correctness-student-base-test.yaml", "correctness-student-distilled-test.yaml",
                         "correctness-teacher-test.yaml", "correctness-teacher-train.yaml", "distill-train.yaml"]

    replayed = run(pyproject, tmp_path, "none", "replayed")
    assert len(fake.requests) == n  # replay never reached the server
    for name in RUN_FILES:
        assert (replayed / name).read_bytes() == (recorded / name).read_bytes(), name

    result = read_run(replayed, require=("train", "test", "events", "resolved"))
    assert all(item.kind == "pointwise" for item in result.train + result.test)
    assert len(result.train) == 8 and len(result.test) == 8
    assert verdicts(result.train, "teacher") == {
        "In 1950. t=5": ("scored", 5), "Long ago. t=2": ("scored", 2),
        "In 1701. t=4.5": ("scored", 4.5), "No idea. t=garbage": ("output-cannot-be-parsed", None),
        "Millers. t=7": ("output-cannot-be-parsed", None),  # 7 is off the 1-5 scale
        "Monks. t=1.5": ("scored", 1.5), "": ("error", None)}
    errors = [i.verdict("teacher") for i in result.train if i.verdict("teacher").source == "error"]
    assert len(errors) == 2 and all(v.extra["error"] == "answers stage: injected failure" for v in errors)
    unparsed = next(i.verdict("teacher") for i in result.train if i.answers[0].text == "Millers. t=7")
    assert unparsed.text == "7\nThe answer was compared." and "not on the scale" in unparsed.extra["parse"]
    garbage = next(i.verdict("teacher") for i in result.train if i.answers[0].text == "No idea. t=garbage")
    assert garbage.text == "I cannot rate this answer."
    assert verdicts(result.test, "base")["In 1930. t=4.5 b=garbage d=4.5"] == ("output-cannot-be-parsed", None)
    assert all(v.kind == "score" and v.scale == HALVES for i in result.test for v in i.evaluations)
    assert {v.llm for i in result.test for v in i.evaluations} == {"teacher", "base", "distilled"}

    # each answer its own item, the source passage as the reference answer
    mill = next(i for i in result.train if i.answers[0].text == "In 1950. t=5")
    assert mill.extra["reference_answer"] == mill.source == TRAIN[0][1]
    prompt = next(b["messages"][-1]["content"] for b in fake.judged if "In 1950. t=5" in b["messages"][-1]["content"])
    assert f"## Reference Answer\n{TRAIN[0][1]}\n" in prompt

    # events: one per teacher call on a train answer; resolved: only those the teacher scored
    assert len(result.events) == 6 and {e.order for e in result.events} == {None}
    resolved = {e.messages[-1].content.split("\n")[0] for e in result.resolved}
    assert resolved == {"5", "2", "4.5", "1.5"}
    scored_ids = {i.id for i in result.train if i.verdict("teacher").source == "scored"}
    assert [e.item_id for e in result.resolved] == sorted(scored_ids)  # run files sort events by item id
    assert [m.role for m in result.resolved[0].messages] == ["system", "user", "assistant"]
    training = (recorded / "distill" / "training.jsonl").read_text().splitlines()
    assert len(training) == 4 and all(set(json.loads(line)) == {"messages"} for line in training)

    meta = json.loads((replayed / "run.json").read_text())
    assert meta["judging"]["kind"] == "correctness" and meta["judging"]["scale"] == list(HALVES)
    assert meta["counts"]["pointwise_items_train"] == 8 and meta["counts"]["resolved_events"] == 4
    assert {"correctness_system", "correctness_user"} <= set(meta["prompt_hashes"])


def test_the_students_are_compared_with_the_teacher(fake, tmp_path: Path) -> None:
    from scipy.stats import kendalltau, pearsonr, spearmanr

    from judge_eval.core.scores import compare_scores

    result = read_run(run(project(tmp_path, f"{fake.base_url}/v1"), tmp_path, "all", "run"))
    # by hand from TEST (t, b, d): the base student's "garbage" item is not compared
    teacher = [5, 1, 4, 2, 3, 4.5, 1.5, 3.5]
    base = [4, 2, 4, 3.5, 3, None, 1, 5]
    distilled = [5, 1, 4.5, 2, 3, 4.5, 1.5, 3]
    b = compare_scores(result.test, "base", "teacher")
    assert b.metric("exact_agreement") == pytest.approx(2 / 7)
    assert b.metric("within_1_agreement") == pytest.approx(5 / 7)
    assert b.metric("mae") == pytest.approx(5.5 / 7)
    kept = [(t, s) for t, s in zip(teacher, base) if s is not None]
    assert b.metric("pearson") == pytest.approx(pearsonr(*zip(*kept))[0])
    d = compare_scores(result.test, "distilled", "teacher")
    assert d.metric("exact_agreement") == pytest.approx(6 / 8)
    assert d.metric("within_1_agreement") == pytest.approx(1.0)
    assert d.metric("mae") == pytest.approx(1 / 8)
    assert d.metric("spearman") == pytest.approx(spearmanr(teacher, distilled)[0])
    assert d.metric("kendall_tau_b") == pytest.approx(kendalltau(teacher, distilled, variant="b")[0])


def test_the_cassettes_are_in_item_order_whatever_the_concurrency(fake, tmp_path: Path) -> None:
    pyproject = project(tmp_path, f"{fake.base_url}/v1")
    one = run(pyproject, tmp_path, "all", "one", concurrency=1, cassettes="c1")
    four = run(pyproject, tmp_path, "all", "four", concurrency=4, cassettes="c4")
    for name in ("correctness-teacher-train", "correctness-teacher-test", "correctness-student-base-test",
                 "correctness-student-distilled-test"):
        a = (tmp_path / "c1" / "corr" / f"{name}.yaml").read_bytes()
        assert a == (tmp_path / "c4" / "corr" / f"{name}.yaml").read_bytes(), name
    for name in RUN_FILES:
        assert (one / name).read_bytes() == (four / name).read_bytes(), name
    # the recorded calls follow the run file's items (which are sorted by order_key)
    interactions = yaml.safe_load((tmp_path / "c4" / "corr" / "correctness-teacher-test.yaml").read_text())
    asked = [json.loads(i["request"]["body"])["messages"][-1]["content"].split("## Generated Answer\n")[1].strip()
             for i in interactions["interactions"]]
    assert asked == [i.answers[0].text for i in read_run(four).test]


def test_a_call_that_keeps_failing_is_an_error_verdict_and_the_stage_goes_on(tmp_path: Path) -> None:
    """Against tests/loopback.py: one answer's calls get HTTP 503 every time."""
    from judge_eval.live.pipeline import stage_teacher
    from tests.loopback import Loopback, start

    server, http = start(Loopback(base_url=""))

    def hook(path: str, body: dict):
        if "No idea." in body["messages"][-1]["content"]:
            return 503, {"Content-Type": "application/json"}, b'{"error": {"message": "overloaded"}}'
        return None

    server.hook = hook
    server.reply = lambda body: "4\nFine."
    try:
        profile = load_profile("corr", project(tmp_path, server.base_url))
        ctx = Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / "run",
                      modes={s: "all" for s in STAGES})
        try:
            items, events = stage_teacher(ctx, "train", pairs("train", TRAIN[1:2]))
        finally:
            ctx.close()
    finally:
        http.shutdown()
        http.server_close()
    assert len(server.requests) == 1 + 2  # by hand: one call, then two attempts (retry.attempts = 2)
    got = {i.answers[0].text: i.verdict("teacher") for i in items}
    assert (got["In 1701. t=4.5"].source, got["In 1701. t=4.5"].score) == ("scored", 4)
    failed = got["No idea. t=garbage"]
    assert (failed.source, failed.score, failed.text) == ("error", None, "")
    assert "HTTP 503" in failed.extra["error"] and failed.extra["attempts"] == 2
    assert [e.item_id for e in events] == [next(i.id for i in items if i.answers[0].text == "In 1701. t=4.5")]
    assert ctx.counts["verdicts_teacher_train"] == {"scored": 1, "error": 1}


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(("text", "scale", "score"), [
    ("4.5\nThe answer is close.", HALVES, 4.5),
    ("4", HALVES, 4),  # one line: llama-index's default parser raises here (below)
    ("\n  4.0 \nreason", HALVES, 4),  # blank space around the first line
    ("+3.50\nx", HALVES, 3.5),
    ("4.5\nx", (1, 2, 3, 4, 5), None),  # off a scale of whole numbers
    ("7\nway up", HALVES, None),
    ("0.5\n", HALVES, None),
    ("4/5\nx", HALVES, None),
    ("Score: 4\nx", HALVES, None),
    ("nan\nx", HALVES, None),
    ("garbage", HALVES, None),
    ("", HALVES, None),
    ("reason first\n4", HALVES, None),  # the score must be on the first line
])
def test_the_first_line_must_be_a_number_on_the_scale(text: str, scale: tuple, score) -> None:
    parsed = parse_score(text, scale)
    assert parsed.score == score
    assert (parsed.reason == "score") is (score is not None)


def test_llama_index_default_parser_fails_on_one_line() -> None:
    """Why the stage passes its own parser: the default unpacks ``split("\\n", 1)``."""
    from llama_index.core.evaluation.eval_utils import default_parser

    with pytest.raises(ValueError):
        default_parser("4")


def test_the_evaluator_sends_its_own_prompt_and_one_call_per_item(tmp_path: Path) -> None:
    from llama_index.core.evaluation.correctness import DEFAULT_SYSTEM_TEMPLATE

    from judge_eval.live.correctness import pointwise_items, score_items
    from tests.scripted import ScriptedLLM

    items = pointwise_items(pairs("test", TEST[:1]))
    llm = ScriptedLLM(script=["5\nright", "1.5\nwrong"], prompts=[])
    got, events = asyncio.run(score_items(items, llm, "teacher", HALVES, capture=True))
    assert [(v.source, v.score) for v in got] == [("scored", 5), ("scored", 1.5)]
    assert len(llm.prompts) == 2 and all(DEFAULT_SYSTEM_TEMPLATE.strip() in p for p in llm.prompts)
    assert [e.item_id for e in events] == [i.id for i in items]


# --------------------------------------------------------------------------- dry run and config


def test_the_dry_run_counts_one_call_per_answer_and_judge(tmp_path: Path) -> None:
    profile = load_profile("corr", project(tmp_path))
    ctx = Context(profile=profile, cassette_root=tmp_path / "c", run_dir=tmp_path / "r",
                  modes={s: "all" for s in STAGES})
    plan = {stage: calls for stage, calls, _ in planned_calls(ctx)}
    # by hand: 4 train pairs (3 + the failed one) = 8 answers; 4 test pairs = 8 answers, 2 students
    assert plan == {"correctness-teacher-train": "<= 8", "correctness-teacher-test": "<= 8",
                    "distill": "2 + status polls", "students": "<= 16"}


def test_the_dry_run_of_a_built_corpus(tmp_path: Path) -> None:
    local = load_profile("local", ROOT / "pyproject.toml")
    profile = local.model_copy(update={"pipeline": local.pipeline.model_copy(update={"judge": "correctness"})})
    rows = planned_calls(Context(profile=profile, cassette_root=tmp_path, run_dir=tmp_path / "r",
                                 modes={s: "none" for s in STAGES}))
    plan = {stage: calls for stage, calls, _ in rows}
    pairwise = {stage: calls for stage, calls, _ in planned_calls(Context(
        profile=local, cassette_root=tmp_path, run_dir=tmp_path / "r", modes={s: "none" for s in STAGES}))}
    # the local profile asks 24 train and 16 test questions: two answers each
    assert plan["correctness-teacher-train"] == "<= 48" and plan["correctness-teacher-test"] == "<= 32"
    assert plan["students"] == "<= 64" and "teacher-train" not in plan
    assert {k: v for k, v in plan.items() if k.startswith(("questions", "answers", "distill"))} == \
        {k: v for k, v in pairwise.items() if k.startswith(("questions", "answers", "distill"))}


def test_pairwise_is_the_default_and_the_scale_defaults_to_halves(tmp_path: Path) -> None:
    local = load_profile("local", ROOT / "pyproject.toml").pipeline
    assert local.judge == "pairwise" and local.correctness is None
    assert not {"correctness_system", "correctness_user"} & set(local.prompt_hashes())
    corr = load_profile("corr", project(tmp_path)).pipeline
    assert corr.judge == "correctness" and corr.score_scale == HALVES


@pytest.mark.parametrize(("scale", "expected"), [
    ('"1-5"', (1, 2, 3, 4, 5)), ("[1, 3, 5]", (1, 3, 5)), ('"2-4:0.5"', (2, 2.5, 3, 3.5, 4))])
def test_a_declared_scale(tmp_path: Path, scale: str, expected: tuple) -> None:
    tables = f"\n[tool.judge_eval.profiles.corr.pipeline.correctness]\nscale = {scale}\n"
    assert load_profile("corr", project(tmp_path, tables=tables)).pipeline.score_scale == expected


PIPELINE = "tool.judge_eval.profiles.corr.pipeline"


TABLE = "\n[tool.judge_eval.profiles.corr.pipeline.correctness]\n"


@pytest.mark.parametrize(("judge", "tables", "message"), [
    ('"rubric"', "", rf"{PIPELINE}.judge = 'rubric': Input should be 'pairwise' or 'correctness'"),
    ("1", "", rf"{PIPELINE}.judge = 1: Input should be 'pairwise' or 'correctness'"),
    ('"correctness"', TABLE + 'scale = "0-5"\n', rf"{PIPELINE}.correctness.scale = '0-5': 0 is outside 1-5"),
    ('"correctness"', TABLE + "scale = [5, 1]\n",
     rf"{PIPELINE}.correctness.scale = \[5, 1\]: 1 does not come after 5"),
    ('"correctness"', TABLE + "scale = [3]\n",
     rf"{PIPELINE}.correctness.scale = \[3\]: 1 value\(s\); a scale needs at least two scores"),
    ('"correctness"', TABLE + "threshold = 4\n",
     rf"{PIPELINE}.correctness = \{{'threshold': 4\}}: unknown key\(s\) threshold; allowed keys: scale"),
    ('"pairwise"', TABLE + 'scale = "1-5"\n',
     rf"{PIPELINE} = .*: the correctness table applies only with judge = 'correctness'"),
])
def test_bad_keys_name_their_path(tmp_path: Path, judge: str, tables: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_profile("corr", project(tmp_path, judge=judge, tables=tables))


def test_the_study_source_cannot_be_judged_for_correctness(tmp_path: Path) -> None:
    text = project(tmp_path)
    text.write_text(text.read_text().replace('source = "items"\nitems = "items"', 'source = "study"'))
    with pytest.raises(ConfigError, match="judge = 'correctness' needs source 'build' or 'items'"):
        load_profile("corr", text)

"""Re-recordings a reviewer can read: re-recording unchanged content leaves a cassette byte for
byte as it was, whatever the completion order and the volatile fields (id, created,
system_fingerprint); a changed completion is the only interaction rewritten; and ``judge-eval
record`` says what changed, per cassette and per judge.

Every cassette here is recorded into tmp_path from loopback servers of the test's own, which
answer after random delays with a new id, ``created`` and fingerprint on every call."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from judge_eval.recording import rerecord_stable
from judge_eval.recording.cassettes import CassetteSpec, cassette
from judge_eval.recording.rerecord_stable import (
    SORT_FIELD, VOLATILE_RESPONSE_FIELDS, Changes, cassette_changes, match_previous, sort_key,
)
from tests.loopback import Loopback, answer, start

ROOT = Path(__file__).resolve().parents[2]
ITEMS = [f"item-{k:02d}" for k in range(8)]
ORDERS = ("AB", "BA")


# --------------------------------------------------------------------------- comparing interactions


def interaction(prompt: str, text: str, *, id_: str = "chatcmpl-1", created: int = 1, status: int = 200) -> dict:
    body = {"id": id_, "object": "chat.completion", "created": created, "model": "m",
            "system_fingerprint": f"fp_{id_}", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                    "content": text}}]}
    return {"request": {"body": json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]}),
                        "headers": {"content-type": ["application/json"]}, "method": "POST",
                        "uri": "http://127.0.0.1:1/v1/chat/completions"},
            "response": {"body": {"string": json.dumps(body)}, "headers": {"content-type": ["application/json"]},
                         "status": {"code": status, "message": "OK"}}}


def test_the_volatile_fields_are_the_per_call_ones_and_nothing_else() -> None:
    assert VOLATILE_RESPONSE_FIELDS == ("id", "created", "system_fingerprint", "timings")
    assert "x-request-id" in rerecord_stable.VOLATILE_HEADERS and "date" in rerecord_stable.VOLATILE_HEADERS
    assert "content-type" not in rerecord_stable.VOLATILE_HEADERS


def test_new_ids_keep_the_stored_interaction_and_any_other_difference_does_not() -> None:
    old = [interaction("p1", "[[A]]", id_="a", created=1), interaction("p2", "[[B]]", id_="b", created=2),
           interaction("p3", "[[C]]", id_="c", created=3)]
    new = [interaction("p3", "[[C]]", id_="z", created=9),  # only volatile fields differ
           interaction("p2", "[[A]]", id_="y", created=8),  # the completion changed
           interaction("p4", "[[A]]", id_="x", created=7)]  # a request p1..p3 never made
    kept, changes = match_previous(new, old)
    # by hand: p3 unchanged, p2 changed, p4 added, p1 removed
    assert changes == Changes(added=1, removed=1, changed=1, unchanged=1)
    assert kept[0] is old[2] and kept[1] is new[1] and kept[2] is new[2]
    # a status or a nested field is content, not volatile
    assert match_previous([interaction("p1", "[[A]]", status=500)], old[:1])[1].changed == 1
    nested = interaction("p1", "[[A]]")
    payload = json.loads(nested["response"]["body"]["string"])
    payload["choices"][0]["id"] = "nested"
    nested["response"]["body"]["string"] = json.dumps(payload)
    assert match_previous([nested], old[:1])[1].changed == 1


def test_repeats_of_one_request_pair_up_in_order() -> None:
    old = [interaction("poll", "running", id_="1"), interaction("poll", "running", id_="2"),
           interaction("poll", "succeeded", id_="3")]
    new = [interaction("poll", "running", id_="4"), interaction("poll", "succeeded", id_="5")]
    kept, changes = match_previous(new, old)
    assert changes == Changes(added=0, removed=1, changed=0, unchanged=2)
    assert kept == [old[0], old[2]]


def test_a_sort_key_is_str_or_int_parts() -> None:
    for bad in ((), (None,), (1.5,), (True,)):
        with pytest.raises(TypeError, match="str or int"), sort_key(*bad):
            pass


# --------------------------------------------------------------------------- a loopback judge


class Judge:
    """A loopback chat server: each answer comes after a random delay, with a new id, created and
    fingerprint; ``override`` maps a prompt to another answer text. ``sent`` is the order in which
    it answered."""

    def __init__(self, seed: int, *, echo: bool = False, reply: Any = None) -> None:
        self.delays = random.Random(seed)
        self.lock = threading.Lock()
        self.echo = echo
        self.reply = reply
        self.override: dict[str, str] = {}
        self.sent: list[str] = []
        self.lb, self.srv = start(Loopback(base_url="", hook=self.hook))

    def hook(self, path: str, body: dict):
        with self.lock:
            delay = self.delays.uniform(0.0, 0.04)
        time.sleep(delay)
        prompt = body["messages"][-1]["content"]
        text = self.override.get(prompt, self.reply(prompt) if self.reply
                                 else f"You asked: {prompt}. Final verdict: [[A]]" if self.echo
                                 else f"Verdict on {prompt}: [[A]]")
        out = answer(path, body, text)
        out.update(id=f"chatcmpl-{uuid.uuid4().hex}", created=time.time_ns(),
                   system_fingerprint=f"fp_{uuid.uuid4().hex[:10]}")
        with self.lock:
            self.sent.append(prompt)
        return 200, {"Content-Type": "application/json", "x-request-id": uuid.uuid4().hex}, json.dumps(out).encode()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def prompt(item: str, order: str, *, long: bool = False) -> str:
    if long:  # six words or more: an echo of it is masked in a body-hash cassette
        return f"which answer about {item} in order {order} is the better one"
    return f"{item} {order}"


def record(spec: CassetteSpec, judge: Judge, *, concurrency: int = 4, long: bool = False) -> None:
    """Judge every item in both orders, ``concurrency`` items at once, each item's two calls one
    after the other under the item's sort key (as ``judge_items`` does)."""
    async def run() -> None:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            async def one(item: str) -> None:
                async with gate:
                    with sort_key(item):
                        for order in ORDERS:
                            messages = [{"role": "user", "content": prompt(item, order, long=long)}]
                            r = await client.post(f"{judge.lb.base_url}/chat/completions",
                                                  json={"model": "m", "messages": messages})
                            r.raise_for_status()

            await asyncio.gather(*(one(item) for item in ITEMS))

    with cassette(spec, "all"):
        asyncio.run(run())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interactions_yaml(path: Path) -> list[str]:
    """Each interaction of a cassette as YAML text, to compare them one by one."""
    return [yaml.safe_dump(i, sort_keys=True) for i in yaml.safe_load(path.read_text())["interactions"]]


def prompts_of(path: Path) -> list[str]:
    return [json.loads(i["request"]["body"])["messages"][-1]["content"]
            for i in yaml.safe_load(path.read_text())["interactions"]]


@pytest.fixture
def judges():
    made: list[Judge] = []

    def make(seed: int, **kw) -> Judge:
        made.append(Judge(seed, **kw))
        return made[-1]

    yield make
    for j in made:
        j.close()


def test_re_recording_unchanged_content_concurrently_leaves_the_cassette_byte_for_byte(tmp_path: Path,
                                                                                       judges) -> None:
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    first, second = judges(1), judges(2)
    record(s, first)
    before = sha256(s.path)
    stored = yaml.safe_load(s.path.read_text())["interactions"]
    record(s, second)
    # the two recordings completed in other orders, with other ids ...
    assert first.sent != second.sent and sorted(first.sent) == sorted(second.sent)
    # ... and the cassette is byte for byte what it was
    assert sha256(s.path) == before
    # in the items' order, each item's calls in the order it made them, none in completion order
    assert prompts_of(s.path) == [prompt(item, order) for item in sorted(ITEMS) for order in ORDERS]
    assert prompts_of(s.path) != first.sent
    assert SORT_FIELD not in s.path.read_text()
    ids = {json.loads(i["response"]["body"]["string"])["id"] for i in stored}
    assert len(ids) == len(ITEMS) * len(ORDERS)  # every call got its own id; the first ones stay


def test_a_changed_completion_is_the_only_interaction_rewritten(tmp_path: Path, judges) -> None:
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    record(s, judges(3))
    previous = tmp_path / "previous.yaml"
    previous.write_bytes(s.path.read_bytes())
    changed = judges(4)
    changed.override[prompt("item-05", "BA")] = "Verdict on item-05 BA: [[B]]"
    record(s, changed)
    old, new = interactions_yaml(previous), interactions_yaml(s.path)
    differs = [n for n, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    # by hand: item-05 is the 6th item, BA its second call -> position 5 * 2 + 1
    assert differs == [11]
    assert "[[B]]" in new[11] and "[[A]]" in old[11]
    assert cassette_changes(previous, s.path) == Changes(added=0, removed=0, changed=1, unchanged=15)


def test_a_body_hash_cassette_compares_what_it_stores(tmp_path: Path, judges) -> None:
    """Hashed requests, responses that echo their request (masked when stored): unchanged content
    still keeps the bytes."""
    s = CassetteSpec(root=tmp_path, profile="study-local", stage="student-base", split="test", body_hash=True)
    record(s, judges(5, echo=True), long=True)
    text = s.path.read_text()
    assert "which answer about" not in text and "xxxxx" in text  # echoes are masked
    before = sha256(s.path)
    record(s, judges(6, echo=True), long=True)
    assert sha256(s.path) == before


def test_a_failed_recording_keeps_its_sort_keys_for_resume(tmp_path: Path, judges) -> None:
    """The working copy of a failed recording notes each call's item; the resumed recording
    (mode new_episodes: replays those, records the rest) installs the same bytes as an
    uninterrupted one, with no note left in the cassette."""
    clean = CassetteSpec(root=tmp_path / "clean", profile="local", stage="teacher", split="test")
    record(clean, judges(7))
    s = CassetteSpec(root=tmp_path / "resumed", profile="local", stage="teacher", split="test")
    server = judges(8)
    partial = tmp_path / "partial"

    async def some(items: list[str], fail: bool) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            async def one(item: str) -> None:
                with sort_key(item):
                    for order in ORDERS:
                        await client.post(f"{server.lb.base_url}/chat/completions",
                                          json={"model": "m", "messages": [{"role": "user",
                                                                            "content": prompt(item, order)}]})
            await asyncio.gather(*(one(item) for item in items))
        if fail:
            raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError), cassette(s, "all", partial_dir=partial):
        asyncio.run(some(ITEMS[5:], fail=True))
    assert not s.path.exists()
    kept = yaml.safe_load((partial / s.path.name).read_text())["interactions"]
    assert sorted(i["response"][SORT_FIELD][0] for i in kept) == sorted(ITEMS[5:] * 2)
    made = len(server.sent)
    with cassette(s, "new_episodes", partial_dir=partial):
        asyncio.run(some(list(reversed(ITEMS)), fail=False))  # the first three are replayed
    assert len(server.sent) - made == 2 * 5
    assert prompts_of(s.path) == prompts_of(clean.path)
    assert SORT_FIELD not in s.path.read_text()


def test_extending_a_cassette_keeps_its_order_and_its_bytes(tmp_path: Path, judges) -> None:
    """Mode new_episodes on an installed cassette: its calls are replayed (they note their item
    as they play) and stay where they were, byte for byte; a new call goes to its item's place."""
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    record(s, judges(9))
    before = interactions_yaml(s.path)
    server = judges(10)

    async def again() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            for item in reversed(ITEMS):
                with sort_key(item):
                    for order in ORDERS + (("CD",) if item == "item-03" else ()):
                        await client.post(f"{server.lb.base_url}/chat/completions",
                                          json={"model": "m", "messages": [{"role": "user",
                                                                            "content": prompt(item, order)}]})

    with cassette(s, "new_episodes"):
        asyncio.run(again())
    assert server.sent == [prompt("item-03", "CD")]
    after = interactions_yaml(s.path)
    # by hand: item-03's two calls are at positions 6 and 7; the new one follows them
    assert after[:8] == before[:8] and after[9:] == before[8:]
    assert prompts_of(s.path)[8] == prompt("item-03", "CD")


def two_questions(prompt_text: str) -> str:
    """A question writer's answer: two questions named after the prompt's digest."""
    digest = hashlib.sha256(prompt_text.encode()).hexdigest()[:6]
    return f"Question 1: What is {digest}?\n2) Why {digest}?"


def test_the_question_writer_asks_what_it_asked_before_and_its_cassette_is_in_chunk_order(tmp_path: Path,
                                                                                          judges) -> None:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.evaluation import DatasetGenerator

    from judge_eval.config.profiles import load_profile
    from judge_eval.live.clients import build_llm
    from judge_eval.live.corpus import load_documents
    from judge_eval.live.pipeline import STAGES, Context, stage_questions
    from judge_eval.live.questions import chunk, clean_questions, known_deprecations_dropped

    local = load_profile("local", ROOT / "pyproject.toml")
    cfg = local.pipeline
    docs = load_documents(cfg, "train")
    nodes = chunk(docs, cfg.chunk_size)
    count = 6
    num = count + 2  # by hand: count + max(2, count // 4) questions asked, one chunk each
    assert len(nodes) > num

    def questions(seed: int) -> tuple[list[str], Judge]:
        server = judges(seed, reply=two_questions)
        writer = cfg.question_writer.model_copy(update={"base_url": server.lb.base_url})
        profile = local.model_copy(update={"pipeline": cfg.with_models(question_writer=writer).model_copy(
            update={"questions": cfg.questions.model_copy(update={"train": count})})})
        ctx = Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / f"run{seed}",
                      modes={s: "all" for s in STAGES}, concurrency=4)
        try:
            return stage_questions(ctx, "train", docs), server
        finally:
            ctx.close()

    got, first = questions(11)
    path = tmp_path / "cassettes" / "local" / "questions-train.yaml"
    before = sha256(path)
    again, second = questions(12)
    assert again == got and sha256(path) == before and first.sent != second.sent
    asked = prompts_of(path)
    assert len(asked) == num
    assert all(nodes[k].get_content() in asked[k] for k in range(num))  # chunk order, not completion order

    # the questions are those DatasetGenerator gives when it asks for all chunks at once
    server = judges(13, reply=two_questions)
    llm = build_llm(cfg.question_writer.model_copy(update={"base_url": server.lb.base_url}), replay=True)

    async def at_once() -> list[str]:
        with known_deprecations_dropped():
            generator = DatasetGenerator(nodes=nodes, llm=llm, callback_manager=CallbackManager([]),
                                         question_gen_query=cfg.question_prompt)
            return await generator.agenerate_questions_from_nodes(num=num)

    assert got == clean_questions(asyncio.run(at_once()), count) and len(got) == count


# --------------------------------------------------------------------------- judge-eval record


@pytest.fixture
def fake(monkeypatch):
    """The fake OpenAI/HF/Wikipedia server of tests/fake_apis.py, answering chat calls after a
    random delay with a new id, created and fingerprint each time; the base student's verdict
    becomes [[B]] on a prompt holding every substring of one of the groups in ``fake.flip``."""
    from tests import fake_apis

    state, srv = fake_apis.start()
    original = fake_apis.answer
    delays = random.Random(0)
    lock = threading.Lock()
    state.flip = []

    def answer_later(path: str, body: dict, text: str) -> dict:
        with lock:
            delay = delays.uniform(0.0, 0.03)
        time.sleep(delay)
        prompt_text = "\n".join(m.get("content") or "" for m in body.get("messages", []))
        if body.get("model") == "gpt-3.5-turbo" and any(all(f in prompt_text for f in group)
                                                         for group in state.flip):
            text = re.sub(r"\[\[[ABC]\]\]", "[[B]]", text)
        out = original(path, body, text)
        if "choices" in out:
            out.update(id=f"chatcmpl-{uuid.uuid4().hex}", created=time.time_ns(),
                       system_fingerprint=f"fp_{uuid.uuid4().hex[:10]}")
        return out

    monkeypatch.setattr(fake_apis, "answer", answer_later)
    for k, v in {"OPENAI_API_KEY": "sk-" + "fake-openai-0123456789abcdefghijklmnopqrstuv",
                 "HF_TOKEN": "hf_" + "fakeHuggingFaceToken0123456789abcdef"}.items():
        monkeypatch.setenv(k, v)
    yield state
    srv.shutdown()
    srv.server_close()


def items_profile(fake, tmp_path: Path):
    """The openai profile on your own pairs (teacher, fine-tuning job, both students), every
    model on the fake server: 6 train and 6 test pairs, the first answer citing a year."""
    from judge_eval.config.profiles import load_profile
    from judge_eval.core.items import Answer, QAItem, item_id
    from judge_eval.core.store import write_qa

    data = tmp_path / "pairs"
    for split, name in (("train", "train_qa.jsonl"), ("test", "test_qa_complete.jsonl")):
        write_qa(data / name, [QAItem(id=item_id(split, f"{split} q{i}"), split=split,
                                      question=f"When was {split} thing {i} built?",
                                      answers=(Answer("mine", f"In {1900 + i}."), Answer("theirs", "Long ago.")),
                                      source="") for i in range(6)])
    profile = load_profile("openai", ROOT / "pyproject.toml")
    cfg = profile.pipeline
    v1 = f"{fake.base_url}/v1"
    cfg = cfg.with_models(question_writer=None, embeddings=None, answerers=(),
                          teacher=cfg.teacher.model_copy(update={"base_url": v1}),
                          student=cfg.student.model_copy(update={"base_url": v1}))
    cfg = cfg.model_copy(update={
        "source": "items", "items": data, "corpus": None, "questions": None,
        "retry": cfg.retry.model_copy(update={"attempts": 1}),
        "distill": cfg.distill.model_copy(update={"poll_first_wait": 0.01, "poll_max_wait": 0.02}),
    })
    return profile.model_copy(update={"pipeline": cfg})


def test_judge_eval_record_twice_changes_no_byte_and_says_what_changed(tmp_path: Path, fake, capsys) -> None:
    from judge_eval.orchestration.rerecord import record as rerecord

    profile = items_profile(fake, tmp_path)
    root = tmp_path / "cassettes"
    folder = root / "openai"

    def again(n: int) -> dict:
        return rerecord(profile, cassette_root=root, run_dir=tmp_path / f"run{n}", install=False,
                        project_root=tmp_path, concurrency=4)

    first = again(1)
    assert first["changes"] == {"previous": None}
    assert "changes: no previous recording of profile openai" in capsys.readouterr().out
    hashes = {p.name: sha256(p) for p in sorted(folder.iterdir())}
    assert set(hashes) == {"teacher-train.yaml", "teacher-test.yaml", "distill-train.yaml",
                           "student-base-test.yaml", "student-distilled-test.yaml"}

    second = again(2)
    assert {p.name: sha256(p) for p in sorted(folder.iterdir())} == hashes
    counts = {name: c for name, c in second["changes"]["cassettes"].items()}
    # by hand: 6 train and 6 test pairs, 2 calls each (every first call parses)
    assert counts["teacher-train.yaml"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 12}
    assert counts["student-base-test.yaml"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 12}
    assert all(c["added"] == c["removed"] == c["changed"] == 0 for c in counts.values())
    assert second["changes"]["verdicts"]["changed"] == {}
    out = capsys.readouterr().out
    assert "student-base-test.yaml" in out and "0 added, 0 removed, 0 changed, 12 unchanged" in out

    # the base student now answers [[B]] in the original order of test pair 2 only
    fake.flip.append(("When was test thing 2 built?", "Assistant A’s Answer]\nIn 1902."))
    before = {p.name: interactions_yaml(p) for p in sorted(folder.iterdir())}
    third = again(3)
    for name, old in before.items():
        new = interactions_yaml(folder / name)
        differs = [n for n, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert differs == ([differs[0]] if name == "student-base-test.yaml" else []), name
    assert third["changes"]["cassettes"]["student-base-test.yaml"] == {"added": 0, "removed": 0, "changed": 1,
                                                                       "unchanged": 11}
    verdicts = third["changes"]["verdicts"]
    assert verdicts["changed"]["gpt_3p5"] == 1 and verdicts["items"] == 6
    assert all(n == 0 for judge, n in verdicts["changed"].items() if judge != "gpt_3p5")
    out = capsys.readouterr().out
    assert "0 added, 0 removed, 1 changed, 11 unchanged" in out
    assert re.search(r"verdicts changed \(of 6 test items\): .*gpt_3p5 1", out)


def test_a_manifest_unchanged_but_for_its_training_time_keeps_its_bytes(tmp_path: Path) -> None:
    from judge_eval.recording.rerecord_stable import write_manifest

    path = tmp_path / "distill-train.json"
    first = {"adapter_sha256": "aa", "data_hash": "sha256:1", "epoch_losses": [1.5, 0.5], "train_seconds": 27.9}
    assert write_manifest(path, first) is True
    before = path.read_bytes()
    assert write_manifest(path, {**first, "train_seconds": 31.2}) is False  # the same adapter, trained again
    assert path.read_bytes() == before
    assert write_manifest(path, {**first, "adapter_sha256": "bb", "train_seconds": 31.2}) is True  # a new adapter
    assert json.loads(path.read_text()) == {**first, "adapter_sha256": "bb", "train_seconds": 31.2}

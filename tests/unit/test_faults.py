"""Fault injection against a real HTTP server of our own on 127.0.0.1: each scenario asserts the
exact number of requests the server received, and that every item ends answered or recorded as
an explicit error with its reason."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from judge_eval.live.clients import build_llm
from judge_eval.live.judging import judge_items
from judge_eval.config.pipeline_spec import ModelSpec
from judge_eval.core.items import Answer, QAItem, item_id
from judge_eval.live.retry import CallFailedError, RetryPolicy
from tests.loopback import Loopback, start

JSON = {"Content-Type": "application/json"}


def ok(text: str) -> tuple[int, dict, bytes]:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    return 200, JSON, json.dumps(body).encode()


class Schedule:
    """Per-request faults in order; after the list, normal answers (A on the original order,
    B on the flipped one: a consistent, conclusive judge)."""

    def __init__(self, faults: list) -> None:
        self.faults = list(faults)

    def __call__(self, path: str, body: dict):
        if self.faults:
            fault = self.faults.pop(0)
            if fault is not None:
                return fault() if callable(fault) else fault
        user = body["messages"][-1]["content"]
        first = user.split("[The Start of Assistant A’s Answer]\n")[1].split("\n")[0]
        return ok("The first shown is better. [[A]]" if first.startswith("good") else "B is better. [[B]]")


def status(code: int, retry_after: str | None = None):
    headers = {**JSON, **({"Retry-After": retry_after} if retry_after else {})}
    return code, headers, json.dumps({"error": {"message": f"injected {code}", "type": "x"}}).encode()


def slow():
    time.sleep(1.5)  # longer than the client's timeout
    return ok("late [[A]]")


NOT_JSON = (200, {"Content-Type": "application/json"}, b"<html>upstream hiccup</html>")
TRUNCATED = (200, {"Content-Type": "application/json"}, b'{"id": "x", "choices": [{"mess')


@pytest.fixture
def server():
    lb, srv = start(Loopback(base_url=""))
    yield lb
    srv.shutdown()
    srv.server_close()


def items(n: int) -> list[QAItem]:
    return [QAItem(id=item_id("test", f"q{i}"), split="test", question=f"q{i}",
                   answers=(Answer("m1", f"good answer {i}"), Answer("m2", f"weak answer {i}")), source="ctx")
            for i in range(n)]


def judge(server: Loopback, faults: list, n: int = 2, attempts: int = 4) -> tuple[list, RetryPolicy]:
    server.hook = Schedule(faults)
    spec = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url,
                     timeout=0.5, max_tokens=16)
    policy = RetryPolicy(attempts=attempts, base=0.01, cap=0.05, seed=0)
    verdicts, _ = asyncio.run(judge_items(items(n), build_llm(spec, replay=False, policy=policy), "teacher"))
    return verdicts, policy


def test_no_fault_two_calls_per_item(server) -> None:
    verdicts, policy = judge(server, [])
    assert len(server.requests) == 4 and policy.sleeps == []
    assert [(v.source, v.score) for v in verdicts] == [("original", 1.0)] * 2


def test_429_with_retry_after_is_honoured(server) -> None:
    verdicts, policy = judge(server, [status(429, "0.03"), status(429, "0.02")])
    assert len(server.requests) == 6  # two refused, then the four calls of two items
    assert policy.sleeps == [0.03, 0.02]
    assert all(v.source == "original" for v in verdicts)


def test_5xx_backs_off_exponentially_with_jitter(server) -> None:
    verdicts, policy = judge(server, [status(500), status(502), status(503)])
    assert len(server.requests) == 7
    assert len(policy.sleeps) == 3
    for wait, nominal in zip(policy.sleeps, [0.01, 0.02, 0.04]):
        assert 0.75 * nominal <= wait <= 1.25 * nominal
    assert all(v.source == "original" for v in verdicts)


def test_a_timeout_is_retried(server) -> None:
    verdicts, policy = judge(server, [slow])
    assert len(server.requests) == 5 and len(policy.sleeps) == 1
    assert all(v.source == "original" for v in verdicts)


@pytest.mark.parametrize("bad", [NOT_JSON, TRUNCATED], ids=["not-json", "truncated"])
def test_a_bad_body_is_retried(server, bad) -> None:
    verdicts, policy = judge(server, [bad])
    assert len(server.requests) == 5 and len(policy.sleeps) == 1
    assert all(v.source == "original" for v in verdicts)


def test_a_call_that_keeps_failing_becomes_an_error_outcome_and_the_stage_goes_on(server) -> None:
    verdicts, policy = judge(server, [status(503)] * 4, attempts=4)
    assert len(server.requests) == 4 + 2  # item 0: 4 attempts of its first call; item 1: 2 calls
    first, second = verdicts
    assert (first.source, first.score) == ("error", None)
    assert "HTTP 503" in first.extra["error"] and first.extra["attempts"] == 4
    assert second.source == "original"


def test_a_non_transient_error_is_not_retried(server) -> None:
    verdicts, policy = judge(server, [status(400)])
    assert len(server.requests) == 1 + 2 and policy.sleeps == []
    assert verdicts[0].source == "error" and "HTTP 400" in verdicts[0].extra["error"]


def test_the_flipped_call_failing_keeps_the_first_output(server) -> None:
    verdicts, _ = judge(server, [None, status(500), status(500)], n=1, attempts=2)
    (v,) = verdicts
    assert len(server.requests) == 3
    assert v.source == "error" and v.extra["raw"] == {"original": "The first shown is better. [[A]]"}


def test_a_replay_miss_is_fatal_at_once_even_through_a_retrying_client(server, tmp_path: Path) -> None:
    from judge_eval.recording.cassettes import CassetteSpec, MissingRecordingError, cassette

    spec = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    with cassette(spec, "all"):
        judge(server, [], n=1)
    recorded = len(server.requests)
    with pytest.raises(MissingRecordingError, match="judge-eval record --profile local --stage teacher"):
        with cassette(spec, "none"):
            judge(server, [], n=2)  # item 1 was never recorded
    assert len(server.requests) == recorded  # nothing reached the server, nothing was retried


def test_the_real_error_surfaces_through_the_capturing_wrapper(server) -> None:
    """OpenAIFineTuningHandler (llama-index-finetuning 0.4.2) hides a failed call behind a
    KeyError; our capture wrapper lets the real error through."""
    from judge_eval.live.capture import CapturingLLM

    server.hook = lambda path, body: status(401)
    spec = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url, timeout=0.5)
    llm = CapturingLLM(build_llm(spec, replay=False, policy=RetryPolicy(attempts=1)), [])
    with pytest.raises(CallFailedError, match="HTTP 401"):
        asyncio.run(llm.apredict(__import__("llama_index.core.prompts", fromlist=["PromptTemplate"])
                                 .PromptTemplate("hi")))


def test_an_answer_that_keeps_failing_is_kept_as_an_error_item_and_judged_as_error(server) -> None:
    from llama_index.core import Document

    from judge_eval.live.answers import answer_questions, build_retriever, query_engines
    from judge_eval.live.clients import build_embeddings

    def hook(path: str, body: dict):
        text = json.dumps(body)
        if path.endswith("/chat/completions") and "doomed question" in text:
            return status(503)
        return None  # default answers (and embeddings) from the loopback server

    server.hook = hook
    emb = build_embeddings(ModelSpec(role="embeddings", api="openai-like", model="e", label="e",
                                     base_url=server.base_url), replay=False)
    policy = RetryPolicy(attempts=3, base=0.01, cap=0.02, seed=0)
    llms = {name: build_llm(ModelSpec(role=name, api="openai-like", model=name, label=name,
                                      base_url=server.base_url, timeout=2), replay=False, policy=policy)
            for name in ("m1", "m2")}
    retriever = build_retriever([Document(text="Alpha town was founded in 1700."),
                                 Document(text="Beta town has a bridge.")], emb, top_k=2, chunk_size=64)
    before = len(server.requests)
    result = asyncio.run(answer_questions(["fine question", "doomed question"],
                                          query_engines(retriever, llms), split="test", seed=1))
    chat_requests = [r for r in server.requests[before:] if r["path"].endswith("/chat/completions")]
    assert len(chat_requests) == 2 + 3  # two answers for the first question; 3 attempts, then give up
    ok_item, failed = result
    assert ok_item.answers[0].text and "error" not in ok_item.extra
    assert "HTTP 503" in failed.extra["error"] and failed.source == ""
    n = len(server.requests)
    verdicts, _ = asyncio.run(judge_items([failed], llms["m1"], "teacher"))
    assert verdicts[0].source == "error" and "answers stage" in verdicts[0].extra["error"]
    assert len(server.requests) == n  # nothing to judge, no call made


def test_concurrent_judging_gives_the_same_verdicts_with_calls_in_flight_together(server) -> None:
    import threading

    lock, state = threading.Lock(), {"now": 0, "peak": 0}
    schedule = Schedule([])

    def slow_hook(path: str, body: dict):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return schedule(path, body)

    spec = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url, timeout=5)
    server.hook = slow_hook
    seq, _ = asyncio.run(judge_items(items(12), build_llm(spec, replay=False), "teacher"))
    assert state["peak"] == 1
    state["peak"] = 0
    par, _ = asyncio.run(judge_items(items(12), build_llm(spec, replay=False), "teacher", concurrency=6))
    assert [(v.source, v.score) for v in par] == [(v.source, v.score) for v in seq]
    assert 2 <= state["peak"] <= 6
    assert len(server.requests) == 48


def test_an_unparseable_retry_after_falls_back_to_the_backoff(server) -> None:
    verdicts, policy = judge(server, [status(429, "soon")])
    assert len(server.requests) == 5 and len(policy.sleeps) == 1
    assert 0.75 * 0.01 <= policy.sleeps[0] <= 1.25 * 0.01  # the first backoff, not a crash
    assert all(v.source == "original" for v in verdicts)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "soon"}, None), ({"retry-after": "nan"}, None), ({"retry-after": "inf"}, None),
    ({"retry-after": ""}, None), ({"retry-after": "Mon, 99 Foo 2024 25:61:00 GMT"}, None),
    ({"retry-after": "2"}, 2.0), ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ({"retry-after-ms": "1500"}, 1.5), ({"retry-after-ms": "later", "retry-after": "3"}, 3.0),
])
def test_retry_after_values(headers: dict, expected) -> None:
    from judge_eval.live.retry import _retry_after

    assert _retry_after(headers) == expected


# ------------------------------------------------------------- replaying recorded failures


def replay_judge(server: Loopback, spec_root: Path, n: int, attempts: int = 4) -> tuple[list, RetryPolicy]:
    """Judge ``n`` items replaying the cassette under ``spec_root``, as the pipeline does
    (``build_llm(replay=True, replay_retries=True)``), with the server answering normally."""
    server.hook = Schedule([])
    spec = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url,
                     timeout=0.5, max_tokens=16)
    policy = RetryPolicy(attempts=attempts, base=0.01, cap=0.05, seed=0)
    llm = build_llm(spec, replay=True, policy=policy, replay_retries=True)
    verdicts, _ = asyncio.run(judge_items(items(n), llm, "teacher"))
    return verdicts, policy


@pytest.mark.parametrize(("faults", "expected"), [
    # item 0's first call: 503, 503 (the same body twice), then answered: the verdicts are the normal ones
    ([status(503), status(503)], [("original", 1.0), ("original", 1.0)]),
    # item 0's first call fails 4 times of 4: an error verdict, recorded and replayed as such
    ([status(503)] * 4, [("error", None), ("original", 1.0)]),
    # a non-transient 400: an error verdict at once
    ([status(400)], [("error", None), ("original", 1.0)]),
    # the flipped call of item 0 is refused twice with Retry-After, then answered
    ([None, status(429, "0.01"), status(429, "0.01")], [("original", 1.0), ("original", 1.0)]),
], ids=["503-503-200", "failed-for-good", "400", "429-on-the-flipped-call"])
def test_recorded_failures_replay_to_the_recorded_verdicts(server, tmp_path: Path, faults, expected) -> None:
    from judge_eval.recording.cassettes import CassetteSpec, cassette

    spec = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    with cassette(spec, "all"):
        recorded, _ = judge(server, faults, n=2, attempts=4)
    assert [(v.source, v.score) for v in recorded] == expected
    sent = len(server.requests)
    with cassette(spec, "none"):
        replayed, policy = replay_judge(server, tmp_path, n=2, attempts=4)
    assert len(server.requests) == sent  # nothing reached the server
    assert policy.sleeps == []  # the live policy is not used in replay (`replaying` has no waits)
    assert [(v.source, v.score, v.extra.get("error"), v.extra.get("attempts")) for v in replayed] == \
        [(v.source, v.score, v.extra.get("error"), v.extra.get("attempts")) for v in recorded]
    assert [v.extra.get("raw") for v in replayed] == [v.extra.get("raw") for v in recorded]


def test_replay_without_replay_retries_stops_at_a_recorded_failure(server, tmp_path: Path) -> None:
    """What the pipeline did before: the plain replaying client raised the recorded 503 (the
    batch stage's second pass and the canary still build it so, on purpose)."""
    import openai

    from judge_eval.recording.cassettes import CassetteSpec, cassette

    spec = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    with cassette(spec, "all"):
        judge(server, [status(503)], n=1)
    model = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url,
                      timeout=0.5, max_tokens=16)
    with pytest.raises(openai.APIStatusError, match="503"):
        with cassette(spec, "none"):
            asyncio.run(judge_items(items(1), build_llm(model, replay=True), "teacher"))


def test_a_replayed_unreadable_body_is_still_named_as_the_cassettes_fault(server, tmp_path: Path) -> None:
    """A recorded body the client cannot read has no HTTP failure status, so replay does not retry
    it (which would end in a miss): the cassette layer names the interaction, as before."""
    from llama_index.core.llms import ChatMessage

    from judge_eval.recording.cassettes import CassetteError, CassetteSpec, cassette

    spec = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    model = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url,
                      timeout=0.5, max_tokens=16)
    server.hook = lambda path, body: NOT_JSON
    question = [ChatMessage(role="user", content="one")]
    with cassette(spec, "all"):
        with pytest.raises(Exception):  # recorded once, without retries: the live client's own error
            build_llm(model, replay=True).chat(question)
    sent = len(server.requests)
    assert sent == 1
    replaying = build_llm(model, replay=True, policy=RetryPolicy(attempts=4), replay_retries=True)
    with pytest.raises(CassetteError, match=r"interaction 0 \(0-based"):
        with cassette(spec, "none"):
            replaying.chat(question)
    assert len(server.requests) == sent


@pytest.mark.parametrize(("faults", "recorded_attempts", "replay_attempts", "expected"), [
    # recorded with 4 attempts: 503, 503, 503, then answered; replayed under a policy of 3
    ([status(503)] * 3, 4, 3, ("original", 1.0, None)),
    # recorded with 4 attempts, all refused (failed for good); replayed under a policy of 6
    ([status(503)] * 4, 4, 6, ("error", None, 4)),
], ids=["more-recorded-than-allowed-now", "fewer-recorded-than-allowed-now"])
def test_replay_follows_the_recorded_attempts_not_todays_policy(server, tmp_path: Path, faults, recorded_attempts,
                                                                replay_attempts, expected) -> None:
    from judge_eval.recording.cassettes import CassetteSpec, cassette

    spec = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    with cassette(spec, "all"):
        recorded, _ = judge(server, faults, n=1, attempts=recorded_attempts)
    (first,) = recorded
    assert (first.source, first.score, first.extra.get("attempts")) == expected
    with cassette(spec, "none"):
        replayed, _ = replay_judge(server, tmp_path, n=1, attempts=replay_attempts)
    (again,) = replayed
    assert (again.source, again.score, again.extra.get("attempts"), again.extra.get("error")) == \
        (first.source, first.score, first.extra.get("attempts"), first.extra.get("error"))


def test_a_duplicated_non_transient_failure_is_still_an_edit(server, tmp_path: Path) -> None:
    """A 400 is never retried, so two identical recorded 400s for one request can only come from
    an edit; identical 503s can come from a provider (see above)."""
    import yaml

    from judge_eval.recording.cassettes import CassetteError, CassetteSpec, cassette

    spec = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    with cassette(spec, "all"):
        judge(server, [status(400)], n=1)
    data = yaml.safe_load(spec.path.read_text("utf-8"))
    assert data["interactions"][0]["response"]["status"]["code"] == 400
    data["interactions"].insert(1, data["interactions"][0])
    spec.path.write_text(yaml.safe_dump(data), "utf-8")
    with pytest.raises(CassetteError, match=r"interactions 0 and 1 .* a duplicated interaction"):
        with cassette(spec, "none"):
            replay_judge(server, tmp_path, n=1)

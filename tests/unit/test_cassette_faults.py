"""Cassettes nobody can fool and no input can crash: a replayed response the client cannot parse,
a duplicated interaction, a recording that fails (before or after its first call), a host that
cannot be reached while recording, and the Wikipedia reader's scheme.

Every cassette here is recorded into tmp_path from a loopback server of the test's own; no test
connects to or resolves any host but 127.0.0.1 (unreachable hosts are closed loopback ports)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path

import httpx
import pytest
import yaml

from judge_eval.config.pipeline_spec import ModelSpec
from judge_eval.config.profiles import load_profile
from judge_eval.errors import JudgeEvalError
from judge_eval.live.clients import build_llm
from judge_eval.live.pipeline import STAGES, Context, run_all
from judge_eval.recording.cassettes import CassetteError, CassetteSpec, cassette
from tests import fake_apis
from tests.loopback import Loopback, answer, start

ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}
BAD_BODIES = {
    "not-json": (200, JSON, b"<html>upstream hiccup</html>"),
    "text-html": (200, {"Content-Type": "text/html"}, b"<html>upstream hiccup</html>"),
    "no-choices": (200, JSON, b'{"choices": []}'),
}
FAKE_KEYS = {"OPENAI_API_KEY": "sk-" + "fake-openai-0123456789abcdefghijklmnopqrstuv",
             "HF_TOKEN": "hf_" + "fakeHuggingFaceToken0123456789abcdef"}


@pytest.fixture
def server():
    lb, srv = start(Loopback(base_url=""))
    yield lb
    srv.shutdown()
    srv.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bad_for(words: set[str], bad):
    """A hook: the bad body for a chat whose last message is one of ``words``, else the default."""
    def hook(path: str, body: dict):
        if path.endswith("/chat/completions") and body["messages"][-1]["content"] in words:
            return bad
        return None
    return hook


def model(server: Loopback) -> ModelSpec:
    return ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=server.base_url,
                     timeout=5, max_tokens=16)


def chat(llm, word: str) -> str:
    from llama_index.core.llms import ChatMessage

    return llm.chat([ChatMessage(role="user", content=word)]).message.content


# --------------------------------------------------------------------------- unreadable responses


@pytest.mark.parametrize("bad", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_a_replayed_response_the_client_cannot_parse_is_a_corrupt_cassette(tmp_path: Path, server, bad) -> None:
    """Recorded from the loopback server, which answered the third call with a bad body; replaying
    it names the cassette, the interaction (index 2), the stage and the re-record command."""
    profile = load_profile("local", ROOT / "pyproject.toml")
    server.hook = bad_for({"third"}, bad)

    def calls(replay: bool) -> list[str]:
        llm = build_llm(model(server), replay=True)  # no retry: the bad body is recorded once
        out = [chat(llm, "first"), chat(llm, "second")]
        if not replay:
            with pytest.raises(Exception) as live:  # recording: the live server's error, not ours
                chat(llm, "third")
            assert not isinstance(live.value, CassetteError)
        else:
            out.append(chat(llm, "third"))
        return out

    recording = Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / "run",
                        modes={s: "all" for s in STAGES})
    recording.run_stage("teacher", "test", calls)
    path = tmp_path / "cassettes" / "local" / "teacher-test.yaml"
    assert len(yaml.safe_load(path.read_text())["interactions"]) == 3
    n = len(server.requests)

    replay = Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / "replay",
                     modes={s: "none" for s in STAGES})
    with pytest.raises(CassetteError) as info:
        replay.run_stage("teacher", "test", calls)
    message = str(info.value)
    assert f"of {path} (" in message and "interaction 2 (0-based" in message
    assert "stage teacher (test) of profile local" in message
    assert "re-record it: judge-eval record --profile local --stage teacher" in message
    assert len(server.requests) == n  # replay never reached the server


def test_with_calls_in_flight_together_the_unreadable_response_is_the_one_named(tmp_path: Path, server) -> None:
    server.hook = bad_for({"w1"}, BAD_BODIES["no-choices"])
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    words = [f"w{k}" for k in range(6)]
    with cassette(s, "all"):
        llm = build_llm(model(server), replay=True)
        for word in words:
            try:
                chat(llm, word)
            except IndexError:
                pass
    recorded = [json.loads(i["request"]["body"])["messages"][-1]["content"]
                for i in yaml.safe_load(s.path.read_text())["interactions"]]
    assert recorded == words

    async def together() -> None:
        from llama_index.core.llms import ChatMessage

        llm = build_llm(model(server), replay=True)
        await asyncio.gather(*(llm.achat([ChatMessage(role="user", content=w)]) for w in words))

    with pytest.raises(CassetteError, match=r"interaction 1 \(0-based"), cassette(s, "none"):
        asyncio.run(together())


def test_an_error_of_our_own_while_replaying_is_not_called_a_corrupt_cassette(tmp_path: Path, server) -> None:
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    with cassette(s, "all"):
        chat(build_llm(model(server), replay=True), "hi")
    with pytest.raises(JudgeEvalError, match="ours") as info, cassette(s, "none"):
        chat(build_llm(model(server), replay=True), "hi")
        raise JudgeEvalError("ours")
    assert not isinstance(info.value, CassetteError)
    with pytest.raises(ValueError, match="before any call"), cassette(s, "none"):
        raise ValueError("before any call")  # nothing was played back: not the cassette's fault


# --------------------------------------------------------------------------- duplicated interactions


def post(base: str, path: str, payload: dict) -> dict:
    return httpx.post(f"{base}{path}", json=payload).json()


def test_a_duplicated_interaction_is_refused_with_both_indices(tmp_path: Path, server) -> None:
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    same = {"model": "m", "messages": [{"role": "user", "content": "once"}]}
    with cassette(s, "all"):
        post(server.base_url, "/chat/completions", {"model": "m", "messages": []})
        post(server.base_url, "/chat/completions", same)
        post(server.base_url, "/chat/completions", same)  # the loopback server answers it the same way
    with pytest.raises(CassetteError) as info, cassette(s, "none"):
        pass
    message = str(info.value)
    assert str(s.path) in message and "interactions 1 and 2 (0-based" in message
    assert "POST /v1/chat/completions" in message and "duplicated interaction" in message
    assert "stage teacher (test) of profile local" in message
    assert "Re-record it: judge-eval record --profile local --stage teacher" in message


def test_the_same_request_with_different_responses_is_legitimate_and_replays_in_order(tmp_path: Path,
                                                                                        server) -> None:
    answers = iter(["first", "second"])
    server.hook = lambda path, body: (200, JSON, json.dumps(answer(path, body, next(answers))).encode())
    s = CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")
    same = {"model": "m", "messages": [{"role": "user", "content": "twice"}]}
    with cassette(s, "all"):
        live = [post(server.base_url, "/chat/completions", same) for _ in range(2)]
    with cassette(s, "none"):
        replayed = [post("http://127.0.0.1:9/v1", "/chat/completions", same) for _ in range(2)]
    assert replayed == live and [r["choices"][0]["message"]["content"] for r in live] == ["first", "second"]


def test_exact_repeats_are_expected_on_polls_and_embeddings(tmp_path: Path, server) -> None:
    s = CassetteSpec(root=tmp_path, profile="openai", stage="distill", split="train")
    with cassette(s, "all"):
        polls = [httpx.get(f"{server.base_url}/fine_tuning/jobs/ftjob-1").json() for _ in range(3)]
        batches = [httpx.get(f"{server.base_url}/batches/batch-1").json() for _ in range(2)]
        vectors = [post(server.base_url, "/embeddings", {"model": "e", "input": ["q"]}) for _ in range(2)]
    assert polls[0] == polls[2] and batches[0] == batches[1] and vectors[0] == vectors[1]
    with cassette(s, "none"):
        assert [httpx.get("http://127.0.0.1:9/v1/fine_tuning/jobs/ftjob-1").json() for _ in range(3)] == polls
        assert [httpx.get("http://127.0.0.1:9/v1/batches/batch-1").json() for _ in range(2)] == batches
        assert [post("http://127.0.0.1:9/v1", "/embeddings", {"model": "e", "input": ["q"]})
                for _ in range(2)] == vectors


# --------------------------------------------------------------------------- hosts that cannot be reached


@pytest.fixture
def fake(monkeypatch):
    import wikipedia.wikipedia as wiki

    state, srv = fake_apis.start()
    monkeypatch.setattr(wiki, "API_URL", f"{state.base_url}/w/api.php")
    for k, v in FAKE_KEYS.items():
        monkeypatch.setenv(k, v)
    yield state
    srv.shutdown()
    srv.server_close()


def openai_profile(wiki_and_hf: str, openai_base: str, pyproject: Path = ROOT / "pyproject.toml"):
    profile = load_profile("openai", pyproject)
    cfg = profile.pipeline
    v1 = f"{openai_base}/v1"
    cfg = cfg.with_models(
        question_writer=cfg.question_writer.model_copy(update={"base_url": v1}),
        teacher=cfg.teacher.model_copy(update={"base_url": v1}),
        student=cfg.student.model_copy(update={"base_url": v1}),
        embeddings=cfg.embeddings.model_copy(update={"base_url": v1}),
        answerers=tuple(a.model_copy(update={"base_url": f"{wiki_and_hf}/hf"}) for a in cfg.answerers),
    ).model_copy(update={
        "corpus": cfg.corpus.model_copy(update={"train": ("Alderbrook",), "test": ("Brisca",)}),
        "questions": cfg.questions.model_copy(update={"train": 3, "test": 2}),
        "retry": cfg.retry.model_copy(update={"attempts": 1}),
        "distill": cfg.distill.model_copy(update={"poll_first_wait": 0.01, "poll_max_wait": 0.02}),
    })
    return profile.model_copy(update={"pipeline": cfg})


def record(profile, tmp_path: Path) -> Path:
    ctx = Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / "run",
                  modes={s: "all" for s in STAGES})
    try:
        return run_all(ctx)
    finally:
        ctx.close()


def test_wikipedia_out_of_reach_is_one_line_naming_the_host_and_leaves_no_cassette(tmp_path: Path, fake,
                                                                                    monkeypatch) -> None:
    import wikipedia.wikipedia as wiki

    port = closed_port()
    monkeypatch.setattr(wiki, "API_URL", f"http://127.0.0.1:{port}/w/api.php")
    with pytest.raises(JudgeEvalError) as info:
        record(openai_profile(fake.base_url, fake.base_url), tmp_path)
    message = str(info.value)
    assert message.startswith(f"recording stage corpus (train) of profile openai: cannot reach 127.0.0.1:{port} (")
    assert message.endswith("; check the network or proxy") and "\n" not in message
    assert "Connection refused" in message
    assert not list((tmp_path / "cassettes").rglob("*.yaml"))  # no `interactions: []` cassette
    assert not list((tmp_path / "run" / "partial-cassettes").glob("*"))


def test_openai_out_of_reach_is_one_line_naming_the_host(tmp_path: Path, fake) -> None:
    port = closed_port()
    with pytest.raises(JudgeEvalError) as info:
        record(openai_profile(fake.base_url, f"http://127.0.0.1:{port}"), tmp_path)
    message = str(info.value)
    assert message.startswith(f"recording stage questions (train) of profile openai: cannot reach "
                              f"127.0.0.1:{port} (")
    assert message.endswith("; check the network or proxy") and "\n" not in message
    # the corpus stage succeeded and got its cassette; the failed stage left none
    assert sorted(p.name for p in (tmp_path / "cassettes" / "openai").glob("*.yaml")) == ["corpus-test.yaml",
                                                                                         "corpus-train.yaml"]


def test_judge_eval_record_offline_fails_in_one_line_and_writes_no_cassette(tmp_path: Path, fake, monkeypatch,
                                                                            capsys) -> None:
    import wikipedia.wikipedia as wiki

    from judge_eval.cli import main

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(ROOT / "fixtures" / "grammars", project / "fixtures" / "grammars")  # other profiles need it
    port = closed_port()
    monkeypatch.setattr(wiki, "API_URL", f"http://127.0.0.1:{port}/w/api.php")
    code = main(["record", "--profile", "openai", "--config", str(project / "pyproject.toml"),
                 "--run-dir", str(tmp_path / "run"), "--no-install"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [f"judge-eval: error: recording stage corpus (train) of profile openai: cannot "
                                f"reach 127.0.0.1:{port} ([Errno 111] Connection refused); check the network "
                                "or proxy"]
    # `pytest --judge-profile openai` then skips with "no cassettes for profile openai".
    assert not list(project.rglob("*.yaml"))


def test_a_failed_recording_says_where_its_calls_are_and_how_to_resume(tmp_path: Path, fake, monkeypatch,
                                                                       capsys) -> None:
    """The teacher stage fails after its first call: the calls stay in the run directory, the
    message gives the resume command, and resuming from there repeats no call."""
    from judge_eval.core.items import Answer, QAItem, item_id
    from judge_eval.core.store import write_qa
    from judge_eval.live import capture
    from judge_eval.orchestration.rerecord import record as rerecord

    data = tmp_path / "pairs"  # your own pairs: the teacher is the first stage
    for split, name in (("train", "train_qa.jsonl"), ("test", "test_qa_complete.jsonl")):
        write_qa(data / name, [QAItem(id=item_id(split, f"{split} q{i}"), split=split, question=f"When was it {i}?",
                                      answers=(Answer("mine", f"In {1900 + i}."), Answer("theirs", "Long ago.")),
                                      source="") for i in range(2)])
    base = openai_profile(fake.base_url, fake.base_url)
    cfg = base.pipeline.model_copy(update={"source": "items", "items": data, "corpus": None, "questions": None})
    profile = base.model_copy(update={"pipeline": cfg.with_models(question_writer=None, embeddings=None,
                                                                  answerers=())})
    original = capture.CapturingLLM._record_chat

    def fail_after_first_judge_call(self, messages, response):
        result = original(self, messages, response)
        if "[User Question]" in (messages[-1].content or ""):
            raise RuntimeError("the machine went down")
        return result

    monkeypatch.setattr(capture.CapturingLLM, "_record_chat", fail_after_first_judge_call)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(RuntimeError):
        rerecord(profile, cassette_root=tmp_path / "cassettes", run_dir=run_dir, install=False,
                 project_root=tmp_path)
    err = capsys.readouterr().err
    assert f"kept in {run_dir / 'partial-cassettes'} (teacher-train.yaml)" in err
    assert f"continue with: judge-eval record --profile openai --run-dir {run_dir} --resume" in err
    assert not (tmp_path / "cassettes" / "openai" / "teacher-train.yaml").exists()
    made = len(fake.requests)

    monkeypatch.setattr(capture.CapturingLLM, "_record_chat", original)
    rerecord(profile, cassette_root=tmp_path / "cassettes", run_dir=run_dir, install=False,
             project_root=tmp_path, resume=True)
    recorded = 0  # chat calls in every cassette of the run
    for path in (tmp_path / "cassettes" / "openai").glob("*.yaml"):
        recorded += sum(i["request"]["uri"].endswith("/chat/completions")
                        for i in yaml.safe_load(path.read_text())["interactions"])
    resumed = [p for _, p in fake.requests[made:]].count("/v1/chat/completions")
    assert made and recorded == resumed + 1  # the one call made before the failure was not made again
    assert not list((run_dir / "partial-cassettes").glob("*.yaml"))


# --------------------------------------------------------------------------- Wikipedia over https


def test_the_wikipedia_reader_requests_https_and_leaves_the_package_as_it_was(fake, monkeypatch) -> None:
    """The reader asks https://en.wikipedia.org/w/api.php; a stand-in for ``requests`` inside the
    ``wikipedia`` package notes each URL and forwards the query to the loopback fake (nothing
    resolves or connects to Wikipedia)."""
    import requests as real_requests
    import wikipedia.wikipedia as wiki

    from judge_eval.live.corpus import load_documents

    default = "http://en.wikipedia.org/w/api.php"  # the package's own default
    monkeypatch.setattr(wiki, "API_URL", default)
    asked: list[str] = []

    class Requests:
        exceptions = real_requests.exceptions

        @staticmethod
        def get(url, params=None, headers=None):
            asked.append(url)
            return real_requests.get(f"{fake.base_url}/w/api.php", params=params, headers=headers)

    monkeypatch.setattr(wiki, "requests", Requests)
    cfg = openai_profile(fake.base_url, fake.base_url).pipeline
    (doc,) = load_documents(cfg, "train")
    assert "Alderbrook was founded in 1650" in doc.text and doc.id_ == "wikipedia:History of Alderbrook"
    assert asked and set(asked) == {"https://en.wikipedia.org/w/api.php"}
    assert wiki.API_URL == default  # restored: no process-wide change left behind


def test_a_wikipedia_page_that_does_not_exist_is_named(fake) -> None:
    from judge_eval.live.corpus import load_documents

    cfg = openai_profile(fake.base_url, fake.base_url).pipeline
    cfg = cfg.model_copy(update={"corpus": cfg.corpus.model_copy(update={"train": ("Atlantis",)})})
    with pytest.raises(JudgeEvalError, match="Wikipedia page 'History of Atlantis': .*fix the city's name"):
        load_documents(cfg, "train")

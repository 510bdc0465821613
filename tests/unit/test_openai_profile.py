"""The `openai` profile's every client (OpenAI chat and embeddings, OpenAI fine-tuning, the Hugging
Face Inference API, the Wikipedia reader) through the real pipeline code, recorded against a
loopback server of our own and replayed without it. No cassette of it ships; this proves the
code path a user with keys will take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge_eval.config.profiles import load_profile
from judge_eval.distillation.distiller import DistillError
from judge_eval.distillation.openai_ft import OpenAIDistiller
from judge_eval.live.pipeline import STAGES, Context, run_all
from judge_eval.core.store import read_run
from tests import fake_apis

ROOT = Path(__file__).resolve().parents[2]
# Fake, and built at run time so that no key-shaped literal sits in a tracked file.
FAKE_KEYS = {"OPENAI_API_KEY": "sk-" + "fake-openai-0123456789abcdefghijklmnopqrstuv",
             "HF_TOKEN": "hf_" + "fakeHuggingFaceToken0123456789abcdef"}


@pytest.fixture
def fake(monkeypatch):
    import wikipedia.wikipedia as wiki

    import huggingface_hub.constants as hf_constants

    state, server = fake_apis.start()
    monkeypatch.setattr(wiki, "API_URL", f"{state.base_url}/w/api.php")
    # The session runs with HF_HUB_OFFLINE=1 (fixtures/network.py), under which huggingface_hub
    # refuses every request, also to this loopback fake of the Inference API; these tests are its
    # only users, so they turn it back on for themselves (the session's network guard still
    # blocks everything that is not loopback).
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    # ...and point the Hub at the fake too: a client build asks {ENDPOINT}/api/agent-harnesses,
    # which behind a proxy setting would otherwise go to the proxy (tests/unit/test_proxies.py).
    monkeypatch.setattr(hf_constants, "ENDPOINT", state.base_url)
    for k, v in FAKE_KEYS.items():
        monkeypatch.setenv(k, v)
    yield state
    server.shutdown()
    server.server_close()


def openai_profile_on(fake) -> object:
    profile = load_profile("openai", ROOT / "pyproject.toml")
    cfg = profile.pipeline
    v1 = f"{fake.base_url}/v1"
    cfg = cfg.with_models(
        question_writer=cfg.question_writer.model_copy(update={"base_url": v1}),
        teacher=cfg.teacher.model_copy(update={"base_url": v1}),
        student=cfg.student.model_copy(update={"base_url": v1}),
        embeddings=cfg.embeddings.model_copy(update={"base_url": v1}),
        answerers=tuple(a.model_copy(update={"base_url": f"{fake.base_url}/hf"}) for a in cfg.answerers),
    ).model_copy(update={
        "corpus": cfg.corpus.model_copy(update={"train": ("Alderbrook",), "test": ("Brisca",)}),
        "questions": cfg.questions.model_copy(update={"train": 3, "test": 2}),
        "distill": cfg.distill.model_copy(update={"poll_first_wait": 0.01, "poll_max_wait": 0.02}),
    })
    return profile.model_copy(update={"pipeline": cfg})


def run(profile, tmp_path: Path, mode: str, name: str) -> Path:
    ctx = Context(profile=profile, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / name,
                  modes={s: mode for s in STAGES})
    try:
        return run_all(ctx)
    finally:
        ctx.close()


def test_record_with_every_openai_profile_client_then_replay_offline(fake, tmp_path: Path, caplog,
                                                                     capfd) -> None:
    import logging

    caplog.set_level(logging.DEBUG)  # every library's debug log, as a user debugging a run would see it
    profile = openai_profile_on(fake)
    recorded = run(profile, tmp_path, "all", "recorded")
    seen = {path for _, path in fake.requests}
    assert {"/w/api.php", "/v1/chat/completions", "/v1/embeddings", "/v1/files", "/v1/fine_tuning/jobs",
            "/v1/fine_tuning/jobs/ftjob-loopback"} <= seen
    assert any(p.startswith("/hf/") for p in seen)
    n = len(fake.requests)

    replayed = run(profile, tmp_path, "none", "replayed")
    assert len(fake.requests) == n  # replay never reached the server
    for name in ("train_qa.jsonl", "test_qa_complete.jsonl", "resolved_pairwise_finetuning_events.jsonl"):
        assert (replayed / name).read_bytes() == (recorded / name).read_bytes()
    run_ = read_run(replayed)
    assert {v.llm for i in run_.test for v in i.evaluations} == {"gpt_4", "gpt_3p5", "ft_gpt_3p5"}
    meta = json.loads((replayed / "run.json").read_text())
    assert meta["distillation"]["fine_tuned_model"] == fake.fine_tuned_model
    assert meta["distillation"]["job_id"] == "ftjob-loopback"

    # No key or token in any file written (cassettes, run files, run.json) or any log line.
    written = list((tmp_path / "cassettes").rglob("*")) + list(recorded.rglob("*")) + list(replayed.rglob("*"))
    for path in (p for p in written if p.is_file()):
        text = path.read_text(errors="replace")
        for secret in FAKE_KEYS.values():
            assert secret not in text, f"{secret[:6]}... leaked into {path}"
    out, err = capfd.readouterr()
    assert caplog.records, "debug logging was not captured"
    for secret in FAKE_KEYS.values():
        assert secret not in caplog.text and secret not in out and secret not in err


# --------------------------------------------------------------------------- fine-tuning job states


def distiller(fake, *, replay: bool = False, sleeps: list | None = None, **kw) -> OpenAIDistiller:
    import openai

    client = openai.OpenAI(api_key="sk-fake", base_url=f"{fake.base_url}/v1", max_retries=0)
    return OpenAIDistiller(base_model="gpt-3.5-turbo", client=client, replay=replay, epochs=3,
                           sleep=(sleeps.append if sleeps is not None else (lambda s: None)), **kw)


def training_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    event = {"messages": [{"role": "system", "content": "judge"}, {"role": "user", "content": "A or B?"},
                          {"role": "assistant", "content": "A is better. [[A]]"}]}
    path.write_text(json.dumps(event) + "\n")
    return path


def test_waiting_backs_off_and_is_bounded(fake, tmp_path: Path) -> None:
    fake.job_statuses = ["queued", "running", "running", "running", "succeeded"]
    sleeps: list[float] = []
    result = distiller(fake, sleeps=sleeps, first_wait=10, max_wait=30).distill(training_file(tmp_path), tmp_path)
    assert result.model == fake.fine_tuned_model
    assert sleeps == [10, 20, 30, 30]


def test_replay_never_sleeps(fake, tmp_path: Path) -> None:
    fake.job_statuses = ["running", "running", "succeeded"]
    sleeps: list[float] = []
    distiller(fake, replay=True, sleeps=sleeps).distill(training_file(tmp_path), tmp_path)
    assert sleeps == []


@pytest.mark.parametrize("status", ["failed", "cancelled", "expired"])
def test_a_failed_job_names_its_id_and_status(fake, tmp_path: Path, status: str) -> None:
    fake.job_statuses = ["running", status]
    fake.job_error = "training file has too few examples" if status == "failed" else None
    with pytest.raises(DistillError, match=f"fine-tuning job ftjob-loopback ended with status {status}") as info:
        distiller(fake).distill(training_file(tmp_path), tmp_path)
    if status == "failed":
        assert "too few examples" in str(info.value)


def test_a_400_on_create_is_reported_not_retried_forever(fake, tmp_path: Path) -> None:
    fake.create_status = 400
    with pytest.raises(DistillError, match="refused with HTTP 400: .*invalid training file"):
        distiller(fake).distill(training_file(tmp_path), tmp_path)
    assert [p for _, p in fake.requests].count("/v1/fine_tuning/jobs") == 1


def test_success_without_a_model_name_is_an_error(fake, tmp_path: Path) -> None:
    fake.fine_tuned_model = None
    with pytest.raises(DistillError, match="ftjob-loopback succeeded but reports no fine_tuned_model"):
        distiller(fake).distill(training_file(tmp_path), tmp_path)


def test_a_job_that_never_ends_gives_up_with_its_id(fake, tmp_path: Path) -> None:
    fake.job_statuses = ["running"]
    with pytest.raises(DistillError, match="ftjob-loopback still has status running after 3 polls"):
        distiller(fake, max_polls=3).distill(training_file(tmp_path), tmp_path)


def test_a_changed_prompt_fails_replay_and_re_recording_fixes_it(fake, tmp_path: Path) -> None:
    from judge_eval.live.pipeline import modes_from
    from judge_eval.recording.cassettes import MissingRecordingError

    profile = openai_profile_on(fake)
    run(profile, tmp_path, "all", "first")
    questions = profile.pipeline.questions
    changed = profile.model_copy(update={"pipeline": profile.pipeline.model_copy(update={
        "questions": questions.model_copy(update={"prompt": questions.prompt + " Keep it short."})})})
    with pytest.raises(MissingRecordingError, match="judge-eval record --profile openai --stage questions"):
        run(changed, tmp_path, "none", "stale")
    ctx = Context(profile=changed, cassette_root=tmp_path / "cassettes", run_dir=tmp_path / "rerecorded",
                  modes=modes_from("questions", "all"))
    try:
        run_all(ctx)  # corpus replays, everything from questions on is recorded again
    finally:
        ctx.close()
    assert run(changed, tmp_path, "none", "fixed").is_dir()


def test_an_interrupted_recording_resumes_without_repeating_a_finished_call(fake, tmp_path: Path,
                                                                            monkeypatch) -> None:
    """Ctrl-C in the middle of the teacher stage, after the first call of an item returned; the
    resumed recording makes exactly the calls a clean recording makes, counted at the server."""
    from judge_eval.live import capture
    from judge_eval.live.pipeline import modes_from

    profile = openai_profile_on(fake)
    clean = run(profile, tmp_path / "clean", "all", "run")
    clean_requests = sorted(fake.requests)
    fake.requests.clear()
    fake.polls = 0

    original = capture.CapturingLLM._record_chat
    seen = {"calls": 0}

    def interrupt_after_third_judge_call(self, messages, response):
        result = original(self, messages, response)
        if "[User Question]" in (messages[-1].content or ""):
            seen["calls"] += 1
            if seen["calls"] == 3:  # item 1's first call has returned and been recorded
                raise KeyboardInterrupt
        return result

    monkeypatch.setattr(capture.CapturingLLM, "_record_chat", interrupt_after_third_judge_call)
    work = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(profile, work, "all", "run")
    assert (work / "run" / "journal" / "teacher-train.jsonl").read_text().count("\n") == 1
    monkeypatch.setattr(capture.CapturingLLM, "_record_chat", original)

    ctx = Context(profile=profile, cassette_root=work / "cassettes", run_dir=work / "run",
                  modes=modes_from(None, "new_episodes"))
    try:
        resumed = run_all(ctx)
    finally:
        ctx.close()
    assert sorted(fake.requests) == clean_requests  # nothing paid twice, nothing missing
    for name in ("train_qa.jsonl", "test_qa_complete.jsonl", "pairwise_finetuning_events.jsonl"):
        assert (resumed / name).read_bytes() == (clean / name).read_bytes()
    assert run(profile, work, "none", "replayed").is_dir()  # the resumed cassettes replay


def test_bring_your_own_pairs_skips_the_earlier_stages(fake, tmp_path: Path) -> None:
    """A JSONL of questions with two answers each: the teacher, distillation and students run;
    no corpus, question or answer call is made."""
    from judge_eval.core.items import Answer, QAItem, item_id
    from judge_eval.core.store import write_qa

    data = tmp_path / "pairs"
    for split, name in (("train", "train_qa.jsonl"), ("test", "test_qa_complete.jsonl")):
        write_qa(data / name, [QAItem(id=item_id(split, f"{split} q{i}"), split=split, question=f"When was it {i}?",
                                      answers=(Answer("mine", f"In {1900 + i}."), Answer("theirs", "Long ago.")),
                                      source="") for i in range(3)])
    base = openai_profile_on(fake)
    cfg = base.pipeline.model_copy(update={"source": "items", "items": data, "corpus": None, "questions": None})
    cfg = cfg.with_models(question_writer=None, embeddings=None, answerers=())
    profile = base.model_copy(update={"pipeline": cfg})
    run_dir = run(profile, tmp_path, "all", "mine")
    paths = {p for _, p in fake.requests}
    assert "/v1/embeddings" not in paths and "/w/api.php" not in paths and not any(p.startswith("/hf/") for p in paths)
    result = read_run(run_dir, require=("train", "test", "resolved"))
    assert {v.llm for v in result.test[0].evaluations} == {"gpt_4", "gpt_3p5", "ft_gpt_3p5"}
    assert result.resolved  # the mock teacher prefers the answer with a year: conclusive
    n = len(fake.requests)
    assert run(profile, tmp_path, "none", "again").is_dir() and len(fake.requests) == n

"""Logprob verdicts through the live pipeline: the `openai` profile with ``logprobs = true`` on its
teacher and student, recorded against a loopback fake that answers with token logprobs, then
replayed without it. No cassette of it ships; what the fake answers goes to tmp_path only."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from judge_eval.config.pipeline_spec import ModelSpec
from judge_eval.core.metrics import run_metrics
from judge_eval.core.store import read_run
from judge_eval.reporting.report import render
from tests import fake_apis
from tests.unit.test_openai_profile import fake, openai_profile_on, run  # noqa: F401 (the fixture)

#: At the verdict letter: the letter written gets 0.7, the other two 0.2 and 0.05, a non-letter the rest.
LETTER_PROBS = (0.7, 0.2, 0.05)


def with_logprobs(text: str) -> dict:
    """Chat completions logprobs for ``text``: word tokens, then "[[", the letter, "]]" as tokens,
    as llama.cpp's SmolLM2 splits them; only the verdict letter has alternatives."""
    tokens = re.findall(r"\[\[|\]\]|[ABC](?=\]\])|\s*[^\s\[\]]+|\s+", text)
    assert "".join(tokens) == text
    content = []
    for i, token in enumerate(tokens):
        if i and tokens[i - 1] == "[[" and token in "ABC":
            others = [x for x in "ABC" if x != token]
            top = [(token, LETTER_PROBS[0]), (others[0], LETTER_PROBS[1]), (others[1], LETTER_PROBS[2]), ("The", 0.04)]
        else:
            top = [(token, 0.9)]
        content.append({"token": token, "logprob": math.log(top[0][1]), "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top]})
    return {"content": content}


@pytest.fixture
def logprob_fake(fake, monkeypatch):  # noqa: F811
    bodies: list[dict] = []
    plain = fake_apis.answer

    def answer(path: str, body: dict, text: str) -> dict:
        out = plain(path, body, text)
        if path.endswith("/chat/completions"):
            bodies.append(body)
            if body.get("logprobs"):
                out["choices"][0]["logprobs"] = with_logprobs(text)
        return out

    monkeypatch.setattr(fake_apis, "answer", answer)
    fake.bodies = bodies
    return fake


def test_logprobs_only_for_openai_compatible_apis():
    spec = ModelSpec(api="openai", model="gpt-4", logprobs=True, top_logprobs=3)
    assert (spec.logprobs, spec.top_logprobs) == (True, 3)
    assert ModelSpec(api="openai", model="gpt-4").logprobs is False
    with pytest.raises(ValueError, match="logprobs = true needs api 'openai' or 'openai-like'"):
        ModelSpec(api="hf-inference", model="m", logprobs=True)
    with pytest.raises(ValueError):
        ModelSpec(api="openai", model="gpt-4", logprobs=True, top_logprobs=21)


def test_openai_profile_with_logprob_verdicts_records_and_replays(logprob_fake, tmp_path: Path):
    profile = openai_profile_on(logprob_fake)
    cfg = profile.pipeline
    cfg = cfg.with_models(teacher=cfg.teacher.model_copy(update={"logprobs": True, "top_logprobs": 4}),
                          student=cfg.student.model_copy(update={"logprobs": True, "top_logprobs": 4}))
    profile = profile.model_copy(update={"pipeline": cfg})
    recorded = run(profile, tmp_path, "all", "recorded")

    judging = [b for b in logprob_fake.bodies if "[User Question]" in json.dumps(b)]
    writing = [b for b in logprob_fake.bodies if "[User Question]" not in json.dumps(b)]
    assert judging and all(b.get("logprobs") is True and b.get("top_logprobs") == 4 for b in judging)
    assert writing and not any("logprobs" in b or "top_logprobs" in b for b in writing)  # the question writer's

    n = len(logprob_fake.requests)
    replayed = run(profile, tmp_path, "none", "replayed")
    assert len(logprob_fake.requests) == n  # replay never reached the server
    for name in ("train_qa.jsonl", "test_qa_complete.jsonl", "resolved_pairwise_finetuning_events.jsonl"):
        assert (replayed / name).read_bytes() == (recorded / name).read_bytes()

    test = read_run(replayed).test
    teacher = [v for item in test for v in item.evaluations if v.llm == "gpt_4"]
    assert teacher
    for v in teacher:  # the text verdict as parsed, the probabilities beside it
        assert v.source in ("original", "flipped", "neither") and "[[" in v.text
        for order, choice in v.extra["choice"].items():
            written = re.findall(r"\[\[([ABC])\]\]", v.extra["raw"][order])[-1]
            others = sorted(LETTER_PROBS[1:], reverse=True)
            assert choice[written] == pytest.approx(LETTER_PROBS[0] / sum(LETTER_PROBS))
            assert sorted((choice[x] for x in "ABC" if x != written), reverse=True) == pytest.approx(
                [p / sum(LETTER_PROBS) for p in others])
            assert choice["mass"] == pytest.approx(sum(LETTER_PROBS))

    metrics = run_metrics(test, "gpt_4", resamples=50)
    assert {"gpt_4@choice", "gpt_3p5@choice", "ft_gpt_3p5@choice"} <= set(metrics.judges)
    cal = metrics.calibration["gpt_4@choice"]
    decisive = [i for i in test if i.verdict("gpt_4").conclusive and i.verdict("gpt_4").first_answer_score in (0, 1)]
    assert cal.n == len(decisive)
    text = render(metrics, "text")
    assert "Verdict probabilities of gpt_4@choice against gpt_4's decisive verdicts" in text
    assert json.loads(render(metrics, "json"))["calibration"]["gpt_4@choice"]["n"] == cal.n

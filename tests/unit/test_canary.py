"""``judge-eval canary``: a tiny pairwise profile's pipeline is recorded against the loopback fakes of
tests/fake_apis.py into a tmp project's cassettes/, then the canary re-asks it live against a
loopback judge server of this file that answers the same, drifts, fails, or does not serve a model.

What each fake judge answers is scripted in the answers themselves: an answer carrying ``t+`` wins
for the teacher, ``b+`` for the base student, ``d+`` for the distilled student (whatever the order
it is shown in, so every verdict is conclusive). Expected counts below are written by hand from the
item table; p-values come from scipy's exact binomial test."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binomtest

from judge_eval.cli import main
from judge_eval.config.profiles import load_profile
from judge_eval.core.items import Answer, QAItem, item_id
from judge_eval.core.store import QA_FILES, read_qa, write_qa
from judge_eval.errors import ConfigError
from judge_eval.live.pipeline import STAGES, Context, run_all
from tests import fake_apis
from tests.loopback import QuietJsonHandler, answer as chat_answer

FT_MODEL = "ft:gpt-3.5-turbo-0613:loopback::abc123"  # what tests/fake_apis.py's job reports
TAGS = {"teacher-m": "t", "student-m": "b", FT_MODEL: "d"}
KEY_ENV = "CANARY_TEST_KEY"
# Fake, and built at run time so that no key-shaped literal sits in a tracked file.
SECRET = "sk-" + "canary-fake-key-0123456789abcdefghijklmnop"
N_TEST = 10

# --------------------------------------------------------------------------- the items
# Teacher and distilled student prefer the first answer of every test pair; the base student
# prefers it on questions 0-4 and the second answer on 5-9, except that on question 9 (``b?``) its
# output has no verdict: recorded unparseable after its first order, so no flipped call was
# recorded for it. So, recorded, by hand: distilled agrees with the teacher on 10 of 10, base on
# 5 of 10; 2 calls per pair, but 1 for the base student on question 9.


def split_pairs() -> list[QAItem]:
    out = []
    for k in range(N_TEST):
        first = f"Answer one to {k}. t+ d+" + (" b+" if k < 5 else "")
        second = f"Answer two to {k}." + ("" if k < 5 else " b+") + (" b?" if k == 9 else "")
        answers = (Answer("m1", first), Answer("m2", second))
        out.append(QAItem(id=item_id("test", question(k), answers), split="test", question=question(k),
                          answers=answers, source=f"Passage {k}."))
    return out


def train_pairs() -> list[QAItem]:
    out = []
    for k in range(2):
        answers = (Answer("m1", f"Train one {k}. t+"), Answer("m2", f"Train two {k}."))
        q = f"Train question {k}?"
        out.append(QAItem(id=item_id("train", q, answers), split="train", question=q, answers=answers,
                          source=f"Train passage {k}."))
    return out


def question(k: int) -> str:
    return f"Question {k}?"


_QUERY = re.compile(r"## User Query\n(.*?)\n")


def judge_text(body: dict, drift: dict[str, set[str]] | None = None) -> str:
    """The scripted judge of either kind (pairwise prompt, or CorrectnessEvaluator's)."""
    return score_text(body, drift) if "## Generated Answer" in body["messages"][-1]["content"] \
        else verdict_text(body, drift)


def score_text(body: dict, drift: dict[str, set[str]] | None = None) -> str:
    """The scripted correctness judge: 5 for an answer carrying its tag, else 2; ``drift`` swaps
    the two on some questions."""
    user = body["messages"][-1]["content"]
    tag = TAGS[body["model"]]
    high = f"{tag}+" in user.split("## Generated Answer\n", 1)[1].split()
    if drift and _QUERY.search(user).group(1) in drift.get(tag, set()):
        high = not high
    return f"{5 if high else 2}\nCompared with the reference."


_A = re.compile(r"\[The Start of Assistant A’s Answer\]\n(.*?)\n\[The End of Assistant A’s Answer\]", re.S)
_B = re.compile(r"\[The Start of Assistant B’s Answer\]\n(.*?)\n\[The End of Assistant B’s Answer\]", re.S)
_Q = re.compile(r"\[User Question\]\n(.*?)\n")


def asked(body: dict) -> str:
    """The question a judge request is about."""
    user = body["messages"][-1]["content"]
    return _Q.search(user).group(1)


def verdict_text(body: dict, drift: dict[str, set[str]] | None = None) -> str:
    """The scripted judge: the answer carrying its tag wins; ``drift`` flips it on some questions.
    A pair carrying ``<tag>?`` gets no verdict, unless drifting: then the usual one."""
    user = body["messages"][-1]["content"]
    tag = TAGS[body["model"]]
    drifting = bool(drift) and asked(body) in drift.get(tag, set())
    if f"{tag}?" in user.split() and not drifting:
        return "I cannot decide between them."
    if f"{tag}?" in user.split():
        drifting = False
    wins_a = f"{tag}+" in _A.search(user).group(1).split()
    wins_b = f"{tag}+" in _B.search(user).group(1).split()
    if drifting:
        wins_a, wins_b = wins_b, wins_a
    return f"Compared both answers. [[{'A' if wins_a else 'B' if wins_b else 'C'}]]"


# --------------------------------------------------------------------------- the projects

PYPROJECT = """
[tool.judge_eval.profiles.canary]
reference = "teacher"
gated = ["distilled"]
body_hash = {body_hash}

[tool.judge_eval.profiles.canary.canary]
{canary}

[tool.judge_eval.profiles.canary.pipeline]
source = "items"
items = "items"
judge = "{judge}"

[tool.judge_eval.profiles.canary.pipeline.names]
base_student = "base"
distilled_student = "distilled"

[tool.judge_eval.profiles.canary.pipeline.retry]
attempts = 2
base = 0.0
cap = 0.0

[tool.judge_eval.profiles.canary.pipeline.distill]
kind = "openai"
poll_first_wait = 0.01
poll_max_wait = 0.02

[tool.judge_eval.profiles.canary.pipeline.models.teacher]
api = "openai-like"
model = "teacher-m"
base_url = "{url}"
api_key_env = "{key_env}"
temperature = {teacher_temperature}

[tool.judge_eval.profiles.canary.pipeline.models.student]
api = "openai-like"
model = "student-m"
base_url = "{url}"
api_key_env = "{key_env}"
"""


def write_pyproject(folder: Path, url: str, *, canary: str = "", teacher_temperature: float = 0.0,
                    body_hash: bool = False, judge: str = "pairwise") -> Path:
    path = folder / "pyproject.toml"
    path.write_text(PYPROJECT.format(url=url, canary=canary, key_env=KEY_ENV, teacher_temperature=teacher_temperature,
                                     body_hash=str(body_hash).lower(), judge=judge), "utf-8")
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A project whose pipeline was recorded once against tests/fake_apis.py (its cassettes/ are
    the "committed" ones of these tests); each test works on a copy."""
    return record_project(tmp_path_factory.mktemp("recorded") / "project")


def record_project(folder: Path, *, body_hash: bool = False, judge: str = "pairwise") -> Path:
    write_qa(folder / "items" / QA_FILES["train"], train_pairs())
    write_qa(folder / "items" / QA_FILES["test"], split_pairs())
    state, server = fake_apis.start()
    with pytest.MonkeyPatch.context() as mp:
        def scripted(path: str, body: dict, text: str) -> dict:
            if path.endswith("/chat/completions") and TAGS.get(body.get("model")):
                text = judge_text(body)
            return chat_answer(path, body, text)

        mp.setattr(fake_apis, "answer", scripted)  # the fake's chat route answers through it
        mp.setenv(KEY_ENV, SECRET)
        pyproject = write_pyproject(folder, f"{state.base_url}/v1", body_hash=body_hash, judge=judge)
        ctx = Context(profile=load_profile("canary", pyproject), cassette_root=folder / "cassettes",
                      run_dir=folder.parent / "recording-run", modes={s: "all" for s in STAGES})
        try:
            run_all(ctx)
        finally:
            ctx.close()
            server.shutdown()
            server.server_close()
    prefix = "correctness-" if judge == "correctness" else ""
    assert sorted(p.name for p in (folder / "cassettes" / "canary").iterdir()) == sorted([
        "distill-train.yaml", f"{prefix}student-base-test.yaml", f"{prefix}student-distilled-test.yaml",
        f"{prefix}teacher-test.yaml", f"{prefix}teacher-train.yaml"])
    return folder


@dataclass
class Judges:
    """A loopback OpenAI-compatible judge server for the canary: chat completions answered by
    ``verdict_text`` (with ``drift``), ``GET /v1/models`` listing ``models`` (404 when None), every
    chat request's body and Authorization header kept."""

    base_url: str = ""
    drift: dict[str, set[str]] = field(default_factory=dict)
    status: int = 200
    models: list[str] | None = None
    bodies: list[dict] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)

    def questions(self, model: str | None = None) -> list[str]:
        def about(body: dict) -> str:
            found = _QUERY.search(body["messages"][-1]["content"])
            return found.group(1) if found else asked(body)

        return [about(b) for b in self.bodies if model is None or b["model"] == model]


@pytest.fixture
def judges():
    state = Judges()

    class Handler(QuietJsonHandler):
        def do_GET(self) -> None:
            if self.path == "/v1/models" and state.models is not None:
                return self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in state.models]})
            return self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            state.bodies.append(body)
            state.auth.append(self.headers.get("Authorization", ""))
            if state.status != 200:
                return self._json(state.status, {"error": {"message": "the server is down", "type": "server_error"}})
            reply = chat_answer(self.path, body, judge_text(body, state.drift))
            reply["model"] = body["model"] + "-served-0613"  # the name as the server reports it
            reply["system_fingerprint"] = "fp_canary"
            return self._json(200, reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class Outcome:
    status: int
    out: str
    err: str
    run: dict
    out_dir: Path


@pytest.fixture
def canary(recorded: Path, tmp_path: Path, judges: Judges, monkeypatch, capfd):
    """Runs ``judge-eval canary`` on a copy of the recorded project pointed at ``url`` (default:
    the judges fixture), checks that its cassettes/ are untouched and that the key is in nothing
    it wrote or printed."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    project = tmp_path / "project"
    shutil.copytree(recorded, project)
    cassettes = project / "cassettes"

    def run(*flags: str, url: str | None = None, canary_table: str = "", **pyproject: Any) -> Outcome:
        config = write_pyproject(project, url or judges.base_url, canary=canary_table, **pyproject)
        out_dir = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
        before = folder_hash(cassettes)
        capfd.readouterr()
        status = main(["canary", "--profile", "canary", "--config", str(config), "--out", str(out_dir), *flags])
        out, err = capfd.readouterr()
        assert folder_hash(cassettes) == before, "the canary changed the committed cassettes"
        written = [p for p in out_dir.rglob("*") if p.is_file()]
        assert written, "the canary wrote no run directory"
        for path in written:
            assert SECRET not in path.read_text("utf-8", errors="replace"), f"the key leaked into {path}"
        assert SECRET not in out and SECRET not in err
        return Outcome(status, out, err, json.loads((out_dir / "run.json").read_text("utf-8")), out_dir)

    return run


def ids_of(questions: list[int]) -> set[str]:
    items = {i.question: i.id for i in split_pairs()}
    return {items[question(k)] for k in questions}


# --------------------------------------------------------------------------- (a) the same answers


def test_a_server_that_answers_the_same_passes_with_every_verdict_unchanged(canary, judges: Judges) -> None:
    result = canary("--sample", "20")
    assert result.status == 0, result.out + result.err
    assert "sample: all 10 test items (--sample 20 is not fewer than the recording has)" in result.out
    assert result.out.rstrip().splitlines()[-2].startswith("PASS: profile canary")
    run = result.run
    assert run["sample"] == {"requested": 20, "drawn": 10, "test_items": 10, "all_items": True,
                             "ids": run["sample"]["ids"]}
    assert set(run["sample"]["ids"]) == {i.id for i in split_pairs()}
    for name in ("teacher", "base", "distilled"):
        judge = run["judges"][name]
        assert (judge["compared"], judge["changed"], judge["unchanged_share"]) == (10, [], 1.0), name
        assert judge["mismatches"] == [] and judge["failed"] == [] and judge["fails"] == []
    # by hand: the distilled student agrees with the teacher on 10 of 10, the base student on 5
    assert run["judges"]["distilled"]["mcnemar"] == {"agreements_recorded": 10, "agreements_live": 10, "lost": 0,
                                                     "gained": 0, "p_value": 1.0, "items_without_reference": 0}
    assert run["judges"]["base"]["mcnemar"]["agreements_recorded"] == 5
    assert run["judges"]["teacher"]["mcnemar"] is None  # the reference: share unchanged only
    # models as the server reported them, not as configured; its fingerprint; 2 calls per pair
    assert run["judges"]["teacher"]["servers"] == {"models": ["teacher-m-served-0613"],
                                                   "system_fingerprints": ["fp_canary"], "requests": 20,
                                                   "statuses": {"200": 20}}
    assert run["judges"]["distilled"]["servers"]["models"] == [FT_MODEL + "-served-0613"]
    assert run["judges"]["distilled"]["model_configured"] == FT_MODEL  # from the recorded fine-tuning job
    assert len(judges.bodies) == 3 * 10 * 2 - 1  # the base student's unparseable first order on question 9
    assert set(judges.auth) == {f"Bearer {SECRET}"}  # the key was sent, and written nowhere (fixture)
    # its own run directory: the live verdicts, and the recorded ones of the same items
    live = read_qa(result.out_dir / QA_FILES["test"], "test")
    old = read_qa(result.out_dir / "recorded" / QA_FILES["test"], "test")
    assert [i.id for i in live] == [i.id for i in old] and len(live) == 10
    assert all({v.llm for v in i.evaluations} == {"teacher", "base", "distilled"} for i in live + old)


# --------------------------------------------------------------------------- (b) one-sided drift


def test_b_drift_in_one_direction_is_significant_and_exits_1(canary, judges: Judges) -> None:
    # the distilled student now prefers the second answer on questions 0-5: it agreed with the
    # teacher there, and no longer does (6 lost, 0 gained)
    judges.drift = {"d": {question(k) for k in range(6)}}
    result = canary("--sample", "10", canary_table="min_unchanged = 0.3")  # only McNemar can fail it
    expected_p = binomtest(0, 6, 0.5).pvalue  # exact McNemar = two-sided binomial on the discordant pairs
    assert expected_p == pytest.approx(0.03125)
    distilled = result.run["judges"]["distilled"]
    assert distilled["mcnemar"]["lost"] == 6 and distilled["mcnemar"]["gained"] == 0
    assert distilled["mcnemar"]["p_value"] == pytest.approx(expected_p)
    assert {c["id"] for c in distilled["changed"]} == ids_of(list(range(6)))
    assert all(c["recorded"] == "original 1.0" and c["live"] == "original 0.0" for c in distilled["changed"])
    assert distilled["unchanged_share"] == pytest.approx(4 / 10)
    assert result.status == 1
    assert ("FAIL distilled: agreement with the reference moved significantly: 6 item(s) agreed before and not "
            "now, 0 the other way, exact McNemar p = 0.0312 < canary.alpha 0.05") in result.out
    assert [f for j in result.run["judges"].values() for f in j["fails"]] == distilled["fails"]
    assert len(distilled["fails"]) == 1


def test_b_drift_on_too_few_items_for_the_test_passes(canary, judges: Judges) -> None:
    # 5 lost, 0 gained: p = 0.0625, not below 0.05; 5 of 10 unchanged passes min_unchanged 0.3
    judges.drift = {"d": {question(k) for k in range(5)}}
    result = canary("--sample", "10", canary_table="min_unchanged = 0.3")
    assert result.run["judges"]["distilled"]["mcnemar"]["p_value"] == pytest.approx(binomtest(0, 5, 0.5).pvalue)
    assert result.status == 0, result.out


# --------------------------------------------------------------------------- (c) symmetric drift


def test_c_symmetric_drift_passes_mcnemar_but_fails_min_unchanged(canary, judges: Judges) -> None:
    # the base student flips on 0-2 (agreed, now not) and on 5-7 (disagreed, now agrees)
    judges.drift = {"b": {question(k) for k in (0, 1, 2, 5, 6, 7)}}
    result = canary("--sample", "10")
    base = result.run["judges"]["base"]
    assert (base["mcnemar"]["lost"], base["mcnemar"]["gained"]) == (3, 3)
    assert base["mcnemar"]["p_value"] == pytest.approx(binomtest(3, 6, 0.5).pvalue) == pytest.approx(1.0)
    assert base["unchanged_share"] == pytest.approx(4 / 10)
    assert {c["id"] for c in base["changed"]} == ids_of([0, 1, 2, 5, 6, 7])
    assert result.status == 1
    assert base["fails"] == ["4 of 10 verdicts unchanged = 0.4 < canary.min_unchanged 0.9"]
    assert "FAIL base: 4 of 10 verdicts unchanged = 0.4 < canary.min_unchanged 0.9" in result.out
    assert result.run["judges"]["distilled"]["fails"] == [] and result.run["judges"]["teacher"]["fails"] == []


def test_the_reference_is_held_to_min_unchanged(canary, judges: Judges) -> None:
    judges.drift = {"t": {question(0), question(1)}}
    result = canary("--sample", "10")  # 8 of 10 unchanged < 0.9
    teacher = result.run["judges"]["teacher"]
    assert teacher["unchanged_share"] == pytest.approx(0.8) and teacher["mcnemar"] is None
    # the students are compared with the teacher's *recorded* verdicts: their own drift only
    assert result.run["judges"]["distilled"]["changed"] == []
    assert result.status == 1 and "FAIL teacher: 8 of 10 verdicts unchanged = 0.8" in result.out


# --------------------------------------------------------------------------- (d) failures


def test_d_a_server_answering_500_is_reported_and_nothing_compared_exits_2(canary, judges: Judges) -> None:
    judges.status = 500
    result = canary("--sample", "3")
    assert result.status == 2
    assert "judge-eval: error: canary of profile canary: nothing was compared" in result.err
    for name in ("teacher", "base", "distilled"):
        judge = result.run["judges"][name]
        assert judge["compared"] == 0 and len(judge["failed"]) == 3
        assert all("HTTP 500" in f["reason"] for f in judge["failed"]), judge["failed"]
    assert "call failed on item" in result.out
    # 3 items x 3 judges, the first order of each tried twice (retry.attempts = 2), no flipped call
    assert len(judges.bodies) == 3 * 3 * 2


def test_d_an_unreachable_server_skips_every_judge_and_exits_2(canary, judges: Judges) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = canary("--sample", "3", url=f"http://127.0.0.1:{port}/v1")
    assert result.status == 2
    for name in ("teacher", "base", "distilled"):
        assert result.run["judges"][name]["skipped"].startswith(f"cannot reach 127.0.0.1:{port}")
    assert f"teacher: skipped: cannot reach 127.0.0.1:{port}" in result.out
    assert judges.bodies == []


def test_d_a_gated_judge_whose_model_is_not_served_is_skipped_and_fails(canary, judges: Judges) -> None:
    judges.models = ["teacher-m", "student-m"]  # the fine-tuned model is gone
    result = canary("--sample", "4")
    distilled = result.run["judges"]["distilled"]
    assert distilled["skipped"].startswith(f"model {FT_MODEL} is not served at {judges.base_url}")
    assert result.run["judges"]["teacher"]["compared"] == 4 and result.run["judges"]["base"]["compared"] == 4
    assert FT_MODEL not in {b["model"] for b in judges.bodies}
    assert result.status == 1
    assert f"FAIL distilled: gated judge not checked: model {FT_MODEL} is not served" in result.out


def test_d_a_judge_left_out_with_judge_is_not_a_failure(canary, judges: Judges) -> None:
    judges.models = ["teacher-m", "student-m"]
    result = canary("--sample", "4", "--judge", "teacher", "--judge", "base")
    assert result.status == 0, result.out
    assert result.run["judges"]["distilled"]["requested"] is False
    assert {b["model"] for b in judges.bodies} == {"teacher-m", "student-m"}


# --------------------------------------------------------------------------- (e) request mismatches


def test_e_an_item_whose_request_changed_is_reported_and_never_sent(canary, judges: Judges, recorded: Path,
                                                                    tmp_path: Path) -> None:
    project = tmp_path / "project"
    items = list(read_qa(project / "items" / QA_FILES["test"], "test"))
    # question 3's first answer is edited after the recording: its judge prompts are not in the cassettes
    changed = next(i for i in items if i.question == question(3))
    answers = (Answer("m1", changed.answers[0].text.replace("Answer one", "An edited answer")), changed.answers[1])
    edited = QAItem(id=item_id("test", changed.question, answers), split="test", question=changed.question,
                    answers=answers, source=changed.source)
    write_qa(project / "items" / QA_FILES["test"], [edited if i is changed else i for i in items])
    result = canary("--sample", "10")
    assert question(3) not in judges.questions()  # nothing about that item reached the server
    assert len(judges.bodies) == 3 * 9 * 2 - 1
    for name in ("teacher", "base", "distilled"):
        judge = result.run["judges"][name]
        assert [m["id"] for m in judge["mismatches"]] == [edited.id]
        assert judge["compared"] == 9 and judge["changed"] == []
        detail = "\n".join(judge["mismatches"][0]["detail"])
        assert "has no recording of it" in detail
        assert "-" in detail and "Answer one to 3" in detail and "An edited answer to 3" in detail  # the diff
    assert f"teacher: request mismatch on item {edited.id}, not sent:" in result.out
    assert result.status == 0  # reported; the other 9 items were checked and passed


def test_e_a_changed_model_setting_mismatches_every_request_of_that_judge(canary, judges: Judges) -> None:
    result = canary("--sample", "10", teacher_temperature=0.7)  # recorded at 0.0
    teacher = result.run["judges"]["teacher"]
    assert teacher["compared"] == 0 and len(teacher["mismatches"]) == 10
    assert any('"temperature": 0.7' in line for line in teacher["mismatches"][0]["detail"])
    assert "teacher-m" not in {b["model"] for b in judges.bodies}  # not one teacher request was sent
    # the students are still compared; their agreement has no recorded reference verdict to go by
    distilled = result.run["judges"]["distilled"]
    assert distilled["compared"] == 10 and distilled["changed"] == []
    assert distilled["mcnemar"]["items_without_reference"] == 10 and distilled["mcnemar"]["p_value"] == 1.0
    assert "distilled: 10 compared item(s) have no recorded reference verdict" in result.out
    assert result.status == 0  # the teacher is not gated; its rows say why it was not checked
    assert "not checked" in result.out


def test_a_flipped_call_the_recording_never_made_is_sent_and_reported(canary, judges: Judges) -> None:
    # question 9: the base student's recorded first order was unparseable (one call recorded); now
    # it parses, so the evaluator makes the flipped call, which has no recorded counterpart
    judges.drift = {"b": {question(9)}}
    result = canary("--sample", "10")
    base = result.run["judges"]["base"]
    (q9,) = ids_of([9])
    assert base["unrecorded_calls"] == [q9]
    assert judges.questions("student-m").count(question(9)) == 2
    assert base["changed"] == [{"id": q9, "recorded": "output-cannot-be-parsed None", "live": "original 0.0"}]
    assert base["mismatches"] == [] and base["compared"] == 10
    assert "base: 1 flipped-order call(s) sent without a recorded counterpart" in result.out
    # 9 of 10 unchanged is not below 0.9; agreement: not before (unparseable), not now (second wins)
    assert (base["mcnemar"]["lost"], base["mcnemar"]["gained"]) == (0, 0)
    assert result.status == 0, result.out


def test_the_live_transport_sends_only_what_was_checked() -> None:
    import httpx

    from judge_eval.orchestration.canary import _Gate, _guard_transports, _request_key, _Served

    sent: list[httpx.Request] = []

    class Inner:
        def send(self, request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(200, json={"model": "served-name", "system_fingerprint": "fp_1"})

    served = _Served()
    sync, _, holder = _guard_transports((Inner(), None), served)
    url = "http://127.0.0.1:9/v1/chat/completions"
    checked = httpx.Request("POST", url, json={"model": "m", "messages": [{"role": "user", "content": "checked"}]})
    other = httpx.Request("POST", url, json={"model": "m", "messages": [{"role": "user", "content": "changed"}]})
    assert sync.handle_request(checked).status_code == 400 and not sent  # no gate: nothing goes out
    holder.gate = gate = _Gate(allowed=frozenset({_request_key(checked)}), unrecorded_ok=False)
    assert sync.handle_request(other).status_code == 400 and not sent
    assert gate.blocked == [_request_key(other)]
    # the same JSON with its keys in another order is the same request (canonical body)
    reordered = httpx.Request("POST", url, content=json.dumps(
        {"messages": [{"content": "checked", "role": "user"}], "model": "m"}).encode(),
        headers={"content-type": "application/json"})
    assert sync.handle_request(reordered).status_code == 200 and len(sent) == 1
    assert served.to_json() == {"models": ["served-name"], "system_fingerprints": ["fp_1"], "requests": 1,
                                "statuses": {"200": 1}}
    # one unrecorded call may follow a checked one, only where the gate says so
    holder.gate = _Gate(allowed=frozenset({_request_key(checked)}), unrecorded_ok=True)
    assert sync.handle_request(other).status_code == 400  # not before the checked call
    assert sync.handle_request(checked).status_code == 200
    assert sync.handle_request(other).status_code == 200 and len(sent) == 3


def test_a_body_hash_recording_is_matched_by_hash_and_a_miss_shows_no_text(tmp_path: Path, judges: Judges,
                                                                            monkeypatch, capsys) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    project = record_project(tmp_path / "project", body_hash=True)
    teacher_cassette = (project / "cassettes" / "canary" / "teacher-test.yaml").read_text("utf-8")
    assert "Question 3?" not in teacher_cassette and "sha256:" in teacher_cassette  # hashes, no text
    config = write_pyproject(project, judges.base_url, body_hash=True)
    argv = ["canary", "--profile", "canary", "--config", str(config), "--sample", "10"]
    assert main([*argv, "--out", str(tmp_path / "same")]) == 0, capsys.readouterr().out
    run = json.loads((tmp_path / "same" / "run.json").read_text("utf-8"))
    assert [run["judges"][j]["compared"] for j in ("teacher", "base", "distilled")] == [10, 10, 10]

    items = list(read_qa(project / "items" / QA_FILES["test"], "test"))
    edited = [QAItem(id=i.id, split="test", question=i.question, source=i.source, answers=(
        Answer("m1", i.answers[0].text.replace("Answer one", "An edited answer")), i.answers[1]))
        if i.question == question(3) else i for i in items]
    write_qa(project / "items" / QA_FILES["test"], edited)
    judges.bodies.clear()
    assert main([*argv, "--out", str(tmp_path / "edited")]) == 0
    out = capsys.readouterr().out
    run = json.loads((tmp_path / "edited" / "run.json").read_text("utf-8"))
    detail = run["judges"]["teacher"]["mismatches"][0]["detail"]
    assert [(run["judges"][j]["compared"], len(run["judges"][j]["mismatches"])) for j in ("teacher", "base")] \
        == [(9, 1), (9, 1)]
    assert any("a body-hash cassette keeps no text to compare" in line for line in detail)
    assert "edited answer" not in json.dumps(detail) and "edited answer" not in out
    assert question(3) not in judges.questions()


def test_the_correctness_stage_is_re_asked_item_by_item(tmp_path: Path, judges: Judges, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    project = record_project(tmp_path / "project", judge="correctness")
    config = write_pyproject(project, judges.base_url, judge="correctness")
    argv = ["canary", "--profile", "canary", "--config", str(config), "--sample", "30"]
    assert main([*argv, "--out", str(tmp_path / "same")]) == 0, capsys.readouterr().out
    run = json.loads((tmp_path / "same" / "run.json").read_text("utf-8"))
    assert run["judging"] == "correctness" and run["sample"]["test_items"] == 20  # each answer its own item
    assert [run["judges"][j]["compared"] for j in ("teacher", "base", "distilled")] == [20, 20, 20]
    assert len(judges.bodies) == 3 * 20  # one call per item
    # by hand: the distilled student scores like the teacher on 20 of 20 answers, the base on 10
    assert run["judges"]["distilled"]["mcnemar"]["agreements_recorded"] == 20
    assert run["judges"]["base"]["mcnemar"]["agreements_recorded"] == 10

    judges.drift = {"d": {question(k) for k in range(6)}}  # both answers of 6 questions: 12 scores swap
    assert main([*argv, "--out", str(tmp_path / "drift")]) == 1
    out = capsys.readouterr().out
    distilled = json.loads((tmp_path / "drift" / "run.json").read_text("utf-8"))["judges"]["distilled"]
    assert (distilled["mcnemar"]["lost"], distilled["mcnemar"]["gained"]) == (12, 0)
    assert distilled["mcnemar"]["p_value"] == pytest.approx(binomtest(0, 12, 0.5).pvalue)
    # a score is shown as the scale holds it (1-5 in halves: 5, 4.5, ...)
    assert {(c["recorded"], c["live"]) for c in distilled["changed"]} == {("scored 5", "scored 2"),
                                                                         ("scored 2", "scored 5")}
    assert "FAIL distilled: agreement with the reference moved significantly: 12 item(s)" in out


# --------------------------------------------------------------------------- the sample


def test_the_sample_is_seeded_and_stable(canary, judges: Judges) -> None:
    first = canary("--sample", "4", "--seed", "3")
    again = canary("--sample", "4", "--seed", "3")
    other = canary("--sample", "4", "--seed", "4")
    # the rule, written out here: rank items by sha256("<seed>\n<id>"), take the first N
    expected = sorted((i.id for i in split_pairs()),
                      key=lambda i: hashlib.sha256(f"3\n{i}".encode()).hexdigest())[:4]
    assert set(first.run["sample"]["ids"]) == set(expected)
    assert first.run["sample"]["ids"] == again.run["sample"]["ids"]
    assert set(other.run["sample"]["ids"]) != set(expected)
    assert "sample: 4 of 10 test items (--seed 3)" in first.out
    asked_ids = {i.id for i in split_pairs() if i.question in judges.questions()}
    assert asked_ids == set(expected) | set(other.run["sample"]["ids"])


# --------------------------------------------------------------------------- usage errors


def test_usage_errors_exit_2_with_a_message(recorded: Path, tmp_path: Path, capsys) -> None:
    project = tmp_path / "project"
    shutil.copytree(recorded, project)
    config = write_pyproject(project, "http://127.0.0.1:9/v1")
    base = ["canary", "--config", str(config), "--sample", "3"]

    assert main([*base, "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert main([*base, "--profile", "canary", "--out", str(project / "cassettes" / "run")]) == 2
    assert "is inside the cassettes folder" in capsys.readouterr().err
    assert main([*base, "--profile", "canary", "--judge", "gpt_4"]) == 2
    assert "--judge gpt_4: not a judge of the recorded judging stage; its judges: teacher, base, distilled" \
        in capsys.readouterr().err
    shutil.rmtree(project / "cassettes")
    assert main([*base, "--profile", "canary", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no recorded judging stage for profile canary" in err and "judge-eval record --profile canary" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    with pytest.raises(SystemExit) as exc:
        main([*base[:-1], "0", "--profile", "canary"])
    assert exc.value.code == 2 and "must be a whole number >= 1" in capsys.readouterr().err


def test_a_profile_without_a_pipeline_is_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.judge_eval.profiles.plain]\nreference = "gpt_4"\n', "utf-8")
    assert main(["canary", "--config", str(config), "--profile", "plain", "--sample", "2"]) == 2
    assert "profile 'plain' has no [tool.judge_eval.profiles.plain.pipeline] table" in capsys.readouterr().err


def test_help_shows_an_example(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["canary", "--help"])
    assert exc.value.code == 0
    assert "\nexample:\n  judge-eval canary --profile openai --sample 20" in capsys.readouterr().out


# --------------------------------------------------------------------------- the profile's canary table


def test_the_canary_table_has_defaults_and_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.judge_eval.profiles.p]\n', "utf-8")
    assert (load_profile("p", config).canary.alpha, load_profile("p", config).canary.min_unchanged) == (0.05, 0.9)
    config.write_text('[tool.judge_eval.profiles.p.canary]\nalpha = 0.01\nmin_unchanged = 0.75\n', "utf-8")
    assert (load_profile("p", config).canary.alpha, load_profile("p", config).canary.min_unchanged) == (0.01, 0.75)
    for bad, says in (("alpha = 0.0", "tool.judge_eval.profiles.p.canary.alpha = 0.0"),
                      ("alpha = 1.5", "tool.judge_eval.profiles.p.canary.alpha = 1.5"),
                      ("min_unchanged = 1.2", "tool.judge_eval.profiles.p.canary.min_unchanged = 1.2"),
                      ('min_unchanged = "most"', "tool.judge_eval.profiles.p.canary.min_unchanged = 'most'"),
                      ("max_changed = 2", "unknown key(s) max_changed")):
        config.write_text(f"[tool.judge_eval.profiles.p.canary]\n{bad}\n", "utf-8")
        with pytest.raises(ConfigError, match=re.escape(says)):
            load_profile("p", config)



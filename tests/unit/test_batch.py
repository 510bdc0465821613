"""Batch API mode of the judging stages (``pipeline.batch``, ``judge-eval record --batch``), against
the loopback Batch API of tests/batch_server.py: the same verdicts and run files as the online
path, failed and missing lines kept as ``error`` verdicts, whole-batch failures named by batch id,
an interrupted recording resumed without resubmitting, replay offline without sleeping, and the
batch price next to the online price. Expected values are counted by hand from the item table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from judge_eval.cli import main
from judge_eval.config.profiles import load_profile
from judge_eval.core.items import Answer, QAItem, item_id
from judge_eval.core.store import QA_FILES, read_run, write_qa
from judge_eval.errors import ConfigError, JudgeEvalError
from judge_eval.live import batch as batch_module
from judge_eval.live.batch import MISSING, Request, split_parts
from judge_eval.live.pipeline import STAGES, Context, run_all, stage_teacher
from tests import batch_server

# --------------------------------------------------------------------------- the items
# (question, [(model, answer)] x2). The fake judge counts four-digit years in each answer and
# prefers the answer with more, both orders alike: A wins, B wins, or a tie ([[C]] both ways).
TRAIN = [
    ("When did the mill close?", [("m1", "In 1950."), ("m2", "Long ago.")]),  # first wins
    ("When did the bridge open?", [("m1", "No idea."), ("m2", "In 1701.")]),  # second wins
    ("Who founded Alderbrook?", [("m1", "Millers."), ("m2", "Monks.")]),  # tie
    ("When did the railway come?", [("m1", "In 1866, after 1850."), ("m2", "In 1866.")]),  # first wins
]
TEST = [
    ("When was the lighthouse lit?", [("m1", "In 1820."), ("m2", "Never.")]),
    ("When did Brisca grow?", [("m1", "Later."), ("m2", "Around 1200.")]),
    ("Where did the ferry go?", [("m1", "To the islands."), ("m2", "To the mainland.")]),
]
PAIR_FILES = ("train_qa.jsonl", "test_qa_complete.jsonl", "pairwise_finetuning_events.jsonl",
              "resolved_pairwise_finetuning_events.jsonl")


def pairs(split: str, rows: list) -> list[QAItem]:
    return [QAItem(id=item_id(split, q), split=split, question=q, source=f"Passage about: {q}",
                   answers=tuple(Answer(m, t) for m, t in answers)) for q, answers in rows]


PYPROJECT = """
[tool.judge_eval.profiles.bat]
reference = "teacher"
gated = ["distilled"]

[tool.judge_eval.profiles.bat.pipeline]
source = "items"
items = "items"
{pipeline}

[tool.judge_eval.profiles.bat.pipeline.prices]
"teacher-m" = {{ prompt = 30.0, completion = 60.0 }}
"student-m" = {{ prompt = 0.5, completion = 1.5 }}
"ft:student-m" = {{ prompt = 3.0, completion = 6.0 }}

[tool.judge_eval.profiles.bat.pipeline.batch_poll]
{poll}

[tool.judge_eval.profiles.bat.pipeline.names]
base_student = "base"
distilled_student = "distilled"

[tool.judge_eval.profiles.bat.pipeline.distill]
kind = "openai"
poll_first_wait = 0.0
poll_max_wait = 0.0

[tool.judge_eval.profiles.bat.pipeline.models.teacher]
api = "{teacher_api}"
model = "teacher-m"
base_url = "{url}"

[tool.judge_eval.profiles.bat.pipeline.models.student]
api = "openai-like"
model = "student-m"
base_url = "{url}"
"""


def project(tmp_path: Path, url: str = "http://127.0.0.1:9/v1", *, pipeline: str = "",
            teacher_api: str = "openai-like", poll: str = "first_wait = 5.0\nmax_wait = 20.0") -> Path:
    folder = tmp_path / "project"
    write_qa(folder / "items" / QA_FILES["train"], pairs("train", TRAIN))
    write_qa(folder / "items" / QA_FILES["test"], pairs("test", TEST))
    path = folder / "pyproject.toml"
    path.write_text(PYPROJECT.format(url=url, pipeline=pipeline, teacher_api=teacher_api, poll=poll), "utf-8")
    return path


@pytest.fixture
def server():
    state, httpd = batch_server.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Every wait the batch poller takes (none really happens)."""
    taken: list[float] = []
    monkeypatch.setattr(batch_module, "_sleep", taken.append)
    return taken


def profile_on(server, tmp_path: Path, *, batch: bool = True, pipeline: str = ""):
    lines = ("batch = true\n" if batch else "") + pipeline
    return load_profile("bat", project(tmp_path, server.base_url, pipeline=lines))


def context(profile, tmp_path: Path, mode: str, run: str, cassettes: str = "cassettes") -> Context:
    return Context(profile=profile, cassette_root=tmp_path / cassettes, run_dir=tmp_path / run,
                   modes={s: mode for s in STAGES})


def full_run(profile, tmp_path: Path, mode: str, run: str, cassettes: str) -> Path:
    ctx = context(profile, tmp_path, mode, run, cassettes)
    try:
        return run_all(ctx)
    finally:
        ctx.close()


def teacher_test(profile, tmp_path: Path, mode: str = "all", run: str = "run") -> list[QAItem]:
    ctx = context(profile, tmp_path, mode, run)
    try:
        items, _ = stage_teacher(ctx, "test", pairs("test", TEST))
        return items
    finally:
        ctx.close()


def batch_bodies(path: Path) -> list[str]:
    return [json.dumps(json.loads(line)["body"], sort_keys=True) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- the whole pipeline


def test_a_batch_run_gives_the_online_run_files_and_replays_offline_without_sleeping(server, sleeps,
                                                                                     tmp_path: Path) -> None:
    online = full_run(profile_on(server, tmp_path, batch=False), tmp_path, "all", "online", "online-cassettes")
    online_bodies = sorted(json.dumps(b, sort_keys=True) for b in server.chat_bodies)
    assert sleeps == []
    server.requests.clear()

    recorded = full_run(profile_on(server, tmp_path), tmp_path, "all", "batch", "batch-cassettes")
    # teacher train + teacher test + base student + distilled student: one batch each, no online call
    assert server.count("POST", "/v1/files", "batch") == 4
    assert server.count("POST", "/v1/batches") == 4
    assert server.count("POST", "/v1/chat/completions") == 0
    # each batch: validating, in_progress, finalizing, completed -> 3 waits, 5 s doubling (cap 20)
    assert sleeps == [5.0, 10.0, 20.0] * 4
    # the batch lines are the online requests, body for body (both orders of every pair)
    folder = recorded / "batches"
    names = ["teacher-train-teacher", "teacher-test-teacher", "student-base-test-base",
             "student-distilled-test-distilled"]
    assert sorted(p.name for p in folder.glob("*.jsonl") if p.name.count(".") == 1) == sorted(f"{n}.jsonl"
                                                                                              for n in names)
    assert sorted(b for n in names for b in batch_bodies(folder / f"{n}.jsonl")) == online_bodies
    assert len(online_bodies) == 2 * (4 + 3 + 3 + 3)
    for name in names:
        state = json.loads((folder / f"{name}.batch.json").read_text())
        assert state["batch_id"].startswith("batch_") and state["input_file_id"].startswith("file-in-")

    sleeps.clear()
    server.requests.clear()
    started = time.monotonic()
    replayed = full_run(profile_on(server, tmp_path), tmp_path, "none", "replayed", "batch-cassettes")
    assert server.requests == [] and sleeps == []  # offline, and no wait at all
    assert time.monotonic() - started < 60
    # replaying a batch recording does not need pipeline.batch: the cassettes say how they were made
    replayed_online_profile = full_run(profile_on(server, tmp_path, batch=False), tmp_path, "none", "replayed2",
                                       "batch-cassettes")
    assert server.requests == []
    for name in PAIR_FILES:
        assert (recorded / name).read_bytes() == (online / name).read_bytes(), name
        assert (replayed / name).read_bytes() == (recorded / name).read_bytes(), name
        assert (replayed_online_profile / name).read_bytes() == (recorded / name).read_bytes(), name
    for name in names:
        for suffix in (".jsonl", ".output.jsonl"):
            assert (replayed / "batches" / (name + suffix)).read_bytes() == (folder / (name + suffix)).read_bytes()

    # The hand-expected verdicts of the teacher on the train pairs (first wins, second wins, tie, first).
    run = read_run(recorded)
    by_question = {i.question: i.verdict("teacher") for i in run.train}
    assert [(by_question[q].source, by_question[q].score) for q, _ in TRAIN] == [
        ("original", 1.0), ("original", 0.0), ("original", 0.5), ("original", 1.0)]


def test_run_json_prices_the_batch_next_to_online(server, sleeps, tmp_path: Path) -> None:
    recorded = full_run(profile_on(server, tmp_path), tmp_path, "all", "batch", "cassettes")
    meta = json.loads((recorded / "run.json").read_text())
    servers = meta["servers"]
    # Every batch line reports 10 prompt and 5 completion tokens (tests/loopback.py's usage).
    # teacher-train: 4 pairs x 2 orders = 8 lines -> 80 prompt, 40 completion tokens of teacher-m
    # at 30 / 60 USD per 1M: 80 * 30 / 1e6 + 40 * 60 / 1e6 = 0.0048 online, half of it in batch.
    teacher = servers["teacher-train"]
    assert teacher["billed"] == "batch"
    assert teacher["usage"] == {"prompt_tokens": 80, "completion_tokens": 40}
    assert teacher["cost_usd"] == 0.0048 and teacher["batch_cost_usd"] == 0.0024
    assert teacher["billed_cost_usd"] == 0.0024
    # base student: 3 pairs x 2 = 6 lines of student-m at 0.5 / 1.5: 60 * 0.5e-6 + 30 * 1.5e-6 = 0.000075
    base = servers["student-base-test"]
    assert base["cost_usd"] == round(0.000075, 4) and base["billed"] == "batch"
    # teacher-test 6 lines: 60 * 30e-6 + 30 * 60e-6 = 0.0036; distilled: 60 * 3e-6 + 30 * 6e-6 = 0.00036
    online_total = 0.0048 + 0.0036 + 0.000075 + 0.00036
    assert meta["cost"]["batch_discount"] == 0.5
    assert meta["cost"]["online_usd"] == pytest.approx(
        round(0.0048, 4) + round(0.0036, 4) + round(0.000075, 4) + round(0.00036, 4))
    assert meta["cost"]["billed_usd"] == pytest.approx(
        round(0.0024, 4) + round(0.0018, 4) + round(0.0000375, 4) + round(0.00018, 4))
    assert meta["cost"]["billed_usd"] < online_total
    assert meta["counts"]["batch_teacher_train"]["lines"] == 8


# --------------------------------------------------------------------------- lines that fail


def test_failed_and_missing_lines_become_error_verdicts_nothing_lost(server, sleeps, tmp_path: Path) -> None:
    ids = {q: item_id("test", q) for q, _ in TEST}
    lighthouse, brisca, ferry = (ids[q] for q, _ in TEST)
    faults = {f"{lighthouse}:original": {"status": 500, "message": "The server had an error"},
              f"{brisca}:flipped": {"error": ("request_timeout", "The request timed out")},
              f"{ferry}:original": "missing"}
    server.fault = faults.get
    profile = profile_on(server, tmp_path)
    items = teacher_test(profile, tmp_path)
    assert [i.question for i in items] == [q for q, _ in TEST]  # every item kept, in order
    verdicts = [i.verdict("teacher") for i in items]
    assert [v.source for v in verdicts] == ["error", "error", "error"]
    assert "HTTP 500: The server had an error" in verdicts[0].extra["error"]
    assert "request_timeout: The request timed out" in verdicts[1].extra["error"]
    assert verdicts[2].extra["error"].endswith(MISSING)
    assert all(v.extra["error"].startswith("teacher teacher-m: batch batch_1, request ") for v in verdicts)
    # the flipped call of Brisca was made after its first order parsed: its output is kept
    assert verdicts[1].extra["raw"]["original"].endswith("[[B]]")
    counts = json.loads((tmp_path / "run" / "batches" / "teacher-test-teacher.batch.json").read_text())
    assert counts["lines"] == 6


def test_a_line_failing_alone_leaves_the_other_items_as_online(server, sleeps, tmp_path: Path) -> None:
    brisca = item_id("test", TEST[1][0])
    server.fault = {f"{brisca}:original": {"error": ("server_error", "boom")}}.get
    items = teacher_test(profile_on(server, tmp_path), tmp_path)
    got = [(i.verdict("teacher").source, i.verdict("teacher").score) for i in items]
    assert got == [("original", 1.0), ("error", None), ("original", 0.5)]


def test_a_duplicated_custom_id_is_an_error_naming_it(server, sleeps, tmp_path: Path) -> None:
    ferry = item_id("test", TEST[2][0])
    server.fault = {f"{ferry}:flipped": "twice"}.get
    with pytest.raises(JudgeEvalError, match=rf"batch batch_1 returned custom_id '{ferry}:flipped' twice"):
        teacher_test(profile_on(server, tmp_path), tmp_path)


@pytest.mark.parametrize("statuses, said", [
    (["validating", "failed"], "failed"),
    (["in_progress", "expired"], "expired: the provider did not finish it within its 24h completion window"),
    (["in_progress", "cancelling", "cancelled"], "was cancelled"),
])
def test_a_batch_that_ends_badly_is_an_error_naming_it(server, sleeps, tmp_path: Path, statuses, said) -> None:
    server.statuses = statuses
    server.batch_errors = [{"code": "invalid_request", "line": 2, "message": "bad body", "param": None}]
    with pytest.raises(JudgeEvalError) as caught:
        teacher_test(profile_on(server, tmp_path), tmp_path)
    message = str(caught.value)
    assert f"batch batch_1 {said}" in message and "teacher teacher-m" in message
    if statuses[-1] == "failed":
        assert "line 2: invalid_request: bad body" in message
    # set aside, so the next recording submits a new batch instead of resuming this one
    folder = tmp_path / "run" / "batches"
    assert not (folder / "teacher-test-teacher.batch.json").exists()
    assert (folder / f"teacher-test-teacher.batch.batch_1.{statuses[-1]}.json").is_file()
    server.statuses = ["completed"]
    teacher_test(profile_on(server, tmp_path), tmp_path)
    assert server.count("POST", "/v1/batches") == 2


@pytest.mark.parametrize("path", ["/v1/files", "/v1/batches"])
def test_a_provider_without_the_batch_api_is_named(server, sleeps, tmp_path: Path, path: str) -> None:
    server.missing = {path}
    with pytest.raises(JudgeEvalError, match=rf"the provider at {server.base_url}/? does not offer the Batch API"):
        teacher_test(profile_on(server, tmp_path), tmp_path)


# --------------------------------------------------------------------------- interrupted, resumed


class Killed(Exception):
    pass


def test_an_interrupted_recording_resumes_its_batch_without_resubmitting(server, tmp_path: Path,
                                                                         monkeypatch) -> None:
    server.statuses = ["validating", "in_progress", "in_progress", "finalizing", "completed"]
    waits: list[float] = []

    def killed_on_second_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise Killed("the recording was killed while it waited")

    monkeypatch.setattr(batch_module, "_sleep", killed_on_second_wait)
    profile = profile_on(server, tmp_path)
    with pytest.raises(Killed):
        teacher_test(profile, tmp_path)
    assert server.count("GET", "/v1/batches/batch_1") == 2
    assert json.loads((tmp_path / "run" / "batches" / "teacher-test-teacher.batch.json").read_text())[
        "batch_id"] == "batch_1"

    waits.clear()
    monkeypatch.setattr(batch_module, "_sleep", waits.append)
    resumed = teacher_test(profile, tmp_path, mode="new_episodes")
    assert server.count("POST", "/v1/files", "batch") == 1 and server.count("POST", "/v1/batches") == 1
    # the two polls already made are replayed from the partial recording without a wait; then
    # in_progress, finalizing (a wait after each, 5 s doubling) and completed from the server
    assert server.count("GET", "/v1/batches/batch_1") == 5
    assert waits == [5.0, 10.0]

    server.requests.clear()
    waits.clear()
    replayed = teacher_test(profile, tmp_path, mode="none", run="replayed")
    assert server.requests == [] and waits == []
    assert [i.evaluations for i in replayed] == [i.evaluations for i in resumed]
    assert [(i.verdict("teacher").source, i.verdict("teacher").score) for i in resumed] == [
        ("original", 1.0), ("original", 0.0), ("original", 0.5)]


# --------------------------------------------------------------------------- configuration and cost


def test_batch_needs_an_openai_compatible_judge(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="batch = true needs OpenAI-compatible judges.*models.teacher uses api "
                                          "'hf-inference'"):
        load_profile("bat", project(tmp_path, pipeline="batch = true", teacher_api="hf-inference"))
    # --batch on a profile whose teacher is on the Inference API: a clear error, no traceback
    pyproject = project(tmp_path / "b", teacher_api="hf-inference")
    assert main(["record", "--profile", "bat", "--config", str(pyproject), "--dry-run", "--batch"]) != 0
    err = capsys.readouterr().err
    assert "teacher 'teacher-m' uses api 'hf-inference', which has no Batch API" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("table, poll, key", [
    ("batch_discount = 0.0", "", r"pipeline\.batch_discount = 0\.0: Input should be greater than 0"),
    ("batch_discount = 1.5", "", r"pipeline\.batch_discount = 1\.5: Input should be less than or equal to 1"),
    ('batch = "yes"', "", r"pipeline\.batch = 'yes': Input should be a valid boolean"),
    ("", "first_wait = 30.0\nmax_wait = 10.0", r"pipeline\.batch_poll = .*max_wait \(10\.0\) is shorter than "
                                                r"first_wait \(30\.0\)"),
    ("", "every = 3", r"pipeline\.batch_poll = .*unknown key\(s\) every"),
])
def test_batch_settings_are_validated(tmp_path: Path, table: str, poll: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_profile("bat", project(tmp_path, pipeline=table, poll=poll))


def test_defaults(tmp_path: Path) -> None:
    cfg = load_profile("bat", project(tmp_path)).pipeline
    assert (cfg.batch, cfg.batch_discount) == (False, 0.5)
    assert (cfg.batch_poll.first_wait, cfg.batch_poll.max_wait, cfg.batch_poll.timeout) == (5.0, 20.0, 90000.0)


def test_dry_run_prints_the_batch_price_next_to_the_online_price(tmp_path: Path, capsys) -> None:
    pyproject = project(tmp_path, pipeline="batch_discount = 0.25")
    assert main(["record", "--profile", "bat", "--config", str(pyproject), "--dry-run", "--batch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # by hand: 30 x 0.25 = 7.5, 60 x 0.25 = 15; 0.5 x 0.25 = 0.125, 1.5 x 0.25 = 0.375; 3 x 0.25 = 0.75,
    # 6 x 0.25 = 1.5
    assert lines[-4:] == [
        "  prices, USD per 1M prompt / completion tokens (pipeline.prices); batch = online x 0.25 "
        "(pipeline.batch_discount); judging stages billed: batch",
        "    teacher-m                online 30 / 60          batch 7.5 / 15",
        "    student-m                online 0.5 / 1.5        batch 0.125 / 0.375",
        "    ft:student-m             online 3 / 6            batch 0.75 / 1.5",
    ]
    rows = {line.split()[0]: line for line in lines[1:-4]}
    # 4 train pairs x 2 orders, 3 test pairs x 2 orders, 2 students x 3 pairs x 2 orders
    assert rows["teacher-train"].split()[1:4] == ["8", "batch", "lines"]
    assert rows["teacher-test"].split()[1:4] == ["6", "batch", "lines"]
    assert rows["students"].split()[1:4] == ["12", "batch", "lines"]
    assert rows["students"].endswith("2 students x 3 pairs x 2 orders; 2 batches, each: upload + create + "
                                     "status polls + 1-2 downloads")
    # without --batch: the online plan, prices shown, the judging stages paying online
    assert main(["record", "--profile", "bat", "--config", str(pyproject), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "<= 8" in out and "judging stages billed: online" in out


# --------------------------------------------------------------------------- pieces


def test_split_parts_keeps_each_batch_within_its_limits() -> None:
    requests = [Request(custom_id=f"i{n}:original", item_id=f"i{n}", url="/v1/chat/completions",
                        path="/v1/chat/completions", canonical=json.dumps({"n": n})) for n in range(5)]
    assert [len(p) for p in split_parts(requests, max_lines=2)] == [2, 2, 1]
    size = len(requests[0].line())  # each line is as long: {"body":{"n":N},"custom_id":"iN:original",...}
    assert [len(p) for p in split_parts(requests, max_bytes=3 * size)] == [3, 2]
    assert [r.custom_id for p in split_parts(requests, max_lines=2) for r in p] == [r.custom_id for r in requests]


def test_recorded_as_batch_reads_the_cassette(server, sleeps, tmp_path: Path) -> None:
    teacher_test(profile_on(server, tmp_path), tmp_path)
    path = tmp_path / "cassettes" / "bat" / "teacher-test.yaml"
    uris = [i["request"]["uri"] for i in yaml.safe_load(path.read_text())["interactions"]]
    assert uris[0].endswith("/v1/files") and uris[1].endswith("/v1/batches")
    assert batch_module.recorded_as_batch(path)


def test_an_unfinished_batch_is_not_submitted_twice_by_a_new_recording(server, tmp_path: Path,
                                                                        monkeypatch) -> None:
    def killed(seconds: float) -> None:
        raise Killed("killed while waiting")

    monkeypatch.setattr(batch_module, "_sleep", killed)
    profile = profile_on(server, tmp_path)
    with pytest.raises(Killed):
        teacher_test(profile, tmp_path)
    # a new recording (not --resume) into the same run directory: refused, naming the way on
    with pytest.raises(JudgeEvalError, match=r"notes batch batch_1 .*judge-eval record --resume"):
        teacher_test(profile, tmp_path)
    assert server.count("POST", "/v1/batches") == 1
    # the refusal came before the cassette opened: --resume still has the upload and creation to keep
    monkeypatch.setattr(batch_module, "_sleep", lambda seconds: None)
    resumed = teacher_test(profile, tmp_path, mode="new_episodes")
    assert server.count("POST", "/v1/batches") == 1
    requests = len(server.requests)
    replayed = teacher_test(profile, tmp_path, mode="none", run="replayed")
    assert len(server.requests) == requests and [i.evaluations for i in replayed] == [i.evaluations for i in resumed]
    # once a batch completed, a new recording submits a new one
    assert json.loads((tmp_path / "run" / "batches" / "teacher-test-teacher.batch.json").read_text())["completed"]
    teacher_test(profile, tmp_path)
    assert server.count("POST", "/v1/batches") == 2


def test_the_correctness_judge_in_batch_gives_its_online_verdicts(server, sleeps, tmp_path: Path) -> None:
    def reply(body: dict) -> str:
        user = body["messages"][-1]["content"]
        if "## Generated Answer" not in user:
            return batch_server.judge_reply(body)
        answer = user.split("## Generated Answer\n", 1)[1]
        return f"{1 + len(answer) % 5}.0\nRated by length." if "Never" not in answer else "Unsure."

    server.reply = reply
    online = teacher_test(profile_on(server, tmp_path, batch=False, pipeline='judge = "correctness"'), tmp_path,
                          run="online")
    batch = teacher_test(profile_on(server, tmp_path, pipeline='judge = "correctness"'), tmp_path, run="batch")
    assert server.count("POST", "/v1/batches") == 1
    assert [i.evaluations for i in batch] == [i.evaluations for i in online]
    sources = sorted(i.verdict("teacher").source for i in batch)
    assert sources == ["output-cannot-be-parsed"] + ["scored"] * 5  # 3 pairs -> 6 answers, one says "Never."
    lines = (tmp_path / "batch" / "batches" / "correctness-teacher-test-teacher.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in lines) == sorted(f"{i.id}:score" for i in batch)


def test_a_one_line_results_file_is_priced_as_batch(tmp_path: Path) -> None:
    profile = load_profile("bat", project(tmp_path))
    ctx = context(profile, tmp_path, "none", "run")
    line = {"id": "r1", "custom_id": "x:score", "error": None, "response": {"status_code": 200, "body": {
        "model": "teacher-m", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}}}

    class Cass:
        responses = [{"body": {"string": json.dumps(line).encode()}}]

    ctx._observe("teacher-test", Cass())
    seen = ctx.observed["teacher-test"]
    # 1000 x 30 / 1e6 + 500 x 60 / 1e6 = 0.06 online; x 0.5 = 0.03 in batch, as billed
    assert (seen["billed"], seen["cost_usd"], seen["batch_cost_usd"], seen["billed_cost_usd"]) == (
        "batch", 0.06, 0.03, 0.03)


def test_results_that_cannot_be_mapped_back_are_errors() -> None:
    requests = [Request(custom_id="a:original", item_id="a", url="/v1/chat/completions",
                        path="/v1/chat/completions", canonical="{}")]
    ok = {"custom_id": "a:original", "response": {"status_code": 200, "body": {"choices": []}}}
    with pytest.raises(JudgeEvalError, match=r"out\.jsonl:2: batch b1 returned custom_id 'z:original', which"):
        batch_module.map_outcomes(requests, [("out.jsonl", (json.dumps(ok) + "\n" + json.dumps(
            dict(ok, custom_id="z:original"))).encode())], "b1")
    with pytest.raises(JudgeEvalError, match=r"err\.jsonl:1: a line of batch b1's results is not a JSON object"):
        batch_module.map_outcomes(requests, [("err.jsonl", b"{truncated")], "b1")
    outcomes = batch_module.map_outcomes(requests, [("out.jsonl", b""), ("err.jsonl", b"")], "b1")
    assert outcomes["a:original"].error == "batch b1, request a:original: missing from the batch output"


def test_record_batch_flag_turns_batch_mode_on_for_that_recording(tmp_path: Path, monkeypatch) -> None:
    import judge_eval.orchestration.rerecord as rerecord

    seen = []

    def record(profile, **kwargs):
        seen.append(profile.pipeline.batch)
        return {"cassettes": "", "run_dir": "", "workdir": "", "seconds": 0}

    monkeypatch.setattr(rerecord, "record", record)
    pyproject = project(tmp_path)
    assert main(["record", "--profile", "bat", "--config", str(pyproject), "--batch", "--no-install"]) == 0
    assert main(["record", "--profile", "bat", "--config", str(pyproject), "--no-install"]) == 0
    assert seen == [True, False]

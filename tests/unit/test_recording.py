"""Cassettes: scrubbing, matching, body hashes, profile checks and the miss message, against a
loopback server of our own (its answers go to tmp_path only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from judge_eval.recording.cassettes import (
    CassetteError, CassetteSpec, MissingRecordingError, body_digest, canonical_body, cassette,
)
from tests.loopback import start

SECRET = "sk-" + "test-0123456789abcdefghijklmnop"  # fake; built so no key-shaped literal is tracked


@pytest.fixture
def server():
    lb, srv = start()
    yield lb
    srv.shutdown()
    srv.server_close()


def spec(tmp_path: Path, **kw) -> CassetteSpec:
    return CassetteSpec(root=tmp_path, profile=kw.pop("profile", "local"), stage=kw.pop("stage", "teacher"),
                        split=kw.pop("split", "test"), **kw)


def call(base: str, payload: dict, key: str = SECRET) -> dict:
    r = httpx.post(f"{base}/chat/completions", json=payload,
                   headers={"Authorization": f"Bearer {key}", "api-key": key, "OpenAI-Organization": "org-x",
                            "Cookie": "a=b"})
    r.raise_for_status()
    return r.json()


def test_record_then_replay_without_the_server(tmp_path: Path, server) -> None:
    s = spec(tmp_path)
    with cassette(s, "all"):
        recorded = call(server.base_url, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert len(server.requests) == 1
    with cassette(s, "none"):
        # Same request, another host and key order: matched on method, path and JSON content.
        replayed = call("http://127.0.0.1:9/v1", {"messages": [{"role": "user", "content": "hi"}], "model": "m"},
                        key="sk-other")
    assert replayed == recorded and len(server.requests) == 1


def test_nothing_secret_or_noisy_is_written(tmp_path: Path, server) -> None:
    s = spec(tmp_path)
    with cassette(s, "all"):
        call(server.base_url, {"model": "m", "messages": []})
    text = s.path.read_text()
    for leaked in (SECRET, "org-x", "a=b", "secret-cookie", "org-secret", "req-1", "authorization", "Bearer"):
        assert leaked.lower() not in text.lower()
    data = yaml.safe_load(text)
    (interaction,) = data["interactions"]
    assert set(interaction["request"]["headers"]) == {"content-type"}
    assert {h.lower() for h in interaction["response"]["headers"]} == {"content-type"}
    assert data["metadata"] == {"profile": "local", "stage": "teacher", "split": "test"}


def test_body_hash_cassettes_store_no_body(tmp_path: Path, server) -> None:
    s = spec(tmp_path, body_hash=True)
    payload = {"model": "m", "messages": [{"role": "user", "content": "third-party text"}]}
    with cassette(s, "all"):
        call(server.base_url, payload)
    text = s.path.read_text()
    assert "third-party text" not in text
    assert body_digest(canonical_body(json.dumps(payload))) in text
    with cassette(s, "none"):
        call(server.base_url, payload)
    assert len(server.requests) == 1
    with pytest.raises(MissingRecordingError), cassette(s, "none"):
        call(server.base_url, {**payload, "model": "other"})


def test_a_request_with_no_recording_names_cassette_stage_and_command(tmp_path: Path, server) -> None:
    s = spec(tmp_path, record_stage="students", stage="student-base")
    with cassette(s, "all"):
        call(server.base_url, {"model": "m", "messages": []})
    with pytest.raises(MissingRecordingError) as info, cassette(s, "none"):
        call(server.base_url, {"model": "changed", "messages": []})
    message = str(info.value)
    assert str(s.path) in message and "stage student-base (test)" in message
    assert "judge-eval record --profile local --stage students" in message
    assert len(server.requests) == 1  # replay never reached the server


def test_a_missing_cassette_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingRecordingError, match="no cassette .*teacher-test.yaml.*record it with: "
                                                    "judge-eval record --profile local --stage teacher"):
        with cassette(spec(tmp_path), "none"):
            pass


@pytest.mark.parametrize("content", ["interactions: [\n  - {request: ", "{}\n", "\x00\x01 not yaml: [:\n"])
def test_corrupt_or_truncated_cassettes_are_named(tmp_path: Path, content: str) -> None:
    s = spec(tmp_path)
    s.path.parent.mkdir(parents=True)
    s.path.write_text(content)
    with pytest.raises(CassetteError, match=f"{s.path}.*Re-record it: judge-eval record"):
        with cassette(s, "none"):
            pass


def test_a_cassette_of_another_profile_is_refused(tmp_path: Path, server) -> None:
    recorded = spec(tmp_path, profile="openai")
    with cassette(recorded, "all"):
        call(server.base_url, {"model": "m", "messages": []})
    target = spec(tmp_path)
    target.path.parent.mkdir(parents=True, exist_ok=True)
    target.path.write_bytes(recorded.path.read_bytes())
    with pytest.raises(CassetteError, match="recorded for .*'profile': 'openai'.*expects .*'profile': 'local'"):
        with cassette(target, "none"):
            pass


def test_multipart_bodies_match_on_their_parts_not_the_boundary() -> None:
    def body(boundary: str, content: bytes) -> bytes:
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jsonl\"\r\n\r\n"
                .encode() + content + f"\r\n--{boundary}--\r\n".encode())

    a = canonical_body(body("aaa", b"data"), "multipart/form-data; boundary=aaa")
    b = canonical_body(body("bbb", b"data"), "multipart/form-data; boundary=bbb")
    c = canonical_body(body("ccc", b"other"), "multipart/form-data; boundary=ccc")
    assert a == b != c and a.startswith("multipart:")


def test_a_failed_re_recording_leaves_the_cassette_as_it_was_and_keeps_its_calls_for_resume(
        tmp_path: Path, server) -> None:
    s = spec(tmp_path)
    partial_dir = tmp_path / "run" / "partial-cassettes"
    with cassette(s, "all", partial_dir=partial_dir):
        call(server.base_url, {"model": "m", "messages": []})
    before = s.path.read_bytes()
    assert not partial_dir.exists() or not any(partial_dir.iterdir())  # installed, nothing left behind
    with pytest.raises(RuntimeError, match="server went away"):
        with cassette(s, "all", partial_dir=partial_dir) as cass:
            call(server.base_url, {"model": "m2", "messages": []})
            assert Path(cass.path) == partial_dir / s.path.name  # recorded into the run directory
            raise RuntimeError("server went away")
    assert s.path.read_bytes() == before  # the committed cassette is untouched
    assert sorted(p.name for p in s.path.parent.iterdir()) == [s.path.name]  # no .previous, no partial
    partial = partial_dir / s.path.name
    assert '"m2"' in partial.read_text()  # the call it paid for is kept in the run directory
    assert len(server.requests) == 2

    # --resume (mode new_episodes) continues from the partial cassette: the call already made is
    # replayed, the new one recorded, and the cassette is replaced only once the stage succeeds.
    with cassette(s, "new_episodes", partial_dir=partial_dir):
        call(server.base_url, {"model": "m2", "messages": []})
        call(server.base_url, {"model": "m3", "messages": []})
    assert len(server.requests) == 3
    data = yaml.safe_load(s.path.read_text())
    assert [json.loads(i["request"]["body"])["model"] for i in data["interactions"]] == ["m2", "m3"]
    assert not partial.exists()
    with cassette(s, "none"):
        call(server.base_url, {"model": "m3", "messages": []})
    assert len(server.requests) == 3


@pytest.mark.parametrize("mode", ["all", "once", "new_episodes"])
def test_a_recording_that_fails_before_its_first_call_leaves_no_cassette(tmp_path: Path, mode: str) -> None:
    s = spec(tmp_path)
    partial_dir = tmp_path / "run" / "partial-cassettes"
    with pytest.raises(RuntimeError, match="no call"), cassette(s, mode, partial_dir=partial_dir):
        raise RuntimeError("no call")
    assert not s.path.parent.exists() or not any(s.path.parent.iterdir())
    assert not any(partial_dir.iterdir())
    # so a replay says "no cassette" (and the plugin skips the profile), not "a request has no recording"
    with pytest.raises(MissingRecordingError, match="no cassette"), cassette(s, "none"):
        pass


def test_a_failed_recording_without_a_run_directory_keeps_its_calls_beside_the_cassette(
        tmp_path: Path, server) -> None:
    s = spec(tmp_path)
    with pytest.raises(RuntimeError), cassette(s, "all"):
        call(server.base_url, {"model": "m", "messages": []})
        raise RuntimeError("interrupted")
    assert not s.path.exists()
    assert '"m"' in s.path.with_name(s.path.name + ".partial").read_text()


def test_a_failure_before_the_first_call_of_a_re_recording_keeps_the_cassette(tmp_path: Path, server) -> None:
    s = spec(tmp_path)
    with cassette(s, "all"):
        call(server.base_url, {"model": "m", "messages": []})
    before = s.path.read_bytes()
    for mode in ("all", "new_episodes"):
        with pytest.raises(RuntimeError, match="no call"), cassette(s, mode, partial_dir=tmp_path / "run"):
            raise RuntimeError("no call")
        assert s.path.read_bytes() == before
        assert sorted(p.name for p in s.path.parent.iterdir()) == [s.path.name]
        assert not any((tmp_path / "run").iterdir())


def test_echoed_request_text_is_masked_but_parses_the_same() -> None:
    from judge_eval.core.parsing import parse_verdict
    from judge_eval.recording.cassettes import mask_echoes

    request = "[User Question]\nWhen was the old stone bridge over the river rebuilt after the flood?"
    output = ("The old stone bridge over the river rebuilt after the flood was in 1958. So A. [[A]] or "
              "[[B]]? Final: [[A]]")
    masked = mask_echoes(output, request)
    assert "stone bridge" not in masked and masked.startswith("xxx xxx xxxxx xxxxxx xxxx xxx xxxxx")
    assert len(masked) == len(output) and masked.endswith("So A. [[A]] or [[B]]? Final: [[A]]")
    assert parse_verdict(masked).outcome == parse_verdict(output).outcome == "A"
    assert mask_echoes("Short echo: the old stone bridge. [[B]]", request) == "Short echo: the old stone bridge. [[B]]"


def test_body_hash_cassettes_mask_echoed_text_in_responses(tmp_path: Path, server) -> None:
    secret_text = "third party passage about the lighthouse keeper and his seven brave daughters"
    server.reply = lambda body: f"Echo: {secret_text}. Final verdict: [[A]]"
    s = spec(tmp_path, body_hash=True)
    payload = {"model": "m", "messages": [{"role": "user", "content": f"Reference: {secret_text}"}]}
    with cassette(s, "all"):
        live = call(server.base_url, payload)
    text = s.path.read_text()
    assert "lighthouse" not in text and "daughters" not in text
    with cassette(s, "none"):
        replayed = call(server.base_url, payload)
    assert replayed["choices"][0]["message"]["content"].endswith("Final verdict: [[A]]")
    assert live["choices"][0]["message"]["content"] != replayed["choices"][0]["message"]["content"]


def test_body_hash_cassettes_mask_reproduced_third_party_text_not_in_the_request(tmp_path: Path, server) -> None:
    learned = "the first reply names the right harbour and the second reply names a river instead"
    server.reply = lambda body: f"I think {learned}. Final verdict: [[C]]"
    s = CassetteSpec(root=tmp_path, profile="study-local", stage="student-distilled", split="test",
                     body_hash=True, sensitive_text=f"GPT-4 wrote: {learned.title()}.")
    with cassette(s, "all"):
        call(server.base_url, {"model": "m", "messages": [{"role": "user", "content": "Which is better?"}]})
    text = s.path.read_text()
    assert "right harbour" not in text and "Final verdict: [[C]]" in text


def test_a_miss_shows_the_closest_recording_and_a_short_diff_of_what_changed(tmp_path: Path, server) -> None:
    s = spec(tmp_path, record_stage="students", stage="student-base")
    prompt = "[User Question]\nWhich is better?\n" + "\n".join(f"line {k} of the prompt" for k in range(40))
    recorded = {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
    with cassette(s, "all"):
        call(server.base_url, recorded)
        call(server.base_url, {**recorded, "model": "other-model"})
    changed = {**recorded, "temperature": 0.5,
               "messages": [{"role": "user", "content": prompt.replace("line 20 of", "line twenty of")}]}
    with pytest.raises(MissingRecordingError) as info, cassette(s, "none"):
        call(server.base_url, changed)
    message = str(info.value)
    assert str(s.path) in message and "stage student-base (test)" in message
    assert "judge-eval record --profile local --stage students" in message
    assert "Closest recorded request" in message and "POST /v1/chat/completions" in message
    assert '- "temperature": 0\n' in message and '+ "temperature": 0.5\n' in message
    assert "-line 20 of the prompt" in message and "+line twenty of the prompt" in message
    assert '"other-model"' not in message  # the closest of the two recordings is shown
    diff = message[message.index("body differs:"):].splitlines()
    assert len(diff) <= 1 + 2 + 15 + 1  # heading, ---/+++, at most 15 lines, "… more"
    assert "line 5 of the prompt" not in message  # unchanged lines far from a change stay out
    assert len(server.requests) == 2


def test_a_long_diff_is_cut_short(tmp_path: Path, server) -> None:
    s = spec(tmp_path)
    with cassette(s, "all"):
        call(server.base_url, {"model": "m", "messages": [{"role": "user", "content": f"q{k}"} for k in range(30)]})
    with pytest.raises(MissingRecordingError) as info, cassette(s, "none"):
        call(server.base_url, {"model": "m", "messages": [{"role": "user", "content": f"r{k}"} for k in range(30)]})
    diff = str(info.value)[str(info.value).index("body differs:"):].splitlines()
    assert len(diff) == 1 + 2 + 15 + 1 and re.search(r"… \(\d+ more diff lines\)", diff[-1])


def test_a_miss_in_a_body_hash_cassette_shows_only_that_the_hashes_differ(tmp_path: Path, server) -> None:
    s = spec(tmp_path, body_hash=True)
    payload = {"model": "m", "messages": [{"role": "user", "content": "third-party passage about a harbour"}]}
    with cassette(s, "all"):
        call(server.base_url, payload)
    changed = {"model": "m", "messages": [{"role": "user", "content": "third-party passage about a river"}]}
    with pytest.raises(MissingRecordingError) as info, cassette(s, "none"):
        call(server.base_url, changed)
    message = str(info.value)
    assert "the hashes differ" in message and body_digest(canonical_body(json.dumps(payload)))[:19] in message
    assert str(s.path) in message and "judge-eval record --profile local --stage teacher" in message
    for text in ("third-party", "harbour", "river", "passage"):
        assert text not in message

"""Pins judge_eval/recording/vcr_private.py (the one module touching vcrpy's private API)
against the installed vcrpy: its version, the shape of each private attribute it uses, and the
indexed replay end to end against a tiny HTTP server of our own on 127.0.0.1 (answers go to
tmp_path only). When one of these fails after a vcrpy upgrade, fix vcr_private.py."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from judge_eval.errors import JudgeEvalError
from judge_eval.recording import vcr_private
from judge_eval.recording.cassettes import CassetteSpec, MissingRecordingError, cassette

ROOT = Path(__file__).resolve().parents[2]
FIX = "judge_eval/recording/vcr_private.py relies on it; update that module for this vcrpy"


def test_the_installed_vcrpy_is_the_one_vcr_private_was_checked_against() -> None:
    import vcr

    installed = importlib.metadata.version("vcrpy")
    assert vcr.__version__ == installed == vcr_private.VCRPY_VERSION == "9.4.2", (
        f"vcrpy {installed} is installed; judge_eval/recording/vcr_private.py was checked against "
        f"vcrpy {vcr_private.VCRPY_VERSION}: re-check each private attribute it uses "
        f"({', '.join(vcr_private.PRIVATE_ATTRIBUTES)}), then update VCRPY_VERSION there")


def test_cassette_responses_is_the_generator_that_playback_goes_through() -> None:
    from vcr.cassette import Cassette

    method = getattr(Cassette, "_responses", None)
    assert inspect.isgeneratorfunction(method), f"vcrpy's Cassette._responses is gone or changed; {FIX}"
    assert list(inspect.signature(method).parameters) == ["self", "request"], (
        f"Cassette._responses no longer takes (self, request); {FIX}")
    # The index replaces it on the instance, so every lookup must go through self._responses.
    for user in ("play_response", "__contains__", "responses_of"):
        assert "self._responses(" in inspect.getsource(getattr(Cassette, user)), (
            f"Cassette.{user} no longer looks requests up through self._responses; {FIX}")
    assert "request in self" in inspect.getsource(Cassette.can_play_response_for), (
        f"Cassette.can_play_response_for no longer uses __contains__; {FIX}")


def test_cassette_save_takes_force() -> None:
    from vcr.cassette import Cassette

    method = getattr(Cassette, "_save", None)
    assert callable(method), f"vcrpy's Cassette._save is gone; {FIX}"
    params = inspect.signature(method).parameters
    assert list(params) == ["self", "force"] and params["force"].default is False, (
        f"Cassette._save no longer has the signature (self, force=False); {FIX}")


def test_the_public_api_the_rest_of_the_package_uses_is_there() -> None:
    from vcr.cassette import Cassette
    from vcr.errors import CannotOverwriteExistingCassetteException

    for name in ("filter_request", "find_requests_with_most_matches", "get_metadata"):
        assert callable(getattr(Cassette, name, None)), f"Cassette.{name} is gone"
    for name in ("responses", "requests", "path"):
        assert isinstance(getattr(Cassette, name, None), property), f"Cassette.{name} is gone"
    source = inspect.getsource(CannotOverwriteExistingCassetteException.__init__)
    for name in ("self.cassette", "self.failed_request", "self.similar_requests", "self.reason"):
        assert name in source, f"CannotOverwriteExistingCassetteException has no {name[5:]} any more"


def test_a_missing_private_attribute_is_a_clear_error() -> None:
    class NotACassette:
        record_mode = "all"
        data: list = []

    for call in (lambda c: vcr_private.install_index(c, lambda r: []), vcr_private.save_now,
                 vcr_private.disable_playback_scan, lambda c: vcr_private.on_play(c, print)):
        with pytest.raises(JudgeEvalError, match=r"vcr_private\.py"):
            call(NotACassette())


def test_no_other_module_touches_a_vcrpy_private_attribute() -> None:
    from vcr.cassette import Cassette

    names = sorted({n for n in dir(Cassette) if re.fullmatch(r"_[a-z]\w*", n)}
                   | {n for n in vars(Cassette("unused.yaml")) if re.fullmatch(r"_[a-z]\w*", n)})
    assert {"_responses", "_save", "_before_record_request"} <= set(names)
    on_cassette = re.compile(r"\bcass\w*\._[a-z]")  # cass._x, cassette._x
    by_name = re.compile(r"(?<!\bself)\.(" + "|".join(map(re.escape, names)) + r")\b")  # anything._responses
    offenders = []
    for path in sorted((ROOT / "judge_eval").rglob("*.py")):
        if path.name == "vcr_private.py":
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if on_cassette.search(code) or by_name.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, ("only judge_eval/recording/vcr_private.py may use vcrpy's private API:\n"
                           + "\n".join(offenders))


# --------------------------------------------------------------------------- behaviour


@pytest.fixture
def counter():
    """A tiny HTTP server on 127.0.0.1 answering each POST with its number and path."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            data = f'{{"n": {len(seen)}, "path": "{self.path}"}}'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


def spec(tmp_path: Path) -> CassetteSpec:
    return CassetteSpec(root=tmp_path, profile="local", stage="teacher", split="test")


def no_scan(monkeypatch) -> None:
    """Make vcrpy's own matcher scan fail: only the index (or no lookup at all) may answer."""
    import vcr.cassette

    def scan(*args, **kwargs):
        raise AssertionError("vcrpy scanned the cassette instead of using the index")

    monkeypatch.setattr(vcr.cassette, "requests_match", scan)


def test_the_indexed_replay_returns_the_recorded_responses_in_order(tmp_path: Path, counter, monkeypatch) -> None:
    base, seen = counter
    same = {"model": "m", "messages": [{"role": "user", "content": "twice"}]}
    with cassette(spec(tmp_path), "all"):
        first = httpx.post(f"{base}/v1/chat/completions", json=same).json()
        second = httpx.post(f"{base}/v1/chat/completions", json=same).json()
    assert (first["n"], second["n"]) == (1, 2) and len(seen) == 2
    assert len(yaml.safe_load(spec(tmp_path).path.read_text())["interactions"]) == 2

    no_scan(monkeypatch)
    with cassette(spec(tmp_path), "none"):
        # Another host, key order: matched by our key; the same request gets 1 then 2.
        replayed = [httpx.post("http://127.0.0.1:9/v1/chat/completions",
                               json={"messages": same["messages"], "model": "m"}).json() for _ in range(2)]
    assert replayed == [first, second] and len(seen) == 2
    monkeypatch.undo()  # the miss message asks vcrpy for the closest recordings

    with pytest.raises(MissingRecordingError, match="already played back"), cassette(spec(tmp_path), "none"):
        for _ in range(3):  # one more than was recorded
            httpx.post(f"{base}/v1/chat/completions", json=same)
    assert len(seen) == 2


def test_re_recording_never_scans_and_save_now_writes_mid_recording(tmp_path: Path, counter, monkeypatch) -> None:
    base, seen = counter
    no_scan(monkeypatch)
    s = spec(tmp_path)
    with cassette(s, "all") as cass:
        httpx.post(f"{base}/v1/a", json={"k": 1})
        vcr_private.save_now(cass)
        # A recording is written to a working copy; it replaces the cassette when the block ends.
        saved = yaml.safe_load(Path(cass.path).read_text())
        httpx.post(f"{base}/v1/b", json={"k": 2})
    assert [i["request"]["uri"].rsplit("/", 1)[1] for i in saved["interactions"]] == ["a"]
    assert saved["metadata"] == {"profile": "local", "stage": "teacher", "split": "test"}
    assert len(yaml.safe_load(s.path.read_text())["interactions"]) == 2 and len(seen) == 2
    with cassette(s, "none") as cass, pytest.raises(ValueError, match="record mode 'all'"):
        vcr_private.disable_playback_scan(cass)


def test_save_now_leaves_the_recorded_bodies_as_bytes(tmp_path: Path, counter, monkeypatch) -> None:
    """vcrpy's serializer turns response bodies into str in place; save_now turns them back, so
    a response played back after a mid-recording save still reaches httpx as bytes."""
    base, _ = counter
    no_scan(monkeypatch)
    with cassette(spec(tmp_path), "all") as cass:
        httpx.post(f"{base}/v1/a", json={"k": 1})
        vcr_private.save_now(cass)
        assert all(isinstance(response["body"]["string"], bytes) for _, response in cass.data)


def test_the_stubs_play_back_through_the_cassettes_play_response() -> None:
    """install_index wraps ``play_response`` on the instance to note the position it played;
    that only works while every HTTP stub plays back through ``cassette.play_response``."""
    import vcr.stubs
    import vcr.stubs.aiohttp_stubs
    import vcr.stubs.httpx_stubs
    from vcr.cassette import Cassette

    assert list(inspect.signature(Cassette.play_response).parameters) == ["self", "request"], (
        f"Cassette.play_response no longer takes (self, request); {FIX}")
    source = inspect.getsource(Cassette.play_response)
    assert "self._responses(" in source and "return response" in source, (
        f"Cassette.play_response no longer returns the first unplayed response of self._responses; {FIX}")
    for module in (vcr.stubs, vcr.stubs.httpx_stubs, vcr.stubs.aiohttp_stubs):
        assert "cassette.play_response(" in inspect.getsource(module), (
            f"{module.__name__} no longer plays back through cassette.play_response; {FIX}")


def test_the_index_reports_the_positions_it_played_in_order(tmp_path: Path, counter) -> None:
    from judge_eval.recording.rerecord_stable import sort_key

    base, seen = counter
    with cassette(spec(tmp_path), "all"):
        for k, path in enumerate(("a", "b", "a", "c")):
            with sort_key(k):  # saved in this order (calls of no item would be sorted by path)
                httpx.post(f"{base}/v1/{path}", json={"k": path})
    import vcr

    with vcr.VCR(record_mode="none").use_cassette(str(spec(tmp_path).path)) as cass:
        from judge_eval.recording.cassettes import match_key

        index: dict = {}
        for n, (stored, _) in enumerate(cass.data):
            index.setdefault(match_key(stored), []).append(n)
        served = vcr_private.install_index(cass, lambda r: index.get(match_key(cass.filter_request(r)), []))
        for path in ("c", "a", "a", "b"):
            httpx.post(f"http://127.0.0.1:9/v1/{path}", json={"k": path})
    assert served == [3, 0, 2, 1] and len(seen) == 4


def test_on_play_hands_over_each_played_response_as_recorded(tmp_path: Path, counter) -> None:
    """``on_play`` wraps ``play_response`` like ``install_index``: the callback gets the recorded
    response dict itself (a mark put on it is in ``cass.data``), once per played response."""
    base, seen = counter
    with cassette(spec(tmp_path), "all"):
        for path in ("a", "b"):
            httpx.post(f"{base}/v1/{path}", json={"k": path})
    import vcr

    played: list = []
    with vcr.VCR(record_mode="new_episodes").use_cassette(str(spec(tmp_path).path)) as cass:
        vcr_private.on_play(cass, lambda response: played.append(response) or response.update(mark=len(played)))
        replayed = [httpx.post(f"{base}/v1/{path}", json={"k": path}).json() for path in ("b", "a")]
        assert [p["path"] for p in replayed] == ["/v1/b", "/v1/a"] and len(seen) == 2
        assert played[0] is cass.data[1][1] and played[1] is cass.data[0][1]
        assert [cass.data[n][1].get("mark") for n in (0, 1)] == [2, 1]

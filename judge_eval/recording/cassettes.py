"""VCR cassettes for the live stages: paths, scrubbing, matching, record modes, clear misses.

One cassette per profile, stage and split: ``cassettes/<profile>/<stage>-<split>.yaml``. The
rules (DESIGN.md, "Cassettes"):

- Requests keep only ``content-type`` among their headers and responses only ``content-type``:
  no key, token, organisation, cookie or request id is ever written. Compressed responses are
  stored decoded.
- Requests match on method, path and body, not on host or port, so a base URL can change.
  JSON bodies match by content (key order does not matter); multipart uploads match on the
  hash of their parts (their boundary is random).
- ``body_hash=True`` stores ``sha256:<hex>`` of the canonical body instead of the body, for
  requests that carry third-party text (the study's data must not land in the repository).
- The cassette records its profile, stage and split; replaying it under another profile is an
  error.
- A request with no recording is fatal at once: the error names the cassette, the stage and
  the command that re-records it, and shows the closest recorded request with a short diff of
  what differs (for body-hash cassettes only that the hashes differ). Replay never sleeps; a
  recorded HTTP failure is retried as it was when recorded, its next recorded attempt played back
  (``judge_eval.live.retry.replaying``).
- A replayed response the client cannot parse (a body that is not JSON, ``{"choices": []}``)
  is a ``CassetteError`` naming the cassette, the interaction's 0-based position in its
  ``interactions`` list, the stage and the re-record command.
- A duplicated interaction is a ``CassetteError`` when the cassette is loaded for replay:
  two interactions with the same match key (method, path, query, canonical body) AND the same
  recorded response (status, headers, body). The same request recorded twice with different
  responses is legitimate (a replay returns them in order), and so are exact repeats where the
  code asks the same thing again by design: status polls (``GET .../fine_tuning/jobs/...``,
  ``GET .../batches/...``), embedding lookups (``POST .../embeddings``: the answers stage
  embeds each question once per answer model), and failed attempts (a response with a status
  the call is retried after, ``TRANSIENT_STATUS``: a provider can answer the same 503 twice; a
  400 is never retried, so two identical ones are an edit).
- Recording never writes the cassette in place: it records into a working copy (in the run
  directory's ``partial-cassettes/`` when the pipeline gives one, else ``<name>.yaml.partial``
  beside it) and replaces the cassette with it only when the stage succeeds. A failed recording
  leaves the cassette as it was and keeps the working copy when it holds a call (a resumed
  recording, mode ``new_episodes``, continues from it), or deletes it when it holds none.
- A recording is installed in a canonical order, and an interaction whose request and response
  are the same as the previous cassette's (volatile fields such as a completion's id and
  ``created`` aside) keeps the bytes it had: re-recording an unchanged stage leaves its cassette
  byte for byte as it was (``rerecord_stable``).
- vcrpy's private API is used only in ``vcr_private`` (the indexed replay, the mid-recording
  save, the playback hook).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from judge_eval.errors import JudgeEvalError, exception_chain
from judge_eval.recording import vcr_private
from judge_eval.recording.studytext import TextIndex

RECORD_MODES = ("none", "once", "new_episodes", "all")
#: HTTP statuses a live call is retried after (``judge_eval.live.retry``): a recorded one may be
#: followed by the same request again, even with the same response
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
KEEP_REQUEST_HEADERS = frozenset({"content-type"})
KEEP_RESPONSE_HEADERS = frozenset({"content-type"})
HASH_PREFIX = "sha256:"


class MissingRecordingError(JudgeEvalError):
    """A request had no recording in its cassette while replaying."""


class CassetteError(JudgeEvalError):
    """A cassette file is corrupt, truncated, or belongs to another profile/stage."""


@dataclass(frozen=True)
class CassetteSpec:
    root: Path  # the cassettes/ folder
    profile: str
    stage: str
    split: str
    body_hash: bool = False
    record_stage: str | None = None  # the pipeline stage that re-records it (default: stage)
    #: body-hash cassettes: third-party text a model may reproduce without it being in the
    #: request (e.g. phrasing it learned in fine-tuning); runs of it are masked like echoes
    sensitive_text: str = field(default="", repr=False, compare=False)

    @property
    def path(self) -> Path:
        return self.root / self.profile / f"{self.stage}-{self.split}.yaml"

    @property
    def rerecord_command(self) -> str:
        return f"judge-eval record --profile {self.profile} --stage {self.record_stage or self.stage}"


# --------------------------------------------------------------------------- bodies


def _as_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if hasattr(body, "read"):  # a file-like body
        data = body.read()
        return data if isinstance(data, bytes) else str(data).encode()
    return b"".join(_as_bytes(part) for part in body)


def _header(headers: Any, name: str) -> str:
    for key, value in dict(headers).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return ""


def canonical_body(body: Any, content_type: str = "") -> str:
    """A stable text form of a request body for matching: sorted-key JSON for JSON bodies,
    part hashes for multipart uploads, the text itself otherwise."""
    raw = _as_bytes(body)
    if not raw:
        return ""
    text = raw.decode("utf-8", "replace")
    if text.startswith(HASH_PREFIX):
        return text
    boundary = re.search(r"boundary=\"?([^\";]+)", content_type or "")
    if "multipart/form-data" in (content_type or "") and boundary:
        parts = raw.split(b"--" + boundary.group(1).encode())
        digests = []
        for part in parts:
            head, _, content = part.partition(b"\r\n\r\n")
            if content:
                name = re.search(rb'name="([^"]*)"', head)
                digest = hashlib.sha256(content.rstrip(b"\r\n")).hexdigest()
                digests.append(f"{name.group(1).decode() if name else '?'}={digest}")
        return "multipart:" + ",".join(sorted(digests))
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return text


def body_digest(canonical: str) -> str:
    return HASH_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def match_key(request: Any) -> tuple[str, str, str, str]:
    """What two requests must share to match: method, path, query and canonical body (a body
    hash stays a hash; a plain body in a body-hash cassette is hashed)."""
    from urllib.parse import urlsplit

    parts = urlsplit(request.uri)
    body = canonical_body(request.body, _header(request.headers, "content-type"))
    return request.method, parts.path, parts.query, body


#: Requests the code repeats by design, so an exact repeat (same request, same response) in a
#: cassette is expected there: (method, path pattern).
REPEATS_EXPECTED = ((re.compile(r"GET"), re.compile(r"/fine_tuning/jobs/[^/]+(/.*)?$")),  # job status polls
                    (re.compile(r"GET"), re.compile(r"/batches/[^/]+(/.*)?$")),  # batch status polls
                    (re.compile(r"POST"), re.compile(r"/embeddings$")))  # a query embedded per answer model


def _repeats_expected(key: tuple[str, str, str, str]) -> bool:
    return any(m.fullmatch(key[0]) and p.search(key[1]) for m, p in REPEATS_EXPECTED)


def _retried(response: Any) -> bool:
    """Whether a recorded response has a status a live call is retried after (``TRANSIENT_STATUS``)."""
    try:
        return int(response["status"]["code"]) in TRANSIENT_STATUS
    except (KeyError, TypeError, ValueError):
        return False


def _check_duplicates(spec: CassetteSpec, path: Path, cass: Any,
                      index: dict[tuple[str, str, str, str], list[int]]) -> None:
    """A duplicated interaction (same match key and same recorded response, where the code does
    not repeat requests by design) means the cassette was merged or edited: refuse it."""
    for key, found in index.items():
        if len(found) < 2 or _repeats_expected(key):
            continue
        first: dict[str, int] = {}
        for n in found:
            if _retried(cass.data[n][1]):
                continue  # a failed attempt, retried: the provider may answer the same 503 twice
            response = json.dumps(cass.data[n][1], sort_keys=True, default=repr)
            if response in first:
                raise CassetteError(
                    f"replaying stage {spec.stage} ({spec.split}) of profile {spec.profile}: interactions "
                    f"{first[response]} and {n} (0-based positions in the 'interactions' list) of {path} are "
                    f"the same request ({key[0]} {key[1]}) with the same recorded response: a duplicated "
                    f"interaction (the cassette was merged or edited by hand). Re-record it: "
                    f"{spec.rerecord_command}")
            first[response] = n


def _index_responses(cass: Any, spec: CassetteSpec, path: Path) -> list[int]:
    """Replay in O(1) per request: vcrpy 9.4.2 scans every recorded interaction with every
    matcher for each request (quadratic in the cassette size: measured 12 ms per request at 100
    interactions, 212 ms at 3,000). In replay the recorded interactions never change, so an index
    from the match key to their positions gives the same answers in the same order.

    Refuses a cassette with a duplicated interaction; returns the positions played back, in
    order (see ``vcr_private.install_index``)."""
    index: dict[tuple[str, str, str, str], list[int]] = {}
    hashed: dict[tuple[str, str, str], list[int]] = {}
    for n, (stored, _) in enumerate(cass.data):
        key = match_key(stored)
        index.setdefault(key, []).append(n)
        if key[3].startswith(HASH_PREFIX):
            hashed.setdefault(key[:3], []).append(n)
    _check_duplicates(spec, path, cass, index)

    def positions(request: Any) -> list[int]:
        request = cass.filter_request(request)
        if not request:
            return []
        key = match_key(request)
        found = index.get(key)
        if found is None and not key[3].startswith(HASH_PREFIX) and hashed.get(key[:3]):
            found = index.get(key[:3] + (body_digest(key[3]),))
        return found or []

    return vcr_private.install_index(cass, positions)


# --------------------------------------------------------------------------- unreadable responses

#: Exceptions a client raises on a response it cannot parse (a JSONDecodeError is a ValueError;
#: ``{"choices": []}`` gives an IndexError; a text body where JSON was expected, an AttributeError).
PARSE_FAILURES = (ValueError, LookupError, TypeError, AttributeError)
PARSE_FAILURE_NAMES = frozenset({"APIResponseValidationError"})  # the openai SDK's, by name


def _parse_failure(exc: BaseException) -> BaseException | None:
    """The exception (``exc`` or one it was raised from) that says a client could not parse a
    response, or None. Our own errors are never one: they already say what went wrong."""
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and not isinstance(cur, JudgeEvalError):
        seen.add(id(cur))
        if isinstance(cur, PARSE_FAILURES) or type(cur).__name__ in PARSE_FAILURE_NAMES:
            return cur
        cur = cur.__cause__
    return None


def _unreadable(response: Any) -> bool:
    """A recorded response none of the pipeline's clients can use (every API it calls answers
    JSON): a body that is not JSON, or a completion with no choice."""
    try:
        raw = response["body"]["string"]
    except (KeyError, TypeError):
        return True
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw or "")
    try:
        data = json.loads(text)
    except ValueError:
        return True
    return isinstance(data, dict) and "choices" in data and not (isinstance(data["choices"], list)
                                                                 and data["choices"])


def _culprit(cass: Any, served: list[int]) -> int:
    """The position of the response a client failed on: the last one played back. With calls in
    flight together another may have been played after it, so the most recent played response
    that is plainly unreadable is preferred."""
    if not _unreadable(cass.data[served[-1]][1]):
        for n in reversed(served):
            if _unreadable(cass.data[n][1]):
                return n
    return served[-1]


def _match_body(r1, r2) -> None:
    a = canonical_body(r1.body, _header(r1.headers, "content-type"))
    b = canonical_body(r2.body, _header(r2.headers, "content-type"))
    if a.startswith(HASH_PREFIX) != b.startswith(HASH_PREFIX):
        a, b = (a if a.startswith(HASH_PREFIX) else body_digest(a),
                b if b.startswith(HASH_PREFIX) else body_digest(b))
    assert a == b, "bodies differ"


# --------------------------------------------------------------------------- scrubbing


def _scrub_request(body_hash: bool, texts: dict[str, str]):
    def scrub(request):
        content_type = _header(request.headers, "content-type")
        request.headers = {k: v for k, v in request.headers.items() if k.lower() in KEEP_REQUEST_HEADERS}
        if body_hash and request.body:
            canonical = canonical_body(request.body, content_type)
            # vcrpy runs this filter again on interactions it loads: a stored hash stays as it is.
            if canonical.startswith(HASH_PREFIX):
                request.body = canonical
            else:
                digest = body_digest(canonical)
                texts[digest] = _request_text(canonical)
                request.body = digest
        return request
    return scrub


def _request_text(canonical: str) -> str:
    """The text a model saw in a request body (its messages or prompt), for echo masking."""
    try:
        data = json.loads(canonical)
    except ValueError:
        return canonical
    parts = [m.get("content") or "" for m in data.get("messages", []) if isinstance(m, dict)]
    if isinstance(data.get("prompt"), str):
        parts.append(data["prompt"])
    return "\n".join(p for p in parts if isinstance(p, str))


def _mask_on_save(texts: dict[str, str], sensitive: str = ""):
    """Before a body-hash cassette is saved: mask third-party text the model echoed from its
    request, or reproduced from ``sensitive`` (text it may have learned)."""
    learned: list[TextIndex] = []  # indexed on the first save, so a replay never pays for it

    def hook(request, response, cassette):
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        text = texts.get(body)
        if text is not None and isinstance(response.get("body", {}).get("string"), (str, bytes)):
            if sensitive and not learned:
                learned.append(TextIndex([sensitive], ECHO_WORDS))
            raw = response["body"]["string"]
            raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            response["body"]["string"] = _mask_response_body(raw, text, learned[0] if learned else None).encode("utf-8")
        return request, response
    return hook


_VERDICT_TOKEN = re.compile(r"\[\[\s*[ABC]\s*\]\]")
ECHO_WORDS = 6  # a run of this many words copied from the request counts as an echo


def mask_echoes(output: str, request_text: str, min_words: int = ECHO_WORDS,
                learned: TextIndex | None = None) -> str:
    """Mask every run of ``min_words`` or more words of ``output`` that also appears in
    ``request_text`` (or in the text ``learned`` indexes): letters and digits become ``x``,
    everything else (spaces, punctuation, newlines) and verdict tokens like ``[[A]]`` stay. A
    model echoing third-party text from its prompt then stores none of it, while the judge-output
    parser reads the masked text exactly as the original (it looks only at verdict tokens and the
    punctuation between them)."""
    hits = TextIndex([request_text], min_words).find(output) + (learned.find(output) if learned else [])
    if not hits:
        return output
    keep = {k for m in _VERDICT_TOKEN.finditer(output) for k in range(m.start(), m.end())}
    chars = list(output)
    for hit in hits:
        for k in range(hit.start, hit.end):
            if k not in keep and chars[k].isalnum():
                chars[k] = "x"
    return "".join(chars)


def _mask_response_body(body: str, request_text: str, learned: TextIndex | None = None) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return mask_echoes(body, request_text, learned=learned)
    for choice in data.get("choices", []) if isinstance(data, dict) else []:
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = mask_echoes(message["content"], request_text, learned=learned)
        if isinstance(choice.get("text"), str):
            choice["text"] = mask_echoes(choice["text"], request_text, learned=learned)
    return json.dumps(data)


def _scrub_response(response: dict) -> dict:
    response["headers"] = {k: v for k, v in response.get("headers", {}).items()
                           if k.lower() in KEEP_RESPONSE_HEADERS}
    return response


# --------------------------------------------------------------------------- cassettes


def _missing_cause(exc: BaseException) -> BaseException | None:
    from vcr.errors import CannotOverwriteExistingCassetteException

    return next((e for e in exception_chain(exc) if isinstance(e, CannotOverwriteExistingCassetteException)), None)


MATCHER_PARTS = {"judge_body": "body", "_match_body": "body"}  # vcrpy's matcher names as a miss message names them
MAX_DIFF_LINES = 15  # of a body diff in a miss message, after its two header lines
MAX_DIFF_WIDTH = 160  # characters of one diff line (a long line is shown around its change)
_ESCAPED_NEWLINE = re.compile(r"((?<!\\)(?:\\\\)*\\n)")


def _show_request(request: Any) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(request.uri)
    return f"{request.method} {parts.path}{'?' + parts.query if parts.query else ''}"


def _body_lines(canonical: str) -> list[str]:
    """A canonical body as lines to diff: pretty-printed JSON with a long text's lines (a
    prompt's) on lines of their own, a multipart upload's part hashes one a line."""
    if canonical.startswith("multipart:"):
        return canonical.split(",")
    try:
        text = json.dumps(json.loads(canonical), indent=1, sort_keys=True, ensure_ascii=False)
    except ValueError:
        text = canonical
    return _ESCAPED_NEWLINE.sub("\\1\n", text).splitlines()


def _clip(line: str, other: str) -> str:
    """``line`` (a diff line: a sign and text) cut to MAX_DIFF_WIDTH around where it first
    differs from ``other``, its counterpart on the other side of the diff."""
    sign, text = line[:1], line[1:]
    if len(text) <= MAX_DIFF_WIDTH:
        return line
    at = len(_common_prefix(text, other[1:]))
    start = max(0, min(at - MAX_DIFF_WIDTH // 4, len(text) - MAX_DIFF_WIDTH))
    end = start + MAX_DIFF_WIDTH
    return f"{sign}{'…' if start else ''}{text[start:end]}{'…' if end < len(text) else ''}"


def _common_prefix(a: str, b: str) -> str:
    import os.path

    return os.path.commonprefix([a, b])


def body_diff(recorded: str, requested: str) -> list[str]:
    """A short unified diff of two canonical (plain) bodies, recorded first."""
    import difflib

    diff = list(difflib.unified_diff(_body_lines(recorded), _body_lines(requested), "recorded", "requested",
                                     n=1, lineterm=""))
    head, body = diff[:2], diff[2:]
    shown: list[str] = []
    k = 0
    while k < len(body):  # pair each block of - lines with the + lines after it, to clip both
        if body[k][:1] not in "-+":
            shown.append(_clip(body[k], ""))
            k += 1
            continue
        minus = []
        while k < len(body) and body[k].startswith("-"):
            minus.append(body[k])
            k += 1
        plus = []
        while k < len(body) and body[k].startswith("+"):
            plus.append(body[k])
            k += 1
        shown += [_clip(line, plus[n] if n < len(plus) else "") for n, line in enumerate(minus)]
        shown += [_clip(line, minus[n] if n < len(minus) else "") for n, line in enumerate(plus)]
    if len(shown) > MAX_DIFF_LINES:
        shown = shown[:MAX_DIFF_LINES] + [f"… ({len(shown) - MAX_DIFF_LINES} more diff lines)"]
    return head + shown


def _closeness(wanted: tuple[str, str, str, str], stored: Any) -> tuple[int, int]:
    key = match_key(stored)
    same = sum(a == b for a, b in zip(wanted[:3], key[:3]))
    body = key[3]
    if body.startswith(HASH_PREFIX) or wanted[3].startswith(HASH_PREFIX):
        return same, 0
    return same, len(_common_prefix(wanted[3], body)) + len(_common_prefix(wanted[3][::-1], body[::-1]))


def describe_miss(miss: BaseException) -> list[str]:
    """What a replay miss (vcrpy's CannotOverwriteExistingCassetteException) differs in: the
    closest recorded request and a short diff of the differing part. A body-hash cassette keeps
    no text, so for its bodies only the hashes are compared (no third-party text is shown)."""
    request = getattr(miss, "failed_request", None)
    if request is None or not hasattr(request, "uri"):
        return []
    similar = list(getattr(miss, "similar_requests", None) or [])
    wanted = match_key(request)
    if not similar:
        cass = getattr(miss, "cassette", None)
        recorded = f"{len(cass)} recorded" if cass is not None else "recorded"
        return [f"Requested: {_show_request(request)}",
                f"Nothing recorded is like it: none of the {recorded} requests shares its method, "
                "path, query or body."]
    if not similar[0][2]:
        return [f"Requested: {_show_request(request)}",
                "It matches a recorded request that was already played back: the code now sends "
                "it more often than the recording did."]
    closest, _, failed = max(similar, key=lambda s: _closeness(wanted, s[0]))
    stored = match_key(closest)
    differs = ", ".join(MATCHER_PARTS.get(name, name) for name, _ in failed)
    alike = f" (the nearest of {len(similar)} that match as many parts)" if len(similar) > 1 else ""
    lines = [f"Requested: {_show_request(request)}",
             f"Closest recorded request{alike}: {_show_request(closest)}; it differs in {differs}"]
    for part, n in (("method", 0), ("path", 1), ("query", 2)):
        if wanted[n] != stored[n]:
            lines.append(f"  {part}: recorded {stored[n]!r}, requested {wanted[n]!r}")
    a, b = stored[3], wanted[3]
    if a.startswith(HASH_PREFIX) or b.startswith(HASH_PREFIX):
        a, b = (a if a.startswith(HASH_PREFIX) else body_digest(a)), (b if b.startswith(HASH_PREFIX) else body_digest(b))
        if a != b:
            lines.append(f"  body: the hashes differ (recorded {a[:len(HASH_PREFIX) + 12]}…, requested "
                         f"{b[:len(HASH_PREFIX) + 12]}…); a body-hash cassette keeps no text to compare")
    elif a != b:
        lines.append("  body differs:")
        lines += [f"    {line}" for line in body_diff(a, b)]
    return lines


def check_cassette_file(spec: CassetteSpec, path: Path | None = None) -> None:
    """Fail clearly on a corrupt or truncated cassette, or one of another profile/stage/split
    (``path``: another file than ``spec.path`` holding it, e.g. a partial recording)."""
    import yaml

    path = path or spec.path
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on big cassettes
    try:
        data = yaml.load(path.read_text("utf-8"), Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: not a readable cassette ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0]}); it is corrupt or truncated. Re-record it: "
                            f"{spec.rerecord_command}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(f"{path}: not a cassette (no 'interactions' list). Re-record it: "
                            f"{spec.rerecord_command}")
    meta = data.get("metadata") or {}
    expected = {"profile": spec.profile, "stage": spec.stage, "split": spec.split}
    found = {k: meta.get(k) for k in expected}
    if found != expected:
        raise CassetteError(f"{path}: recorded for {found}, but this run expects {expected}. A cassette "
                            f"of another profile or stage was copied here; re-record it: "
                            f"{spec.rerecord_command}")


def partial_path(spec: CassetteSpec, partial_dir: Path | None = None) -> Path:
    """Where a recording of ``spec`` is written until its stage succeeds."""
    if partial_dir is None:
        return spec.path.with_name(spec.path.name + ".partial")
    return Path(partial_dir) / spec.path.name


def _install(work: Path, path: Path) -> None:
    """Replace ``path`` by ``work`` in one step (``work`` may be on another file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.copyfile(work, staged)
    os.replace(staged, path)
    work.unlink()


@contextmanager
def cassette(spec: CassetteSpec, mode: str, *, partial_dir: Path | None = None) -> Iterator[Any]:
    """Run the block inside ``spec``'s cassette in record mode ``mode``.

    ``none`` replays only (a missing cassette or request is an error); ``all`` re-records the
    cassette from scratch; ``once`` records a missing cassette and replays an existing one;
    ``new_episodes`` replays what exists and records what is new.

    A recording goes to a working copy (``partial_path(spec, partial_dir)``), which replaces the
    cassette only when the block succeeds. When it fails the cassette stays as it was; the working
    copy is kept if it holds a call (mode ``new_episodes`` then continues from it instead of the
    cassette: a resumed recording repeats no call it paid for) and deleted if it holds none.
    """
    import vcr

    if mode not in RECORD_MODES:
        raise JudgeEvalError(f"record mode {mode!r} is not one of {', '.join(RECORD_MODES)}")
    path = spec.path
    if mode == "none" and not path.is_file():
        raise MissingRecordingError(
            f"no cassette {path} for stage {spec.stage} ({spec.split}) of profile {spec.profile}; "
            f"record it with: {spec.rerecord_command}")
    work = path
    resumed = False  # the working copy holds calls of an earlier, failed recording
    if mode == "none" or (mode == "once" and path.is_file()):
        check_cassette_file(spec)
    else:
        work = partial_path(spec, partial_dir)
        work.parent.mkdir(parents=True, exist_ok=True)
        if mode == "new_episodes" and work.is_file():
            check_cassette_file(spec, work)
            resumed = True
        else:
            work.unlink(missing_ok=True)  # a stale working copy; mode all/once starts from nothing
            if mode == "new_episodes" and path.is_file():
                check_cassette_file(spec)
                shutil.copyfile(path, work)  # extend a copy; the cassette itself stays untouched
    texts: dict[str, str] = {}  # body hash -> the text the model saw (recording only, in memory)
    stable = None  # recording only: the canonical order and the bytes of unchanged interactions
    if work != path:
        from judge_eval.recording import rerecord_stable as stable
    recorder = vcr.VCR(
        record_mode=mode,
        match_on=["method", "path", "query", "judge_body"],
        before_record_request=_scrub_request(spec.body_hash, texts),
        # while recording, each call's response notes the item it belongs to (its sort key)
        before_record_response=(lambda r: stable.stamp(_scrub_response(r))) if stable else _scrub_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("judge_body", _match_body)
    cass = None
    loaded = 0
    served: list[int] = []
    try:
        with recorder.use_cassette(str(work), before_save_interaction=(
                _mask_on_save(texts, spec.sensitive_text) if spec.body_hash else None)) as cass:
            loaded = len(cass.data)
            cass.get_metadata("profile", spec.profile)
            cass.get_metadata("stage", spec.stage)
            cass.get_metadata("split", spec.split)
            if mode == "none":
                served = _index_responses(cass, spec, path)
            elif mode == "all":
                # Nothing is ever played back while re-recording, but vcrpy still scans every
                # interaction recorded so far before each request (quadratic in the recording).
                vcr_private.disable_playback_scan(cass)
            elif mode == "new_episodes" and stable:
                vcr_private.on_play(cass, stable.stamp)  # a replayed call belongs to an item too
            yield cass
            if mode == "new_episodes" and stable:
                vcr_private.save_now(cass)  # the sort keys of replayed calls, even when nothing is new
    except BaseException as exc:
        if work != path and not resumed and (cass is None or len(cass.data) <= loaded):
            work.unlink(missing_ok=True)  # no call was recorded: nothing worth keeping
        miss = _missing_cause(exc)
        if miss is None:
            failure = _parse_failure(exc) if mode == "none" and served else None
            if failure is None:
                raise
            n = _culprit(cass, served)
            first = (str(failure).splitlines() or [""])[0][:200]
            # A body-hash cassette's responses may hold third-party text an error could quote.
            what = type(failure).__name__ + ("" if spec.body_hash else f": {first}")
            raise CassetteError(
                f"replaying stage {spec.stage} ({spec.split}) of profile {spec.profile}: the client could "
                f"not parse the response recorded as interaction {n} (0-based position in the "
                f"'interactions' list) of {path} ({what}). The cassette is "
                f"corrupt or was edited by hand; re-record it: {spec.rerecord_command}") from exc
        detail = str(miss).split("\n")[0]
        try:
            explained = "".join(f"\n{line}" for line in describe_miss(miss))
        except Exception as failure:  # noqa: BLE001 - the miss itself is the error to report
            explained = f"\n(could not describe the closest recording: {failure.__class__.__name__})"
        raise MissingRecordingError(
            f"replaying stage {spec.stage} ({spec.split}) of profile {spec.profile}: a request has no "
            f"recording in {path} ({detail}). The code or a prompt changed since the recording; "
            f"re-record with: {spec.rerecord_command}{explained}") from exc
    else:
        if work != path and work.is_file():
            assert stable is not None
            stable.settle(work, path)  # canonical order; unchanged interactions as stored before
            _install(work, path)

"""Re-recordings a reviewer can read: an unchanged call keeps its stored bytes, and a cassette's
interactions are saved in a canonical order, not in the order the calls completed.

Re-recording a stage against the same server gives the same content with new volatile fields
(a completion's ``id``, ``created``, ``system_fingerprint``): left alone, every interaction of every
cassette would change, and a diff could not show the one completion that did. So, when a
recording is installed (``settle``, called by ``cassettes.cassette``):

- An interaction is *unchanged* when an interaction of the previous cassette has the same
  request match key (method, path, query, canonical body: what replay matches on) and the same
  response once the volatile fields are left out: the status, the headers but those in
  ``VOLATILE_HEADERS`` (or starting with ``VOLATILE_HEADER_PREFIXES``), and the body with the
  top-level fields in ``VOLATILE_RESPONSE_FIELDS`` removed. The previous interaction is then
  stored as it was, byte for byte. Both sides are compared as they are stored, so a body-hash
  cassette compares hashed requests and masked responses alike.
- Interactions are sorted by the key of the item whose call they were (``sort_key``: the stages
  set it around each item, e.g. the item's ``order_key``), then by their place among that item's
  calls (an item's calls are made one after another, so that place does not depend on
  concurrency). Calls made outside any item come first, in the order they were made: the stages
  make those one after another (corpus pages, the index's embedding batches, a fine-tuning
  upload, job and status polls), so that order does not depend on timing either; whatever calls
  a model concurrently must give each call's item a key. Repeats of one request keep the order
  they were made in (a replay returns them in that order).
- The cassette is written with vcrpy's own YAML serializer (keys sorted), so the same
  interactions in the same order always give the same bytes.

The key of a call is noted on its recorded response (``SORT_FIELD``) while recording, so it
survives in a working copy a resumed recording continues from; ``settle`` removes it, and it is
never in an installed cassette.

Only the top level of a JSON body is searched for volatile fields: the APIs recorded here
(OpenAI-compatible chat, completions, embeddings, files, fine-tuning jobs) put their per-call
identifiers and timestamps there, while everything nested (``choices``, ``message``, ``usage``,
``data``) is content a change of which must show.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from judge_eval.recording.cassettes import canonical_body

#: Top-level fields of a JSON response body that differ on every call with the same content:
#: the completion's id and creation time, the server build's fingerprint, and llama.cpp
#: server's per-call ``timings`` (milliseconds and tokens per second).
VOLATILE_RESPONSE_FIELDS = ("id", "created", "system_fingerprint", "timings")
#: Response headers that differ on every call (cassettes keep only ``content-type`` today; these
#: stay out of the comparison should more headers ever be kept).
VOLATILE_HEADERS = ("date", "age", "x-request-id", "request-id", "openai-processing-ms", "openai-version",
                    "x-envoy-upstream-service-time", "server-timing", "cf-ray", "set-cookie", "via",
                    "x-cache", "x-served-by", "x-timer", "x-process-time", "x-response-time")
VOLATILE_HEADER_PREFIXES = ("x-ratelimit-",)
#: Where a recorded response notes the sort key of its call until the cassette is settled.
SORT_FIELD = "judge_eval_sort_key"

SortPart = str | int
_current: ContextVar[tuple[SortPart, ...] | None] = ContextVar("judge_eval_sort_key", default=None)


@contextmanager
def sort_key(*parts: SortPart) -> Iterator[None]:
    """Every call recorded inside the block belongs to the item ``parts`` names, e.g.
    ``sort_key(item.order_key)``: calls of this task and of the tasks it starts (asyncio copies
    the context into a new task; a thread does not inherit it)."""
    if not parts or not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in parts):
        raise TypeError(f"a sort key is one or more str or int parts, not {parts!r}")
    token = _current.set(tuple(parts))
    try:
        yield
    finally:
        try:
            _current.reset(token)
        except ValueError:
            # Closed from another context: a task abandoned mid-call (its stage failed) is closed
            # when it is collected, and its own context, where the key was set, goes with it.
            pass


def stamp(response: Any) -> Any:
    """A ``before_record_response`` step (and a playback hook): note the current sort key on a
    recorded response, unless it has one (a call loaded from a working copy keeps its own)."""
    key = _current.get()
    if key is not None and isinstance(response, dict) and SORT_FIELD not in response:
        response[SORT_FIELD] = list(key)
    return response


# --------------------------------------------------------------------------- comparing interactions


def _header(headers: Any, name: str) -> str:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return value[0] if isinstance(value, list) and value else value if isinstance(value, str) else ""
    return ""


def request_key(interaction: dict) -> tuple[str, str, str, str]:
    """The stored request's match key: method, path, query and canonical body (what replay
    matches on; a hashed body stays its hash)."""
    request = interaction.get("request") or {}
    parts = urlsplit(str(request.get("uri", "")))
    body = canonical_body(request.get("body"), _header(request.get("headers"), "content-type"))
    return str(request.get("method", "")), parts.path, parts.query, body


def _volatile_header(name: str) -> bool:
    name = name.lower()
    return name in VOLATILE_HEADERS or name.startswith(VOLATILE_HEADER_PREFIXES)


def _stable_body(raw: Any) -> Any:
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + hashlib.sha256(raw).hexdigest()
    if not isinstance(raw, str):
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in VOLATILE_RESPONSE_FIELDS}
    return data


def response_content(interaction: dict) -> str:
    """The response without its volatile fields, as one comparable string."""
    response = {k: v for k, v in (interaction.get("response") or {}).items() if k != SORT_FIELD}
    headers = {str(k).lower(): v for k, v in (response.get("headers") or {}).items() if not _volatile_header(str(k))}
    body = response.get("body")
    stable = _stable_body(body.get("string") if isinstance(body, dict) else body)
    return json.dumps([response.get("status"), headers, stable], sort_keys=True, default=repr)


@dataclass(frozen=True)
class Changes:
    """How a cassette's interactions differ from the previous recording's."""

    added: int = 0  # a request the previous recording did not make
    removed: int = 0  # a request the previous recording made and this one did not
    changed: int = 0  # the same request, another response (volatile fields aside)
    unchanged: int = 0  # the same request and response (volatile fields aside): stored as it was

    @property
    def total(self) -> int:
        return self.added + self.changed + self.unchanged

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def match_previous(new: Sequence[dict], old: Sequence[dict]) -> tuple[list[dict], Changes]:
    """Each interaction of ``new``, or the previous one it equals (volatile fields aside), and
    the counts. Repeats of one request are paired in order: an unchanged one first takes the
    first equal previous one not yet taken; a changed one, the first previous one left with its
    request."""
    by_request: dict[tuple[str, str, str, str], list[int]] = {}
    for m, interaction in enumerate(old):
        by_request.setdefault(request_key(interaction), []).append(m)
    old_content: dict[int, str] = {}  # computed once, when first needed

    def content_of(m: int) -> str:
        if m not in old_content:
            old_content[m] = response_content(old[m])
        return old_content[m]

    taken: set[int] = set()
    out = list(new)
    unchanged = 0
    pending: list[tuple[int, tuple[str, str, str, str]]] = []
    for n, interaction in enumerate(new):
        key = request_key(interaction)
        content = response_content(interaction)
        for m in by_request.get(key, ()):
            if m not in taken and content_of(m) == content:
                taken.add(m)
                out[n] = old[m]
                unchanged += 1
                break
        else:
            pending.append((n, key))
    changed = added = 0
    for n, key in pending:
        m = next((m for m in by_request.get(key, ()) if m not in taken), None)
        if m is None:
            added += 1
        else:
            taken.add(m)
            changed += 1
    return out, Changes(added=added, removed=len(old) - len(taken), changed=changed, unchanged=unchanged)


# --------------------------------------------------------------------------- files


def _serializer() -> Any:
    from vcr.serializers import yamlserializer

    return yamlserializer


def read_interactions(path: Path) -> list[dict]:
    """The interactions of cassette ``path`` as stored (plain dicts); none when it is missing
    or unreadable (a previous cassette that cannot be read has nothing to keep)."""
    import yaml

    try:
        data = _serializer().deserialize(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return []
    found = data.get("interactions") if isinstance(data, dict) else None
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


def _take_sort_key(interaction: dict) -> list | None:
    """Remove the sort key noted on an interaction's response while recording; return it."""
    response = interaction.get("response")
    key = response.pop(SORT_FIELD, None) if isinstance(response, dict) else None
    return key if isinstance(key, list) and key else None


def _order(key: list | None, position: int) -> tuple:
    """Where an interaction goes: calls of no item first, then by item key; ties (and the calls
    of no item) keep the order the calls were made in."""
    if key is None:
        return (0, (), position)
    return (1, tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in key), position)


def settle(work: Path, previous: Path) -> Changes:
    """Rewrite the recording ``work`` (about to replace cassette ``previous``) in canonical
    order, with every interaction that equals one of ``previous`` (volatile fields aside) as
    ``previous`` stored it. Returns what changed."""
    serializer = _serializer()
    data = serializer.deserialize(Path(work).read_text("utf-8"))
    interactions = [i for i in data.get("interactions") or [] if isinstance(i, dict)]
    keys = [_take_sort_key(i) for i in interactions]
    order = sorted(range(len(interactions)), key=lambda n: _order(keys[n], n))
    kept, changes = match_previous(interactions, read_interactions(previous))
    data["interactions"] = [kept[n] for n in order]
    staged = Path(work).with_name(f".{Path(work).name}.{os.getpid()}.settled")
    staged.write_text(serializer.serialize(data), "utf-8")
    os.replace(staged, work)
    return changes


def cassette_changes(old: Path, new: Path) -> Changes:
    """What changed from cassette file ``old`` to ``new`` (either may be missing)."""
    return match_previous(read_interactions(new), read_interactions(old))[1]


#: Fields of a distillation manifest (``distill-train.json``, beside the cassettes) that differ
#: between two trainings of the same adapter: the wall-clock time it took.
VOLATILE_MANIFEST_FIELDS = ("train_seconds",)


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(path: Path, manifest: dict[str, Any]) -> bool:
    """Write a distillation manifest, unless ``path`` holds the same one but for
    ``VOLATILE_MANIFEST_FIELDS`` (the same adapter from the same data, trained again): then its
    bytes stay as they are, and the time it states is that of the training that first produced
    this adapter. Returns whether the file was written."""
    def content(m: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if k not in VOLATILE_MANIFEST_FIELDS}

    if path.is_file():
        try:
            previous = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            previous = None
        if isinstance(previous, dict) and content(previous) == content(json.loads(manifest_text(manifest))):
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest_text(manifest), "utf-8")
    return True

"""``judge-eval canary``: re-ask a seeded sample of a profile's recorded judging stage live, and say
whether each judge's verdicts moved more than chance allows.

A model name (``gpt-4``) can change behaviour behind the same name; replaying last month's
cassettes cannot see it. The canary re-runs a few recorded test items live, teacher and students,
and compares the live verdicts with the recorded ones.

Items. The recorded test split as the pipeline builds it: the given pairs (source ``items``), the
study's test pairs (source ``study``), or the corpus, questions and answers stages replayed
offline from the profile's cassettes (source ``build``); each answer its own item for the
``correctness`` judge. N of them are drawn with the seed: items ranked by
``sha256("<seed>\\n<item id>")``, the first N taken. Python's and numpy's generators may change
between versions; this ranking does not, and it keeps an item's place whatever else is in the split
(N larger than the split: all items, and the output says so).

Recorded verdicts and request checks, per judge and item, before any live call: the item is judged
by the same code as the live stage (``judge_item`` / ``score_item`` on a client built as the live
stage builds it), over an HTTP transport of ours that sends nothing. Each request's canonical body
(its hash, for a body-hash profile) is looked up among the recorded requests of the judge's cassette
(``<stage>-test.yaml``), and the recorded response is played back. The recorded verdict is what this
code reads from those responses, as a replay of the stage would. A request with no recording is a
mismatch: reported with the closest recorded request (a body diff, or only that the hashes differ
for a body-hash cassette), and the item is skipped for that judge and never sent. The cassettes are
read from a temporary copy and never written. Recorded verdicts come from the cassettes item by
item, not from a replay of the whole pipeline, so one changed item is one skipped item, not a failed
canary.

Live, per judge: a ``GET <base_url>/models`` first. A host that cannot be reached, a refused key or
a list of served models without the judge's model skips the judge with the reason (the local
profile's distilled student is served only while recording). Then each checked item is judged again
through the live client (the profile's retry policy, its keys), one item after another (a sample is
small, and the transport must know which item a request belongs to). An HTTP transport of ours lets out
only the requests checked before for that item. One exception: a pairwise item whose recorded first
order was unparseable has no recorded flipped call (the evaluator makes it only after a parsed first
order). When the live first order parses, that flipped call is sent. It is built by the same
evaluator from the same item as the checked first call, and it is counted and reported as sent
without a recorded counterpart; otherwise such items would drop out of the sample, and a judge that
used to be unparseable and now answers could never show its drift. A call that still fails after its
retries is a failed item (reported, not compared): an outage is not drift.

Per judge: the items compared, the items whose verdict changed (corrected frame: a conclusive
verdict is its score with 1 = the first stored answer wins; any other verdict is its source), the
share unchanged, and for every judge but the reference an exact two-sided McNemar test
(``gating.compare.mcnemar_exact``) on agreement with the reference's recorded verdict
(``gating.compare.agreement_vector``): recorded vs live. Against the recorded reference, a
student's drift is its own, whatever the teacher does now. The reference is compared with its own
recorded verdicts: share unchanged only. A judge fails when the test is significant (p < the
profile's ``canary.alpha``, either direction: getting better is a change of behaviour too) or when
its share unchanged is below ``canary.min_unchanged`` (drift that moves as many verdicts towards
agreement as away from it leaves McNemar at p = 1).

Outcome (``CanaryResult.exit_status``): 0 every checked judge passes; 1 a judge drifted, or a gated
judge asked for could not be checked (skipped, or no item compared: a canary that checks nothing on
the judge the release gate is about must not pass); 2 nothing was compared at all (unreachable
servers, missing keys, every request mismatched): the canary could not run.

Output: a run directory of its own (``--out``, else a new temporary folder): the sampled items with
the live verdicts (``test_qa_complete.jsonl``), the same items with the recorded verdicts
(``recorded/test_qa_complete.jsonl``), and ``run.json``: the profile, seed, sample, timestamps, per
judge the results and the models and ``system_fingerprint`` values the server reported in its
responses. Keys go only into request headers; nothing the canary writes holds one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from judge_eval.config.profiles import Profile
from judge_eval.core.items import ERROR, PARSE_FAILURE, QAItem, Verdict
from judge_eval.errors import ConfigError, JudgeEvalError
from judge_eval.live.pipeline import Context, modes_from

#: The judges' HTTP answers from OpenAI-compatible servers: the only clients the canary can guard.
GUARDED_APIS = ("openai", "openai-like")
#: Where the openai SDK sends requests when a spec names no base URL.
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: Seconds to wait for the ``/models`` probe.
PROBE_TIMEOUT = 30.0
#: Folder of the run directory holding the sampled items with their recorded verdicts.
RECORDED_DIR = "recorded"
#: Lines of a mismatch's body diff kept in the output.
MISMATCH_LINES = 12

Key = tuple[str, str, str, str]  # method, path, query, canonical body (``recording.cassettes.match_key``)


# --------------------------------------------------------------------------- the sample


def sample_items(items: Sequence[QAItem], n: int, seed: int) -> list[QAItem]:
    """``n`` items drawn with ``seed`` (all when ``n`` >= their count), in ``order_key`` order.

    Ranked by ``sha256("<seed>\\n<item id>")``: stable across Python and numpy versions, and an
    item's rank does not depend on the other items."""
    def rank(item: QAItem) -> str:
        return hashlib.sha256(f"{seed}\n{item.id}".encode("utf-8")).hexdigest()

    chosen = sorted(items, key=rank)[:n]
    return sorted(chosen, key=lambda i: i.order_key)


# --------------------------------------------------------------------------- the judges


@dataclass(frozen=True)
class StageJudge:
    """A judge of the recorded judging stage (test split)."""

    name: str
    role: str  # teacher, base student, distilled student
    spec: Any  # its ModelSpec (None when it cannot be re-asked)
    cassette: Any  # its CassetteSpec (committed path), or None
    reference: bool
    gated: bool
    unavailable: str | None = None  # why it cannot be re-asked at all


def stage_judges(ctx: Context, cassette_root: Path) -> list[StageJudge]:
    """Teacher, base student, distilled student: their names, models and test cassettes (named
    under ``cassette_root``, the committed folder, whatever copy ``ctx`` reads)."""
    cfg = ctx.config

    def spec(stage: str, name: str) -> Any:
        return dataclasses.replace(ctx.spec(stage, "test", name=name), root=cassette_root)

    profile = ctx.profile
    names = ("teacher", "student-base", "student-distilled")
    if cfg.judge == "correctness":
        from judge_eval.live.correctness import (
            BASE_STUDENT_CASSETTE, DISTILLED_STUDENT_CASSETTE, TEACHER_CASSETTE,
        )

        names = (TEACHER_CASSETTE, BASE_STUDENT_CASSETTE, DISTILLED_STUDENT_CASSETTE)
    teacher_unavailable = None
    if cfg.source == "study":
        teacher_unavailable = ("its test verdicts are the study's, read from the study's files: no request of "
                               "this project recorded them, so there is nothing to re-ask")
    distilled_spec, distilled_unavailable = _distilled_spec(ctx)
    return [
        StageJudge(profile.reference, "teacher", cfg.teacher, spec("teacher", names[0]),
                   reference=True, gated=profile.reference in profile.gated, unavailable=teacher_unavailable),
        StageJudge(cfg.base_student_name, "base student", cfg.student,
                   spec("students", names[1]), reference=False,
                   gated=cfg.base_student_name in profile.gated),
        StageJudge(cfg.distilled_student_name, "distilled student", distilled_spec,
                   spec("students", names[2]), reference=False,
                   gated=cfg.distilled_student_name in profile.gated, unavailable=distilled_unavailable),
    ]


def _distilled_spec(ctx: Context) -> tuple[Any, str | None]:
    """The distilled student's model spec, as ``stage_students`` builds it: the student's with the
    distilled model's name and base URL. The name comes from the recording itself: the local
    LoRA's manifest, or the fine-tuning job's last status in the distill cassette (what
    ``OpenAIDistiller`` read from it); the training and its events are not replayed."""
    from judge_eval.live.pipeline import manifest_path

    cfg = ctx.config
    path = manifest_path(ctx)
    rerecord = ctx.spec("distill", "train").rerecord_command
    if cfg.distill.kind == "local-lora":
        if not path.is_file():
            return None, f"no distillation manifest {path.name} in the recording; record it with: {rerecord}"
        try:
            manifest = json.loads(path.read_text("utf-8"))
            model, base_url = manifest["model"], manifest.get("base_url")
        except (ValueError, KeyError, TypeError):
            return None, f"the distillation manifest {path.name} names no model; re-record it: {rerecord}"
    else:
        cassette = ctx.spec("distill", "train").path
        model = _fine_tuned_model(cassette) if cassette.is_file() else None
        if model is None:
            return None, (f"no fine-tuned model in the recording (no {cassette.name}, or no job status with "
                          f"fine_tuned_model in it); record it with: {rerecord}")
        base_url = None
    return cfg.student.model_copy(update={"model": model, "base_url": base_url or cfg.student.base_url}), None


def _load_cassette(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text("utf-8"), Loader=loader)
    return data if isinstance(data, dict) else {}


def _body_text(holder: Any) -> str | None:
    body = holder.get("body") if isinstance(holder, dict) else None
    raw = body.get("string") if isinstance(body, dict) else body
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None


def _fine_tuned_model(path: Path) -> str | None:
    """The ``fine_tuned_model`` of the last recorded job status that names one."""
    found = None
    for interaction in _load_cassette(path).get("interactions") or []:
        text = _body_text((interaction or {}).get("response"))
        try:
            body = json.loads(text) if text else None
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get("fine_tuned_model"), str) and body["fine_tuned_model"]:
            found = body["fine_tuned_model"]
    return found


# --------------------------------------------------------------------------- one judge's recording


def _request_key(request: Any) -> Key:
    """The match key of an httpx request, as a cassette matches it (``recording.cassettes``)."""
    from judge_eval.recording.cassettes import canonical_body

    parts = urlsplit(str(request.url))
    body = canonical_body(request.read(), request.headers.get("content-type", ""))
    return request.method, parts.path, parts.query, body


class Recording:
    """A judge's cassette read for matching: never opened by vcrpy, never written."""

    def __init__(self, spec: Any, path: Path) -> None:
        from judge_eval.recording.cassettes import HASH_PREFIX, check_cassette_file
        from judge_eval.recording.rerecord_stable import request_key

        check_cassette_file(spec, path)  # readable, and recorded for this profile, stage and split
        self.spec = spec
        self.keys: list[Key] = []
        self.responses: dict[Key, list[dict[str, Any]]] = {}
        for interaction in _load_cassette(path).get("interactions") or []:
            key = request_key(interaction)
            self.keys.append(key)
            self.responses.setdefault(key, []).append(interaction.get("response") or {})
        self.hashed = any(k[3].startswith(HASH_PREFIX) for k in self.keys)
        self._played: dict[Key, int] = {}

    def find(self, key: Key) -> Key | None:
        """The recorded key ``key`` matches: the same, or its body's hash in a body-hash cassette."""
        from judge_eval.recording.cassettes import body_digest

        if key in self.responses:
            return key
        hashed = key[:3] + (body_digest(key[3]),)
        return hashed if hashed in self.responses else None

    def respond(self, key: Key, request: Any) -> Any:
        """The next recorded response for ``key`` (a replay returns repeats in order; the last is
        kept once they run out)."""
        import httpx

        found = self.responses[key]
        n = self._played.get(key, 0)
        self._played[key] = n + 1
        recorded = found[min(n, len(found) - 1)]
        status = int(((recorded.get("status") or {}).get("code")) or 200)
        headers = {str(k): (v[0] if isinstance(v, list) and v else str(v))
                   for k, v in (recorded.get("headers") or {}).items()}
        return httpx.Response(status, headers=headers, content=(_body_text(recorded) or "").encode("utf-8"),
                              request=request)

    def describe_miss(self, key: Key) -> list[str]:
        """The closest recorded request and how the requested one differs (for a body-hash
        cassette only that the hashes differ: it keeps no text to compare)."""
        from judge_eval.recording.cassettes import HASH_PREFIX, body_diff, body_digest

        lines = [f"requested {key[0]} {key[1]}{'?' + key[2] if key[2] else ''}; the cassette "
                 f"{self.spec.path} has no recording of it"]
        same = [k for k in self.keys if k[:3] == key[:3]]
        if not same:
            lines.append(f"  no recorded request has that method and path ({len(self.keys)} recorded)")
            return lines
        if self.hashed:
            digest = body_digest(key[3])
            lines.append(f"  body: its hash {digest[:len(HASH_PREFIX) + 12]}… is none of the {len(same)} recorded "
                         "ones; a body-hash cassette keeps no text to compare")
            return lines

        def closeness(k: Key) -> int:
            import os.path

            return len(os.path.commonprefix([k[3], key[3]])) + len(os.path.commonprefix([k[3][::-1], key[3][::-1]]))

        closest = max(same, key=closeness)
        diff = body_diff(closest[3], key[3])
        if len(diff) > MISMATCH_LINES:
            diff = diff[:MISMATCH_LINES] + [f"… ({len(diff) - MISMATCH_LINES} more diff lines)"]
        return lines + ["  body differs from the closest recorded one:"] + [f"    {line}" for line in diff]


# --------------------------------------------------------------------------- HTTP transports of ours


def _json_error(request: Any, status: int, message: str) -> Any:
    import httpx

    return httpx.Response(status, json={"error": {"message": message, "type": "invalid_request_error"}},
                          request=request)


class _Replayer:
    """A transport that sends nothing: each request is matched against a recording and answered
    with its recorded response; a request with no recording is noted and refused (HTTP 400)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.calls: list[Key] = []
        self.misses: list[Key] = []

    def reset(self) -> None:
        self.calls, self.misses = [], []

    def __call__(self, request: Any) -> Any:  # httpx.MockTransport's handler
        key = _request_key(request)
        found = self.recording.find(key)
        if found is None:
            self.misses.append(key)
            return _json_error(request, 400, "judge-eval canary: no recording of this request")
        self.calls.append(key)
        return self.recording.respond(found, request)


@dataclass
class _Gate:
    """What may be sent for the item being judged live."""

    allowed: frozenset[Key]
    unrecorded_ok: bool  # a pairwise item whose recording stopped after its first order
    unrecorded: Key | None = None
    admitted: int = 0
    blocked: list[Key] = field(default_factory=list)


@dataclass
class _Served:
    """What a judge's server said about itself in its responses."""

    models: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"models": sorted(self.models), "system_fingerprints": sorted(self.fingerprints),
                "requests": self.requests, "statuses": dict(sorted(self.statuses.items()))}


def _guard_transports(inner: tuple[Any, Any], served: _Served) -> tuple[Any, Any, Any]:
    """(sync transport, async transport, holder): transports that send a request through the run's
    shared HTTP clients (loopback direct, remote hosts through any proxy setting) only when the
    gate in ``holder.gate`` admits it; any other is refused (HTTP 400, not retried) and noted."""
    import httpx

    class Holder:
        gate: _Gate | None = None

    holder = Holder()

    def admit(request: Any) -> bool:
        gate = holder.gate
        if gate is None:
            return False
        key = _request_key(request)
        if key in gate.allowed or (gate.unrecorded is not None and key == gate.unrecorded):
            gate.admitted += 1
            return True
        if gate.unrecorded_ok and gate.unrecorded is None and gate.admitted:
            gate.unrecorded = key
            gate.admitted += 1
            return True
        gate.blocked.append(key)
        return False

    def relay(request: Any, response: Any) -> Any:
        served.requests += 1
        served.statuses[str(response.status_code)] = served.statuses.get(str(response.status_code), 0) + 1
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            if isinstance(body.get("model"), str):
                served.models.add(body["model"])
            if body.get("system_fingerprint"):
                served.fingerprints.add(str(body["system_fingerprint"]))
        # The body is decoded already: no content-encoding, and httpx sets the length itself.
        headers = [(k, v) for k, v in response.headers.items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=response.content, request=request)

    refused = "judge-eval canary: not sent, this request was not checked against the recording"

    class Sync(httpx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            if not admit(request):
                return _json_error(request, 400, refused)
            return relay(request, inner[0].send(request))

    class Async(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: Any) -> Any:
            if not admit(request):
                return _json_error(request, 400, refused)
            return relay(request, await inner[1].send(request))

    return Sync(), Async(), holder


def _clients(sync_transport: Any, async_transport: Any) -> tuple[Any, Any]:
    import openai

    return (openai.DefaultHttpxClient(transport=sync_transport),
            openai.DefaultAsyncHttpxClient(transport=async_transport))


# --------------------------------------------------------------------------- results


def outcome(verdict: Verdict | None) -> str:
    """What "the verdict changed" compares: a conclusive verdict's corrected score (1 = the
    first stored answer wins; a score verdict's score), else its source."""
    if verdict is None:
        return "missing"
    if verdict.conclusive:
        return f"{verdict.first_answer_score:g}"
    return verdict.source


def _shown(verdict: Verdict | None) -> str:
    return "missing" if verdict is None else f"{verdict.source} {verdict.score}"


@dataclass
class JudgeResult:
    name: str
    role: str
    reference: bool
    gated: bool
    requested: bool
    model: str | None = None  # configured
    base_url: str | None = None
    skipped: str | None = None
    recorded: dict[str, Verdict] = field(default_factory=dict)  # item id -> recorded verdict
    live: dict[str, Verdict] = field(default_factory=dict)  # item id -> live verdict (compared items)
    mismatches: dict[str, list[str]] = field(default_factory=dict)  # item id -> description (not sent)
    failed: dict[str, str] = field(default_factory=dict)  # item id -> reason
    not_judged: dict[str, str] = field(default_factory=dict)  # item id -> why the recording has no call
    unrecorded_calls: list[str] = field(default_factory=list)  # item ids
    agree_before: int = 0  # compared items whose recorded verdict agrees with the reference's
    agree_after: int = 0  # ... whose live verdict does
    lost: int = 0  # agreed with the reference before, not now
    gained: int = 0
    p_value: float | None = None
    without_reference: int = 0  # compared items with no recorded reference verdict (never agreeing)
    served: _Served = field(default_factory=_Served)

    @property
    def compared(self) -> int:
        return len(self.live)

    @property
    def changed(self) -> list[tuple[str, str, str]]:
        return [(i, _shown(self.recorded.get(i)), _shown(v)) for i, v in self.live.items()
                if outcome(self.recorded.get(i)) != outcome(v)]

    @property
    def unchanged_share(self) -> float | None:
        return (self.compared - len(self.changed)) / self.compared if self.compared else None

    def not_checked(self) -> str | None:
        """Why no item of this judge was compared (None when some were)."""
        if self.compared:
            return None
        if self.skipped:
            return self.skipped
        parts = [f"{len(d)} {what}" for d, what in ((self.mismatches, "request mismatch(es), not sent"),
                                                    (self.failed, "failed call(s)"),
                                                    (self.not_judged, "item(s) without a recorded call"))
                 if d]
        return "no item compared: " + (", ".join(parts) if parts else "no item sampled")

    def fail_reasons(self, alpha: float, min_unchanged: float) -> list[str]:
        if not self.requested:
            return []
        if not self.compared:
            return [f"gated judge not checked: {self.not_checked()}"] if self.gated else []
        reasons = []
        if self.p_value is not None and self.p_value < alpha:
            reasons.append(f"agreement with the reference moved significantly: {self.lost} item(s) agreed "
                           f"before and not now, {self.gained} the other way, exact McNemar p = "
                           f"{self.p_value:.3g} < canary.alpha {alpha:g}")
        share = self.unchanged_share or 0.0  # some item was compared, so it is a number
        if share < min_unchanged:
            reasons.append(f"{self.compared - len(self.changed)} of {self.compared} verdicts unchanged = "
                           f"{share:.3g} < canary.min_unchanged {min_unchanged:g}")
        return reasons

    def to_json(self, alpha: float, min_unchanged: float) -> dict[str, Any]:
        return {
            "role": self.role, "reference": self.reference, "gated": self.gated, "requested": self.requested,
            "model_configured": self.model, "base_url": self.base_url, "skipped": self.skipped,
            "compared": self.compared, "unchanged_share": self.unchanged_share,
            "changed": [{"id": i, "recorded": old, "live": new} for i, old, new in self.changed],
            "mcnemar": None if self.p_value is None else {
                "agreements_recorded": self.agree_before, "agreements_live": self.agree_after, "lost": self.lost,
                "gained": self.gained, "p_value": self.p_value, "items_without_reference": self.without_reference},
            "mismatches": [{"id": i, "detail": lines} for i, lines in self.mismatches.items()],
            "failed": [{"id": i, "reason": r} for i, r in self.failed.items()],
            "not_judged": [{"id": i, "reason": r} for i, r in self.not_judged.items()],
            "unrecorded_calls": self.unrecorded_calls,
            "servers": self.served.to_json(),
            "fails": self.fail_reasons(alpha, min_unchanged),
        }


@dataclass
class CanaryResult:
    profile: str
    judge_kind: str
    seed: int
    requested_sample: int
    test_items: int
    sampled: list[str]
    alpha: float
    min_unchanged: float
    judges: list[JudgeResult]
    started_at: str
    finished_at: str = ""
    out_dir: Path | None = None  # set when the run directory is written

    @property
    def nothing_compared(self) -> bool:
        return not any(j.compared for j in self.judges if j.requested)

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(j.name, reason) for j in self.judges for reason in j.fail_reasons(self.alpha, self.min_unchanged)]

    @property
    def exit_status(self) -> int:
        if self.nothing_compared:
            return 2
        return 1 if self.failures else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "kind": "canary", "judging": self.judge_kind, "split": "test",
            "started_at": self.started_at, "finished_at": self.finished_at,
            "seed": self.seed,
            "sample": {"requested": self.requested_sample, "drawn": len(self.sampled), "test_items": self.test_items,
                       "all_items": self.requested_sample >= self.test_items, "ids": self.sampled},
            "canary": {"alpha": self.alpha, "min_unchanged": self.min_unchanged},
            "judges": {j.name: j.to_json(self.alpha, self.min_unchanged) for j in self.judges},
            "exit_status": self.exit_status,
        }


# --------------------------------------------------------------------------- the run


def canary(profile: Profile, *, sample: int, seed: int = 0, cassette_root: Path | None = None,
           out_dir: Path | None = None, study_dir: Path | None = None,
           judges: Sequence[str] | None = None) -> CanaryResult:
    """Re-run ``sample`` seeded test items of the profile's recorded judging stage live (module
    docstring); write the run directory and return the result (``exit_status`` says 0, 1 or 2)."""
    if profile.pipeline is None:
        raise ConfigError(f"profile {profile.name!r} has no [tool.judge_eval.profiles.{profile.name}.pipeline] "
                          "table, so it has no recorded judging stage to re-run; pick a profile with one "
                          "(--profile)")
    if sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {sample}")
    cassette_root = Path(cassette_root or profile.source.parent / "cassettes")
    folder = cassette_root / profile.name
    out_dir = _out_dir(out_dir, cassette_root)
    started = _now()
    with tempfile.TemporaryDirectory(prefix=f"judge-eval-canary-{profile.name}-") as work:
        copy = Path(work) / "cassettes"
        _copy_folder(folder, copy / profile.name)  # read from a copy: the committed files are never opened to write
        ctx = Context(profile=profile, cassette_root=copy, run_dir=Path(work) / "replay",
                      modes=modes_from(None, "none"))
        try:
            plan = stage_judges(ctx, cassette_root)
            _check_recorded(plan, folder, profile.name)
            wanted = _wanted(plan, judges)
            items = recorded_test_items(ctx, study_dir)
            chosen = sample_items(items, sample, seed)
            result = CanaryResult(
                profile=profile.name, judge_kind=ctx.config.judge, seed=seed, requested_sample=sample,
                test_items=len(items), sampled=[i.id for i in chosen], alpha=profile.canary.alpha,
                min_unchanged=profile.canary.min_unchanged, judges=[], started_at=started)
            reference = next(j for j in plan if j.reference)
            ref_result = _judge(ctx, reference, chosen, requested=reference.name in wanted, recorded_from=copy)
            ref_verdicts = ref_result.recorded if reference.unavailable is None else {
                i.id: v for i in chosen if (v := i.verdict(reference.name)) is not None}
            result.judges.append(ref_result)
            for judge in plan:
                if judge.reference:
                    continue
                found = _judge(ctx, judge, chosen, requested=judge.name in wanted, recorded_from=copy)
                _mcnemar(found, chosen, reference.name, ref_verdicts)
                result.judges.append(found)
        finally:
            ctx.close()
    result.finished_at = _now()
    result.out_dir = out_dir or Path(tempfile.mkdtemp(prefix=f"judge-eval-canary-{profile.name}-run-"))
    write_canary_run(result, chosen, ref_verdicts, reference.name)
    return result


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _out_dir(out_dir: Path | None, cassette_root: Path) -> Path | None:
    """``--out`` checked before any work (None: a temporary folder is made at the end)."""
    if out_dir is None:
        return None
    out = Path(out_dir)
    if out.resolve().is_relative_to(cassette_root.resolve()):
        raise ConfigError(f"--out {out} is inside the cassettes folder {cassette_root}; the canary never writes "
                          "there (cassettes hold only what a recording got): pass a folder outside it")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out {out}: exists and is not a folder; pass a new (or empty) folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; pass a new (or empty) folder, a canary never "
                          "writes over a run")
    return out


def _copy_folder(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*")) if src.is_dir() else []:
        if path.is_file():
            shutil.copyfile(path, dest / path.name)


def _check_recorded(plan: list[StageJudge], folder: Path, profile: str) -> None:
    """At least one judge's test cassette must exist: else there is no recorded stage to re-run."""
    if any(j.cassette is not None and (folder / j.cassette.path.name).is_file() for j in plan):
        return
    names = ", ".join(j.cassette.path.name for j in plan if j.cassette is not None)
    raise ConfigError(f"no recorded judging stage for profile {profile}: none of {names} is in {folder}. "
                      f"Record it first: judge-eval record --profile {profile}")


def _wanted(plan: list[StageJudge], judges: Sequence[str] | None) -> set[str]:
    known = [j.name for j in plan]
    if not judges:
        return set(known)
    unknown = [j for j in judges if j not in known]
    if unknown:
        raise ConfigError(f"--judge {', '.join(unknown)}: not a judge of the recorded judging stage; its judges: "
                          f"{', '.join(known)}")
    return set(judges)


def recorded_test_items(ctx: Context, study_dir: Path | None) -> list[QAItem]:
    """The test items the recorded judging stage judged, without its verdicts (the study's own
    judges' verdicts stay on a study item: its teacher's are the reference)."""
    from judge_eval.core.store import read_run

    cfg = ctx.config
    if cfg.source == "items":
        given = read_run(cfg.items, require=("test",), parts=("test",))
        items = [dataclasses.replace(i, evaluations=()) for i in given.test]
    elif cfg.source == "study":
        if study_dir is None:
            raise ConfigError(f"profile {ctx.profile.name} judges the study's test pairs: give the study's folder "
                              "(--study-dir, default ../shared/seed_run)")
        items = list(read_run(study_dir, require=("test",), parts=("test",)).test)
    else:
        from judge_eval.live.pipeline import stage_answers, stage_corpus, stage_questions

        docs = stage_corpus(ctx, "test")
        items = stage_answers(ctx, "test", docs, stage_questions(ctx, "test", docs))
    if cfg.judge == "correctness":
        from judge_eval.live.correctness import pointwise_items

        items = pointwise_items(items)
    if not items:
        raise JudgeEvalError(f"profile {ctx.profile.name}: the recording has no test item to re-run")
    return items


def _judge_one(ctx: Context, llm: Any, judge: str, item: QAItem) -> Verdict:
    """One item through the stage's own evaluator code (pairwise both orders, or correctness)."""
    cfg = ctx.config
    if cfg.judge == "correctness":
        from judge_eval.live.correctness import score_item

        verdict, _ = ctx.run_async(score_item(item, llm, judge, cfg.score_scale))
    else:
        from judge_eval.live.judging import judge_item

        verdict, _ = ctx.run_async(judge_item(item, llm, judge))
    return verdict


def _judge(ctx: Context, judge: StageJudge, items: list[QAItem], *, requested: bool,
           recorded_from: Path) -> JudgeResult:
    """One judge: recorded verdicts and request checks for every item (offline), then, when asked
    for, the live verdicts of the checked items."""
    result = JudgeResult(name=judge.name, role=judge.role, reference=judge.reference, gated=judge.gated,
                         requested=requested, model=getattr(judge.spec, "model", None),
                         base_url=getattr(judge.spec, "base_url", None))
    if judge.unavailable is not None:
        result.skipped = judge.unavailable
        return result
    copy = recorded_from / judge.cassette.path.relative_to(judge.cassette.root)
    if not copy.is_file():
        result.skipped = f"no cassette {judge.cassette.path}; record it with: {judge.cassette.rerecord_command}"
        return result
    if judge.spec.api not in GUARDED_APIS:
        result.skipped = (f"api {judge.spec.api!r}: the canary re-asks judges on OpenAI-compatible APIs only "
                          f"({', '.join(GUARDED_APIS)}), whose every request it can check before it is sent")
        return result
    try:
        recording = Recording(judge.cassette, copy)
    except JudgeEvalError as exc:  # corrupt, or of another profile or stage: named as committed
        result.skipped = str(exc).replace(str(copy), str(judge.cassette.path))
        return result
    approved = _check_items(ctx, judge, items, recording, result)
    if not requested:
        return result
    reason = _unavailable_live(ctx, judge.spec)
    if reason is not None:
        result.skipped = reason
        return result
    _run_live(ctx, judge, items, approved, result)
    return result


def _check_items(ctx: Context, judge: StageJudge, items: list[QAItem], recording: Recording,
                 result: JudgeResult) -> dict[str, tuple[list[Key], Verdict]]:
    """Each item judged against the recording, nothing sent: its recorded verdict and the
    requests it makes, or a mismatch. Returns item id -> (requests, recorded verdict)."""
    import httpx

    from judge_eval.live.clients import build_llm

    replayer = _Replayer(recording)
    transport = httpx.MockTransport(replayer)
    http = _clients(transport, transport)
    approved: dict[str, tuple[list[Key], Verdict]] = {}
    try:
        llm = build_llm(judge.spec, replay=True, http=http)  # no retry: a refused request ends the item
        for item in items:
            replayer.reset()
            if item.extra.get("error"):
                result.not_judged[item.id] = "the answers stage failed for this item: no judge call was recorded"
                continue
            try:
                verdict = _judge_one(ctx, llm, judge.name, item)
            except Exception as exc:  # noqa: BLE001 - a miss or an unreadable recording ends this item only
                if not replayer.misses:
                    result.not_judged[item.id] = (f"its recorded response could not be read "
                                                  f"({type(exc).__name__}); re-record: "
                                                  f"{judge.cassette.rerecord_command}")
                    continue
            if replayer.misses:
                result.mismatches[item.id] = [line for key in replayer.misses for line in recording.describe_miss(key)]
                continue
            result.recorded[item.id] = verdict
            approved[item.id] = (list(replayer.calls), verdict)
    finally:
        http[0].close()
        ctx.run_async(http[1].aclose())
    return approved


def _unavailable_live(ctx: Context, spec: Any) -> str | None:
    """Why the judge's model cannot be asked now (no key, server unreachable, model not served),
    or None. ``GET <base_url>/models`` lists the served models on OpenAI and llama.cpp; a server
    without that route (404) or another answer is asked anyway."""
    import httpx

    from judge_eval.live.clients import api_key
    from judge_eval.live.pipeline import unreachable

    try:
        key = api_key(spec, replay=False)
    except ConfigError as exc:
        return str(exc)
    base = (spec.base_url or OPENAI_BASE_URL).rstrip("/")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = ctx.http[0].get(f"{base}/models", headers=headers, timeout=min(spec.timeout, PROBE_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - any failure to get an answer skips the judge, with its reason
        found = unreachable(exc)
        if found is not None:
            return f"cannot reach {found[0]} ({found[1]})"
        if isinstance(exc, httpx.HTTPError):
            return f"no answer from {base}/models ({type(exc).__name__}: {str(exc)[:160]})"
        raise
    if response.status_code in (401, 403):
        where = f"the key in {spec.api_key_env}" if spec.api_key_env else "the request"
        return f"{base} refused {where} (HTTP {response.status_code} on /models)"
    if response.status_code != 200:
        return None
    try:
        served = [m.get("id") for m in response.json().get("data") or [] if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return None
    if served and spec.model not in served:
        shown = ", ".join(str(s) for s in served[:8]) + (", ..." if len(served) > 8 else "")
        return f"model {spec.model} is not served at {base} (it serves: {shown})"
    return None


def _run_live(ctx: Context, judge: StageJudge, items: list[QAItem], approved: dict[str, tuple[list[Key], Verdict]],
              result: JudgeResult) -> None:
    from judge_eval.core.items import PAIRWISE
    from judge_eval.live.clients import build_llm

    sync_t, async_t, holder = _guard_transports(ctx.http, result.served)
    http = _clients(sync_t, async_t)
    try:
        llm = build_llm(judge.spec, replay=False, policy=ctx.retry, http=http)
        for item in items:
            if item.id not in approved:
                continue
            calls, recorded = approved[item.id]
            # The evaluator flips only after a parsed first order: see the module docstring.
            holder.gate = gate = _Gate(allowed=frozenset(calls), unrecorded_ok=(
                item.kind == PAIRWISE and len(calls) == 1 and recorded.source == PARSE_FAILURE))
            try:
                verdict = _judge_one(ctx, llm, judge.name, item)
            except Exception as exc:  # noqa: BLE001 - one item's failure is reported, the others go on
                result.failed[item.id] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                continue
            finally:
                holder.gate = None
            if gate.blocked:
                result.mismatches[item.id] = ["live: the evaluator built a request other than the one checked "
                                              "against the recording; it was not sent"]
                continue
            if gate.unrecorded is not None:
                result.unrecorded_calls.append(item.id)
            if verdict.source == ERROR:
                result.failed[item.id] = str(verdict.extra.get("error") or "the call failed")
                continue
            result.live[item.id] = verdict
    finally:
        http[0].close()
        ctx.run_async(http[1].aclose())


def _mcnemar(result: JudgeResult, items: list[QAItem], reference: str, ref_verdicts: dict[str, Verdict]) -> None:
    """Agreement with the reference's recorded verdict, recorded vs live, over the compared items."""
    from judge_eval.gating.compare import agreement_vector, mcnemar_exact

    if not result.compared:
        return
    compared = [i for i in items if i.id in result.live]

    def with_verdict(item: QAItem, verdict: Verdict) -> QAItem:
        ref = ref_verdicts.get(item.id)
        return dataclasses.replace(item, evaluations=tuple(v for v in (ref, verdict) if v is not None))

    old = agreement_vector([with_verdict(i, result.recorded[i.id]) for i in compared], result.name, reference)
    new = agreement_vector([with_verdict(i, result.live[i.id]) for i in compared], result.name, reference)
    result.without_reference = sum(1 for i in compared if i.id not in ref_verdicts)
    result.agree_before, result.agree_after = int(old.sum()), int(new.sum())
    result.lost = int(((old == 1) & (new == 0)).sum())
    result.gained = int(((old == 0) & (new == 1)).sum())
    result.p_value = mcnemar_exact(result.lost, result.gained)


def write_canary_run(result: CanaryResult, items: list[QAItem], ref_verdicts: dict[str, Verdict],
                     reference: str) -> Path:
    """The canary's run directory: live verdicts, recorded verdicts, run.json."""
    from judge_eval.core.store import QA_FILES, Run, write_qa, write_run

    def with_verdicts(item: QAItem, pick: str) -> QAItem:
        found: list[Verdict] = []
        for judge in result.judges:
            verdicts = judge.live if pick == "live" else (ref_verdicts if judge.name == reference else judge.recorded)
            if item.id in verdicts:
                found.append(verdicts[item.id])
        return dataclasses.replace(item, evaluations=tuple(found))

    out = result.out_dir
    assert out is not None
    write_run(Run(path=out, test=tuple(with_verdicts(i, "live") for i in items), meta=result.to_json()))
    write_qa(out / RECORDED_DIR / QA_FILES["test"], [with_verdicts(i, "recorded") for i in items])
    return out


# --------------------------------------------------------------------------- the text


def _cell(value: float | None, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def render(result: CanaryResult) -> str:
    """What ``judge-eval canary`` prints."""
    lines = [f"judge-eval canary: profile {result.profile}, {result.judge_kind} judging stage, test split"]
    drawn = len(result.sampled)
    if result.requested_sample >= result.test_items:
        lines.append(f"sample: all {result.test_items} test items (--sample {result.requested_sample} is not fewer "
                     f"than the recording has)")
    else:
        lines.append(f"sample: {drawn} of {result.test_items} test items (--seed {result.seed})")
    lines.append(f"drift rules: exact McNemar p < {result.alpha:g} (canary.alpha), share unchanged < "
                 f"{result.min_unchanged:g} (canary.min_unchanged)")
    head = ("judge", "role", "compared", "changed", "unchanged", "agree rec->live (lost/gained)", "McNemar p", "")
    rows = []
    for j in result.judges:
        role = j.role + (", reference" if j.reference else "") + (", gated" if j.gated else "")
        fails = j.fail_reasons(result.alpha, result.min_unchanged)
        state = ("not asked (--judge)" if not j.requested else "FAIL" if fails
                 else "skipped" if j.skipped else "not checked" if not j.compared else "PASS")
        agree = "-" if j.p_value is None else f"{j.agree_before} -> {j.agree_after} ({j.lost}/{j.gained})"
        rows.append((j.name, role, str(j.compared), str(len(j.changed)) if j.compared else "-",
                     _cell(j.unchanged_share, ".3f"), agree, _cell(j.p_value), state))
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
    for row in [head, *rows]:
        lines.append("  " + "  ".join(cell.ljust(widths[k]) for k, cell in enumerate(row)).rstrip())
    for j in result.judges:
        lines += _details(j)
    for name, reason in result.failures:
        lines.append(f"FAIL {name}: {reason}")
    checked = [j.name for j in result.judges if j.requested and j.compared]
    if result.exit_status == 2:
        lines.append(f"NOTHING CHECKED: profile {result.profile}: no judge had an item compared; see the reasons above")
    else:
        verdict = "FAIL" if result.failures else "PASS"
        lines.append(f"{verdict}: profile {result.profile}, judge(s) checked: {', '.join(checked)}; "
                     f"{len(result.failures)} failure(s)")
    lines.append(f"run directory: {result.out_dir}")
    return "\n".join(lines) + "\n"


def _details(j: JudgeResult) -> list[str]:
    out = []
    if j.skipped:
        out.append(f"{j.name}: skipped: {j.skipped}")
    for item, lines in j.mismatches.items():
        out.append(f"{j.name}: request mismatch on item {item}, not sent:")
        out += [f"    {line}" for line in lines]
    for item, reason in j.failed.items():
        out.append(f"{j.name}: call failed on item {item} (not compared): {reason}")
    for item, reason in j.not_judged.items():
        out.append(f"{j.name}: item {item} not compared: {reason}")
    if j.unrecorded_calls:
        out.append(f"{j.name}: {len(j.unrecorded_calls)} flipped-order call(s) sent without a recorded counterpart "
                   f"(recorded first order unparseable, live one parsed): {', '.join(j.unrecorded_calls)}")
    if j.without_reference:
        out.append(f"{j.name}: {j.without_reference} compared item(s) have no recorded reference verdict (see the "
                   "reference's row); McNemar counts them as agreeing neither before nor now")
    for item, old, new in j.changed:
        out.append(f"{j.name}: changed {item}: recorded {old} -> live {new}")
    if j.served.requests:
        s = j.served
        out.append(f"{j.name}: server reported model(s) {', '.join(sorted(s.models)) or 'none'}"
                   + (f", system_fingerprint {', '.join(sorted(s.fingerprints))}" if s.fingerprints else "")
                   + f"; {s.requests} request(s) sent")
    return out

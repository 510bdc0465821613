"""The live pipeline: every stage as a plain function over typed records, each inside its own
cassette. The session fixtures and ``judge-eval record`` call these same functions.

corpus -> questions -> answers -> teacher verdicts (+ fine-tuning events) -> resolved events ->
distillation -> test verdicts of the base and the distilled student -> run directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

from judge_eval.config.profiles import Profile
from judge_eval.errors import ConfigError, JudgeEvalError, exception_chain
from judge_eval.config.pipeline_spec import ModelSpec, PipelineConfig
from judge_eval.core.items import QAItem, Verdict
from judge_eval.recording.cassettes import CassetteSpec, cassette
from judge_eval.core.store import Run, write_events, write_run

#: Stages in data-flow order; re-recording one stage re-records every stage after it.
STAGES = ("corpus", "questions", "answers", "teacher", "distill", "students")
PACKAGES = ("judge-eval", "llama-index-core", "llama-index-llms-openai", "llama-index-llms-openai-like",
            "llama-index-embeddings-openai-like", "openai", "vcrpy", "numpy", "scikit-learn")


@dataclass
class Context:
    """What every stage needs: the profile, where cassettes and the run go, and the record mode
    of each stage (``none`` replays)."""

    profile: Profile
    cassette_root: Path
    run_dir: Path
    modes: dict[str, str]
    #: Record mode only: starts a llama.cpp server for a trained adapter, returns its base URL.
    serve_adapter: Callable[[Path, str], str] | None = None
    #: Record mode only: where the student's GGUF and llama.cpp's scripts are (a
    #: ``judge_eval.distillation.lora.LocalFiles``; ``judge-eval record`` passes its local_models).
    local_files: Any = None
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    _loop: Any = field(default=None, repr=False)
    _retry: Any = field(default=None, repr=False)
    _cassette: Any = field(default=None, repr=False)
    _http: Any = field(default=None, repr=False)
    #: Items (or calls, for the question writer) in flight at once in live stages; 1 is sequential.
    concurrency: int = 1
    #: Body-hash profiles: third-party text (the study's files) masked wherever a model's stored
    #: output reproduces a run of it, not only where it echoes its request.
    sensitive_text: str = field(default="", repr=False)

    @property
    def retry(self) -> Any:
        """One retry policy per run, so every wait it took is counted in run.json."""
        if self._retry is None:
            from judge_eval.live.retry import RetryPolicy

            cfg = self.config.retry
            self._retry = RetryPolicy(attempts=cfg.attempts, base=cfg.base, cap=cfg.cap)
        return self._retry

    def run_async(self, coro: Any) -> Any:
        """Run a coroutine on the context's one event loop. Async HTTP clients close themselves
        on that loop when they are collected; a loop per stage would be closed by then and each
        client would log "Event loop is closed"."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    @property
    def http(self) -> tuple[Any, Any]:
        """One pooled sync and one async HTTP client (the openai SDK's defaults) shared by every
        model client of the run: no TLS setup per model client, and closed by ``close`` on the
        run's loop instead of by the garbage collector after the loop is gone."""
        if self._http is None:
            from judge_eval.live.clients import http_clients

            self._http = http_clients()  # loopback direct, remote APIs through any proxy setting
        return self._http

    def close(self) -> None:
        """Close the shared HTTP clients, then the loop."""
        if self._http is not None:
            sync_client, async_client = self._http
            self._http = None
            sync_client.close()
            self.run_async(async_client.aclose())
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def config(self) -> PipelineConfig:
        if self.profile.pipeline is None:
            raise ConfigError(f"profile {self.profile.name!r} has no [tool.judge_eval.profiles."
                              f"{self.profile.name}.pipeline] table, so it cannot run the live pipeline")
        return self.profile.pipeline

    def replay(self, stage: str) -> bool:
        return self.modes.get(stage, "none") == "none"

    def spec(self, stage: str, split: str, *, name: str | None = None) -> CassetteSpec:
        return CassetteSpec(root=self.cassette_root, profile=self.profile.name, stage=name or stage,
                            split=split, body_hash=self.profile.body_hash, record_stage=stage,
                            sensitive_text=self.sensitive_text)

    def run_stage(self, stage: str, split: str, fn: Callable[[bool], Any], *, name: str | None = None) -> Any:
        """Run ``fn(replay)`` inside the cassette ``<name>-<split>`` (``name`` defaults to the
        stage) in the stage's record mode, and note what the servers said."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        spec = self.spec(stage, split, name=name)
        mode = self.modes.get(stage, "none")
        try:
            with cassette(spec, mode, partial_dir=self.partial_dir) as cass:
                self._cassette = cass
                try:
                    result = fn(self.replay(stage))
                finally:
                    self._cassette = None
        except Exception as exc:
            found = unreachable(exc) if mode != "none" else None
            if found is None:
                raise
            host, reason = found
            raise JudgeEvalError(f"recording stage {name or stage} ({split}) of profile {self.profile.name}: "
                                 f"cannot reach {host} ({reason}); check the network or proxy") from exc
        self._observe(f"{name or stage}-{split}", cass)
        return result

    @property
    def partial_dir(self) -> Path:
        """Where a stage's cassette is recorded until the stage succeeds; a failed recording's
        calls stay there, and a resumed one (mode ``new_episodes``) continues from them."""
        return self.run_dir / "partial-cassettes"

    def save_cassette(self) -> None:
        """While recording, write the cassette as it is now (after each finished item), so that
        an interrupted recording keeps every call it paid for."""
        from judge_eval.recording.vcr_private import save_now

        cass = self._cassette
        if cass is not None and cass.record_mode != "none":
            save_now(cass)  # vcrpy saves only when the cassette's block exits

    def journal(self, name: str, split: str) -> Any:
        from judge_eval.core.journal import Journal

        return Journal(self.run_dir / "journal" / f"{name}-{split}.jsonl")

    def _observe(self, key: str, cass: Any) -> None:
        models, fingerprints, usage = set(), set(), {"prompt_tokens": 0, "completion_tokens": 0}
        by_model: dict[str, dict[str, int]] = {}
        batch_by_model: dict[str, dict[str, int]] = {}  # tokens of batch result lines, billed at the batch price

        def count(body: dict[str, Any], tally: dict[str, dict[str, int]]) -> None:
            model = body.get("model") if isinstance(body.get("model"), str) else "unknown"
            models.add(model)
            if body.get("system_fingerprint"):
                fingerprints.add(str(body["system_fingerprint"]))
            mine = tally.setdefault(model, {"prompt_tokens": 0, "completion_tokens": 0})
            for k in usage:
                n = int((body.get("usage") or {}).get(k) or 0)
                usage[k] += n
                mine[k] += n

        for response in cass.responses:
            try:
                raw = response["body"]["string"]
            except (KeyError, TypeError):
                continue
            try:
                body = json.loads(raw)
            except (TypeError, ValueError):
                body = None
            if isinstance(body, dict) and "custom_id" not in body:
                count(body, by_model)
            else:  # a downloaded batch results file (JSON lines; one line parses as JSON), or no JSON
                for line in _batch_result_bodies(raw):
                    count(line, batch_by_model)
        online, batch = self._cost(by_model), self._cost(batch_by_model)
        every = {m: {k: by_model.get(m, {}).get(k, 0) + batch_by_model.get(m, {}).get(k, 0) for k in usage}
                 for m in set(by_model) | set(batch_by_model)}
        whole = self._cost(every)
        discount = self.config.batch_discount
        self.observed[key] = {"requests": len(cass.responses), "models": sorted(models - {"unknown"}),
                              "system_fingerprints": sorted(fingerprints), "usage": usage,
                              "usage_by_model": every, "cost_usd": _round(whole),
                              # the same tokens at the batch price, and what this cassette's calls were billed
                              "batch_cost_usd": _round(None if whole is None else whole * discount),
                              "billed": "batch" if batch_by_model else "online",
                              "billed_cost_usd": _round(None if online is None or batch is None
                                                        else online + batch * discount)}

    def cost(self, by_model: dict[str, dict[str, int]]) -> float | None:
        """Estimated cost from the profile's price table (None when a used model has no price)."""
        return _round(self._cost(by_model))

    def _cost(self, by_model: dict[str, dict[str, int]]) -> float | None:
        prices = self.config.prices
        total = 0.0
        for model, tokens in by_model.items():
            if not tokens["prompt_tokens"] and not tokens["completion_tokens"]:
                continue
            price = prices.get(model) or next((p for m, p in prices.items() if model.startswith(m)), None)
            if price is None:
                return None
            total += tokens["prompt_tokens"] / 1e6 * price.prompt + tokens["completion_tokens"] / 1e6 * price.completion
        return total

    def cost_summary(self) -> dict[str, Any]:
        """Every cassette's tokens at the online and at the batch price, and as billed; None where
        a used model has no price in ``pipeline.prices``."""
        def total(field: str) -> float | None:
            values = [o.get(field) for o in self.observed.values()]
            return None if any(v is None for v in values) else round(sum(values), 4)

        return {"batch_discount": self.config.batch_discount, "online_usd": total("cost_usd"),
                "batch_usd": total("batch_cost_usd"), "billed_usd": total("billed_cost_usd")}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _batch_result_bodies(raw: Any) -> list[dict[str, Any]]:
    """The response bodies in a downloaded batch output file (JSON lines with a ``custom_id``);
    nothing for any other body that is not JSON."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw or "")
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return []
        if not isinstance(record, dict) or "custom_id" not in record:
            return []
        body = (record.get("response") or {}).get("body") if isinstance(record.get("response"), dict) else None
        if isinstance(body, dict):
            out.append(body)
    return out


def _connect_errors() -> tuple[type, ...]:
    """Exception types that mean a connection could not be made (requests, httpx, aiohttp)."""
    kinds: list[type] = []
    try:
        import requests

        kinds.append(requests.exceptions.ConnectionError)  # refused, DNS, proxy, TLS, connect timeout
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx

        kinds += [httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import aiohttp

        kinds.append(aiohttp.ClientConnectorError)
    except ImportError:
        pass
    return tuple(kinds)


def _host_of(exc: BaseException) -> str | None:
    from urllib.parse import urlsplit

    if getattr(exc, "host", None):  # aiohttp
        port = getattr(exc, "port", None)
        return f"{exc.host}:{port}" if port not in (None, 80, 443) else str(exc.host)
    try:
        request = exc.request  # requests and httpx keep the request they could not send
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when it has none
        return None
    url = getattr(request, "url", None)
    if url is None:
        return None
    parts = urlsplit(str(url))
    if not parts.hostname:
        return None
    return parts.netloc.rpartition("@")[2] if parts.port else parts.hostname


def unreachable(exc: BaseException) -> tuple[str, str] | None:
    """(host, short reason) when ``exc`` or what it was raised from is a failure to connect to
    a host (no network, DNS, a refused connection, a proxy), else None. A server that answered,
    even badly, is not unreachable."""
    kinds = _connect_errors()
    chain = exception_chain(exc)
    for link in chain:
        if isinstance(link, kinds):
            host = _host_of(link) or next((h for h in map(_host_of, chain) if h), None)
            if host is None:
                continue
            reason = next((line for line in str(chain[-1]).splitlines() if line.strip()), type(chain[-1]).__name__)
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            return host, reason
    return None


def _llm(spec: ModelSpec, replay: bool, ctx: Context | None = None) -> Any:
    from judge_eval.live.clients import build_llm

    policy = ctx.retry if ctx is not None else None
    return build_llm(spec, replay=replay, policy=policy, limit=ctx.concurrency if ctx is not None else 0,
                     http=ctx.http if ctx is not None else None, replay_retries=True)


# --------------------------------------------------------------------------- stages


def stage_corpus(ctx: Context, split: str) -> list[Any]:
    from judge_eval.live.corpus import load_documents

    if ctx.config.corpus_kind == "wikipedia":
        docs = ctx.run_stage("corpus", split, lambda replay: load_documents(ctx.config, split))
    else:
        docs = load_documents(ctx.config, split)
    ctx.counts[f"documents_{split}"] = len(docs)
    return docs


def stage_questions(ctx: Context, split: str, documents: list[Any]) -> list[str]:
    from judge_eval.live.questions import generate_questions

    cfg = ctx.config

    def run(replay: bool) -> list[str]:
        llm = _llm(cfg.question_writer, replay, ctx)
        return ctx.run_async(generate_questions(documents, llm, count=cfg.questions[split],
                                              prompt=cfg.question_prompt, chunk_size=cfg.chunk_size))

    questions = ctx.run_stage("questions", split, run)
    if not questions:
        raise JudgeEvalError(f"the question writer produced no usable question for {split}; look at the "
                             f"responses in {ctx.spec('questions', split).path}")
    ctx.counts[f"questions_{split}"] = len(questions)
    return questions


def stage_answers(ctx: Context, split: str, documents: list[Any], questions: list[str]) -> list[QAItem]:
    from judge_eval.live.answers import answer_questions, build_retriever, query_engines
    from judge_eval.live.clients import build_embeddings

    cfg = ctx.config

    def run(replay: bool) -> list[QAItem]:
        retriever = build_retriever(documents, build_embeddings(cfg.embeddings, replay=replay, http=ctx.http),
                                    top_k=cfg.top_k, chunk_size=cfg.chunk_size)
        engines = query_engines(retriever, {a.label: _llm(a, replay, ctx) for a in cfg.answerers})
        return ctx.run_async(answer_questions(questions, engines, split=split, seed=cfg.seed,
                                              on_item_done=ctx.save_cassette, concurrency=ctx.concurrency))

    items = ctx.run_stage("answers", split, run)
    ctx.counts[f"items_{split}"] = len(items)
    return items


def _with_verdicts(items: list[QAItem], verdicts: list[Verdict]) -> list[QAItem]:
    return [dataclasses.replace(item, evaluations=item.evaluations + (verdict,))
            for item, verdict in zip(items, verdicts, strict=True)]


def stage_judge(ctx: Context, stage: str, name: str, split: str, items: list[QAItem], spec: ModelSpec,
                judge: str, *, capture: bool = False) -> tuple[list[QAItem], list[Any]]:
    from judge_eval.live.judging import judge_item, judge_items

    def run(replay: bool):
        return ctx.run_async(judge_items(items, _llm(spec, replay, ctx), judge, capture=capture,
                                         journal=None if replay else ctx.journal(name, split),
                                         on_item_done=ctx.save_cassette, concurrency=ctx.concurrency))

    if uses_batch(ctx, stage, name, split):
        from judge_eval.core.items import ORDERS

        run = _in_batch(ctx, stage, name, split, items, spec, judge, ORDERS,
                        lambda item, llm: judge_item(item, llm, judge, capture=capture))
    verdicts, events = ctx.run_stage(stage, split, run, name=name)
    sources: dict[str, int] = {}
    for v in verdicts:
        sources[v.source] = sources.get(v.source, 0) + 1
    ctx.counts[f"verdicts_{judge}_{split}"] = sources
    return _with_verdicts(items, verdicts), events


def uses_batch(ctx: Context, stage: str, name: str, split: str) -> bool:
    """Whether a judging stage runs through the Batch API (``judge_eval.live.batch``). A replayed
    stage follows its recording: a cassette that created a batch was recorded in batch mode,
    whatever the profile says now (``judge-eval record --batch`` sets it for one recording only).
    A recorded stage follows ``pipeline.batch``, or a batch this run directory already submitted
    (a resumed recording polls it)."""
    from judge_eval.live.batch import recorded_as_batch, safe_name

    path = ctx.spec(stage, split, name=name).path
    mode = ctx.modes.get(stage, "none")
    if mode == "none" or (mode == "once" and path.is_file()):
        return path.is_file() and recorded_as_batch(path)
    if ctx.config.batch:
        return True
    return mode == "new_episodes" and any((ctx.run_dir / "batches").glob(
        f"{safe_name(f'{name}-{split}-')}*.batch.json"))


def _in_batch(ctx: Context, stage: str, name: str, split: str, items: list[QAItem], spec: ModelSpec, judge: str,
              orders: tuple[str, ...], judge_one: Callable[[Any, Any], Any]) -> Callable[[bool], Any]:
    """The stage function of a judging stage in batch mode: the same judge code (``judge_one``)
    builds the requests and reads the results (``judge_eval.live.batch.BatchStage``)."""
    from judge_eval.live.batch import BatchStage, PollSettings, check_nothing_unfinished, check_supported, safe_name

    check_supported(spec)
    stem = safe_name(f"{name}-{split}-{judge}")
    mode = ctx.modes.get(stage, "none")
    if mode == "all" or (mode == "once" and not ctx.spec(stage, split, name=name).path.is_file()):
        check_nothing_unfinished(ctx.run_dir / "batches", stem)  # a new recording: nothing to resume
    if ctx.profile.body_hash:
        raise ConfigError(f"profile {ctx.profile.name} stores request-body hashes (its requests carry third-party "
                          "text), but a batch's downloaded results are stored whole and cannot be masked; set "
                          "pipeline.batch = false (or drop --batch)")
    poll = ctx.config.batch_poll

    def run(replay: bool) -> tuple[list[Verdict], list[Any]]:
        import openai

        from judge_eval.live.clients import LIVE_RETRIES, api_key, build_llm

        def client() -> Any:
            return openai.OpenAI(api_key=api_key(spec, replay=replay), base_url=spec.base_url,
                                 max_retries=0 if replay else LIVE_RETRIES, http_client=ctx.http[0])

        batch = BatchStage(
            name=stem, folder=ctx.run_dir / "batches", what=f"{spec.role} {spec.model}",
            base_url=spec.base_url, build=lambda http: build_llm(spec, replay=True, http=http), client=client,
            replay=replay, poll=PollSettings(poll.first_wait, poll.max_wait, poll.timeout), run_async=ctx.run_async,
            resume=ctx.modes.get(stage) == "new_episodes",
            played_back=lambda: ctx._cassette.play_count if ctx._cassette is not None else 0,
            save=ctx.save_cassette)
        result = batch.judge(items, judge_one, orders)
        ctx.counts[f"batch_{name}_{split}"] = batch.stats.to_json()
        return result

    return run


def stage_score(ctx: Context, stage: str, name: str, split: str, items: list[QAItem], spec: ModelSpec,
                judge: str, *, capture: bool = False) -> tuple[list[QAItem], list[Any]]:
    """``stage_judge`` for ``pipeline.judge = "correctness"``: one ``CorrectnessEvaluator`` call per
    pointwise item, score verdicts on the profile's scale (``judge_eval.live.correctness``)."""
    from judge_eval.live.correctness import score_item, score_items

    scale = ctx.config.score_scale

    def run(replay: bool):
        return ctx.run_async(score_items(items, _llm(spec, replay, ctx), judge, scale, capture=capture,
                                         journal=None if replay else ctx.journal(name, split),
                                         on_item_done=ctx.save_cassette, concurrency=ctx.concurrency))

    if uses_batch(ctx, stage, name, split):
        run = _in_batch(ctx, stage, name, split, items, spec, judge, ("score",),
                        lambda item, llm: score_item(item, llm, judge, scale, capture=capture))
    verdicts, events = ctx.run_stage(stage, split, run, name=name)
    sources: dict[str, int] = {}
    for v in verdicts:
        sources[v.source] = sources.get(v.source, 0) + 1
    ctx.counts[f"verdicts_{judge}_{split}"] = sources
    return _with_verdicts(items, verdicts), events


def stage_teacher(ctx: Context, split: str, items: list[QAItem]) -> tuple[list[QAItem], list[Any]]:
    if ctx.config.judge == "correctness":  # each answer its own item, rated on a scale
        from judge_eval.live.correctness import TEACHER_CASSETTE, pointwise_items

        items = pointwise_items(items)
        ctx.counts[f"pointwise_items_{split}"] = len(items)
        return stage_score(ctx, "teacher", TEACHER_CASSETTE, split, items, ctx.config.teacher,
                           ctx.profile.reference, capture=(split == "train"))
    return stage_judge(ctx, "teacher", "teacher", split, items, ctx.config.teacher, ctx.profile.reference,
                       capture=(split == "train"))


def stage_resolve(ctx: Context, train: list[QAItem], events: list[Any]) -> list[Any]:
    from judge_eval.core.events import key_events, resolve_events

    if ctx.config.judge == "correctness":  # the event of every train item the teacher scored
        from judge_eval.live.correctness import TEACHER_CASSETTE, resolve_score_events

        resolved = resolve_score_events(train, events, teacher=ctx.profile.reference)
        cassette_name = TEACHER_CASSETTE
    else:
        resolved = resolve_events(train, key_events(events), teacher=ctx.profile.reference)
        cassette_name = "teacher"
    ctx.counts["events"] = len(events)
    ctx.counts["resolved_events"] = len(resolved)
    if not resolved:
        raise JudgeEvalError("the teacher gave no conclusive verdict on any train item, so there is "
                             f"nothing to distil; look at its outputs in the {cassette_name}-train cassette")
    return resolved


def manifest_path(ctx: Context) -> Path:
    return ctx.cassette_root / ctx.profile.name / "distill-train.json"


def stage_distill(ctx: Context, resolved: list[Any]) -> Any:
    """Write the training file (the resolved events, messages only) and distil the student."""
    from judge_eval.distillation.distiller import DistilledModel, check_manifest, data_hash
    from judge_eval.core.items import FinetuneEvent

    cfg = ctx.config
    training = ctx.run_dir / "distill" / "training.jsonl"
    if cfg.distill.swap_augment:  # each event, then its twin with the answers exchanged
        from judge_eval.core.events import swap_augmented

        resolved = swap_augmented(resolved)
    if cfg.distill.target == "verdict":  # the assistant turn cut to its verdict token
        from judge_eval.core.events import verdict_target

        resolved = [verdict_target(e, n) for n, e in enumerate(resolved, start=1)]
    ctx.counts["training_examples"] = len(resolved)
    # What the fine-tuning API gets: {"messages": [...]} only, as in the study's resolved file.
    write_events(training, [FinetuneEvent(messages=e.messages) for e in resolved])
    rerecord = ctx.spec("distill", "train").rerecord_command
    path = manifest_path(ctx)
    if cfg.distill.kind == "local-lora":
        adapter = ctx.run_dir / "distill" / "adapter.gguf"
        if ctx.modes.get("distill") == "new_episodes" and path.is_file() and adapter.is_file():
            # Resuming a recording: the adapter this run already trained is served again.
            manifest = json.loads(path.read_text("utf-8"))
            if manifest.get("data_hash") == data_hash(training) and ctx.serve_adapter is not None \
                    and manifest.get("adapter_sha256") == hashlib.sha256(adapter.read_bytes()).hexdigest():
                manifest["base_url"] = ctx.serve_adapter(adapter, manifest["model"])
                return DistilledModel(model=manifest["model"], manifest=manifest)
        if ctx.replay("distill"):
            if not path.is_file():
                raise JudgeEvalError(f"no distillation manifest {path}; record it with: {rerecord}")
            manifest = json.loads(path.read_text("utf-8"))
            check_manifest(manifest, training, path, rerecord)
            return DistilledModel(model=manifest["model"], manifest=manifest)
        from judge_eval.distillation.lora import LocalLoraDistiller

        if ctx.serve_adapter is None or ctx.local_files is None:
            raise JudgeEvalError("recording the local-lora distillation needs the llama.cpp servers that "
                                 "`judge-eval record` starts; run: " + rerecord)
        distilled = LocalLoraDistiller(cfg, serve_adapter=ctx.serve_adapter,
                                       files=ctx.local_files).distill(training, ctx.run_dir / "distill")
        from judge_eval.recording.rerecord_stable import write_manifest

        write_manifest(path, distilled.manifest)  # unchanged but for its training time: kept as it was
        return distilled
    # OpenAI: the job's HTTP calls are recorded like any other stage.
    from judge_eval.live.clients import api_key
    from judge_eval.distillation.openai_ft import OpenAIDistiller

    def run(replay: bool) -> DistilledModel:
        import openai

        client = openai.OpenAI(api_key=api_key(cfg.student, replay=replay), base_url=cfg.student.base_url,
                               max_retries=0 if replay else 5, http_client=ctx.http[0])
        d = cfg.distill
        return OpenAIDistiller(base_model=cfg.student.model, client=client, replay=replay, epochs=d.epochs,
                               first_wait=d.poll_first_wait, max_wait=d.poll_max_wait,
                               max_polls=d.max_polls).distill(training, ctx.run_dir / "distill")

    distilled = ctx.run_stage("distill", "train", run)
    assert distilled.manifest["data_hash"] == data_hash(training)
    return distilled


def stage_students(ctx: Context, items: list[QAItem], distilled: Any) -> list[QAItem]:
    cfg = ctx.config
    judge, base_name, distilled_name = stage_judge, "student-base", "student-distilled"
    if cfg.judge == "correctness":  # the teacher's pointwise test items, rated the same way
        from judge_eval.live.correctness import BASE_STUDENT_CASSETTE, DISTILLED_STUDENT_CASSETTE

        judge, base_name, distilled_name = stage_score, BASE_STUDENT_CASSETTE, DISTILLED_STUDENT_CASSETTE
    items, _ = judge(ctx, "students", base_name, "test", items, cfg.student, cfg.base_student_name)
    items, _ = judge(ctx, "students", distilled_name, "test", items, distilled_spec(cfg, distilled),
                     cfg.distilled_student_name)
    return items


def distilled_spec(cfg: PipelineConfig, distilled: Any) -> ModelSpec:
    """The student's model spec pointed at the distilled model."""
    return cfg.student.model_copy(update={
        "model": distilled.model, "base_url": distilled.manifest.get("base_url") or cfg.student.base_url})


#: Where a run keeps its validation slice (a run folder of its own: ``judge-eval report`` reads it).
VALIDATION_DIR = "validation"


def split_for_validation(ctx: Context, train: list[QAItem], resolved: list[Any]) -> tuple[list[QAItem], list[Any]]:
    """(the validation slice of the train items, the resolved events left for training): with
    ``pipeline.validation_every`` the slice's events are kept out of distillation; without it, no
    slice and every event."""
    every = ctx.config.validation_every
    if every is None:
        return [], list(resolved)
    from judge_eval.core.events import split_validation

    held, training = split_validation(train, resolved, every)
    ctx.counts.update({"validation_items": len(held), "training_events": len(training),
                       "held_out_events": len(resolved) - len(training)})
    return held, training


def stage_validation(ctx: Context, held: list[QAItem], distilled: Any) -> dict[str, Any] | None:
    """The distilled student judges the validation slice (both orders, cassette
    ``student-distilled-validation``); the slice with the reference's and the student's verdicts is
    written to ``<run>/validation/`` (``judge-eval report`` reads it) and summarised for run.json."""
    if ctx.config.validation_every is None:
        return None
    cfg = ctx.config
    reference = ctx.profile.reference
    # the train items' own ids, written into the line: read back from validation/ as test items,
    # they would otherwise get test ids
    items = [dataclasses.replace(i, evaluations=tuple(v for v in i.evaluations if v.llm == reference),
                                 extra={**i.extra, "id": i.id})
             for i in held]
    items, _ = stage_judge(ctx, "students", "student-distilled", "validation", items, distilled_spec(cfg, distilled),
                           cfg.distilled_student_name)
    from judge_eval.core.metrics import judge_stats

    summary: dict[str, Any] = {"every": cfg.validation_every, "items": len(items),
                               "item_ids": [i.id for i in items],
                               "reference_conclusive": judge_stats(items, reference).conclusive}
    write_run(Run(path=ctx.run_dir / VALIDATION_DIR, test=tuple(sorted(items, key=lambda i: i.order_key)),
                  meta={"profile": ctx.profile.name, "validation": summary}))
    return summary


# --------------------------------------------------------------------------- the whole run


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def write_run_dir(ctx: Context, train: list[QAItem], test: list[QAItem], events: list[Any],
                  resolved: list[Any], distilled: Any, *, validation: dict[str, Any] | None = None) -> Path:
    cfg = ctx.config
    models = {role: getattr(cfg, role).model for role in ("question_writer", "embeddings", "teacher", "student")
              if getattr(cfg, role) is not None}
    models["answerers"] = [a.model for a in cfg.answerers]
    models["distilled_student"] = distilled.model
    meta = {
        "profile": ctx.profile.name,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "record_modes": ctx.modes,
        "judges": {"reference": ctx.profile.reference, "base_student": cfg.base_student_name,
                   "distilled_student": cfg.distilled_student_name},
        "models_configured": models,
        "servers": ctx.observed,  # per cassette: models and fingerprints the servers reported
        "cost": ctx.cost_summary(),  # USD at online and at batch prices, and as billed
        "prompt_hashes": cfg.prompt_hashes(),
        "judging": ({"kind": "correctness", "evaluator": "CorrectnessEvaluator", "scale": list(cfg.score_scale),
                     "reference_answer": "the item's source passage"} if cfg.judge == "correctness"
                    else {"kind": "pairwise", "evaluator": "PairwiseComparisonEvaluator"}),
        "distillation": distilled.manifest,
        **({"validation": validation} if validation is not None else {}),
        "counts": ctx.counts,
        "retries": {"waits": len(ctx.retry.sleeps), "seconds": round(sum(ctx.retry.sleeps), 2)},
        "packages": _versions(),
    }
    # Written in the items' order key (question first), so the files do not depend on the order in which
    # items completed, and keep the order they had before ids included the answers.
    from judge_eval.core.items import ORDERS

    def event_key(e: Any) -> tuple[str, int]:
        return (e.item_id or "", ORDERS.index(e.order) if e.order in ORDERS else len(ORDERS))

    run = Run(path=ctx.run_dir, train=tuple(sorted(train, key=lambda i: i.order_key)),
              test=tuple(sorted(test, key=lambda i: i.order_key)), events=tuple(sorted(events, key=event_key)),
              resolved=tuple(sorted(resolved, key=event_key)), meta=meta)
    write_run(run)
    return ctx.run_dir


def distil_and_judge(ctx: Context, train: list[QAItem], test: list[QAItem], events: list[Any],
                     resolved: list[Any]) -> Path:
    """What every source does once the resolved events are known: hold out the validation slice,
    distil on the rest, let both students judge the test pairs (the distilled one the slice too),
    and write the run directory."""
    held, training = split_for_validation(ctx, train, resolved)
    distilled = stage_distill(ctx, training)
    test = stage_students(ctx, test, distilled)
    validation = stage_validation(ctx, held, distilled)
    return write_run_dir(ctx, train, test, events, resolved, distilled, validation=validation)


def run_from_study(ctx: Context, study_dir: Path) -> Path:
    """The study's run as the teacher side: its train items and GPT-4 verdicts, its 72 resolved
    fine-tuning events and its 64 test pairs (with the study's three judges' verdicts) are read
    from ``study_dir``; only the distillation and the two students' judging run here."""
    from judge_eval.core.store import read_run

    study = read_run(study_dir, require=("train", "test", "resolved"))
    if ctx.profile.body_hash and not ctx.sensitive_text:
        # The distilled student learns GPT-4's phrasing from these transcripts and reproduces
        # it verbatim; stored outputs must not carry the study's text. Decoded strings of all four
        # files, so an escaped newline in the JSONL does not split a run the masking should see.
        from judge_eval.recording.studytext import study_texts

        ctx.sensitive_text = "\n".join(study_texts(Path(study_dir)))
    ctx.counts.update({"items_train": len(study.train), "items_test": len(study.test),
                       "resolved_events": len(study.resolved)})
    return distil_and_judge(ctx, list(study.train), list(study.test), [], list(study.resolved))


def run_from_items(ctx: Context) -> Path:
    """Your own pairs (questions with two answers each): the teacher judges train and test, then
    resolution, distillation and the students, as after the answers stage."""
    from judge_eval.core.store import read_run

    given = read_run(ctx.config.items, require=("train", "test"))
    ctx.counts.update({"items_train": len(given.train), "items_test": len(given.test)})
    train, events = stage_teacher(ctx, "train", [dataclasses.replace(i, evaluations=()) for i in given.train])
    test, _ = stage_teacher(ctx, "test", [dataclasses.replace(i, evaluations=()) for i in given.test])
    return distil_and_judge(ctx, train, test, events, stage_resolve(ctx, train, events))


def run_all(ctx: Context, study_dir: Path | None = None) -> Path:
    """Every stage in order; returns the run directory."""
    if ctx.config.source == "items":
        return run_from_items(ctx)
    if ctx.config.source == "study":
        if study_dir is None:
            raise ConfigError(f"profile {ctx.profile.name} distils the study's run: give its folder "
                              "(--study-dir, default ../shared/seed_run)")
        return run_from_study(ctx, study_dir)
    docs = {split: stage_corpus(ctx, split) for split in ("train", "test")}
    questions = {split: stage_questions(ctx, split, docs[split]) for split in ("train", "test")}
    items = {split: stage_answers(ctx, split, docs[split], questions[split]) for split in ("train", "test")}
    train, events = stage_teacher(ctx, "train", items["train"])
    test, _ = stage_teacher(ctx, "test", items["test"])
    return distil_and_judge(ctx, train, test, events, stage_resolve(ctx, train, events))


def modes_from(stage: str | None, mode: str) -> dict[str, str]:
    """Record modes per stage: ``mode`` from ``stage`` on (all stages when None), replay before."""
    if stage is not None and stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    start = STAGES.index(stage) if stage else 0
    return {s: (mode if i >= start else "none") for i, s in enumerate(STAGES)}


def planned_calls(ctx: Context) -> list[tuple[str, str, str]]:
    """What a live recording of the profile would call, per stage, before making any call:
    (stage, calls, how the number is reached). Upper bounds where the models decide."""
    rows = _planned_pairwise(ctx)
    rows = _planned_correctness(ctx, rows) if ctx.config.judge == "correctness" else rows
    return _planned_batch(ctx, rows) if ctx.config.batch else rows


#: The judging stages' rows of a plan (cassette names as ``planned_calls`` gives them).
_JUDGING_ROW = re.compile(r"^(teacher|correctness-teacher)-(train|test)$|^students$")


def _planned_batch(ctx: Context, rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The plan with ``pipeline.batch``: each judging stage sends all of its requests as one batch
    (both orders of every pair, also where the online path would skip a flipped call), and makes
    a few HTTP calls of its own."""
    from judge_eval.live.batch import check_supported

    cfg = ctx.config
    judges = ([cfg.teacher] if cfg.source != "study" else []) + [cfg.student]
    for spec in judges:
        check_supported(spec)
    out = []
    for stage, calls, why in rows:
        if not _JUDGING_ROW.match(stage):
            out.append((stage, calls, why))
            continue
        batches = 2 if stage == "students" else 1
        # given items: exactly both orders of each; built ones: at most one pair per question asked
        lines = calls if cfg.source == "build" else calls.removeprefix("<= ")
        each = "1 batch:" if batches == 1 else f"{batches} batches, each:"
        out.append((stage, f"{lines} batch lines",
                    f"{why.split(' (')[0]}; {each} upload + create + status polls + 1-2 downloads"))
    return out


def planned_prices(ctx: Context) -> list[tuple[str, str, str]]:
    """The price table of the profile, online and in batch: (model, online, batch), each
    "<prompt> / <completion>" in USD per 1M tokens; batch = online x ``pipeline.batch_discount``."""
    cfg = ctx.config
    f = cfg.batch_discount

    def shown(prompt: float, completion: float) -> str:
        return f"{prompt:g} / {completion:g}"

    return [(model, shown(p.prompt, p.completion), shown(round(p.prompt * f, 6), round(p.completion * f, 6)))
            for model, p in cfg.prices.items()]


def _planned_correctness(ctx: Context, rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The pairwise plan with its judging rows replaced: one ``CorrectnessEvaluator`` call per
    pointwise item (each answer of a pair is one) and judge; stage names are the cassettes'."""
    from judge_eval.live.correctness import TEACHER_CASSETTE, pointwise_items

    cfg = ctx.config
    if cfg.source == "items":
        from judge_eval.core.store import read_run

        given = read_run(cfg.items, require=("train", "test"))
        items = {split: len(pointwise_items(list(given.items(split)))) for split in ("train", "test")}
        how = {split: f"{n} given answers x 1 call" for split, n in items.items()}
    else:
        items = {split: 2 * cfg.questions[split] for split in ("train", "test")}
        how = {split: f"{cfg.questions[split]} questions x 2 answers x 1 call" for split in ("train", "test")}
    out = []
    for stage, calls, why in rows:
        split = stage.removeprefix("teacher-")
        if split in items:
            out.append((f"{TEACHER_CASSETTE}-{split}", f"<= {items[split]}", how[split]))
        elif stage == "students":
            out.append((stage, f"<= {2 * items['test']}", f"2 students x {items['test']} answers x 1 call"))
        else:
            out.append((stage, calls, why))
    return out


def _planned_pairwise(ctx: Context) -> list[tuple[str, str, str]]:
    cfg = ctx.config
    rows: list[tuple[str, str, str]] = []
    distill = ("distill", "local LoRA training, no API call" if cfg.distill.kind == "local-lora"
               else "2 + status polls", "upload + create job + polls with backoff"
               if cfg.distill.kind == "openai" else "the adapter is served by llama.cpp")
    if cfg.source == "study":
        rows.append(("distill", "training on the study's resolved events", "local LoRA, no API call"
                     if cfg.distill.kind == "local-lora" else "1 upload + 1 job + status polls"))
        rows.append(("students", "256", "2 students x 64 test pairs x 2 orders"))
        return rows + _planned_validation(cfg, 75)  # the study's 75 train items
    if cfg.source == "items":
        from judge_eval.core.store import read_run

        given = read_run(cfg.items, require=("train", "test"))
        counts = {"train": len(given.train), "test": len(given.test)}
        for split, n in counts.items():
            rows.append((f"teacher-{split}", f"<= {2 * n}",
                         f"{n} given pairs x 2 orders (1 when the first is unparseable)"))
        rows.append(distill)
        rows.append(("students", f"<= {4 * counts['test']}", f"2 students x {counts['test']} pairs x 2 orders"))
        rows += _planned_validation(cfg, counts["train"])
        return rows
    n_test = cfg.questions["test"]
    for split in ("train", "test"):
        n = cfg.questions[split]
        if cfg.corpus_kind == "wikipedia":
            pages = cfg.corpus.train if split == "train" else cfg.corpus.test
            rows.append((f"corpus-{split}", str(2 * len(pages)), f"2 Wikipedia API GETs x {len(pages)} pages"))
            nodes_note = "chunks unknown until the pages are read"
            asked = f"<= {n + max(2, n // 4)}"
            index_calls = "1 per 10 chunks"
        else:
            from judge_eval.live.corpus import load_documents
            from judge_eval.live.questions import chunk

            nodes = len(chunk(load_documents(cfg, split), cfg.chunk_size))
            nodes_note = f"{nodes} chunks"
            asked = str(min(nodes, n + max(2, n // 4)))
            index_calls = str(-(-nodes // 10))
        rows.append((f"questions-{split}", asked, f"one question-writer call per chunk, {nodes_note}"))
        rows.append((f"answers-{split}", f"<= {4 * n} + {index_calls}",
                     f"{n} questions x 2 models x (1 embedding + 1 answer call), + index embedding batches"))
        rows.append((f"teacher-{split}", f"<= {2 * n}", f"{n} pairs x 2 orders (1 when the first is unparseable)"))
    rows.append(distill)
    rows.append(("students", f"<= {4 * n_test}", f"2 students x {n_test} pairs x 2 orders"))
    rows += _planned_validation(cfg, cfg.questions["train"])
    return rows


def _planned_validation(cfg: PipelineConfig, train: int) -> list[tuple[str, str, str]]:
    every = cfg.validation_every
    if every is None:
        return []
    return [("student-distilled-validation", f"<= {2 * (train // every)}",
             f"the distilled student x the validation slice (one in {every} of {train} train items) x 2 orders")]

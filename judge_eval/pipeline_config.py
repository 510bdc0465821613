"""The live pipeline's configuration: ``[tool.judge_eval.profiles.NAME.pipeline]``.

A profile with a ``pipeline`` table can rebuild its run from scratch: corpus -> questions ->
answers -> teacher verdicts -> distillation -> test verdicts. Every model is named per role with
its API, base URL and sampling settings; keys are never in the file, only the name of the
environment variable that holds them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge_eval.errors import ConfigError

APIS = ("openai", "openai-like", "hf-inference")
CORPUS_KINDS = ("wikipedia", "directory")
DISTILLERS = ("openai", "local-lora")

#: The study's question prompt (the notebook's QUESTION_GEN_PROMPT).
STUDY_QUESTION_PROMPT = (
    "You are a Teacher/ Professor. Your task is to setup "
    "a quiz/examination. Using the provided context, formulate "
    "a single question that captures an important fact from the "
    "context. Restrict the question to the context information provided."
)


@dataclass(frozen=True)
class ModelSpec:
    role: str
    api: str
    model: str
    label: str
    base_url: str | None = None
    api_key_env: str | None = None
    chat: bool = True
    temperature: float = 0.0
    max_tokens: int | None = None
    context_window: int = 4096
    grammar: str | None = None  # GBNF text, read from the file the profile names
    timeout: float = 120.0


@dataclass(frozen=True)
class DistillSpec:
    kind: str
    epochs: int = 3
    learning_rate: float = 2e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    seed: int = 0
    max_length: int = 1024
    base_url: str | None = None  # local-lora: where the adapter is served while recording
    poll_first_wait: float = 15.0  # openai: first wait between job status polls (then doubles)
    poll_max_wait: float = 300.0  # openai: longest wait between polls
    max_polls: int = 400  # openai: give up (with the job id) after this many polls


@dataclass(frozen=True)
class PipelineConfig:
    corpus_kind: str  # "wikipedia" or "directory"; "study" when the items come from the study's run
    train_pages: tuple[str, ...] = ()
    test_pages: tuple[str, ...] = ()
    corpus_dir: Path | None = None
    questions: dict[str, int] = field(default_factory=dict)
    question_prompt: str = STUDY_QUESTION_PROMPT
    seed: int = 0
    top_k: int = 2
    chunk_size: int = 1024
    question_writer: ModelSpec | None = None
    answerers: tuple[ModelSpec, ...] = ()
    embeddings: ModelSpec | None = None
    teacher: ModelSpec | None = None
    student: ModelSpec | None = None
    distill: DistillSpec | None = None
    base_student_name: str = "gpt_3p5"
    distilled_student_name: str = "ft_gpt_3p5"
    source: str = "build"  # "build": every stage; "study": the study's items and events; "items": your pairs
    items_dir: Path | None = None  # source "items": a folder with train_qa.jsonl and test_qa_complete.jsonl
    concurrency: int = 1  # live stages: items (or question-writer calls) in flight at once
    #: model -> (USD per 1M prompt tokens, USD per 1M completion tokens), for cost estimates
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    retry_attempts: int = 6  # live calls: tries per call (429/5xx/timeouts/resets/bad bodies)
    retry_base: float = 1.0  # first backoff in seconds, doubled each retry, with +/-25% jitter
    retry_cap: float = 60.0  # longest wait, also the cap on a server's Retry-After

    def retry_policy(self) -> Any:
        from judge_eval.retry import RetryPolicy

        return RetryPolicy(attempts=self.retry_attempts, base=self.retry_base, cap=self.retry_cap)

    def prompt_hashes(self) -> dict[str, str]:
        """A hash of every prompt template a stage sends, so two runs can be compared."""
        from llama_index.core.evaluation.dataset_generation import DEFAULT_QUESTION_GENERATION_PROMPT
        from llama_index.core.evaluation.pairwise import DEFAULT_SYSTEM_TEMPLATE, DEFAULT_USER_TEMPLATE
        from llama_index.core.prompts.default_prompts import (
            DEFAULT_REFINE_PROMPT_TMPL, DEFAULT_TEXT_QA_PROMPT_TMPL,
        )

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()[:16]

        out = {"question_prompt": h(self.question_prompt),
               "question_context_template": h(DEFAULT_QUESTION_GENERATION_PROMPT),
               "answer_qa_template": h(DEFAULT_TEXT_QA_PROMPT_TMPL),
               "answer_refine_template": h(DEFAULT_REFINE_PROMPT_TMPL),
               "judge_system": h(DEFAULT_SYSTEM_TEMPLATE), "judge_user": h(DEFAULT_USER_TEMPLATE)}
        for spec in (self.teacher, self.student):
            if spec is not None and spec.grammar:
                out[f"{spec.role}_grammar"] = h(spec.grammar)
        return out


def _model(raw: Any, role: str, where: str, base: Path) -> ModelSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: models.{role} must be a table")
    known = {"api", "model", "label", "base_url", "api_key_env", "chat", "temperature", "max_tokens",
             "context_window", "grammar_file", "timeout"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: models.{role}: unknown key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}")
    for key in ("api", "model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{where}: models.{role}.{key} must be a non-empty string")
    if raw["api"] not in APIS:
        raise ConfigError(f"{where}: models.{role}.api = {raw['api']!r}; it must be one of {', '.join(APIS)}")
    temperature = raw.get("temperature", 0.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ConfigError(f"{where}: models.{role}.temperature = {temperature!r}; it must be from 0 to 2")
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or max_tokens < 1):
        raise ConfigError(f"{where}: models.{role}.max_tokens = {max_tokens!r}; it must be a whole number >= 1")
    grammar = None
    if raw.get("grammar_file"):
        grammar_path = base / raw["grammar_file"]
        try:
            grammar = grammar_path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: models.{role}.grammar_file {grammar_path}: {exc.strerror}") from None
    return ModelSpec(
        role=role, api=raw["api"], model=raw["model"], label=raw.get("label", raw["model"]),
        base_url=raw.get("base_url"), api_key_env=raw.get("api_key_env"), chat=bool(raw.get("chat", True)),
        temperature=float(temperature), max_tokens=max_tokens,
        context_window=int(raw.get("context_window", 4096)), grammar=grammar,
        timeout=float(raw.get("timeout", 120.0)),
    )


def parse_pipeline(raw: Any, where: str, pyproject: Path) -> PipelineConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: pipeline must be a table")
    base = pyproject.parent
    if raw.get("source", "build") not in ("build", "study", "items"):
        raise ConfigError(f"{where}: pipeline.source = {raw.get('source')!r}; it must be build, study or items")
    if raw.get("source") == "study":
        return _parse_study_pipeline(raw, where, base)
    if raw.get("source") == "items":
        return _parse_items_pipeline(raw, where, base)
    corpus = raw.get("corpus", {})
    kind = corpus.get("kind")
    if kind not in CORPUS_KINDS:
        raise ConfigError(f"{where}: pipeline.corpus.kind = {kind!r}; it must be one of {', '.join(CORPUS_KINDS)}")
    kwargs: dict[str, Any] = {"corpus_kind": kind}
    if kind == "wikipedia":
        for split in ("train", "test"):
            pages = corpus.get(split)
            if not isinstance(pages, list) or not pages or not all(isinstance(p, str) for p in pages):
                raise ConfigError(f"{where}: pipeline.corpus.{split} must be a list of page titles")
            kwargs[f"{split}_pages"] = tuple(pages)
    else:
        if not isinstance(corpus.get("path"), str):
            raise ConfigError(f"{where}: pipeline.corpus.path must name a folder with train/ and test/")
        kwargs["corpus_dir"] = (base / corpus["path"]).resolve()
    questions = raw.get("questions", {})
    counts = {}
    for split in ("train", "test"):
        n = questions.get(split)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}: pipeline.questions.{split} = {n!r}; it must be a whole number >= 1")
        counts[split] = n
    kwargs["questions"] = counts
    if "prompt" in questions:
        kwargs["question_prompt"] = str(questions["prompt"])
    for key in ("seed", "top_k", "chunk_size"):
        if key in raw:
            if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 0:
                raise ConfigError(f"{where}: pipeline.{key} = {raw[key]!r}; it must be a whole number >= 0")
            kwargs[key] = raw[key]
    models = raw.get("models", {})
    for role in ("question_writer", "embeddings", "teacher", "student"):
        if role not in models:
            raise ConfigError(f"{where}: pipeline.models.{role} is missing")
        kwargs[role] = _model(models[role], role, where, base)
    answerers = models.get("answerers")
    if not isinstance(answerers, list) or len(answerers) < 2:
        raise ConfigError(f"{where}: pipeline.models.answerers must list at least two answer models")
    kwargs["answerers"] = tuple(_model(a, f"answerers[{i}]", where, base) for i, a in enumerate(answerers))
    labels = [a.label for a in kwargs["answerers"]]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: pipeline.models.answerers have repeated labels {labels}")
    kwargs.update(_parse_tail(raw, where, base))
    return PipelineConfig(**kwargs)


def _parse_study_pipeline(raw: dict[str, Any], where: str, base: Path) -> PipelineConfig:
    """Items, teacher verdicts and resolved events come from the study's run; only the student
    and its distillation are configured."""
    models = raw.get("models", {})
    if "student" not in models:
        raise ConfigError(f"{where}: pipeline.models.student is missing")
    return PipelineConfig(corpus_kind="study", source="study", student=_model(models["student"], "student", where, base),
                          **_parse_tail(raw, where, base))


def _parse_items_pipeline(raw: dict[str, Any], where: str, base: Path) -> PipelineConfig:
    """Bring your own pairs: questions with two answers each (train and test files in the run
    schema, evaluations optional); the teacher judges them, then distillation and students."""
    if not isinstance(raw.get("items"), str):
        raise ConfigError(f"{where}: pipeline.items must name a folder with train_qa.jsonl and "
                          "test_qa_complete.jsonl")
    models = raw.get("models", {})
    for role in ("teacher", "student"):
        if role not in models:
            raise ConfigError(f"{where}: pipeline.models.{role} is missing")
    return PipelineConfig(corpus_kind="items", source="items", items_dir=(base / raw["items"]).resolve(),
                          teacher=_model(models["teacher"], "teacher", where, base),
                          student=_model(models["student"], "student", where, base),
                          **_parse_tail(raw, where, base))


def _parse_tail(raw: dict[str, Any], where: str, base: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    distill = raw.get("distill", {})
    if distill.get("kind") not in DISTILLERS:
        raise ConfigError(f"{where}: pipeline.distill.kind = {distill.get('kind')!r}; it must be one of "
                          f"{', '.join(DISTILLERS)}")
    unknown = sorted(set(distill) - set(DistillSpec.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{where}: pipeline.distill: unknown key(s) {', '.join(unknown)}")
    kwargs["distill"] = DistillSpec(**distill)
    if "concurrency" in raw:
        value = raw["concurrency"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: pipeline.concurrency = {value!r}; it must be a whole number >= 1")
        kwargs["concurrency"] = value
    prices = raw.get("prices", {})
    if not isinstance(prices, dict):
        raise ConfigError(f"{where}: pipeline.prices must be a table of model = {{prompt = .., completion = ..}}")
    table = {}
    for model, price in prices.items():
        ok = isinstance(price, dict) and set(price) == {"prompt", "completion"} and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in price.values())
        if not ok:
            raise ConfigError(f"{where}: pipeline.prices.{model} = {price!r}; it must be "
                              "{prompt = USD per 1M tokens, completion = USD per 1M tokens}")
        table[model] = (float(price["prompt"]), float(price["completion"]))
    kwargs["prices"] = table
    retry = raw.get("retry", {})
    for key, attr, low in (("attempts", "retry_attempts", 1), ("base", "retry_base", 0), ("cap", "retry_cap", 0)):
        if key in retry:
            value = retry[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or \
                    (key == "attempts" and not isinstance(value, int)):
                raise ConfigError(f"{where}: pipeline.retry.{key} = {value!r}; it must be a number >= {low}")
            kwargs[attr] = value
    names = raw.get("names", {})
    for key, attr in (("base_student", "base_student_name"), ("distilled_student", "distilled_student_name")):
        if key in names:
            kwargs[attr] = str(names[key])
    return kwargs

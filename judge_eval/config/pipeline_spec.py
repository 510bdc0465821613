"""The live pipeline's configuration: ``[tool.judge_eval.profiles.NAME.pipeline]``.

A profile with a ``pipeline`` table can rebuild its run from scratch: corpus -> questions ->
answers -> teacher verdicts -> distillation -> test verdicts. Every model is named per role with
its API, base URL and sampling settings; keys are never in the file, only the name of the
environment variable that holds them.

``source`` says where the items come from: ``build`` (every stage, from a corpus), ``items``
(your own pairs: the teacher judges them) or ``study`` (the study's items, verdicts and events:
only the distillation and the students run).

``judge`` says how the teacher and the students judge: ``pairwise`` (the study's
``PairwiseComparisonEvaluator`` on pairs, both orders) or ``correctness`` (llama-index's
``CorrectnessEvaluator`` rating each answer alone on the scale of ``[pipeline.correctness]``:
pointwise items, score verdicts; ``judge_eval.live.correctness``).

``batch`` sends each judging stage's requests as one file through the provider's Batch API
(``judge_eval.live.batch``); ``batch_discount`` is the factor its prices get in cost estimates.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from judge_eval.config.tables import Table, base_dir, resolve_path

APIS = ("openai", "openai-like", "hf-inference")
CORPUS_KINDS = ("wikipedia", "directory")
DISTILLERS = ("openai", "local-lora")
SOURCES = ("build", "study", "items")
JUDGES = ("pairwise", "correctness")

#: ``CorrectnessEvaluator`` asks for "a score between 1 and 5" and its own example is "4.0":
#: judges give halves too, so the default scale is 1 to 5 in steps of 0.5.
CORRECTNESS_SCALE_SPEC = "1-5:0.5"
CORRECTNESS_SCALE = (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5)  # parse_scale(CORRECTNESS_SCALE_SPEC)
#: The range the evaluator's prompt asks for; a declared scale must lie inside it.
CORRECTNESS_RANGE = (1, 5)

#: The study's question prompt (the notebook's QUESTION_GEN_PROMPT).
STUDY_QUESTION_PROMPT = (
    "You are a Teacher/ Professor. Your task is to setup "
    "a quiz/examination. Using the provided context, formulate "
    "a single question that captures an important fact from the "
    "context. Restrict the question to the context information provided."
)

NonEmpty = Annotated[str, Field(min_length=1)]
Names = Annotated[tuple[NonEmpty, ...], Field(strict=False)]  # TOML arrays are lists


class ModelSpec(Table):
    """One model of a role: ``[...pipeline.models.<role>]``."""

    internal = frozenset({"role", "grammar"})

    role: str = ""  # set by the loader from the table's key
    api: Literal["openai", "openai-like", "hf-inference"]
    model: NonEmpty
    label: str = ""  # defaults to the model name
    base_url: NonEmpty | None = None
    api_key_env: NonEmpty | None = None  # the *name* of the variable holding the key, never the key
    chat: bool = True
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    context_window: Annotated[int, Field(ge=1)] = 4096
    grammar_file: NonEmpty | None = None  # a GBNF file, relative to pyproject.toml
    grammar: str | None = None  # its text, read by the loader
    timeout: Annotated[float, Field(gt=0.0)] = 120.0
    # ask for token logprobs (openai / openai-like): the judge's P(A), P(B), P(C) are kept on its
    # verdicts (judge_eval.core.choice); off, the requests are exactly as before
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=1, le=20)] = 5

    @model_validator(mode="after")
    def _defaults(self, info: ValidationInfo) -> "ModelSpec":
        if self.logprobs and self.api not in ("openai", "openai-like"):
            raise ValueError(f"logprobs = true needs api 'openai' or 'openai-like' (this model's api is "
                             f"{self.api!r}); remove logprobs or use an OpenAI-compatible endpoint")
        if not self.label:
            object.__setattr__(self, "label", self.model)
        if self.grammar_file and self.grammar is None:
            path = base_dir(info) / self.grammar_file
            try:
                object.__setattr__(self, "grammar", path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"grammar_file {path} cannot be read "
                                 f"({getattr(exc, 'strerror', None) or exc})") from None
        return self


class Models(Table):
    question_writer: ModelSpec | None = None
    answerers: Annotated[tuple[ModelSpec, ...], Field(strict=False)] = ()
    embeddings: ModelSpec | None = None
    teacher: ModelSpec | None = None
    student: ModelSpec | None = None

    @model_validator(mode="after")
    def _roles(self) -> "Models":
        for role in ("question_writer", "embeddings", "teacher", "student"):
            spec = getattr(self, role)
            if spec is not None:
                object.__setattr__(self, role, spec.model_copy(update={"role": role}))
        object.__setattr__(self, "answerers", tuple(
            a.model_copy(update={"role": f"answerers[{i}]"}) for i, a in enumerate(self.answerers)))
        labels = [a.label for a in self.answerers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"answerers have repeated labels {labels}; give each a distinct label")
        return self


class DistillSpec(Table):
    kind: Literal["openai", "local-lora"]
    epochs: Annotated[int, Field(ge=1)] = 3
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 2e-4
    lora_rank: Annotated[int, Field(ge=1)] = 16
    lora_alpha: Annotated[int, Field(ge=1)] = 32
    seed: Annotated[int, Field(ge=0)] = 0
    max_length: Annotated[int, Field(ge=16)] = 1024
    base_url: NonEmpty | None = None  # local-lora: where the adapter is served while recording
    poll_first_wait: Annotated[float, Field(ge=0.0)] = 15.0  # openai: first wait between job polls
    poll_max_wait: Annotated[float, Field(ge=0.0)] = 300.0  # openai: longest wait between polls
    max_polls: Annotated[int, Field(ge=1)] = 400  # openai: give up (with the job id) after this many
    #: train on both orders of every resolved event: each is followed by its twin with the answers
    #: exchanged and the verdict letter mirrored (JudgeLM's swap augmentation against position bias)
    swap_augment: bool = False
    #: what the student learns to write: the teacher's whole answer ("transcript": explanation, then
    #: the verdict), or only its verdict token ("verdict": "[[A]]", "[[B]]" or "[[C]]")
    target: Literal["transcript", "verdict"] = "transcript"


class Corpus(Table):
    kind: Literal["wikipedia", "directory"]
    train: Names | None = None  # wikipedia: cities ("History of <city>")
    test: Names | None = None
    path: Path | None = None  # directory: a folder with train/*.txt and test/*.txt

    _path = field_validator("path", mode="before")(resolve_path)

    @model_validator(mode="after")
    def _complete(self) -> "Corpus":
        if self.kind == "wikipedia" and (not self.train or not self.test):
            raise ValueError("kind 'wikipedia' needs train and test: lists of page titles")
        if self.kind == "directory" and self.path is None:
            raise ValueError("kind 'directory' needs path: a folder with train/ and test/")
        return self


class Questions(Table):
    train: Annotated[int, Field(ge=1)]
    test: Annotated[int, Field(ge=1)]
    prompt: NonEmpty = STUDY_QUESTION_PROMPT

    def __getitem__(self, split: str) -> int:
        return {"train": self.train, "test": self.test}[split]


class Price(Table):
    prompt: Annotated[float, Field(ge=0.0)]  # USD per 1M prompt tokens
    completion: Annotated[float, Field(ge=0.0)]  # USD per 1M completion tokens


class Retry(Table):
    attempts: Annotated[int, Field(ge=1)] = 6  # tries per call (429/5xx/timeouts/resets/bad bodies)
    base: Annotated[float, Field(ge=0.0)] = 1.0  # first backoff in seconds, doubled, +/-25% jitter
    cap: Annotated[float, Field(ge=0.0)] = 60.0  # longest wait, also the cap on Retry-After


class BatchPoll(Table):
    """``[...pipeline.batch_poll]``: how a judging stage in batch mode waits for its batch."""

    first_wait: Annotated[float, Field(ge=0.0)] = 5.0  # seconds between the first two status polls
    max_wait: Annotated[float, Field(ge=0.0)] = 60.0  # the wait doubles up to this
    # give up after this many seconds of polling (the batch may still finish: --resume polls it
    # again); 25 h, longer than the Batch API's 24 h completion window
    timeout: Annotated[float, Field(gt=0.0)] = 25 * 3600.0

    @model_validator(mode="after")
    def _ordered(self) -> "BatchPoll":
        if self.max_wait < self.first_wait:
            raise ValueError(f"max_wait ({self.max_wait}) is shorter than first_wait ({self.first_wait}); the wait "
                             "between polls grows from first_wait to max_wait")
        return self


class Correctness(Table):
    """``[...pipeline.correctness]``: the scale the ``correctness`` judges' scores must be on. An
    output whose first line is a number off this scale is ``output-cannot-be-parsed`` (with
    ``scale = "1-5"``, a "4.5" is)."""

    # "1-5", "1-5:0.5" or a list of numbers, as the importers' scale key (``parse_scale``)
    scale: tuple[int | float, ...] = CORRECTNESS_SCALE

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        from judge_eval.config.import_maps import parse_scale  # it imports this module

        scale = parse_scale(value)
        low, high = CORRECTNESS_RANGE
        outside = [v for v in scale if not low <= v <= high]
        if outside:
            raise ValueError(f"{outside[0]!r} is outside {low}-{high}: CorrectnessEvaluator's prompt asks for a "
                             f"score between {low} and {high}, so declare a scale within it (e.g. \"1-5\" or "
                             f"\"{CORRECTNESS_SCALE_SPEC}\")")
        return scale


class StudentNames(Table):
    base_student: NonEmpty = "gpt_3p5"
    distilled_student: NonEmpty = "ft_gpt_3p5"


#: What each source needs from ``models``.
_REQUIRED_MODELS = {"build": ("question_writer", "embeddings", "teacher", "student"),
                    "items": ("teacher", "student"), "study": ("student",)}


class PipelineConfig(Table):
    source: Literal["build", "study", "items"] = "build"
    corpus: Corpus | None = None  # source build
    items: Path | None = None  # source items: a folder with train_qa.jsonl and test_qa_complete.jsonl
    questions: Questions | None = None  # source build
    seed: Annotated[int, Field(ge=0)] = 0
    top_k: Annotated[int, Field(ge=1)] = 2
    chunk_size: Annotated[int, Field(ge=16)] = 1024
    models: Models = Models()
    distill: DistillSpec
    names: StudentNames = StudentNames()
    concurrency: Annotated[int, Field(ge=1)] = 1  # live stages: items in flight at once
    prices: dict[str, Price] = {}  # model (or name prefix) -> USD per 1M tokens, for cost estimates
    retry: Retry = Retry()
    #: how the teacher and the students judge: pairs both ways, or each answer on a scale
    judge: Literal["pairwise", "correctness"] = "pairwise"
    correctness: Correctness | None = None  # judge "correctness": its scale (default 1-5 in halves)
    #: the judging stages (teacher, students) through the provider's Batch API (/v1/files and
    #: /v1/batches of an OpenAI-compatible API) instead of one request per call
    batch: bool = False
    #: batch price = online price x this, for cost estimates; 0.5 is OpenAI's published Batch API
    #: discount (half price); put your provider's here
    batch_discount: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    batch_poll: BatchPoll = BatchPoll()
    #: hold every n-th train item (positions n-1, 2n-1, ... in the train file) out of distillation:
    #: its events never reach training, and the distilled student judges the slice, a held-out
    #: validation measurement for choosing between recipes (run/validation/, run.json "validation")
    validation_every: Annotated[int, Field(ge=2)] | None = None

    _items = field_validator("items", mode="before")(resolve_path)

    @model_validator(mode="after")
    def _complete(self) -> "PipelineConfig":
        missing = [f"models.{role}" for role in _REQUIRED_MODELS[self.source] if getattr(self.models, role) is None]
        if self.source == "build":
            missing += [key for key in ("corpus", "questions") if getattr(self, key) is None]
            if len(self.models.answerers) < 2:
                missing.append("models.answerers (at least two answer models)")
        if self.source == "items" and self.items is None:
            missing.append("items (a folder with train_qa.jsonl and test_qa_complete.jsonl)")
        if missing:
            raise ValueError(f"source {self.source!r} needs {', '.join(missing)}")
        if self.judge == "correctness" and self.source == "study":
            raise ValueError("judge = 'correctness' needs source 'build' or 'items': the study's teacher "
                             "verdicts (source 'study') are pairwise, so its students are judged pairwise too")
        if self.batch:
            judges = [role for role in ("teacher", "student") if role in _REQUIRED_MODELS[self.source]]
            for role in judges:
                spec = getattr(self.models, role)
                if spec.api not in ("openai", "openai-like"):
                    raise ValueError(f"batch = true needs OpenAI-compatible judges (/v1/files and /v1/batches), but "
                                     f"models.{role} uses api {spec.api!r}; set batch = false or use api 'openai' "
                                     "or 'openai-like'")
        if self.validation_every is not None and self.judge != "pairwise":
            raise ValueError("validation_every applies to pairwise judging (judge = 'pairwise'); remove it, or "
                             "judge pairs")
        if self.correctness is not None and self.judge != "correctness":
            raise ValueError(f"the correctness table applies only with judge = 'correctness' (judge is "
                             f"{self.judge!r}); set judge = 'correctness' or remove the table")
        return self

    # The roles' models and a few derived names, as the stages read them.
    @property
    def question_writer(self) -> ModelSpec | None:
        return self.models.question_writer

    @property
    def answerers(self) -> tuple[ModelSpec, ...]:
        return self.models.answerers

    @property
    def embeddings(self) -> ModelSpec | None:
        return self.models.embeddings

    @property
    def teacher(self) -> ModelSpec | None:
        return self.models.teacher

    @property
    def student(self) -> ModelSpec | None:
        return self.models.student

    @property
    def corpus_kind(self) -> str:
        """``wikipedia`` or ``directory``; ``study`` / ``items`` when the items are given."""
        return self.corpus.kind if self.source == "build" and self.corpus else self.source

    @property
    def question_prompt(self) -> str:
        return self.questions.prompt if self.questions else STUDY_QUESTION_PROMPT

    @property
    def score_scale(self) -> tuple[int | float, ...]:
        """The scale of the ``correctness`` judges (the default when no table gives one)."""
        return (self.correctness or Correctness()).scale

    @property
    def base_student_name(self) -> str:
        return self.names.base_student

    @property
    def distilled_student_name(self) -> str:
        return self.names.distilled_student

    def with_models(self, **roles: Any) -> "PipelineConfig":
        """A copy with some roles' models replaced (``teacher=spec``, ``answerers=(...)``)."""
        return self.model_copy(update={"models": self.models.model_copy(update=roles)})

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
        if self.judge == "correctness":
            from llama_index.core.evaluation.correctness import (
                DEFAULT_SYSTEM_TEMPLATE as CORRECTNESS_SYSTEM, DEFAULT_USER_TEMPLATE as CORRECTNESS_USER,
            )

            out.update(correctness_system=h(CORRECTNESS_SYSTEM), correctness_user=h(CORRECTNESS_USER))
        for spec in (self.teacher, self.student):
            if spec is not None and spec.grammar:
                out[f"{spec.role}_grammar"] = h(spec.grammar)
        return out

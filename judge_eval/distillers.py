"""Stage 5, distillation: teach the student the teacher's resolved verdicts.

A ``Distiller`` takes the resolved fine-tuning events (OpenAI chat JSONL) and returns the name of
a model that the student's client can call, plus a manifest (model name, data hash,
hyper-parameters) that goes into ``run.json``. Two implementations:

- ``OpenAIDistiller``: the OpenAI fine-tuning API through llama-index's
  ``OpenAIFinetuneEngine``. Its HTTP calls (upload, create, status polls) are recorded like every
  other stage; the wait polls with bounded exponential backoff and never sleeps in replay.
- ``LocalLoraDistiller`` (``judge_eval.lora``): a peft LoRA adapter trained on the CPU and served
  by llama.cpp. Training is not replayed: replay loads the committed manifest and checks the data
  hash instead.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from judge_eval.errors import JudgeEvalError

TERMINAL_FAILURES = ("failed", "cancelled", "expired")


class DistillError(JudgeEvalError):
    """Fine-tuning failed; the message names the job and its status."""


@dataclass(frozen=True)
class DistilledModel:
    model: str  # the name the student's client sends
    manifest: dict[str, Any] = field(default_factory=dict)


class Distiller(Protocol):
    def distill(self, events_path: Path, workdir: Path) -> DistilledModel: ...


def data_hash(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_manifest(manifest: dict[str, Any], events_path: Path, manifest_path: Path, rerecord: str) -> None:
    """Replay: the events we would train on must be the ones the recorded model was trained on."""
    actual = data_hash(events_path)
    if manifest.get("data_hash") != actual:
        raise DistillError(
            f"the resolved fine-tuning events hash to {actual}, but the distilled model in "
            f"{manifest_path} was trained on {manifest.get('data_hash')}; the teacher's train verdicts "
            f"changed since the recording. Re-record: {rerecord}")


class OpenAIDistiller:
    """Fine-tune through the OpenAI API with ``OpenAIFinetuneEngine`` and wait for the job."""

    def __init__(self, *, base_model: str, client: Any, replay: bool, epochs: int | None = None,
                 first_wait: float = 15.0, max_wait: float = 300.0, max_polls: int = 400,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_model = base_model
        self.client = client
        self.replay = replay
        self.epochs = epochs
        self.first_wait, self.max_wait, self.max_polls = first_wait, max_wait, max_polls
        self._sleep = (lambda _s: None) if replay else sleep

    def _engine(self, events_path: Path) -> Any:
        from llama_index.core.utils import get_tokenizer
        from llama_index.finetuning import OpenAIFinetuneEngine

        # validate_json asks tiktoken for cl100k_base, which downloads unless already loaded;
        # llama-index-core loads it from the copy it ships (and restores the environment).
        get_tokenizer()
        engine = OpenAIFinetuneEngine.__new__(OpenAIFinetuneEngine)
        # Its __init__ builds a bare openai.OpenAI() from OPENAI_API_KEY (llama-index-finetuning
        # 0.4.2): set the same attributes with our client, so base URL, retries and key are ours.
        engine.base_model, engine.data_path = self.base_model, str(events_path)
        engine._verbose, engine._validate_json, engine._start_job = False, True, None
        engine._client = self.client
        return engine

    def _start(self, engine: Any) -> Any:
        """Upload and create the job. ``OpenAIFinetuneEngine.finetune`` loops forever (sleeping
        60 s) on any 400 from job creation; we make one attempt and report the 400."""
        import openai
        from llama_index.finetuning.openai.validate_json import validate_json

        validate_json(engine.data_path)
        with open(engine.data_path, "rb") as fh:
            upload = self.client.files.create(file=fh, purpose="fine-tune")
        kwargs: dict[str, Any] = {"training_file": upload.id, "model": self.base_model}
        if self.epochs:
            kwargs["hyperparameters"] = {"n_epochs": self.epochs}
        try:
            engine._start_job = self.client.fine_tuning.jobs.create(**kwargs)
        except openai.BadRequestError as exc:
            raise DistillError(f"creating the fine-tuning job for file {upload.id} (model "
                               f"{self.base_model}) was refused with HTTP 400: {exc.message}. Check the "
                               "base model name and the training file, then record again") from exc
        return engine._start_job

    def wait(self, engine: Any) -> Any:
        """Poll the job until it ends, backing off from ``first_wait`` to ``max_wait`` seconds."""
        delay = self.first_wait
        job = engine._start_job
        for _ in range(self.max_polls):
            job = engine.get_current_job()
            if job.status == "succeeded":
                return job
            if job.status in TERMINAL_FAILURES:
                error = getattr(job, "error", None)
                detail = f": {error.message}" if getattr(error, "message", None) else ""
                raise DistillError(f"fine-tuning job {job.id} ended with status {job.status}{detail}")
            self._sleep(delay)
            delay = min(delay * 2, self.max_wait)
        raise DistillError(f"fine-tuning job {job.id} still has status {job.status} after {self.max_polls} "
                           "polls; it may still finish: check it in the provider's dashboard")

    def distill(self, events_path: Path, workdir: Path) -> DistilledModel:
        engine = self._engine(events_path)
        self._start(engine)
        job = self.wait(engine)
        if not job.fine_tuned_model:
            raise DistillError(f"fine-tuning job {job.id} succeeded but reports no fine_tuned_model")
        return DistilledModel(model=job.fine_tuned_model, manifest={
            "kind": "openai", "job_id": job.id, "base_model": self.base_model,
            "fine_tuned_model": job.fine_tuned_model, "data_hash": data_hash(events_path),
            "hyperparameters": {"n_epochs": self.epochs} if self.epochs else {},
        })

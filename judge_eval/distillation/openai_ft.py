"""The OpenAI fine-tuning API as a ``Distiller``, through llama-index-finetuning's
``OpenAIFinetuneEngine`` (built by ``judge_eval.distillation.ft_engine``, the one place that
knows its internals)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from judge_eval.distillation.distiller import DistilledModel, DistillError, data_hash

TERMINAL_FAILURES = ("failed", "cancelled", "expired")


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

        from judge_eval.distillation.ft_engine import build_engine

        # validate_json asks tiktoken for cl100k_base, which downloads unless already loaded;
        # llama-index-core loads it from the copy it ships (and restores the environment).
        get_tokenizer()
        return build_engine(self.base_model, events_path, self.client)

    def _start(self, engine: Any) -> Any:
        """Upload and create the job. ``OpenAIFinetuneEngine.finetune`` loops forever (sleeping
        60 s) on any 400 from job creation; we make one attempt and report the 400."""
        import openai
        from llama_index.finetuning.openai.validate_json import validate_json

        from judge_eval.distillation.ft_engine import attach_job

        validate_json(engine.data_path)
        with open(engine.data_path, "rb") as fh:
            upload = self.client.files.create(file=fh, purpose="fine-tune")
        kwargs: dict[str, Any] = {"training_file": upload.id, "model": self.base_model}
        if self.epochs:
            kwargs["hyperparameters"] = {"n_epochs": self.epochs}
        try:
            job = self.client.fine_tuning.jobs.create(**kwargs)
        except openai.BadRequestError as exc:
            raise DistillError(f"creating the fine-tuning job for file {upload.id} (model "
                               f"{self.base_model}) was refused with HTTP 400: {exc.message}. Check the "
                               "base model name and the training file, then record again") from exc
        attach_job(engine, job)
        return job

    def wait(self, engine: Any) -> Any:
        """Poll the job until it ends, backing off from ``first_wait`` to ``max_wait`` seconds."""
        from judge_eval.distillation.ft_engine import started_job

        delay = self.first_wait
        job = started_job(engine)
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

"""Distillation: teach the student the teacher's resolved verdicts.

A ``Distiller`` takes the resolved fine-tuning events (OpenAI chat JSONL) and returns the name of
a model that the student's client can call, plus a manifest (model name, data hash,
hyper-parameters) that goes into ``run.json``. Two implementations:

- ``judge_eval.distillation.openai_ft.OpenAIDistiller``: the OpenAI fine-tuning API through
  llama-index's ``OpenAIFinetuneEngine``. Its HTTP calls (upload, create, status polls) are
  recorded like every other stage; the wait polls with bounded exponential backoff and never
  sleeps in replay.
- ``judge_eval.distillation.lora.LocalLoraDistiller``: a peft LoRA adapter trained on the CPU and
  served by llama.cpp. Training is not replayed: replay loads the committed manifest and checks
  the data hash instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from judge_eval.errors import JudgeEvalError


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

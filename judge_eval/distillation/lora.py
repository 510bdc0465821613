"""The local LoRA distiller: the same chat fine-tuning JSONL the OpenAI API takes trains a peft
LoRA adapter on the student's chat template (loss on the assistant turn only) on the CPU; the
adapter is converted to GGUF and served by ``llama_cpp.server --lora_path`` under a model name
``ft:<base>:judge-eval:<data hash>``.

The training runs in a subprocess (``judge_eval.distillation.lora_worker``) that fixes its own
thread count, deterministic algorithms and seeds, so that the same events, hyper-parameters and
seed give the same adapter bytes on the same machine, whatever the recording process's own
thread settings; this process sets none of that state.

Only ``judge-eval record`` runs this (it needs torch, transformers, peft and the llama.cpp
conversion scripts); replay reads the manifest it wrote.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, TextIO

from judge_eval.distillation.distiller import DistilledModel, DistillError, data_hash
from judge_eval.distillation.lora_worker import TARGET_MODULES, worker_command, worker_env
from judge_eval.config.pipeline_spec import PipelineConfig

#: Training threads. Fixed, because CPU reductions split their sums by thread count (a tiny
#: model trained with 1 and 2 threads gave adapters of different sha256); 2, not 1, because the
#: recording machine has 2 cores and the training (28 min for study-local) is compute-bound.
#: Any fixed count is reproducible, whatever the cores; it is in the manifest.
TRAIN_THREADS = 2
#: Lines of the worker's output a DistillError quotes.
TAIL_LINES = 40


def run_worker(spec: dict[str, Any], workdir: Path, *, echo: TextIO | None = None,
               base_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Train in a fresh ``python -m judge_eval.distillation.lora_worker`` process and return its
    result. Its output is echoed (to stderr by default) as it comes; if it fails, the
    DistillError quotes the end of that output."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = workdir / "train-spec.json", workdir / "train-result.json"
    spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", "utf-8")
    result_path.unlink(missing_ok=True)
    env = worker_env(int(spec["hyperparameters"]["threads"]), dict(os.environ if base_env is None else base_env))
    echo = echo if echo is not None else sys.stderr
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(worker_command(str(spec_path), str(result_path)), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            echo.write(line)
            echo.flush()
            tail.append(line)
    if proc.returncode != 0 or not result_path.is_file():
        raise DistillError(f"LoRA training failed (worker exit code {proc.returncode}; spec {spec_path}); "
                           f"the end of its output:\n{''.join(tail)}")
    return json.loads(result_path.read_text("utf-8"))


class LocalFiles(Protocol):
    """Where the student's GGUF and llama.cpp's conversion scripts are. ``judge-eval record``
    passes ``judge_eval.orchestration.local_models``, which installs and finds them; this package
    only uses them."""

    def model_file(self, name: str) -> Path: ...

    def llama_cpp_scripts(self, script: str) -> tuple[Path, Path]: ...


class LocalLoraDistiller:
    def __init__(self, config: PipelineConfig, *, serve_adapter: Callable[[Path, str], str],
                 files: LocalFiles) -> None:
        self.config = config
        self.spec = config.distill
        self.serve_adapter = serve_adapter
        self.files = files

    def hyperparameters(self) -> dict[str, Any]:
        spec = self.spec
        return {"epochs": spec.epochs, "learning_rate": spec.learning_rate, "lora_rank": spec.lora_rank,
                "lora_alpha": spec.lora_alpha, "target_modules": TARGET_MODULES, "batch_size": 1,
                "max_length": spec.max_length, "seed": spec.seed, "threads": TRAIN_THREADS,
                "loss": "assistant turn only"}

    def train(self, events_path: Path, workdir: Path) -> dict[str, Any]:
        """Train in the worker process: it first writes the student's GGUF as a transformers
        folder ``base-hf`` (kept for the GGUF conversion), then trains from that folder."""
        hf_dir = workdir / "base-hf"
        result = run_worker({
            "events": str(events_path), "gguf": str(self.files.model_file(self.config.student.model)),
            "base_dir": str(hf_dir), "base_name": self.config.student.model, "out_dir": str(workdir),
            "hyperparameters": self.hyperparameters()}, workdir)
        return {**result, "hf_dir": hf_dir, "adapter_dir": Path(result["adapter_dir"])}

    def convert(self, adapter_dir: Path, hf_dir: Path, out: Path) -> Path:
        script, gguf_py = self.files.llama_cpp_scripts("convert_lora_to_gguf.py")
        env_path = str(gguf_py)
        result = subprocess.run(
            [sys.executable, str(script), "--base", str(hf_dir), "--outfile", str(out), "--outtype", "f32",
             str(adapter_dir)],
            capture_output=True, text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin",
                                                 "HF_HUB_OFFLINE": "1", "NO_LOCAL_GGUF": ""})
        if result.returncode != 0 or not out.exists():
            raise DistillError(f"converting the LoRA adapter to GGUF failed ({result.returncode}):\n"
                               f"{result.stderr[-2000:]}")
        return out

    def distill(self, events_path: Path, workdir: Path) -> DistilledModel:
        workdir.mkdir(parents=True, exist_ok=True)
        trained = self.train(events_path, workdir)
        adapter = self.convert(trained["adapter_dir"], trained["hf_dir"], workdir / "adapter.gguf")
        digest = data_hash(events_path)
        alias = f"ft:{self.config.student.model}:judge-eval:{digest.split(':')[1][:8]}"
        base_url = self.serve_adapter(adapter, alias)
        return DistilledModel(model=alias, manifest={
            "kind": "local-lora", "model": alias, "base_model": self.config.student.model,
            "base_url": base_url, "data_hash": digest, "examples": trained["examples"],
            "train_tokens": trained["tokens"], "epoch_losses": trained["losses"],
            "train_seconds": trained["train_seconds"],
            "adapter_bytes": adapter.stat().st_size,
            "adapter_sha256": hashlib.sha256(adapter.read_bytes()).hexdigest(),
            "adapter_safetensors_sha256": trained["adapter_safetensors_sha256"],
            "train_versions": trained["versions"],
            "hyperparameters": self.hyperparameters(),
        })

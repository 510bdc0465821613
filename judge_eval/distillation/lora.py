"""The local LoRA distiller: the same chat fine-tuning JSONL the OpenAI API takes trains a peft
LoRA adapter on the student's chat template (loss on the assistant turn only) on the CPU; the
adapter is converted to GGUF and served by ``llama_cpp.server --lora_path`` under a model name
``ft:<base>:judge-eval:<data hash>``.

Only ``judge-eval record`` runs this (it needs torch, transformers, peft and the llama.cpp
conversion scripts); replay reads the manifest it wrote.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from judge_eval.distillation.distiller import DistilledModel, DistillError, data_hash
from judge_eval.core.progress import progress
from judge_eval.config.pipeline_spec import PipelineConfig

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tokenize_example(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels for one chat example; labels are -100 except on the assistant turn."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(messages, tokenize=True)
    if hasattr(prompt, "input_ids"):
        prompt, full = prompt["input_ids"], full["input_ids"]
    prompt, full = list(prompt), list(full)
    if full[:len(prompt)] != prompt:
        raise DistillError("the chat template does not render the prompt as a prefix of the full "
                           "conversation; cannot mask the loss to the assistant turn")
    labels = [-100] * len(prompt) + full[len(prompt):]
    if len(full) > max_length:  # keep the assistant turn, drop the start of the prompt
        full, labels = full[-max_length:], labels[-max_length:]
    return full, labels


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

    def _load_base(self, workdir: Path) -> tuple[Any, Any, Path]:
        """The student as a transformers model (dequantised from its GGUF) and an HF folder of it,
        which the adapter conversion needs as ``--base``."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        gguf = self.files.model_file(self.config.student.model)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        hf_dir = workdir / "base-hf"
        if not (hf_dir / "config.json").exists():
            # save_pretrained refuses a GGUF-loaded model: rebuild it from its config and weights.
            config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
            fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            fresh.load_state_dict(loaded.state_dict())
            fresh.save_pretrained(hf_dir)
            tokenizer.save_pretrained(hf_dir)
        return loaded, tokenizer, hf_dir

    def train(self, events_path: Path, workdir: Path) -> dict[str, Any]:
        import torch

        # torch's global generator seeds the LoRA weights (peft initialises them with it): seed it
        # inside fork_rng, which restores the caller's generator state afterwards, so training
        # leaves no process-wide state behind. The example order has its own generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.spec.seed)
            return self._train(events_path, workdir)

    def _train(self, events_path: Path, workdir: Path) -> dict[str, Any]:
        import torch
        from peft import LoraConfig, get_peft_model

        spec = self.spec
        model, tokenizer, hf_dir = self._load_base(workdir)
        examples = [json.loads(line)["messages"] for line in events_path.read_text("utf-8").splitlines() if line]
        data = [tokenize_example(tokenizer, ex, spec.max_length) for ex in examples]
        peft_model = get_peft_model(model, LoraConfig(
            r=spec.lora_rank, lora_alpha=spec.lora_alpha, lora_dropout=0.0, target_modules=TARGET_MODULES,
            task_type="CAUSAL_LM"))
        optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad],
                                      lr=spec.learning_rate)
        peft_model.train()
        order = list(range(len(data)))
        rng = random.Random(spec.seed)
        losses = []
        started = time.monotonic()
        with progress(spec.epochs * len(data), "LoRA training") as bar:  # minutes per epoch on a CPU
            for epoch in range(spec.epochs):
                rng.shuffle(order)
                total = 0.0
                for i in order:
                    ids, labels = data[i]
                    out = peft_model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
                    out.loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    total += float(out.loss.detach())
                    bar.update(1)
                losses.append(round(total / len(data), 4))
                print(f"[judge-eval] LoRA epoch {epoch + 1}/{spec.epochs}: mean loss {losses[-1]} "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
        seconds = time.monotonic() - started
        adapter_dir = workdir / "adapter"
        peft_model.save_pretrained(adapter_dir)
        return {"hf_dir": hf_dir, "adapter_dir": adapter_dir, "losses": losses, "train_seconds": round(seconds, 1),
                "examples": len(data), "tokens": sum(len(ids) for ids, _ in data)}

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
        spec = self.spec
        return DistilledModel(model=alias, manifest={
            "kind": "local-lora", "model": alias, "base_model": self.config.student.model,
            "base_url": base_url, "data_hash": digest, "examples": trained["examples"],
            "train_tokens": trained["tokens"], "epoch_losses": trained["losses"],
            "train_seconds": trained["train_seconds"],
            "adapter_bytes": adapter.stat().st_size,
            "adapter_sha256": hashlib.sha256(adapter.read_bytes()).hexdigest(),
            "hyperparameters": {"epochs": spec.epochs, "learning_rate": spec.learning_rate,
                                "lora_rank": spec.lora_rank, "lora_alpha": spec.lora_alpha,
                                "target_modules": TARGET_MODULES, "batch_size": 1,
                                "max_length": spec.max_length, "seed": spec.seed,
                                "loss": "assistant turn only"},
        })

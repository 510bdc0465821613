"""The LoRA training process: ``python -m judge_eval.distillation.lora_worker SPEC.json RESULT.json``.

``LocalLoraDistiller`` never trains in its own process. It writes a JSON spec (the student as a
transformers folder, or the GGUF to build that folder from; the events; the hyper-parameters;
the output folder) and starts this module, which makes its own process reproducible before it
imports torch:

- the environment (``worker_env``): OpenMP/MKL thread counts, ``MKL_CBWR`` (MKL's conditional
  numerical reproducibility: the same code path whatever the memory alignment),
  ``PYTHONHASHSEED=0`` (peft keeps ``target_modules`` in a set: set orders are then the same in
  every run), no hub access. The parent passes it; started any other way the worker re-executes itself once
  with it, since a thread count or hash seed cannot be changed after start.
- ``torch.set_num_threads(threads)`` and one inter-op thread: CPU reductions split their work
  by thread count, so the same count gives the same sums;
- ``torch.use_deterministic_algorithms(True)``: an op without a deterministic kernel raises
  instead of silently varying;
- the seeds of torch (the LoRA weights' initialisation), ``random`` and numpy.

That is process-wide state, set here only, in the ``__main__`` of a process that exists for
this one training; the functions below set none of it. The adapter is written so that its bytes
depend only on the weights and the hyper-parameters: ``adapter_config.json`` and the model card
name the base model by its profile name, not by the (temporary) folder it was loaded from.

Training runs on the CPU (the model is never moved to a GPU), so no CUDA setting applies.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from judge_eval.core.progress import progress
from judge_eval.distillation.distiller import DistillError
from judge_eval.errors import JudgeEvalError

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: Every variable ``worker_env`` sets besides the thread counts.
FIXED_ENV = {"PYTHONHASHSEED": "0", "MKL_CBWR": "AUTO", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Marks a process this module re-executed, so that it never loops.
REEXEC_MARK = "JUDGE_EVAL_LORA_WORKER"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def worker_env(threads: int, base: dict[str, str]) -> dict[str, str]:
    """``base`` (the parent's environment) with what makes the training reproducible: the
    caller's own thread settings never reach the worker."""
    return {**base, **FIXED_ENV, **{name: str(threads) for name in THREAD_VARS}}


def worker_command(*args: str) -> list[str]:
    """The command line that runs this module. ``-P``: the caller's working directory is not put
    on ``sys.path``, so no stray ``.py`` file there can shadow a module the training imports."""
    return [sys.executable, "-P", "-m", "judge_eval.distillation.lora_worker", *args]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def export_gguf_base(gguf: Path, hf_dir: Path) -> None:
    """Write the student (dequantised from its GGUF) as a transformers folder: the training
    loads it, and the adapter conversion needs it as ``--base``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: rebuild it from its config and weights.
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    partial = hf_dir.with_name(hf_dir.name + ".partial")
    fresh.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(hf_dir)  # a folder with a config.json is always complete


def read_examples(events: Path) -> list[list[dict[str, str]]]:
    examples = []
    for n, line in enumerate(Path(events).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            examples.append(json.loads(line)["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DistillError(f"{events}:{n}: not a chat fine-tuning record ({exc!r}); each line must be "
                              '{"messages": [...]}') from exc
    if not examples:
        raise DistillError(f"{events} holds no training example; distillation needs at least one resolved event")
    return examples


def normalise_adapter_config(adapter_dir: Path) -> None:
    """Sort the config's keys and its module list (peft writes a set in hash order)."""
    path = adapter_dir / ADAPTER_CONFIG
    config = json.loads(path.read_text("utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")


def train(spec: dict[str, Any], examples: list[list[dict[str, str]]]) -> dict[str, Any]:
    """Train the adapter the spec describes on ``examples`` (chat messages); the summary
    ``LocalLoraDistiller`` puts in its manifest. Expects the process set up by ``main``
    (threads, determinism, seeds)."""
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hp = spec["hyperparameters"]
    base = Path(spec["base_dir"])
    out = Path(spec["out_dir"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    # peft names the base model as the model does, by the folder it was loaded from (a temporary
    # path), in adapter_config.json and in the model card (README.md: ``base_model`` and a tag),
    # which the GGUF conversion copies into the adapter's metadata: name it by its profile name.
    model.name_or_path = model.config.name_or_path = spec["base_name"]
    data = [tokenize_example(tokenizer, ex, hp["max_length"]) for ex in examples]
    # torch's generator (seeded by main) initialises the LoRA weights.
    peft_model = get_peft_model(model, LoraConfig(
        r=hp["lora_rank"], lora_alpha=hp["lora_alpha"], lora_dropout=0.0, target_modules=hp["target_modules"],
        task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=hp["learning_rate"])
    peft_model.train()
    order = list(range(len(data)))
    rng = random.Random(hp["seed"])  # the example order has its own generator
    losses = []
    started = time.monotonic()
    with progress(hp["epochs"] * len(data), "LoRA training") as bar:  # minutes per epoch on a CPU
        for epoch in range(hp["epochs"]):
            rng.shuffle(order)
            total = 0.0
            for i in order:
                ids, labels = data[i]
                loss = peft_model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                total += float(loss.detach())
                bar.update(1)
            losses.append(round(total / len(data), 4))
            print(f"[judge-eval] LoRA epoch {epoch + 1}/{hp['epochs']}: mean loss {losses[-1]} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    seconds = time.monotonic() - started
    adapter_dir = out / "adapter"
    # The LoRA weights only: nothing here resizes or trains the embeddings (and the GGUF
    # conversion refuses them); "auto" would look the base model up to decide.
    peft_model.save_pretrained(adapter_dir, save_embedding_layers=False)
    normalise_adapter_config(adapter_dir)
    return {"adapter_dir": str(adapter_dir), "losses": losses, "train_seconds": round(seconds, 1),
            "examples": len(data), "tokens": sum(len(ids) for ids, _ in data),
            "adapter_safetensors_sha256": sha256_file(adapter_dir / ADAPTER_WEIGHTS),
            "threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__}}


def set_up_process(threads: int) -> None:
    """This process's thread counts and deterministic algorithms, before torch does any work.
    Called by ``main`` only."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)


def seed_process(seed: int) -> None:
    """Seed torch (the LoRA weights' initialisation), ``random`` and numpy right before the
    training, so that building ``base-hf`` first (which draws random initial weights, then
    overwrites them) or not (resumed run) leaves the same generator state. Called by ``main`` only."""
    import numpy
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed)


SPEC_KEYS = ("events", "base_dir", "out_dir", "base_name")
HYPER_KEYS = ("epochs", "learning_rate", "lora_rank", "lora_alpha", "seed", "max_length", "threads", "target_modules")


def read_spec(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DistillError(f"cannot read the LoRA training spec {path}: {exc}") from exc
    hp = spec.get("hyperparameters") if isinstance(spec, dict) else None
    missing = [k for k in SPEC_KEYS if not isinstance(spec, dict) or k not in spec]
    missing += [f"hyperparameters.{k}" for k in HYPER_KEYS if not isinstance(hp, dict) or k not in hp]
    if missing:
        raise DistillError(f"the LoRA training spec {path} lacks {', '.join(missing)}; "
                           "LocalLoraDistiller.train writes a complete one")
    return spec


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m judge_eval.distillation.lora_worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    try:
        spec = read_spec(Path(argv[0]))
        examples = read_examples(Path(spec["events"]))  # a bad file fails before minutes of set-up
        hp = spec["hyperparameters"]
        env = worker_env(int(hp["threads"]), dict(os.environ))
        if any(os.environ.get(k) != v for k, v in env.items()):
            if os.environ.get(REEXEC_MARK):
                raise DistillError(f"the worker's environment could not be set ({REEXEC_MARK} is set)")
            os.execve(sys.executable, worker_command(*argv), {**env, REEXEC_MARK: "1"})
        set_up_process(int(hp["threads"]))
        if spec.get("gguf") and not (Path(spec["base_dir"]) / "config.json").exists():
            export_gguf_base(Path(spec["gguf"]), Path(spec["base_dir"]))
        seed_process(int(hp["seed"]))
        result = train(spec, examples)
    except JudgeEvalError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception:  # noqa: BLE001 - the parent shows this tail in its DistillError
        traceback.print_exc()
        return 1
    Path(argv[1]).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The local LoRA training is reproducible: the same events, hyper-parameters and seed give the
same adapter bytes, whatever the thread settings of the process that starts the training.

A tiny Llama (built here from a config, no download) with a word-level tokenizer and a chat
template trains for a few steps in the real worker process (``run_worker``, as
``LocalLoraDistiller`` calls it), twice: from two copies of the base model in folders of
different path lengths (a temporary work folder vs a run directory, as in the re-recording that
gave a different adapter), with different thread settings in the parent. The GGUF conversion
needs llama.cpp's scripts and is not run here; it reads these files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from judge_eval.distillation.distiller import DistillError
from judge_eval.distillation.lora import run_worker
from judge_eval.distillation.lora_worker import TARGET_MODULES

if importlib.util.find_spec("peft") is None:  # the worker imports it; the [test] extra pins it
    raise ImportError("peft is not installed: python -m pip install -c constraints.txt -e '.[test]'")

SPECIALS = ["[UNK]", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
EXAMPLES = [
    ("is the first answer better", "yes [[A]]"),
    ("is the second answer better", "no [[B]]"),
    ("are both answers equally good", "tie [[C]]"),
    ("which answer is better", "the first [[A]]"),
]
#: Tokens per example, counted by hand: <|user|>, the question's words, <|end|>, <|assistant|>,
#: the answer's words, "[[", the letter, "]]", <|end|>. Words: 5+2, 5+2, 5+2, 4+3.
HAND_TOKENS = (1 + 5 + 1 + 1 + 2 + 2 + 1) * 3 + (1 + 4 + 1 + 1 + 3 + 2 + 1)
HYPER = {"epochs": 2, "learning_rate": 0.01, "lora_rank": 4, "lora_alpha": 8, "max_length": 64,
         "target_modules": TARGET_MODULES, "threads": 2, "batch_size": 1}


def build_base(folder: Path) -> None:
    """A 2-layer Llama of hidden size 32 and its tokenizer, saved as a transformers folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for q, a in EXAMPLES for w in (q + " " + a).replace("[[", " [[ ").replace("]]", " ]] ").split()})
    vocab = {token: i for i, token in enumerate(SPECIALS + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]",
                                        additional_special_tokens=SPECIALS[1:])
    tokenizer.chat_template = TEMPLATE
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    with torch.random.fork_rng(devices=[]):  # the test leaves the process's generator as it was
        torch.manual_seed(1234)
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lora") / "base-hf"
    build_base(folder)
    return folder


@pytest.fixture(scope="module")
def events(base: Path) -> Path:
    path = base.parent / "training.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in EXAMPLES), "utf-8")
    return path


def train(base: Path, events: Path, out: Path, seed: int, *, parent_threads: int,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One worker run started from a parent with ``parent_threads`` everywhere it can be set."""
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, str(parent_threads))
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    before = torch.get_num_threads()
    torch.set_num_threads(parent_threads)
    try:
        return run_worker({"events": str(events), "base_dir": str(base), "base_name": "tiny-llama",
                           "out_dir": str(out), "hyperparameters": {**HYPER, "seed": seed}},
                          out, echo=io.StringIO())
    finally:
        torch.set_num_threads(before)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_adapter_whatever_the_parent_threads(base: Path, events: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The second base copy sits in a folder whose path is longer, as a run directory's would be.
    other_base = tmp_path / "a-much-longer-run-directory-name" / "distill" / "base-hf"
    shutil.copytree(base, other_base)
    first = train(base, events, tmp_path / "first", 0, parent_threads=1, monkeypatch=monkeypatch)
    second = train(other_base, events, tmp_path / "second", 0, parent_threads=2, monkeypatch=monkeypatch)
    changed = train(base, events, tmp_path / "seed1", 1, parent_threads=1, monkeypatch=monkeypatch)

    for result in (first, second, changed):
        assert result["threads"] == 2 and result["deterministic"] is True  # the spec's, not the parent's
        assert result["examples"] == len(EXAMPLES) and result["tokens"] == HAND_TOKENS
    dirs = [Path(r["adapter_dir"]) for r in (first, second, changed)]
    weights = [digest(d / "adapter_model.safetensors") for d in dirs]
    assert weights[0] == first["adapter_safetensors_sha256"]
    assert weights[0] == weights[1], "same seed, different adapter weights"
    assert first["losses"] == second["losses"]
    assert weights[2] != weights[0], "a different seed must change the adapter (else the test proves nothing)"
    # Every file the GGUF conversion reads (the config, and the model card it takes the base
    # model's name from) is the same, and names the base model, not a folder.
    files = {p.name: digest(p) for p in dirs[0].iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(files)
    assert files == {p.name: digest(p) for p in dirs[1].iterdir()}
    config = json.loads((dirs[0] / "adapter_config.json").read_text("utf-8"))
    assert config["base_model_name_or_path"] == "tiny-llama"
    assert config["target_modules"] == sorted(TARGET_MODULES)
    for name in files:
        if name != "adapter_model.safetensors":
            assert str(tmp_path) not in (dirs[0] / name).read_text("utf-8"), name
            assert str(base.parent) not in (dirs[0] / name).read_text("utf-8"), name


def test_a_failure_in_the_worker_is_a_distill_error_with_its_output(base: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "training.jsonl"
    bad.write_text('{"messages": []}\n{"no messages": 1}\n', "utf-8")
    with pytest.raises(DistillError) as caught:
        train(base, bad, tmp_path / "out", 0, parent_threads=1, monkeypatch=monkeypatch)
    message = str(caught.value)
    assert "worker exit code 1" in message
    assert f"{bad}:2: not a chat fine-tuning record" in message
    assert "Traceback" not in message

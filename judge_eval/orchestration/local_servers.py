"""Real local model servers for recording: llama-cpp-python's OpenAI-compatible server, one
process per model, on 127.0.0.1. Used only by ``judge-eval record``; CI never starts them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from judge_eval.errors import JudgeEvalError
from judge_eval.recording.netguard import urlopen


@dataclass(frozen=True)
class ServerSpec:
    name: str
    model_path: Path
    port: int
    alias: str
    embedding: bool = False
    lora_path: Path | None = None
    n_ctx: int = 4096
    threads: int = 2
    #: llama-cpp-python 0.3.36's server returns token logprobs only with --logits_all true (an HTTP
    #: 500 otherwise); on only for models whose requests ask for them (ModelSpec.logprobs)
    logits_all: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
               "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_threads", str(self.threads), "--n_ctx", str(self.n_ctx), "--logits_all", "true" if self.logits_all else "false",
               "--seed", "0"]
        if self.embedding:
            cmd += ["--embedding", "true"]
        if self.lora_path:
            cmd += ["--lora_path", str(self.lora_path)]
        return cmd


def port_of(base_url: str) -> int:
    parsed = urlparse(base_url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or not parsed.port:
        raise JudgeEvalError(f"{base_url} is not a loopback URL with a port; local servers only run on 127.0.0.1")
    return parsed.port


def wait_ready(spec: ServerSpec, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise JudgeEvalError(f"llama.cpp server {spec.name} exited with {proc.returncode} while starting; "
                                 f"its log is {log}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urlopen(spec.base_url + "/models", timeout=2) as response:
                json.load(response)
                return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.5)
    raise JudgeEvalError(f"llama.cpp server {spec.name} did not answer on {spec.base_url} within {timeout:.0f} s; "
                         f"its log is {log}")


@contextmanager
def serve(spec: ServerSpec, log_dir: Path) -> Iterator[ServerSpec]:
    """Start one server, wait until it answers, and stop it (and only it) at the end."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{spec.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(spec.command(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(spec, proc, log)
        print(f"[judge-eval] serving {spec.alias} on {spec.base_url} (pid {proc.pid}, log {log})", flush=True)
        yield spec
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Servers:
    """Servers started by one recording run; all are stopped when it ends."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._stack = ExitStack()

    def start(self, spec: ServerSpec) -> ServerSpec:
        return self._stack.enter_context(serve(spec, self.log_dir))

    def __enter__(self) -> "Servers":
        self._stack.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

"""The one place that knows the internals of llama-index-finetuning's ``OpenAIFinetuneEngine``.

The design names that engine for the OpenAI distillation, and we keep it: ``get_current_job`` and
``get_finetuned_model`` are its public API. Its constructor, though, builds a bare
``openai.OpenAI(api_key=os.getenv("OPENAI_API_KEY"))`` (llama-index-finetuning 0.4.2), so the base
URL, retries and key would come from the process environment, and its ``finetune`` loops forever
(sleeping 60 s) on any HTTP 400. We construct it with our own client instead and start the job
ourselves, which means setting two private attributes: ``_client`` and ``_start_job``. That is
confined to this module; ``tests/unit/test_ft_engine.py`` pins it against the installed version and
fails, naming this file, if the engine changes shape. Nothing here reads or sets an environment
variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The version whose internals this module was written against (pinned in pyproject.toml).
PINNED_VERSION = "0.4.2"


def build_engine(base_model: str, data_path: Path | str, client: Any) -> Any:
    """An ``OpenAIFinetuneEngine`` for ``data_path`` that talks through ``client``."""
    from llama_index.finetuning import OpenAIFinetuneEngine

    class _Engine(OpenAIFinetuneEngine):
        def __init__(self) -> None:  # noqa: D401 - the parent's __init__ would build its own client
            self.base_model = base_model
            self.data_path = str(data_path)
            self._verbose = False
            self._validate_json = True
            self._start_job = None
            self._client = client

    return _Engine()


def attach_job(engine: Any, job: Any) -> None:
    """Tell the engine which job it follows (what its own ``finetune`` would have stored)."""
    engine._start_job = job


def started_job(engine: Any) -> Any:
    """The job the engine follows, or None before one was attached."""
    return engine._start_job

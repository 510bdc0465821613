"""Pins what judge_eval.distillation.ft_engine relies on in llama-index-finetuning's
OpenAIFinetuneEngine: if an upgrade changes it, this fails and names the module to revisit."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from types import SimpleNamespace

from judge_eval.distillation import ft_engine

WHERE = "judge_eval/distillation/ft_engine.py sets OpenAIFinetuneEngine's private fields; re-check it"


def test_the_installed_version_is_the_one_the_adapter_was_written_for() -> None:
    assert version("llama-index-finetuning") == ft_engine.PINNED_VERSION, WHERE


def test_the_engine_still_reads_the_fields_the_adapter_sets() -> None:
    from llama_index.finetuning import OpenAIFinetuneEngine

    init = inspect.getsource(OpenAIFinetuneEngine.__init__)
    for field in ("self._client", "self._start_job", "self._validate_json", "self._verbose"):
        assert field in init, f"{field} is no longer set by OpenAIFinetuneEngine.__init__: {WHERE}"
    assert "self._client.fine_tuning.jobs.retrieve" in inspect.getsource(OpenAIFinetuneEngine.get_current_job), WHERE


def test_the_engine_follows_the_attached_job_through_our_client() -> None:
    retrieved = []

    def retrieve(job_id):
        retrieved.append(job_id)
        return SimpleNamespace(id=job_id, status="running")

    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=SimpleNamespace(retrieve=retrieve)))
    engine = ft_engine.build_engine("gpt-3.5-turbo", "/nonexistent/events.jsonl", client)
    assert ft_engine.started_job(engine) is None
    ft_engine.attach_job(engine, SimpleNamespace(id="ftjob-1"))
    assert engine.get_current_job().status == "running"
    assert retrieved == ["ftjob-1"]
    assert ft_engine.started_job(engine).id == "ftjob-1"
    assert engine.base_model == "gpt-3.5-turbo" and engine.data_path == "/nonexistent/events.jsonl"


def test_building_the_engine_reads_no_environment(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the engine's own __init__ would need it
    engine = ft_engine.build_engine("m", "x.jsonl", client=object())
    assert engine._client is not None  # our client, not one built from the environment

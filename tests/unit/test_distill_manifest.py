"""Replay of a local distillation: the committed manifest must match the events we would train on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge_eval.distillation.distiller import DistillError, check_manifest, data_hash


def test_manifest_hash_must_match_the_training_events(tmp_path: Path) -> None:
    events = tmp_path / "training.jsonl"
    events.write_text('{"messages": []}\n')
    manifest_path = tmp_path / "distill-train.json"
    good = {"model": "ft:x", "data_hash": data_hash(events)}
    manifest_path.write_text(json.dumps(good))
    check_manifest(good, events, manifest_path, "judge-eval record --profile local --stage distill")
    events.write_text('{"messages": [{"role": "user", "content": "changed"}]}\n')
    with pytest.raises(DistillError) as info:
        check_manifest(good, events, manifest_path, "judge-eval record --profile local --stage distill")
    message = str(info.value)
    assert str(manifest_path) in message and data_hash(events) in message
    assert "judge-eval record --profile local --stage distill" in message

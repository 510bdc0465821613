"""The llama.cpp servers `judge-eval record` starts: logprobs need --logits_all true (llama-cpp-python
0.3.36 answers a logprobs request with HTTP 500 without it), and only models asking for them get it."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.config.profiles import load_profiles
from judge_eval.orchestration import rerecord
from judge_eval.orchestration.local_servers import ServerSpec

ROOT = Path(__file__).resolve().parents[2]


def _flag(cmd: list[str]) -> str:
    return cmd[cmd.index("--logits_all") + 1]


def test_logits_all_is_off_unless_asked() -> None:
    spec = ServerSpec(name="s", model_path=Path("m.gguf"), port=18201, alias="m")
    assert _flag(spec.command()) == "false"
    assert _flag(ServerSpec(name="s", model_path=Path("m.gguf"), port=18201, alias="m",
                            logits_all=True).command()) == "true"


@pytest.mark.parametrize("logprobs", [False, True])
def test_the_student_and_its_adapter_server_get_logits_all_when_the_student_asks_for_logprobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logprobs: bool) -> None:
    profile = load_profiles(ROOT / "pyproject.toml")["study-local"]
    student = profile.pipeline.student.model_copy(update={"logprobs": logprobs})
    models = profile.pipeline.models.model_copy(update={"student": student})
    profile = profile.model_copy(update={"pipeline": profile.pipeline.model_copy(update={"models": models})})
    started: list[ServerSpec] = []

    class FakeServers:
        def __init__(self, log_dir: Path) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def start(self, spec: ServerSpec) -> ServerSpec:
            started.append(spec)
            return spec

    import judge_eval.orchestration.local_servers as servers_mod
    import judge_eval.orchestration.local_models as models_mod

    monkeypatch.setattr(servers_mod, "Servers", FakeServers)
    monkeypatch.setattr(models_mod, "model_file", lambda name: Path(f"/models/{name}.gguf"))

    def run_all(ctx, study_dir):  # the stages: serve one adapter, as the distill stage does
        ctx.serve_adapter(tmp_path / "adapter.gguf", "ft:student")

    monkeypatch.setattr(rerecord, "run_all", run_all)

    class Ctx:
        serve_adapter = None
        local_files = None

    rerecord._record_with_servers(Ctx(), profile, tmp_path, False, ROOT, None)
    assert [s.port for s in started] == [18201, 18204]
    assert [_flag(s.command()) for s in started] == [str(logprobs).lower()] * 2

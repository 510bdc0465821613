"""``judge-eval record``: re-record every cassette of a profile against real servers.

For a profile whose models live on 127.0.0.1 (``local``), it installs what recording needs
(llama-cpp-python built from source, the model packages, peft), starts one llama.cpp server per
model on the ports the profile names, runs the pipeline with every stage recording, starts the
distilled student's server when the adapter is trained, and stops every server it started. For
a profile of remote APIs (``openai``) it only runs the pipeline; the keys come from the
environment variables the profile names.

At the end it says what changed against the previous recording: per cassette the interactions
added, removed, changed and unchanged (volatile fields such as a completion's id aside:
``judge_eval.recording.rerecord_stable``), and per judge the test items whose verdict changed
(``compare_runs`` on the previous cassettes replayed offline vs the new run). The previous
cassettes are copied into the work folder before the first call.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from judge_eval.config.profiles import Profile
from judge_eval.errors import ConfigError
from judge_eval.live.pipeline import STAGES, Context, modes_from, run_all

#: In the work folder: the profile's cassettes as they were before the recording.
PREVIOUS_DIR = "previous-cassettes"
#: In the work folder: the run the previous cassettes replay to (for the verdicts that changed).
PREVIOUS_RUN_DIR = "previous-run"


def _local_servers(profile: Profile) -> dict[int, tuple[str, bool]]:
    """port -> (model name, embedding?) for every model the profile serves on loopback."""
    from judge_eval.orchestration.local_servers import port_of

    cfg = profile.pipeline
    assert cfg is not None
    ports: dict[int, tuple[str, bool]] = {}
    specs = [s for s in (cfg.question_writer, *cfg.answerers, cfg.teacher, cfg.student) if s is not None]
    for spec, embedding in [(s, False) for s in specs] + [(cfg.embeddings, True)]:
        if spec is None or spec.api != "openai-like":
            continue
        port = port_of(spec.base_url or "")
        if ports.setdefault(port, (spec.model, embedding)) != (spec.model, embedding):
            raise ConfigError(f"profile {profile.name}: port {port} is given to both {ports[port][0]} and "
                              f"{spec.model}; one llama.cpp server serves one model")
    return ports


def is_local(profile: Profile) -> bool:
    cfg = profile.pipeline
    return cfg is not None and cfg.distill is not None and cfg.distill.kind == "local-lora"


def record(profile: Profile, *, cassette_root: Path, run_dir: Path | None = None, stage: str | None = None,
           install: bool = True, project_root: Path, resume: bool = False,
           study_dir: Path | None = None, concurrency: int | None = None,
           keep_workdir: bool = False) -> dict[str, Any]:
    """Re-record the profile's cassettes (from ``stage`` on); returns a summary.

    ``resume``: continue an interrupted recording in ``run_dir``: cassettes are extended, not
    replaced (a call already recorded is replayed, not repeated), and judging stages skip the
    items their journals hold."""
    if resume and (run_dir is None or not Path(run_dir).is_dir()):
        raise ConfigError("--resume needs the run directory of the interrupted recording (--run-dir DIR)")
    if profile.pipeline is None:
        raise ConfigError(f"profile {profile.name!r} has no pipeline to record")
    if stage is not None and stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if is_local(profile) and stage == "students":
        # The distilled student is served only while recording: re-train it too.
        print("[judge-eval] the distilled student is served only while recording: re-recording from "
              "the distill stage", flush=True)
        stage = "distill"
    temporary = run_dir is None
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix=f"judge-eval-{profile.name}-"))
    previous = keep_previous(cassette_root / profile.name, run_dir, resume=resume)
    ctx = Context(profile=profile, cassette_root=cassette_root, run_dir=run_dir,
                  modes=modes_from(stage, "new_episodes" if resume else "all"),
                  concurrency=concurrency or profile.pipeline.concurrency)
    started = time.monotonic()
    try:
        _record_with_servers(ctx, profile, run_dir, install, project_root, study_dir)
    except BaseException:
        _say_what_was_kept(ctx, profile, run_dir, stage)
        print(f"[judge-eval] work folder kept for --resume: {run_dir} ({_size(run_dir)})", flush=True)
        raise
    finally:
        ctx.close()
    seconds = time.monotonic() - started
    folder = cassette_root / profile.name
    sizes = {p.name: p.stat().st_size for p in sorted(folder.glob("*")) if p.is_file()}
    changes = changes_since(profile, previous, folder, run_dir, study_dir=study_dir)
    workdir = finish_workdir(run_dir, temporary=temporary, keep=keep_workdir)
    return {"profile": profile.name, "seconds": round(seconds, 1), "run_dir": str(run_dir), "workdir": workdir,
            "cassettes": str(folder), "requests": {k: v["requests"] for k, v in ctx.observed.items()},
            "cassette_bytes": sizes, "counts": ctx.counts, "changes": changes}


def keep_previous(folder: Path, run_dir: Path, *, resume: bool) -> Path:
    """Copy the profile's cassette folder as it is before recording into the work folder, for
    the change summary at the end. A resumed recording keeps the copy made before the
    interrupted one (the stages that finished have replaced their cassettes since)."""
    import shutil

    dest = run_dir / PREVIOUS_DIR / folder.name
    if resume and dest.is_dir():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.is_file():
            shutil.copyfile(path, dest / path.name)
    return dest


def changes_since(profile: Profile, previous: Path, folder: Path, run_dir: Path, *,
                  study_dir: Path | None = None) -> dict[str, Any]:
    """Print and return what changed from the cassettes in ``previous`` to those in ``folder``:
    per cassette, interactions added, removed, changed and unchanged; per other file (the
    distillation manifest), whether it changed; per judge, the test items whose verdict changed."""
    from judge_eval.recording.rerecord_stable import cassette_changes

    old = {p.name for p in previous.glob("*") if p.is_file()}
    new = {p.name for p in folder.glob("*") if p.is_file()}
    if not any(name.endswith(".yaml") for name in old):
        print(f"[judge-eval] changes: no previous recording of profile {profile.name}", flush=True)
        return {"previous": None}
    lines = [f"[judge-eval] changes against the previous recording of profile {profile.name}:"]
    cassettes: dict[str, dict[str, int]] = {}
    files: dict[str, str] = {}
    identical = True
    width = max(map(len, old | new))
    for name in sorted(old | new):
        was, now = previous / name, folder / name
        same = name in old and name in new and was.read_bytes() == now.read_bytes()
        identical = identical and same
        if name.endswith(".yaml"):
            c = cassette_changes(was, now)
            cassettes[name] = c.to_json()
            state = " (new cassette)" if name not in old else " (cassette removed)" if name not in new else ""
            lines.append(f"  {name:<{width}}  {c.added} added, {c.removed} removed, {c.changed} changed, "
                         f"{c.unchanged} unchanged{state}")
        else:
            files[name] = ("unchanged" if same else "added" if name not in old
                           else "removed" if name not in new else "changed")
            lines.append(f"  {name:<{width}}  {files[name]}")
    print("\n".join(lines), flush=True)
    verdicts = _verdict_changes(profile, previous, run_dir, study_dir, identical)
    return {"previous": str(previous), "cassettes": cassettes, "files": files, "verdicts": verdicts}


def _verdict_changes(profile: Profile, previous: Path, run_dir: Path, study_dir: Path | None,
                     identical: bool) -> dict[str, Any]:
    """Per judge, the test items whose verdict differs between the previous recording (its
    cassettes replayed offline by this code) and the new run; printed, and returned."""
    if identical:
        print("[judge-eval] verdicts changed: none (every cassette and file is byte for byte as it was)",
              flush=True)
        return {"changed": {}, "note": "every cassette and file is as it was"}
    import shutil

    from judge_eval.core.store import read_run
    from judge_eval.gating.compare import compare_runs

    old_run = run_dir / PREVIOUS_RUN_DIR
    shutil.rmtree(old_run, ignore_errors=True)
    print(f"[judge-eval] replaying the previous cassettes into {old_run} to compare verdicts", flush=True)
    ctx = Context(profile=profile, cassette_root=previous.parent, run_dir=old_run, modes=modes_from(None, "none"))
    try:
        run_all(ctx, study_dir)
        old_items = list(read_run(old_run, require=("test",), parts=("test",)).test)
        new_items = list(read_run(run_dir, require=("test",), parts=("test",)).test)
        result = compare_runs(old_items, new_items, reference=profile.reference, gated=profile.gated,
                              profile=profile)
    except Exception as exc:  # noqa: BLE001 - the recording succeeded; only the comparison is lost
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        print(f"[judge-eval] verdicts not compared: replaying the previous cassettes with this code or "
              f"comparing the runs failed ({why})", flush=True)
        return {"error": why}
    finally:
        ctx.close()
    changed = {j.judge: len(j.changed) for j in result.judges}
    print(f"[judge-eval] verdicts changed (of {len(new_items)} test items): "
          + (", ".join(f"{judge} {n}" for judge, n in changed.items()) or "no judge in both runs"), flush=True)
    return {"changed": changed, "items": len(new_items),
            "items_changed": {j.judge: [c.id for c in j.changed] for j in result.judges}}


def _size(folder: Path) -> str:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return f"{total / 1e6:.1f} MB"


def finish_workdir(run_dir: Path, *, temporary: bool, keep: bool) -> str:
    """After a successful recording: the temporary work folder (made because no --run-dir was
    given) is removed unless ``keep``; a folder the user named is always kept. Says which, with
    the path and size, and returns the same words for the summary."""
    import shutil

    size = _size(run_dir)
    if temporary and not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
        said = f"removed the temporary work folder {run_dir} ({size}); keep it with --keep-workdir"
    else:
        said = f"kept the work folder {run_dir} ({size})"
    print(f"[judge-eval] {said}", flush=True)
    return said


def _say_what_was_kept(ctx: Context, profile: Profile, run_dir: Path, stage: str | None) -> None:
    """After a failed recording: the failed stage's cassette is as it was; the calls it already
    paid for are in the run directory, and this is the command that continues from them."""
    import sys

    partial = sorted(p.name for p in ctx.partial_dir.glob("*.yaml")) if ctx.partial_dir.is_dir() else []
    if not partial:
        return
    again = f"judge-eval record --profile {profile.name}{f' --stage {stage}' if stage else ''} " \
            f"--run-dir {run_dir} --resume"
    print(f"[judge-eval] recording failed: the stages that finished have their new cassettes; every other "
          f"cassette in {ctx.cassette_root / profile.name} is as it was. The calls already made are kept in "
          f"{ctx.partial_dir} ({', '.join(partial)}); continue with: {again} (and any other option you gave)",
          file=sys.stderr, flush=True)


def _record_with_servers(ctx: Context, profile: Profile, run_dir: Path, install: bool, project_root: Path,
                         study_dir: Path | None) -> None:
    """Run every stage; for a local profile inside the llama.cpp servers it needs (all stopped
    at the end, the adapter's too)."""
    if not is_local(profile):
        run_all(ctx, study_dir)
        return
    from judge_eval.orchestration import local_models
    from judge_eval.orchestration.local_models import ensure_record_packages, model_file
    from judge_eval.orchestration.local_servers import ServerSpec, Servers, port_of

    if install:
        ensure_record_packages(project_root)
    cfg = profile.pipeline
    logprobs = {port_of(s.base_url or "") for s in (cfg.question_writer, *cfg.answerers, cfg.teacher, cfg.student)
                if s is not None and s.api == "openai-like" and s.logprobs}
    with Servers(run_dir / "server-logs") as servers:
        for port, (model, embedding) in sorted(_local_servers(profile).items()):
            servers.start(ServerSpec(name=f"{model}-{port}", model_path=model_file(model), port=port,
                                     alias=model, embedding=embedding, logits_all=port in logprobs))
        distill = profile.pipeline.distill

        def serve_adapter(adapter: Path, alias: str) -> str:
            port = port_of(distill.base_url or "")
            spec = ServerSpec(name=f"lora-{port}", model_path=model_file(profile.pipeline.student.model),
                              port=port, alias=alias, lora_path=adapter, logits_all=cfg.student.logprobs)
            return servers.start(spec).base_url

        ctx.serve_adapter = serve_adapter
        ctx.local_files = local_models
        run_all(ctx, study_dir)

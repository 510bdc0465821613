"""Rerunnable speed measurements, reported as ratios measured in one run.

    python benchmarks/bench.py            # everything (about 4 minutes on 2 cores)
    python benchmarks/bench.py judging    # or: imports, replay, release
    python benchmarks/bench.py release --against=COMMIT   # release time, this tree vs COMMIT
    python benchmarks/bench.py scale [SIZES...]           # report/gate/compare at 10k, 100k, 1M items

judging  The real judging stage (PairwiseComparisonEvaluator, the project's parser, RetryingLLM,
         the openai-like client) on 64 pairs against a loopback OpenAI-compatible server in its
         own process (benchmarks/latency_server.py, listen backlog 128, HTTP/1.1 keep-alive)
         that answers every call after 200 ms: sequential vs concurrency 8, 16, 32 and 64.
         `judging --loopback-server`: the server answers as tests/loopback.py does (HTTP/1.0, a
         new connection per call, and a session cookie), as it did for the earlier figures.
imports  `import judge_eval` and `pytest --collect-only`, each in a fresh interpreter: wall time,
         and whether torch or llama_index.finetuning got loaded.
replay   Time per replayed request from cassettes of 100, 1,000 and 5,000 recorded interactions,
         with judge_eval's indexed replay and with vcrpy's own scan (the latter sampled on 50
         requests at the larger sizes: a full scan replay of 5,000 takes tens of minutes).
scale    `report`, `gate` and `compare` on synthetic runs of 10k, 100k and 1M items against a
         floor (benchmarks/scale.py; not part of the default set: about 10 minutes)
release  `pytest -m release` three times, as pytest reports its own time; with --against=COMMIT
         the runs of this tree and of COMMIT (in a temporary git worktree) interleave.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LATENCY = 0.2
PAIRS = 64


CONCURRENCY = (1, 8, 16, 32, 64)


def bench_judging(loopback_server: bool = False) -> dict:
    import httpx

    from judge_eval.live.clients import build_llm
    from judge_eval.live.judging import judge_items
    from judge_eval.config.pipeline_spec import ModelSpec
    from judge_eval.core.items import Answer, QAItem, item_id

    # The server runs in its own process (its threads do not share this process's GIL with the
    # client), with a listen backlog above the highest concurrency (socketserver's default, 5,
    # made connections beyond it wait for the accept loop).
    backlog = 2 * max(CONCURRENCY)
    flags = ["close", "cookie"] if loopback_server else []
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "latency_server.py"),
                               str(LATENCY), str(backlog), *flags], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    load_before = os.getloadavg()
    try:
        base_url = server.stdout.readline().strip()

        def answered() -> int:
            return httpx.post(f"{base_url}/count", json={}).json()["count"]

        items = [QAItem(id=item_id("test", f"q{i}"), split="test", question=f"question {i}?",
                        answers=(Answer("m1", f"answer one {i}"), Answer("m2", f"answer two {i}")), source="context")
                 for i in range(PAIRS)]
        spec = ModelSpec(role="teacher", api="openai-like", model="m", label="m", base_url=base_url, timeout=30)
        # Untimed: the first client and the first judged item import llama-index's OpenAI and
        # evaluation modules and the SDK's (about 4 s of CPU), which would otherwise be charged
        # to the sequential run, the baseline of every ratio (in the earlier figures they were).
        asyncio.run(judge_items(items[:1], build_llm(spec, replay=False), "teacher"))
        times, cpu = {}, {}
        for concurrency in CONCURRENCY:
            before = answered()
            start_t, start_cpu = time.perf_counter(), time.process_time()
            # A new client (and connection pools) per run, as each pipeline run builds its own.
            asyncio.run(judge_items(items, build_llm(spec, replay=False), "teacher", concurrency=concurrency))
            times[concurrency] = time.perf_counter() - start_t
            cpu[concurrency] = time.process_time() - start_cpu  # the client's CPU time (all its threads)
            assert answered() - before == 2 * PAIRS
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    load_after = os.getloadavg()
    connection = "HTTP/1.0, a connection per call, a cookie" if loopback_server else "HTTP/1.1 keep-alive"
    out = {"pairs": PAIRS, "latency_s": LATENCY, "server": f"own process, listen backlog {backlog}, {connection}",
           "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                   "after": [round(x, 2) for x in load_after]},
           "seconds": {k: round(v, 2) for k, v in times.items()},
           "client_cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
           "client_cpu_ms_per_call": {k: round(1000 * v / (2 * PAIRS), 2) for k, v in cpu.items()},
           # 2 x ceil(64 / C) rounds of 200 ms, one after another; the one event loop sends and
           # reads each round's calls one at a time, so the client's CPU adds to the latency.
           "latency_plus_cpu_s": {c: round(2 * -(-PAIRS // c) * LATENCY + cpu[c], 2) for c in CONCURRENCY}}
    for c in CONCURRENCY[1:]:
        speedup = times[1] / times[c]
        ideal = min(c, PAIRS)
        out[f"speedup_{c}"] = round(speedup, 2)
        out[f"share_of_ideal_{c}"] = round(speedup / ideal, 3)
    return out


def bench_imports() -> dict:
    code_import = ("import sys, time; t = time.perf_counter(); import judge_eval, judge_eval.cli, "
                   "judge_eval.plugin; print(time.perf_counter() - t, 'torch' in sys.modules, "
                   "'llama_index.finetuning' in sys.modules)")
    code_collect = ("import sys, time, pytest; t = time.perf_counter(); "
                    "pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider']); "
                    "print(); print(time.perf_counter() - t, 'torch' in sys.modules, "
                    "'llama_index.finetuning' in sys.modules)")
    out = {}
    for name, code in (("import judge_eval", code_import), ("pytest --collect-only", code_collect)):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        inner, torch, finetuning = res.stdout.strip().splitlines()[-1].split()
        out[name] = {"wall_s": round(wall, 2), "inside_s": round(float(inner), 2),
                     "torch_loaded": torch == "True", "llama_index_finetuning_loaded": finetuning == "True"}
    return out


def bench_replay(sizes=(100, 1000, 5000), sample: int = 50) -> dict:
    import httpx
    import vcr

    from judge_eval.recording.cassettes import CassetteSpec, cassette
    from tests.loopback import start

    lb, server = start()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            spec = CassetteSpec(root=Path(tmp), profile="bench", stage=f"n{n}", split="test")
            bodies = [{"model": "m", "messages": [{"role": "user", "content": f"request {i} " + "x" * 400}]}
                      for i in range(n)]
            with httpx.Client() as client, cassette(spec, "all"):  # recorded against our loopback server
                for body in bodies:
                    client.post(f"{lb.base_url}/chat/completions", json=body)
            with httpx.Client() as client, cassette(spec, "none"):
                t = time.perf_counter()
                for body in bodies:
                    client.post(f"{lb.base_url}/chat/completions", json=body)
                indexed = (time.perf_counter() - t) / n
            probe = bodies if n <= 1000 else bodies[-sample:]  # the last ones: the scan's worst case
            plain = vcr.VCR(record_mode="none", match_on=["method", "path", "query", "body"])
            with httpx.Client() as client, plain.use_cassette(str(spec.path)):
                t = time.perf_counter()
                for body in probe:
                    client.post(f"{lb.base_url}/chat/completions", json=body)
                scan = (time.perf_counter() - t) / len(probe)
            out[n] = {"indexed_ms_per_request": round(indexed * 1000, 2),
                      "vcrpy_scan_ms_per_request": round(scan * 1000, 2),
                      "scan_requests_timed": len(probe)}
    server.shutdown()
    return out


def bench_release(runs: int = 3, commits: tuple[str, ...] = ()) -> dict:
    """``pytest -m release`` as pytest itself reports its time, ``runs`` times; with commits,
    each commit is checked out in a temporary worktree and the runs interleave (so they share
    the machine's load)."""
    import re
    import statistics

    def once(root: Path) -> float:
        env = {**os.environ, "PYTHONPATH": str(root)}
        res = subprocess.run([sys.executable, "-m", "pytest", "-m", "release", "-q", "-p", "no:cacheprovider",
                              f"--study-dir={ROOT.parent / 'shared' / 'seed_run'}"],
                             capture_output=True, text=True, cwd=root, env=env)
        found = re.search(r"(\d+) passed.* in ([\d.]+)s", res.stdout.strip().splitlines()[-1])
        if res.returncode != 0 or not found:
            raise SystemExit(f"pytest -m release failed in {root}:\n{res.stdout[-2000:]}")
        return float(found.group(2))

    with tempfile.TemporaryDirectory() as tmp:
        roots = {"working tree": ROOT}
        for commit in commits:
            roots[commit] = Path(tmp) / commit
            subprocess.run(["git", "worktree", "add", "--detach", str(roots[commit]), commit], cwd=ROOT,
                           check=True, capture_output=True)
        try:
            seconds: dict[str, list[float]] = {name: [] for name in roots}
            for _ in range(runs):
                for name, root in roots.items():
                    seconds[name].append(once(root))
        finally:
            for commit in commits:
                subprocess.run(["git", "worktree", "remove", "--force", str(roots[commit])], cwd=ROOT,
                               capture_output=True)
    return {name: {"runs_s": s, "median_s": statistics.median(s), "max_s": max(s)} for name, s in seconds.items()}


def main(argv: list[str]) -> None:
    if argv[:1] == ["scale"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale import main as scale_main

        scale_main(argv[1:])
        return
    which = [a for a in argv if not a.startswith("--")] or ["judging", "imports", "replay", "release"]
    results = {}
    if "judging" in which:
        results["judging"] = bench_judging(loopback_server="--loopback-server" in argv)
    if "imports" in which:
        results["imports"] = bench_imports()
    if "replay" in which:
        results["replay"] = bench_replay()
    if "release" in which:
        results["release"] = bench_release(commits=tuple(a.split("=", 1)[1] for a in argv if a.startswith("--against=")))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

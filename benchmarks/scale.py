"""`report`, `gate` and `compare` on large synthetic runs, against a floor, measured in one run.

    python benchmarks/scale.py                  # 10k, 100k and 1M items (about 10 minutes)
    python benchmarks/scale.py 10000 100000     # chosen sizes
    python benchmarks/bench.py scale            # the same, through bench.py

For each size N it writes (seeded) two runs of N pairwise items with three judges (the reference
`gpt_4` and the students `s1`, `s2`; the second run changes some of `s2`'s verdicts) into a
temporary folder, deleted afterwards, with a profile gating `s1` in a temporary pyproject.toml.
Then each measured command runs in its own subprocess under a fresh wrapper process, which
reports the wall time and the peak resident memory of its child (resource.getrusage(
RUSAGE_CHILDREN).ru_maxrss, kB on Linux):

floor    read test_qa_complete.jsonl a line at a time with `json.loads`, and count with numpy
         how often `s1` agrees with the reference (both conclusive, scores in the corrected
         frame): the least any agreement report must do, without a bootstrap.
report   `judge-eval report RUN`
gate     `judge-eval gate RUN --profile scale --config TMP/pyproject.toml`
compare  `judge-eval compare RUN RUN2 --profile scale --config TMP/pyproject.toml` (two runs:
         its floor is twice the floor)

Ratios are to the floor of the same size, measured in the same run.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUDGES = ("gpt_4", "s1", "s2")
SIZES = (10_000, 100_000, 1_000_000)
TARGET_MEMORY_GB = 4.0
TARGET_RATIO = 5.0

FLOOR = r"""
import json, sys
import numpy as np
ref, cand, ok = [], [], []
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        if not line.strip():
            continue
        item = json.loads(line)
        by = {e["llm"]: e for e in item.get("evaluations", ())}
        r, c = by.get("gpt_4"), by.get("s1")
        if r is None or c is None:
            ok.append(False); ref.append(0.0); cand.append(0.0); continue
        conclusive = r["source"] in ("original", "flipped") and c["source"] in ("original", "flipped")
        ok.append(conclusive)
        ref.append(1.0 - r["score"] if r["source"] == "flipped" else (r["score"] or 0.0))
        cand.append(1.0 - c["score"] if c["source"] == "flipped" else (c["score"] or 0.0))
ok, ref, cand = np.array(ok), np.array(ref), np.array(cand)
print(int((ok & (ref == cand)).sum()), int(ok.sum()))
"""

# The wrapper: run the command, report its wall time and its peak RSS (the only child).
WRAPPER = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
res = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(wall, peak_kb, res.returncode)
sys.stderr.write(res.stderr.decode(errors="replace")[-2000:])
"""

PROFILE = """[tool.judge_eval.profiles.scale]
reference = "gpt_4"
gated = ["s1"]

[tool.judge_eval.profiles.scale.thresholds]
min_agreement = 0.5
"""


def _verdict(rng: random.Random, llm: str, truth: float, accuracy: float) -> dict:
    draw = rng.random()
    source = "original" if draw < 0.6 else "flipped" if draw < 0.85 else "neither"
    score = truth if rng.random() < accuracy else rng.choice((0.0, 0.5, 1.0))
    if source == "flipped":
        score = 1.0 - score  # stored in the flipped call's frame
    words = rng.randrange(5, 12)
    return {"llm": llm, "score": score, "text": f"[[{'ABC'[int(score * 2)]}]] " + "because " * words,
            "source": source}


def write_runs(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """Two runs of the same ``n`` items (about 350 bytes a line); in the second one a tenth of
    ``s2``'s verdicts are drawn again."""
    rng = random.Random(seed)
    old, new = folder / "old", folder / "new"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    with (old / "test_qa_complete.jsonl").open("w") as fo, (new / "test_qa_complete.jsonl").open("w") as fn:
        for i in range(n):
            truth = rng.choice((0.0, 0.0, 1.0, 1.0, 0.5))
            item = {"question": f"Question {i}: which of the two answers explains topic {rng.randrange(10**6)} "
                                "better?",
                    "answers": [{"model": "m1", "text": "An answer " + "word " * rng.randrange(5, 20)},
                                {"model": "m2", "text": "Another answer " + "word " * rng.randrange(5, 20)}],
                    "source": "synthetic",
                    "evaluations": [_verdict(rng, "gpt_4", truth, 0.95), _verdict(rng, "s1", truth, 0.85),
                                    _verdict(rng, "s2", truth, 0.75)]}
            fo.write(json.dumps(item) + "\n")
            if rng.random() < 0.1:
                item["evaluations"][2] = _verdict(rng, "s2", truth, 0.6)
            fn.write(json.dumps(item) + "\n")
    return old, new


def measure(cmd: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, cwd=ROOT)
    wall, peak_kb, code = res.stdout.split()
    return {"seconds": round(float(wall), 2), "peak_mb": round(int(peak_kb) / 1024, 1), "exit": int(code),
            **({"stderr": res.stderr.strip()[-500:]} if res.stderr.strip() else {})}


def bench_scale(sizes: tuple[int, ...] = SIZES) -> dict:
    cli = [sys.executable, "-m", "judge_eval.cli"]
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="judge-eval-scale-") as tmp:
        config = Path(tmp) / "pyproject.toml"
        config.write_text(PROFILE)
        for n in sizes:
            folder = Path(tmp) / str(n)
            old, new = write_runs(folder, n)
            size_mb = (old / "test_qa_complete.jsonl").stat().st_size / 2**20
            floor = measure([sys.executable, "-c", FLOOR, str(old / "test_qa_complete.jsonl")])
            rows = {"floor": floor,
                    "report": measure([*cli, "report", str(old)]),
                    "gate": measure([*cli, "gate", str(old), "--profile", "scale", "--config", str(config)]),
                    "compare": measure([*cli, "compare", str(old), str(new), "--profile", "scale",
                                        "--config", str(config)])}
            for name, row in rows.items():
                if name != "floor":
                    base = floor["seconds"] * (2 if name == "compare" else 1)
                    row["ratio_to_floor"] = round(row["seconds"] / base, 2)
                    row["meets_target"] = (row["ratio_to_floor"] <= TARGET_RATIO
                                           and row["peak_mb"] <= TARGET_MEMORY_GB * 1024)
            out[n] = {"file_mb": round(size_mb, 1), **rows}
            shutil.rmtree(folder)
            print(json.dumps({n: out[n]}), file=sys.stderr, flush=True)  # progress
    return out


def main(argv: list[str]) -> None:
    sizes = tuple(int(a) for a in argv) or SIZES
    print(json.dumps({"scale": bench_scale(sizes)}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

"""judge-eval plot: a PNG, and confusion matrices that add up to the metrics."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import matplotlib

from judge_eval.cli import main
from judge_eval.core.metrics import run_metrics
from judge_eval.reporting.plot import confusion, plot_run
from judge_eval.core.store import Run


def test_confusion_matrices_match_the_corrected_metrics(study_run: Run) -> None:
    metrics = run_metrics(study_run.test)
    for judge, frames in metrics.judges.items():
        cm = confusion(study_run.test, judge, "gpt_4")
        c = frames["corrected"]
        assert cm.sum() == c.total and cm.trace() == c.agreements


def test_plot_writes_a_png(study_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "plot.png"
    assert main(["plot", str(study_dir), "-o", str(out), "--title", "t"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert f"wrote {out}" in capsys.readouterr().out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a well-formed PNG: signature, IHDR first, every chunk's CRC right,
    image data present, IEND last."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert len(body) == length and zlib.crc32(kind + body) == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        pos += 12 + length
    assert pos == len(data) and kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    return width, height


def backend() -> str | None:
    """The process's backend as set, without resolving it (resolving imports pyplot)."""
    return matplotlib.get_backend(auto_select=False)


def test_plot_run_leaves_the_process_backend_alone(study_run: Run, tmp_path: Path) -> None:
    before, pyplot_before = backend(), "matplotlib.pyplot" in sys.modules
    out = plot_run(run_metrics(study_run.test), study_run.test, tmp_path / "plot.png", title="t")
    assert backend() == before and ("matplotlib.pyplot" in sys.modules) == pyplot_before
    data = out.read_bytes()
    width, height = png_size(data)
    assert width > 500 and height > 200 and len(data) > 10_000


def test_plot_run_in_a_process_with_another_backend(study_dir: Path, tmp_path: Path) -> None:
    """A caller that uses the svg backend (set before judge_eval is imported) keeps it, and
    pyplot is never imported."""
    code = (
        "import sys, matplotlib\n"
        "from judge_eval.core.metrics import run_metrics\n"
        "from judge_eval.core.store import read_run\n"
        "from judge_eval.reporting.plot import plot_run\n"
        "items = read_run(sys.argv[1], require=('test',)).test\n"
        "before = matplotlib.get_backend(auto_select=False)\n"
        "plot_run(run_metrics(items), items, sys.argv[2])\n"
        "print(before, matplotlib.get_backend(auto_select=False), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = tmp_path / "plot.png"
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code, str(study_dir), str(out)], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "svg", "False"]
    width, height = png_size(out.read_bytes())
    assert width > 500 and height > 200 and out.stat().st_size > 10_000

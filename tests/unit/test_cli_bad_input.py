"""Bad input never shows a traceback: each case exits 2 with one message saying what is wrong,
where (file, line, field or option) and how to fix it.

Cases run the CLI in a child process (the real exit status and stderr, so an escaping exception
would show as a traceback) except those that simulate a permission error, which patch pathlib in
this process (tests may run as root, where a file's mode does not stop reading)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.core.store import MAX_DEPTH, QA_FILES, RUN_JSON

ROOT = Path(__file__).resolve().parents[2]
TEST_FILE = QA_FILES["test"]
#: Commands that read a run's test items, with the options that make them quick.
READERS = {
    "report": ["report", "{run}", "--resamples", "20"],
    "gate": ["gate", "{run}", "--resamples", "20", "--config", str(ROOT / "pyproject.toml")],
    "plot": ["plot", "{run}", "--resamples", "20", "-o", "{tmp}/out.png"],
    "compare": ["compare", "{run}", "{run}", "--config", str(ROOT / "pyproject.toml"), "--profile", "study"],
}


def qa_row(question: str = "What is a pair?", judges: tuple[str, ...] = ("gpt_4", "other")) -> dict:
    return {
        "question": question,
        "answers": [{"model": "m1", "text": "one"}, {"model": "m2", "text": "two"}],
        "source": "a context",
        "evaluations": [{"llm": j, "score": 1.0, "text": "[[A]]", "source": "original"} for j in judges],
    }


def write_run(folder: Path, *lines: str | bytes) -> Path:
    """A run folder whose test file holds a good first line and then ``lines``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps(qa_row("first")).encode(), *(x.encode() if isinstance(x, str) else x for x in lines)]
    (folder / TEST_FILE).write_bytes(b"\n".join(rows) + b"\n")
    return folder


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "judge_eval.cli", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def argv_for(command: str, run: Path, tmp: Path) -> list[str]:
    return [a.format(run=run, tmp=tmp) for a in READERS[command]]


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.count("judge-eval: error:") == 1 and done.stderr.endswith("\n")
    assert "How to fix" in done.stderr
    for text in expected:
        assert text in done.stderr, (text, done.stderr)
    assert "wrote" not in done.stdout


# --- bad lines in the test file: every command that reads it -----------------------------------

@pytest.mark.parametrize("command", READERS)
def test_deep_nesting(tmp_path: Path, command: str) -> None:
    run = write_run(tmp_path / "run", "[" * 5000 + "]" * 5000)
    done = cli(*argv_for(command, run, tmp_path))
    assert_one_clear_error(done, f"{run / TEST_FILE}:2: arrays/objects nested deeper than {MAX_DEPTH} levels")


def test_deep_nesting_in_a_field_names_it(tmp_path: Path) -> None:
    # Below Python's recursion limit the field is named; above it (the case above) file and line.
    row = json.dumps(qa_row("deep"))[:-1] + ', "notes": ' + "[" * 300 + "]" * 300 + "}"
    run = write_run(tmp_path / "run", row)
    assert_one_clear_error(cli("report", str(run)),
                           f"{run / TEST_FILE}:2: field 'notes': arrays/objects nested deeper")


@pytest.mark.parametrize("command", READERS)
def test_a_lone_surrogate_in_a_question(tmp_path: Path, command: str) -> None:
    run = write_run(tmp_path / "run", json.dumps(qa_row("broken \ud800 text")))
    done = cli(*argv_for(command, run, tmp_path))
    assert_one_clear_error(done, f"{run / TEST_FILE}:2: field 'question': lone surrogate \\ud800",
                           "not valid Unicode text", "fix the line")


def test_invalid_utf8_bytes_keep_their_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", json.dumps(qa_row("QQ")).encode().replace(b"QQ", b"\xff\xfe"))
    assert_one_clear_error(cli("report", str(run)), f"{run / TEST_FILE}:2: not valid JSON (",
                           "can't decode byte 0xff")


def test_the_test_file_is_a_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / TEST_FILE).mkdir(parents=True)
    assert_one_clear_error(cli("report", str(run)), f"{run / TEST_FILE}: is a folder, not a file",
                           f"replace that folder with the file {TEST_FILE}")


# --- permissions (simulated: tests may run as root) ---------------------------------------------

def deny(monkeypatch: pytest.MonkeyPatch, method: str, denied: Path) -> None:
    original = getattr(Path, method)

    def guarded(self: Path, *args, **kwargs):
        if self == denied or denied in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, guarded)


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("judge-eval: error:") == 1
    assert "How to fix" in captured.err and "chmod" in captured.err
    return captured.err


def test_an_unreadable_test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    run = write_run(tmp_path / "run")
    for method in ("read_bytes", "open"):  # whole-file and line-at-a-time reads
        deny(monkeypatch, method, run / TEST_FILE)
    err = in_process(capsys, "report", str(run))
    assert f"{run / TEST_FILE}: permission denied: cannot read this file" in err


def test_an_unreadable_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    run = write_run(tmp_path / "run")
    deny(monkeypatch, "stat", run / TEST_FILE)
    err = in_process(capsys, "report", str(run))
    assert f"{run}: permission denied: cannot look inside this folder" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads whatever the mode; the simulated tests above cover it")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_real_permissions(tmp_path: Path, what: str) -> None:
    run = write_run(tmp_path / "run")
    target = run / TEST_FILE if what == "file" else run
    target.chmod(0)
    try:
        assert_one_clear_error(cli("report", str(run)), "permission denied")
    finally:
        target.chmod(0o700)


# --- commands read only the test file ------------------------------------------------------------

@pytest.mark.parametrize("command", READERS)
def test_broken_files_a_command_does_not_need_are_not_read(study_dir: Path, tmp_path: Path, command: str,
                                                           capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(study_dir / TEST_FILE, run / TEST_FILE)
    (run / QA_FILES["train"]).write_text("{broken\n")
    (run / RUN_JSON).write_text("[not an object]")
    (run / "pairwise_finetuning_events.jsonl").mkdir()
    status = main(argv_for(command, run, tmp_path))
    captured = capsys.readouterr()
    assert captured.err == "" and status in ((0, 1) if command in ("gate", "compare") else (0,))


# --- plot -------------------------------------------------------------------------------------------

def test_plot_with_only_the_reference_judge(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / TEST_FILE).write_text(json.dumps(qa_row(judges=("gpt_4",))) + "\n")
    out = tmp_path / "out.png"
    done = cli("plot", str(run), "-o", str(out))
    assert_one_clear_error(done, f"{run}: no judge besides the reference 'gpt_4'")
    assert done.stdout == "" and not out.exists()


@pytest.mark.parametrize(("output", "expected"), [
    ("folder", "cannot write the plot (Is a directory)"),
    ("plot.notanimage", "cannot write a 'notanimage' image"),
])
def test_plot_to_an_output_it_cannot_write(tmp_path: Path, output: str, expected: str) -> None:
    run = write_run(tmp_path / "run")
    (tmp_path / "folder").mkdir()
    done = cli("plot", str(run), "--resamples", "20", "-o", str(tmp_path / output))
    assert_one_clear_error(done, f"{tmp_path / output}: {expected}")

"""No file of the repository holds a run of the study's text (issue 4).

The study's questions, passages, answers and GPT-4 transcripts are read from the study folder and
never copied: not by hand, and not by a model that learned them and answered into a cassette. The
scan covers every file git tracks plus every new file it would pick up (untracked, not ignored), so
a recording is caught before it is committed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from judge_eval.recording.cassettes import ECHO_WORDS, mask_echoes
from judge_eval.core.store import Run
from judge_eval.recording.studytext import (SCAN_WORDS, TextIndex, describe, library_texts, scan_paths, study_index,
                                  study_texts)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.release

_NOT_SOURCE = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}


def repository_files(root: Path = ROOT) -> list[Path]:
    """Tracked files and new ones git would add; without git (an unpacked archive), every file
    outside caches, build output and virtual environments."""
    if (root / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
        return [root / name for name in out.decode().split("\0") if name and (root / name).is_file()]
    return [p for p in root.rglob("*") if p.is_file() and not _NOT_SOURCE & set(p.relative_to(root).parts)
            and not any(part.endswith(".egg-info") for part in p.parts)]


@pytest.fixture(scope="module")
def index(study_dir: Path) -> TextIndex:
    return study_index(study_dir)


def test_the_scan_finds_each_kind_of_study_text(index: TextIndex, study_run: Run) -> None:
    item = study_run.test[0]
    gpt4 = next(v for v in item.evaluations if v.llm == "gpt_4")
    event = study_run.resolved[0].messages[-1].content
    samples = {"question": item.question, "passage": item.source[:300], "answer": item.answers[0].text[:300],
               "GPT-4 verdict": gpt4.text, "transcript": event}
    for kind, sample in samples.items():  # the message names the kind: a log must not quote the study
        assert index.find(f"Our own words first, then a copy: {sample} And our own words after."), kind


def test_the_scan_passes_the_librarys_prompt_templates(index: TextIndex) -> None:
    for template in library_texts():
        assert index.find(template) == []


def test_masking_leaves_no_run_the_scan_would_find(index: TextIndex, study_run: Run, study_dir: Path) -> None:
    """What run_from_study gives a body-hash recording to mask, against what this scan looks for."""
    learned = study_run.resolved[0].messages[-1].content
    output = f"My verdict, as I learned it: {learned}"
    assert index.find(output)
    masked = mask_echoes(output, "", learned=TextIndex(["\n".join(study_texts(study_dir))], ECHO_WORDS))
    assert index.find(masked) == []
    assert masked.count("[[") == output.count("[[")


def test_no_file_of_the_repository_holds_the_studys_text(index: TextIndex) -> None:
    files = repository_files()
    assert len(files) > 50 and any(p.suffix == ".yaml" for p in files), "the scan found no files to read"
    hits = scan_paths(index, files, ROOT)
    assert hits == {}, (f"runs of {SCAN_WORDS}+ words of the study's text (read it from the study "
                        "folder, never copy it; re-record body-hash cassettes with the masking on):\n"
                        + "\n".join(describe(path, h) for path, h in hits.items()))

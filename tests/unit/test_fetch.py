"""fetch-study against a loopback server of our own serving the files from ../shared."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.errors import FetchError
from judge_eval.orchestration.fetch_study import STUDY_SHA256, fetch_study, verify_study_dir


@pytest.fixture
def serve(tmp_path: Path):
    """Start an HTTP server on 127.0.0.1 serving a folder; yields a function folder -> base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/pairwise"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def mirror(study_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "mirror" / "pairwise"
    folder.mkdir(parents=True)
    for name in STUDY_SHA256:
        shutil.copyfile(study_dir / name, folder / name)
    return folder


def test_fetch_downloads_and_verifies(study_dir: Path, tmp_path: Path, serve, capsys) -> None:
    base = serve(mirror(study_dir, tmp_path).parent)
    dest = tmp_path / "study"
    assert main(["fetch-study", str(dest), "--base-url", base]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(STUDY_SHA256)
    assert verify_study_dir(dest) == []
    assert "sha256 verified" in capsys.readouterr().out


def test_a_corrupted_file_is_refused_and_nothing_is_kept(study_dir: Path, tmp_path: Path, serve) -> None:
    folder = mirror(study_dir, tmp_path)
    target = folder / "pairwise_finetuning_events.jsonl"
    target.write_bytes(target.read_bytes().replace(b"[[A]]", b"[[B]]", 1))
    dest = tmp_path / "study"
    with pytest.raises(FetchError, match="pairwise_finetuning_events.jsonl: sha256 [0-9a-f]{64} does not "
                                         "match the published eff41158"):
        fetch_study(dest, base_url=serve(folder.parent))
    assert list(dest.iterdir()) == []  # not even the files that did match


def test_a_missing_file_is_a_clear_error(study_dir: Path, tmp_path: Path, serve, capsys) -> None:
    folder = mirror(study_dir, tmp_path)
    (folder / "train_qa.jsonl").unlink()
    dest = tmp_path / "study"
    assert main(["fetch-study", str(dest), "--base-url", serve(folder.parent)]) == 2
    err = capsys.readouterr().err
    assert "train_qa.jsonl failed: HTTP Error 404" in err and "nothing was kept" in err
    assert list(dest.iterdir()) == []


def test_verify_names_missing_and_mismatched_files(study_dir: Path, tmp_path: Path) -> None:
    folder = mirror(study_dir, tmp_path)
    (folder / "train_qa.jsonl").unlink()
    (folder / "test_qa_complete.jsonl").write_text("{}\n")
    problems = verify_study_dir(folder)
    assert len(problems) == 2
    assert any("train_qa.jsonl: missing" in p for p in problems)
    assert any("test_qa_complete.jsonl: sha256" in p for p in problems)


def test_the_shared_copy_matches_the_published_hashes(study_dir: Path) -> None:
    assert verify_study_dir(study_dir) == []

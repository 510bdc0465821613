"""Download the published study's run files and check them against their published hashes.

The four files come from the public run-llama/llama_index repository at a fixed commit; each
must match the sha256 recorded in ``../shared/seed_run/SOURCE.md`` (kept here as constants).
Files are downloaded into a temporary folder inside the target, checked, and only then moved
into place: a failed or corrupted download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from judge_eval.errors import FetchError
from judge_eval.recording.netguard import urlopen

STUDY_COMMIT = "6d495ce03f8457fa0b5dd23d4b0501808c12954b"
STUDY_FOLDER = "docs/examples/finetuning/llm_judge/pairwise"
STUDY_BASE_URL = (f"https://raw.githubusercontent.com/run-llama/llama_index/{STUDY_COMMIT}/"
                  f"{STUDY_FOLDER}")

#: sha256 of each file, from ../shared/seed_run/SOURCE.md.
STUDY_SHA256 = {
    "test_qa_complete.jsonl": "ae081df0ce6f3d53b44afe213047166cfbd3818f85b12a612a497f9a10608ec0",
    "train_qa.jsonl": "9dd4e0731f9ec607a36b8533bd8f42570d4529a390f499c3408e3bdd780d0c9f",
    "pairwise_finetuning_events.jsonl": "eff41158407195c0c3af4e224c81fd56c217a273b7c8cee1a685f7486510e6dd",
    "resolved_pairwise_finetuning_events.jsonl":
        "9a87daedc57aeb35220c112af8da5115e6389b477bc4bb7e20d68ebf4e51533d",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_study_dir(path: Path | str) -> list[str]:
    """Problems with the study files in ``path`` (missing or hash mismatch); empty if all good."""
    root = Path(path)
    problems = []
    for name, expected in STUDY_SHA256.items():
        file = root / name
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif (actual := sha256_file(file)) != expected:
            problems.append(f"{file}: sha256 {actual}, expected {expected}")
    return problems


def fetch_study(dest: Path | str, *, base_url: str = STUDY_BASE_URL, timeout: float = 60.0) -> Path:
    """Download the study's four files into ``dest`` and verify them; return ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-study-", dir=dest))
    try:
        for name, expected in STUDY_SHA256.items():
            url = f"{base_url.rstrip('/')}/{name}"
            target = staging / name
            try:
                with urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError) as exc:
                raise FetchError(f"downloading {url} failed: {exc}. Check the network (or proxy) and "
                                 "run `judge-eval fetch-study DIR` again; nothing was kept") from None
            actual = sha256_file(target)
            if actual != expected:
                raise FetchError(
                    f"{url}: sha256 {actual} does not match the published {expected}; the download "
                    "is corrupted or the source changed. Nothing was kept; run `judge-eval "
                    "fetch-study DIR` again, and if it persists compare with ../shared/seed_run/SOURCE.md")
        for name in STUDY_SHA256:
            (staging / name).replace(dest / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest

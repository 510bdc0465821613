"""Patterns of credentials that must never be written to a cassette, a run or a report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

PATTERNS = {
    "OpenAI API key": re.compile(r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}"),
    "Hugging Face token": re.compile(r"hf_[A-Za-z0-9]{20,}"),
    "bearer token": re.compile(r"[Bb]earer\s+[A-Za-z0-9._~+/-]{12,}"),
    "authorization header": re.compile(r"(?im)^\s*['\"]?authorization['\"]?\s*:\s*\S"),
    "api-key header": re.compile(r"(?im)^\s*['\"]?api-key['\"]?\s*:\s*\S"),
    "openai-organization header": re.compile(r"(?im)^\s*['\"]?openai-organization['\"]?\s*:\s*\S"),
    "organization id": re.compile(r"\borg-[A-Za-z0-9]{16,}\b"),
}


def find_secrets(text: str, extra: Iterable[str] = ()) -> list[str]:
    """Names of the credential patterns found in ``text`` (and any literal ``extra`` values)."""
    found = [name for name, pattern in PATTERNS.items() if pattern.search(text)]
    found += [f"literal {value[:4]}..." for value in extra if value and value in text]
    return found


def scan_files(paths: Iterable[Path], extra: Iterable[str] = ()) -> dict[str, list[str]]:
    """``{path: [pattern names]}`` for every file that holds something secret-looking."""
    extra = list(extra)
    out = {}
    for path in paths:
        if path.is_file():
            hits = find_secrets(path.read_text("utf-8", errors="replace"), extra)
            if hits:
                out[str(path)] = hits
    return out

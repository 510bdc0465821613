"""Finding the study's text in files we store or commit.

The study's run files (questions, Wikipedia passages, answers, GPT-4's verdicts and transcripts)
are third-party data: we read them from the study folder and must never copy them into the
repository. A model trained on them can reproduce them, and a cassette can store what it said, so
this module answers one question for any text: does it hold a run of ``SCAN_WORDS`` consecutive
words that also occurs in the study's files?

Words are ``\\w+`` runs, lower-cased, taken from the *decoded* JSON strings (so an escaped newline
or ``\\u2019`` in the file does not split or hide a run). Eight words is long enough that ordinary
English and the project's own wording do not collide with the study's (measured on this repository:
no false hit), and short enough to catch any sentence copied from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SCAN_WORDS = 8
_WORD = re.compile(r"\w+")


def json_strings(value: Any) -> Iterator[str]:
    """Every string inside a decoded JSON value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)


def study_texts(study_dir: Path, names: Iterable[str] | None = None) -> list[str]:
    """The decoded strings of the study's JSONL files in ``study_dir`` (all four by default).
    A missing file or a malformed line is a RunFileError naming it (the store's reader)."""
    from judge_eval.core.store import EVENTS_FILE, QA_FILES, RESOLVED_FILE, _read_jsonl

    texts: list[str] = []
    for name in names or (*QA_FILES.values(), EVENTS_FILE, RESOLVED_FILE):
        for _, value in _read_jsonl(Path(study_dir) / name, lambda line, value: value):
            texts.extend(json_strings(value))
    return texts


def library_texts() -> list[str]:
    """Text the study's files hold because the study used llama-index, not because the study
    wrote it: the pairwise evaluator's default prompt templates (MIT, shipped with the package
    we install). Every judge request of every profile carries them, so they are excluded from
    the study's index rather than reported in every cassette."""
    from llama_index.core.evaluation.pairwise import DEFAULT_SYSTEM_TEMPLATE, DEFAULT_USER_TEMPLATE

    return [DEFAULT_SYSTEM_TEMPLATE, DEFAULT_USER_TEMPLATE]


def study_index(study_dir: Path, n: int = SCAN_WORDS) -> TextIndex:
    """Every ``n``-word run of the study's four files, less the library's prompt templates."""
    return TextIndex(study_texts(study_dir), n, exclude=library_texts())


@dataclass(frozen=True)
class Hit:
    """A run of words found in a third party's text: character span in the scanned text."""
    start: int
    end: int
    words: int


class TextIndex:
    """The set of every ``n``-word run of some texts; ``find`` reports the runs another text
    shares with them (overlapping runs merged into one hit)."""

    def __init__(self, texts: Iterable[str], n: int = SCAN_WORDS, exclude: Iterable[str] = ()):
        self.n = n
        self._runs = self._collect(texts) - self._collect(exclude)
        self._vocabulary = {word for run in self._runs for word in run.split(" ")}

    def _collect(self, texts: Iterable[str]) -> set[str]:
        runs: set[str] = set()
        for text in texts:
            words = [w.lower() for w in _WORD.findall(text)]
            runs.update(" ".join(words[i:i + self.n]) for i in range(len(words) - self.n + 1))
        return runs

    def __len__(self) -> int:
        return len(self._runs)

    def find(self, text: str) -> list[Hit]:
        found = list(_WORD.finditer(text))  # spans in ``text`` itself (lower() may change lengths)
        words = [m.group().lower() for m in found]
        hits: list[Hit] = []
        n, known, first = self.n, 0, 0  # known: how many words up to here are all indexed ones
        for j, word in enumerate(words):
            known = known + 1 if word in self._vocabulary else 0
            i = j - n + 1  # the window words[i..j]; one with an unknown word cannot match
            if known < n or " ".join(words[i:j + 1]) not in self._runs:
                continue
            if hits and i <= first + hits[-1].words - 1:  # overlaps the previous run: extend it
                hits[-1] = Hit(hits[-1].start, found[j].end(), j - first + 1)
            else:
                first = i
                hits.append(Hit(found[i].start(), found[j].end(), n))
        return hits


def scan_paths(index: TextIndex, paths: Iterable[Path], root: Path | None = None) -> dict[str, list[Hit]]:
    """``{path: hits}`` for every readable text file holding a run of the indexed text. Files
    that are not UTF-8 text (images, model weights) cannot hold a copied sentence as text and
    are passed over; the caller lists which paths it scans."""
    out: dict[str, list[Hit]] = {}
    for path in paths:
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        hits = index.find(text)
        if hits:
            out[str(Path(path).relative_to(root)) if root else str(path)] = hits
    return out


def describe(path: str, hits: list[Hit]) -> str:
    """Where the hits are, without repeating the study's text (a log is a file too)."""
    spans = ", ".join(f"chars {h.start}-{h.end} ({h.words} words)" for h in hits[:5])
    more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
    return f"{path}: {len(hits)} run(s) of the study's text: {spans}{more}"

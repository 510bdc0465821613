"""The word-run index behind the masking of body-hash cassettes and the release scan for the
study's text."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from judge_eval.errors import RunFileError
from judge_eval.recording.studytext import Hit, TextIndex, json_strings, study_texts

WORDS = st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "Eps", "zeta", "x"]), max_size=30)


def naive(source: str, text: str, n: int) -> set[int]:
    """Indices of the words of ``text`` inside some ``n``-word run also found in ``source``."""
    src = [w.lower() for w in re.findall(r"\w+", source)]
    runs = {tuple(src[i:i + n]) for i in range(len(src) - n + 1)}
    words = [w.lower() for w in re.findall(r"\w+", text)]
    return {k for i in range(len(words) - n + 1) if tuple(words[i:i + n]) in runs for k in range(i, i + n)}


def covered(text: str, hits: list[Hit]) -> set[int]:
    spans = [m.span() for m in re.finditer(r"\w+", text)]
    return {k for k, (s, e) in enumerate(spans) for h in hits if h.start <= s and e <= h.end}


def test_runs_are_found_case_blind_merged_and_counted_in_words() -> None:
    index = TextIndex(["one two three four five six seven"], n=3)
    text = "Before: One TWO three four. Then: five six seven! And two three nine."
    hits = index.find(text)
    assert [(text[h.start:h.end], h.words) for h in hits] == [("One TWO three four", 4),
                                                              ("five six seven", 3)]
    assert index.find("two three nine") == [] and index.find("one two") == []


def test_excluded_text_is_not_reported() -> None:
    index = TextIndex(["shared template words here then the secret part"], n=4,
                      exclude=["shared template words here"])
    assert index.find("shared template words here") == []
    assert index.find("then the secret part")


def test_study_texts_reads_decoded_strings_and_names_a_bad_file(tmp_path) -> None:
    (tmp_path / "a.jsonl").write_text('{"q": "line one\\nline two"}\n\n{"q": ["x"]}\n')
    assert study_texts(tmp_path, ["a.jsonl"]) == ["q", "line one\nline two", "q", "x"]
    (tmp_path / "b.jsonl").write_text('{"q": "fine"}\n{"q": \n')
    with pytest.raises(RunFileError, match="not valid JSON") as bad:
        study_texts(tmp_path, ["b.jsonl"])
    assert bad.value.line == 2
    with pytest.raises(RunFileError, match="file not found"):
        study_texts(tmp_path, ["missing.jsonl"])


def test_json_strings_yields_keys_and_nested_values() -> None:
    assert list(json_strings({"a": ["b", {"c": "d"}, 1, None]})) == ["a", "b", "c", "d"]


@settings(max_examples=300, deadline=None)
@given(source=WORDS, text=WORDS, n=st.integers(1, 4))
def test_find_covers_exactly_the_words_a_naive_scan_finds(source: list[str], text: list[str], n: int) -> None:
    s, t = " ".join(source), ", ".join(text)
    hits = TextIndex([s], n).find(t)
    assert covered(t, hits) == naive(s, t, n)
    assert all(h.words == len(re.findall(r"\w+", t[h.start:h.end])) >= n for h in hits)

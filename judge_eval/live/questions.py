"""Stage 2, questions: an LLM writes one quiz question per chunk (DatasetGenerator with the
study's teacher/professor prompt)."""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

_PREFIX = re.compile(r"^\s*(question\s*\d*\s*[:.)-])\s*", re.IGNORECASE)


def clean_questions(raw: Sequence[str], limit: int) -> list[str]:
    """Strip a leading "Question:" (the study's test set kept it), drop empties and repeats
    (first one wins), and keep at most ``limit``."""
    out: list[str] = []
    seen: set[str] = set()
    for text in raw:
        question = _PREFIX.sub("", text.strip()).strip()
        if question and question.lower() not in seen:
            seen.add(question.lower())
            out.append(question)
    return out[:limit]


def splitter(chunk_size: int) -> Any:
    """The node parser of both the question writer and the answer index (the default overlap of
    200 tokens is kept for large chunks and scaled down for small ones)."""
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=chunk_size, chunk_overlap=min(200, chunk_size // 5))


def chunk(documents: Sequence[Any], chunk_size: int) -> list[Any]:
    return splitter(chunk_size).get_nodes_from_documents(list(documents))


#: The deprecations llama-index-core 0.14.25 raises on the study's question-writing path with the
#: `deprecated` package's ``action="always"`` (deprecated 1.3.1 wraps the warning in
#: ``catch_warnings(); simplefilter("always")``), which overrides every filter, pytest's
#: ``filterwarnings`` included. DatasetGenerator is the study's question writer and its suggested
#: replacement was removed in 0.14.21, so it stays, and these two exact messages are dropped here.
FORCED_DEPRECATIONS = (
    "Call to deprecated class DatasetGenerator. (Deprecated in favor of `RagDatasetGenerator`",
    "Call to deprecated class QueryResponseDataset. (Deprecated in favor of `LabelledRagDataset`",
)


@contextmanager
def known_deprecations_dropped() -> Iterator[None]:
    """Drop the two forced deprecations above; every other warning raised inside (a new one of
    llama-index, our own) is issued again afterwards, through the caller's filters."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for w in caught:
            if issubclass(w.category, DeprecationWarning) and str(w.message).startswith(FORCED_DEPRECATIONS):
                continue
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


async def generate_questions(documents: Sequence[Any], llm: Any, *, count: int, prompt: str,
                             chunk_size: int = 1024) -> list[str]:
    """Up to ``count`` distinct questions, one per chunk, in chunk order.

    What ``DatasetGenerator(nodes).agenerate_questions_from_nodes(num)`` returns (the first ``num``
    chunks asked at once, their questions in chunk order, the first ``num`` kept), with one
    generator per chunk so that each chunk's call is recorded under the chunk's position
    (``sort_key``): the cassette's order does not depend on which call completed first."""
    import asyncio

    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.evaluation import DatasetGenerator

    from judge_eval.core.progress import progress
    from judge_eval.recording.rerecord_stable import sort_key

    nodes = chunk(documents, chunk_size)
    # Ask for a few more than needed: repeats and empty outputs are dropped afterwards.
    num = min(len(nodes), count + max(2, count // 4))

    async def one(position: int, node: Any) -> list[str]:
        with sort_key(position):
            generator = DatasetGenerator(nodes=[node], llm=llm, callback_manager=CallbackManager([]),
                                         question_gen_query=prompt)
            questions = await generator.agenerate_questions_from_nodes()
        bar.update(1)
        return questions

    # a CI log gets start, progress and end lines: on a CPU server this stage takes minutes
    with known_deprecations_dropped(), progress(num, "questions (one call per chunk)") as bar:
        per_chunk = await asyncio.gather(*(one(k, node) for k, node in enumerate(nodes[:num])))
    raw = [question for questions in per_chunk for question in questions][:num]
    return clean_questions(raw, count)

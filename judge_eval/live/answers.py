"""Stage 3, answers: a vector index per split, top-k retrieval, one RetrieverQueryEngine per
answer model; each question gets two models drawn at random (seeded) from the pool."""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from judge_eval.core.items import Answer, QAItem, item_id

SOURCE_CHARS = 1000


def build_retriever(documents: Sequence[Any], embed_model: Any, *, top_k: int, chunk_size: int) -> Any:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.callbacks import CallbackManager
    from judge_eval.live.questions import splitter

    index = VectorStoreIndex.from_documents(
        list(documents), embed_model=embed_model, transformations=[splitter(chunk_size)],
        callback_manager=CallbackManager([]))
    return index.as_retriever(similarity_top_k=top_k)


def query_engines(retriever: Any, llms: Mapping[str, Any]) -> dict[str, Any]:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.query_engine import RetrieverQueryEngine

    return {label: RetrieverQueryEngine.from_args(retriever=retriever, llm=llm,
                                                  callback_manager=CallbackManager([]))
            for label, llm in llms.items()}


def pick_pairs(questions: Sequence[str], labels: Sequence[str], seed: int) -> list[tuple[str, str]]:
    """For each question, two distinct answer models in random order (the study's
    ``random.sample(engines, 2)``), from a seeded generator so a re-run picks the same pairs."""
    rng = random.Random(seed)
    return [tuple(rng.sample(list(labels), 2)) for _ in questions]  # type: ignore[misc]


async def answer_questions(questions: Sequence[str], engines: Mapping[str, Any], *, split: str,
                           seed: int, on_item_done: Any = None, concurrency: int = 1) -> list[QAItem]:
    """One QA item per question: two answers and the source passage (first retrieved node's
    text, first 1,000 characters + "...", as the study stored it). Up to ``concurrency``
    questions are answered at once; the items come back in question order whatever the
    completion order. ``on_item_done`` runs after each question (the pipeline saves the
    cassette there)."""
    import asyncio

    from judge_eval.core.items import question_key
    from judge_eval.core.progress import progress
    from judge_eval.live.judging import run_bounded
    from judge_eval.recording.rerecord_stable import sort_key

    gate = asyncio.Semaphore(max(1, concurrency))
    results: dict[int, QAItem] = {}
    bar = progress(len(questions), f"answers ({split})")

    async def one(n: int, question: str, pair: tuple[str, str]) -> None:
        async with gate:
            with sort_key(question_key(split, question)):  # the cassette's order: the items' order_key
                results[n] = await _answer(question, pair, engines, split)
        if on_item_done is not None:
            on_item_done()
        bar.update(1)

    pairs = pick_pairs(questions, sorted(engines), seed)
    try:
        await run_bounded([one(n, q, p) for n, (q, p) in enumerate(zip(questions, pairs, strict=True))])
    finally:
        bar.close()
    return [results[n] for n in range(len(questions))]


async def _answer(question: str, pair: tuple[str, str], engines: Mapping[str, Any], split: str) -> QAItem:
    from judge_eval.live.retry import CallFailedError

    answers, source = [], None
    try:
        responses = [await engines[label].aquery(question) for label in pair]
    except CallFailedError as exc:
        # Kept in the run with its reason (no answers to judge); the judging stages record an
        # `error` verdict for it, and the gates count errors.
        empty = (Answer(pair[0], ""), Answer(pair[1], ""))
        return QAItem(id=item_id(split, question, empty), split=split, question=question,
                      answers=empty, source="",
                      extra={"error": f"answers stage: {exc}"})
    for label, response in zip(pair, responses, strict=True):
        answers.append(Answer(model=label, text=str(response)))
        node_source = response.source_nodes[0].node.get_content()[:SOURCE_CHARS] + "..."
        if source is not None and source != node_source:
            # Both engines share one retriever, so this means the index changed mid-run.
            raise AssertionError(f"two answer models retrieved different sources for {question!r}")
        source = node_source
    return QAItem(id=item_id(split, question, answers), split=split, question=question,
                  answers=(answers[0], answers[1]), source=source or "")

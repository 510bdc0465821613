"""Stage 1, corpus: the documents of a split, from Wikipedia or from a folder of text files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judge_eval.errors import JudgeEvalError
from judge_eval.config.pipeline_spec import PipelineConfig


def wikipedia_titles(pages: tuple[str, ...]) -> list[str]:
    """The study read the pages "History of <city>"."""
    return [f"History of {city}" for city in pages]


def load_documents(config: PipelineConfig, split: str) -> list[Any]:
    """The split's documents as llama-index ``Document``s with stable ids, in a stable order."""
    from llama_index.core import Document

    if config.corpus_kind == "wikipedia":
        from llama_index.readers.wikipedia import WikipediaReader

        pages = config.corpus.train if split == "train" else config.corpus.test
        # auto_suggest=False: the search API's suggestion for a title can change between runs.
        docs = WikipediaReader().load_data(pages=wikipedia_titles(pages), auto_suggest=False)
        for doc, title in zip(docs, wikipedia_titles(pages), strict=True):
            doc.id_ = f"wikipedia:{title}"
        return docs
    folder = Path(config.corpus.path or ".") / split
    files = sorted(p for p in folder.glob("*.txt") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise JudgeEvalError(f"corpus folder {folder} has no .txt files; put the {split} documents there "
                             "(one text file per document)")
    return [Document(text=p.read_text("utf-8"), id_=f"{split}/{p.name}")
            for p in files]

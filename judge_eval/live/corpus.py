"""Stage 1, corpus: the documents of a split, from Wikipedia or from a folder of text files."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from judge_eval.errors import JudgeEvalError, exception_chain
from judge_eval.config.pipeline_spec import PipelineConfig


#: Wikipedia's API hosts; they are read over https (the ``wikipedia`` package's default URL,
#: ``http://en.wikipedia.org/w/api.php``, is plain http).
WIKIPEDIA_HOST_SUFFIX = ".wikipedia.org"


def wikipedia_titles(pages: tuple[str, ...]) -> list[str]:
    """The study read the pages "History of <city>"."""
    return [f"History of {city}" for city in pages]


def https_url(url: str) -> str:
    """``url`` over https when it is Wikipedia's API over http (the ``wikipedia`` package's
    default, ``http://en.wikipedia.org/w/api.php``, and what its ``set_lang`` writes); any other
    URL (a test's loopback server, one set on purpose) is left as it is."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme == "http" and (parts.hostname or "").endswith(WIKIPEDIA_HOST_SUFFIX):
        return urlunsplit(("https",) + tuple(parts[1:]))
    return url


@contextmanager
def wikipedia_over_https() -> Iterator[str]:
    """Point the ``wikipedia`` package at its API over https for the block, and put back what was
    there after it. The package keeps its URL in one module global, ``wikipedia.wikipedia.API_URL``
    (its public ``set_lang`` rewrites that global, always with ``http://``, and clears its caches);
    setting the global for the block and restoring it leaves no process-wide change behind."""
    import wikipedia.wikipedia as wiki

    saved = wiki.API_URL
    wiki.API_URL = https_url(saved)
    try:
        yield wiki.API_URL
    finally:
        wiki.API_URL = saved


def _read_wikipedia(titles: list[str]) -> list[Any]:
    """One llama-index ``Document`` per title, read over https; a host that cannot be reached or
    a page that does not exist is one clear error."""
    from urllib.parse import urlsplit

    import requests
    import wikipedia
    from llama_index.readers.wikipedia import WikipediaReader

    reader = WikipediaReader()
    docs = []
    with wikipedia_over_https() as url:
        for title in titles:
            try:
                # auto_suggest=False: the search API's suggestion for a title can change between runs.
                (doc,) = reader.load_data(pages=[title], auto_suggest=False)
            except requests.exceptions.ConnectionError as exc:
                host = urlsplit(url).netloc
                reason = _innermost(exc)
                raise JudgeEvalError(f"cannot reach {host} ({reason}); check the network or proxy") from exc
            except (wikipedia.exceptions.PageError, wikipedia.exceptions.DisambiguationError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise JudgeEvalError(f"Wikipedia page {title!r}: {first[:200]}; fix the city's name in the "
                                     "profile's pipeline corpus (pages are read as \"History of <city>\")") from exc
            docs.append(doc)
    return docs


def _innermost(exc: BaseException) -> str:
    """The first line of the deepest exception ``exc`` was raised from (e.g. "[Errno 111]
    Connection refused", "[Errno -3] Temporary failure in name resolution")."""
    exc = exception_chain(exc)[-1]
    line = next((t for t in str(exc).splitlines() if t.strip()), type(exc).__name__)
    return line if len(line) <= 160 else line[:157] + "..."


def load_documents(config: PipelineConfig, split: str) -> list[Any]:
    """The split's documents as llama-index ``Document``s with stable ids, in a stable order."""
    from llama_index.core import Document

    if config.corpus_kind == "wikipedia":
        pages = config.corpus.train if split == "train" else config.corpus.test
        docs = _read_wikipedia(wikipedia_titles(pages))
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

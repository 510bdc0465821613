"""Typed, frozen records of a run: QA items with their judges' verdicts, and fine-tuning events.

Ids are derived from content, never from list positions, so a file can be re-ordered, filtered or
merged without re-keying anything: an item is its split, its question and its answers in stored
order (model and text of each), or the explicit ``id`` a line carries (importers write one). One
question may therefore carry any number of answer pairs.

Two kinds of item (``QAItem.kind``):

- **pairwise**: two answers, judged by pairwise verdicts (``Verdict.kind == "pairwise"``: a score
  of 0 / 0.5 / 1 and a source from ``SOURCES``), the study's schema;
- **pointwise**: one answer, judged by score verdicts (``Verdict.kind == "score"``): a score on
  the scale the verdict declares (``Verdict.scale``, its allowed values in ascending order, e.g.
  ``(1, 2, 3, 4, 5)`` or ``(0, 1)``), source ``scored`` (conclusive) or, with a null score,
  ``output-cannot-be-parsed`` / ``error`` (``SCORE_SOURCES``). ``judge_eval.core.scores`` holds
  their metrics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

SPLITS = ("train", "test")

#: The two presentation orders of a pair: answers as stored, then swapped.
ORDERS = ("original", "flipped")

#: Verdict sources. The first four are the study's (``PairwiseComparisonEvaluator``'s
#: ``pairwise_source`` plus the notebook's marker for unparseable output); ``error`` is ours:
#: a call that still failed after its retries.
ORIGINAL, FLIPPED, NEITHER, PARSE_FAILURE, ERROR = (
    "original", "flipped", "neither", "output-cannot-be-parsed", "error")
SOURCES = (ORIGINAL, FLIPPED, NEITHER, PARSE_FAILURE, ERROR)
CONCLUSIVE_SOURCES = frozenset({ORIGINAL, FLIPPED})

#: The source of a conclusive score verdict. Not in ``SOURCES`` (the pairwise sources, which
#: ``judge_eval.core.metrics`` encodes by position) nor in ``CONCLUSIVE_SOURCES`` (conclusive
#: *pairwise* sources): a score verdict's sources are ``SCORE_SOURCES``.
SCORED = "scored"
SCORE_SOURCES = (SCORED, PARSE_FAILURE, ERROR)

#: Item kinds (``QAItem.kind``) and verdict kinds (``Verdict.kind``, the ``kind`` of an evaluation
#: line; absent means pairwise, so the study's files stay valid as they are).
PAIRWISE, POINTWISE, SCORE = "pairwise", "pointwise", "score"
ITEM_KINDS = (PAIRWISE, POINTWISE)
VERDICT_KINDS = (PAIRWISE, SCORE)

#: Pairwise scores: 1 = the first answer shown wins, 0 = the second, 0.5 = tie.
SCORES = (0.0, 0.5, 1.0)


def scale_text(scale: Sequence[float]) -> str:
    """A scale as messages show it, ``[1, 1.5, 2]``, whether its values were read as ints or
    floats (so every reader words one error alike)."""
    return "[" + ", ".join(_number_text(v) for v in scale) + "]"


def _number_text(value: float) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def question_key(split: str, question: str) -> str:
    """A hash of the split and the question text exactly as stored: what an item's id was before
    items were told apart by their answers, and still the first part of ``QAItem.order_key``
    (so the bootstrap orders the study's items exactly as it always has)."""
    digest = hashlib.sha256(f"{split}\n{question}".encode("utf-8")).hexdigest()
    return f"{split}-{digest[:16]}"


def item_id(split: str, question: str, answers: Sequence[Answer] | None = None, *,
            explicit: str | None = None) -> str:
    """Stable id of a QA item.

    ``explicit`` (the line's own ``id``) wins when given. Otherwise the id is a hash of the split,
    the question and the answers in stored order (model and text of each, exactly as stored):
    ``<split>-`` and the first 16 hex digits of the sha256 of the UTF-8 of
    ``json.dumps([split, question, [model_1, text_1], ..., [model_n, text_n]])``: two answers for a
    pair (the ids the study's items have always had), one for a pointwise item. Without
    ``answers`` it is ``question_key(split, question)``: the key of the question alone, for items
    built in code where each question appears once.
    """
    if explicit is not None:
        return explicit
    if answers is None:
        return question_key(split, question)
    content = json.dumps([split, question, *([a.model, a.text] for a in answers)])
    return f"{split}-{hashlib.sha256(content.encode('utf-8')).hexdigest()[:16]}"


@dataclass(frozen=True)
class Answer:
    model: str
    text: str
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Verdict:
    """One judge's resolved verdict on one item, stored raw as the evaluator returned it.

    Pairwise (``kind == "pairwise"``, ``scale`` None): ``score`` is in the frame of the call that
    decided it: for ``source == "flipped"`` the answers were shown swapped, so 1.0 means the
    *second* stored answer won (see ``first_answer_score``).

    Score (``kind == "score"``): ``score`` is a value of ``scale`` (the allowed values, ascending,
    as the line declares them) when ``source == "scored"``, else None. A score has no frame.

    An evaluation line that says ``"kind": "pairwise"`` keeps it in ``extra`` (written back where
    it was); the store writes ``kind`` and ``scale`` itself only for a score verdict.
    """

    llm: str
    score: float | None
    text: str
    source: str
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    kind: str = PAIRWISE
    scale: tuple[float, ...] | None = None

    @property
    def conclusive(self) -> bool:
        """A pairwise verdict from ``original`` / ``flipped``, or a score verdict with a score."""
        return self.source in CONCLUSIVE_SOURCES or self.source == SCORED

    @property
    def first_answer_score(self) -> float | None:
        """The score normalised to "the first stored answer wins" (the corrected frame)."""
        if self.score is None:
            return None
        return 1.0 - self.score if self.source == FLIPPED else self.score


@dataclass(frozen=True)
class QAItem:
    id: str
    split: str
    question: str
    answers: tuple[Answer, ...]  # two for a pair, one for a pointwise item
    source: str
    evaluations: tuple[Verdict, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def kind(self) -> str:
        """``"pairwise"`` (two answers) or ``"pointwise"`` (one); the store reads no other count."""
        count = len(self.answers)
        if count == 2:
            return PAIRWISE
        if count == 1:
            return POINTWISE
        raise ValueError(f"item {self.id!r} has {count} answers; an item has 2 (a pair) or 1 (pointwise)")

    @property
    def explicit_id(self) -> str | None:
        """The ``id`` the line carries (kept in ``extra``, written back where it was), if any."""
        value = self.extra.get("id")
        return value if isinstance(value, str) else None

    @property
    def order_key(self) -> str:
        """The key the bootstrap and ``compare`` sort items by: the question's key
        (``question_key``, fixed length within a split), a space, then the id, which breaks the
        ties between answer pairs of one question. Items with distinct questions keep the order
        ids had before answers were part of them, so published intervals stay bit for bit."""
        return f"{question_key(self.split, self.question)} {self.id}"

    def verdict(self, llm: str) -> Verdict | None:
        """This item's verdict by judge ``llm``, or None when that judge has none."""
        for verdict in self.evaluations:
            if verdict.llm == llm:
                return verdict
        return None


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class FinetuneEvent:
    """One judge call in OpenAI chat fine-tuning format (system, user, assistant).

    ``item_id`` and ``order`` key the event to the pair and presentation order it came from.
    Our own runs store them in the line; the study's file does not, and
    ``judge_eval.core.events.import_study_events`` assigns them from positions in one place.
    """

    messages: tuple[Message, ...]
    item_id: str | None = None
    order: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

"""Column maps of ``judge-eval import pairs``: ``[tool.judge_eval.imports.NAME]`` in pyproject.toml.

A map names the columns (CSV) or keys (JSONL) of a file of answer pairs: the question, the two
answers, optionally each answer's model name, an id, a split (``train``/``test``) and a source
passage, and one column per judge (``judges = {NAME = "COLUMN"}``). ``verdicts`` says what each
verdict value means; without it the defaults of ``DEFAULT_VERDICTS`` apply::

    [tool.judge_eval.imports.arena]
    question = "prompt"
    answer_a = "response_a"
    answer_b = "response_b"
    model_a = "model_a"
    model_b = "model_b"
    judges = { teacher = "gpt4_winner", candidate = "judge_winner" }
    verdicts = { model_a = "first", model_b = "second", tie = "tie" }

``judge-eval import pairs FILE OUT --map arena`` reads it; flags given on the command line win
over the table's keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from judge_eval.config.pipeline_spec import NonEmpty
from judge_eval.config.tables import Table
from judge_eval.errors import ConfigError

#: What a verdict value can mean: the first answer wins, the second wins, a tie (a verdict,
#: score 0.5), inconclusive (source ``neither``), or no verdict at all (the judge skipped it).
Meaning = Literal["first", "second", "tie", "neither", "missing"]
MEANINGS: tuple[str, ...] = ("first", "second", "tie", "neither", "missing")

#: Verdict values understood without a ``verdicts`` table, compared after stripping spaces and
#: lower-casing: A/B/tie, 1/2/0, model_a/model_b (FastChat, Chatbot Arena), [[A]]/[[B]]/[[C]]
#: (llama-index's pairwise prompt). An empty cell or null is always "missing".
DEFAULT_VERDICTS: dict[str, str] = {
    "a": "first", "1": "first", "model_a": "first", "first": "first", "[[a]]": "first",
    "b": "second", "2": "second", "model_b": "second", "second": "second", "[[b]]": "second",
    "tie": "tie", "0": "tie", "c": "tie", "[[c]]": "tie", "tie (bothbad)": "tie",
    "neither": "neither",
}


class PairsMap(Table):
    """``[tool.judge_eval.imports.NAME]``: where each part of an item is in a pairs file."""

    question: NonEmpty = "question"
    answer_a: NonEmpty = "answer_a"
    answer_b: NonEmpty = "answer_b"
    model_a: NonEmpty | None = None  # without it the first answer's model is "a"
    model_b: NonEmpty | None = None  # and the second's "b"
    id: NonEmpty | None = None  # without it an item's id is derived from its content
    split: NonEmpty | None = None  # values "train" / "test"; without it every item is a test item
    source: NonEmpty | None = None  # the reference passage; without it ""
    judges: dict[NonEmpty, NonEmpty] = {}  # judge name -> column
    verdicts: dict[NonEmpty, Meaning] | None = None  # value -> meaning; None: DEFAULT_VERDICTS


def load_import_map(name: str, pyproject: Path | str) -> PairsMap:
    """The map ``name`` of ``pyproject``; an unknown name lists the known ones."""
    from judge_eval.config.profiles import load_judge_eval_table

    table = load_judge_eval_table(pyproject)
    if name not in table.imports:
        raise ConfigError(f"unknown import map {name!r} in {Path(pyproject).resolve()}; known maps: "
                          f"{', '.join(sorted(table.imports)) or 'none'}. Add [tool.judge_eval.imports.{name}] "
                          "or pass the columns as flags (--question, --answer-a, --answer-b, --judge NAME=COL)")
    return table.imports[name]

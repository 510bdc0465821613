"""Column maps of ``judge-eval import pairs`` and ``import scores``: ``[tool.judge_eval.imports.NAME]``
in pyproject.toml.

A pairs map names the columns (CSV) or keys (JSONL) of a file of answer pairs: the question, the
two answers, optionally each answer's model name, an id, a split (``train``/``test``) and a source
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

A scores map (``format = "scores"``, which tells it from a pairs map) names the columns of a file
of single answers rated by score judges: the question, the answer, optionally its model, a
reference answer, an id, a split and a source passage, one column per judge, the scale every judge
scores on (``scale = [1, 2, 3, 4, 5]`` or a spec, ``scale = "1-5"``; ``parse_scale``) and what
text values mean (``verdicts``; numbers on the scale need no entry)::

    [tool.judge_eval.imports.correctness]
    format = "scores"
    question = "query"
    answer = "response"
    reference_answer = "reference"
    judges = { gpt4 = "gpt4_score", mine = "my_score" }
    scale = "1-5:0.5"
    verdicts = { "n/a" = "missing", "???" = "unparseable" }

``judge-eval import pairs|scores FILE OUT --map NAME`` reads it; flags given on the command line
win over the table's keys.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation, getcontext
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence, Union

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationInfo, field_validator

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

#: What a text value of a score column can mean besides a score on the scale: no verdict
#: (``missing``), a judge output that could not be read as a score (``unparseable``: source
#: ``output-cannot-be-parsed``, score null) or a call that failed (``error``, score null).
SCORE_WORDS: tuple[str, ...] = ("missing", "unparseable", "error")
ScoreMeaning = Union[int, float, Literal["missing", "unparseable", "error"]]

#: Score values understood without a ``verdicts`` table (keys compared stripped and lower-cased;
#: numbers on the scale always need no entry): the store's own names of a failed verdict, on any
#: scale, and on the scale ``[0, 1]`` only (the one where they are unambiguous) pass/fail,
#: true/false (JSON booleans too) and yes/no. An empty cell or null is always "missing".
DEFAULT_SCORE_WORDS: dict[str, ScoreMeaning] = {"output-cannot-be-parsed": "unparseable", "error": "error"}
BINARY_SCALE: tuple[int, int] = (0, 1)
DEFAULT_BINARY_LABELS: dict[str, ScoreMeaning] = {"pass": 1, "fail": 0, "true": 1, "false": 0, "yes": 1, "no": 0}

#: The most values a scale may have (a guard against ``0-1000000:0.001``).
MAX_SCALE_VALUES = 1001

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*(?::\s*({_NUMBER})\s*)?$")
_SCALE_HELP = "a scale is LOW-HIGH (1-5: 1, 2, 3, 4, 5), LOW-HIGH:STEP (1-5:0.5: halves) or a list (0,1)"


def _decimal(text: str) -> Decimal:
    if not re.fullmatch(_NUMBER, text.strip()):  # Decimal alone would take "NaN" and "Infinity"
        raise ValueError(f"{text.strip()!r} is not a number; {_SCALE_HELP}")
    return Decimal(text.strip())


def _as_float(value: int | float) -> float:
    """``float(value)``, infinite for an integer beyond every float (instead of an OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _plain(value: Decimal) -> int | float:
    """A scale value as the run stores it: an int when whole (``4``, not ``4.0``), else the
    float nearest the decimal (``0.1`` steps give ``0.3``, never ``0.30000000000000004``)."""
    return int(value) if value == value.to_integral_value() else float(value)


def parse_scale(spec: str | Sequence[Any]) -> tuple[int | float, ...]:
    """The allowed scores of a ``--scale`` spec or a ``scale`` key, ascending.

    ``"1-5"`` -> 1, 2, 3, 4, 5; ``"1-5:0.5"`` -> 1, 1.5, ..., 5 (steps counted in decimal, so
    ``"0-1:0.1"`` ends on 1 exactly); ``"0,1"`` or ``[0, 1]`` -> 0, 1. A ``ValueError`` says what
    is wrong: fewer than two values, not strictly ascending, a step that does not reach HIGH, more
    than ``MAX_SCALE_VALUES`` values."""
    if isinstance(spec, str):
        match = _RANGE.match(spec)
        if match:
            low, high = Decimal(match.group(1)), Decimal(match.group(2))
            step = Decimal(match.group(3)) if match.group(3) else Decimal(1)
            if not high > low:
                raise ValueError(f"HIGH must be above LOW; {_SCALE_HELP}")
            if not step > 0:
                raise ValueError(f"the step must be above 0; {_SCALE_HELP}")
            try:
                count, rest = divmod(high - low, step)
            except InvalidOperation:  # a count of more digits than Decimal's precision (28)
                raise ValueError(f"more than 10**{getcontext().prec} values; a scale has at most "
                                 f"{MAX_SCALE_VALUES}") from None
            if rest:
                raise ValueError(f"steps of {step} from {low} do not reach {high}; pick a step that "
                                 "divides HIGH - LOW")
            if count + 1 > MAX_SCALE_VALUES:
                raise ValueError(f"{count + 1} values; a scale has at most {MAX_SCALE_VALUES}")
            values = [_plain(low + k * step) for k in range(int(count) + 1)]
        elif "," not in spec:
            raise ValueError(f"not a scale spec; {_SCALE_HELP}")
        else:
            values = [_plain(_decimal(part)) for part in spec.split(",") if part.strip()]
    elif isinstance(spec, (list, tuple)):
        values = []
        for value in spec:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                    or value in (float("inf"), float("-inf")):
                raise ValueError(f"{value!r} is not a finite number; {_SCALE_HELP}")
            values.append(value)
    else:
        raise ValueError(f"expected a spec string or a list of numbers, found {type(spec).__name__}; {_SCALE_HELP}")
    if len(values) < 2:
        raise ValueError(f"{len(values)} value(s); a scale needs at least two scores to tell answers apart "
                         f"({_SCALE_HELP})")
    if len(values) > MAX_SCALE_VALUES:
        raise ValueError(f"{len(values)} values; a scale has at most {MAX_SCALE_VALUES}")
    for value in values:
        if not math.isfinite(_as_float(value)):  # only an integer gets here (the others were refused above)
            raise ValueError(f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits is not a "
                             f"finite number (within the range of a 64-bit float); {_SCALE_HELP}")
    for before, after in zip(values, values[1:]):
        if not after > before:
            raise ValueError(f"{after!r} does not come after {before!r}: list the scores in strictly "
                             "ascending order, each once")
    return tuple(values)


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


class ScoresMap(Table):
    """``[tool.judge_eval.imports.NAME]`` with ``format = "scores"``: where each part of a
    pointwise item is in a scores file, and the scale its judges score on."""

    format: Literal["scores"]
    question: NonEmpty = "question"
    answer: NonEmpty = "answer"
    model: NonEmpty | None = None  # without it the answer's model is "unknown"
    reference_answer: NonEmpty | None = None  # kept on the item as "reference_answer"
    id: NonEmpty | None = None  # without it an item's id is derived from its content
    split: NonEmpty | None = None  # values "train" / "test"; without it every item is a test item
    source: NonEmpty | None = None  # the reference passage; without it ""
    judges: dict[NonEmpty, NonEmpty] = {}  # judge name -> column
    scale: tuple[int | float, ...] | None = None  # ascending; None: --scale must give it
    verdicts: dict[NonEmpty, ScoreMeaning] | None = None  # value -> score or word; None: the defaults

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        return value if value is None else parse_scale(value)


class _Format(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    format: Literal["pairs", "scores"] = "pairs"


def _import_map(value: Any, info: ValidationInfo) -> PairsMap | ScoresMap:
    """A table as the map its ``format`` says (absent: pairs); errors keep the table's key paths."""
    if isinstance(value, (PairsMap, ScoresMap)):
        return value
    _Format.model_validate(value)
    if value.get("format") == "scores":
        return ScoresMap.model_validate(value, context=info.context)
    return PairsMap.model_validate({k: v for k, v in value.items() if k != "format"}, context=info.context)


#: A value of ``[tool.judge_eval.imports]``: a pairs map, or a scores map (``format = "scores"``).
ImportMap = Annotated[Union[PairsMap, ScoresMap], PlainValidator(_import_map)]

_FORMAT_OF = {PairsMap: "pairs", ScoresMap: "scores"}


def load_import_map(name: str, pyproject: Path | str, fmt: str = "pairs") -> PairsMap | ScoresMap:
    """The map ``name`` of ``pyproject`` for ``judge-eval import FMT``; an unknown name lists
    the known ones, and a map of the other format says so."""
    from judge_eval.config.profiles import load_judge_eval_table

    table = load_judge_eval_table(pyproject)
    if name not in table.imports:
        flags = ("--question, --answer, --judge NAME=COL, --scale SPEC" if fmt == "scores"
                 else "--question, --answer-a, --answer-b, --judge NAME=COL")
        raise ConfigError(f"unknown import map {name!r} in {Path(pyproject).resolve()}; known maps: "
                          f"{', '.join(sorted(table.imports)) or 'none'}. Add [tool.judge_eval.imports.{name}] "
                          f"or pass the columns as flags ({flags})")
    cmap = table.imports[name]
    found = _FORMAT_OF[type(cmap)]
    if found != fmt:
        how = ('add format = "scores" to it' if fmt == "scores"
               else 'it says format = "scores"; use it with judge-eval import scores')
        raise ConfigError(f"import map {name!r} in {Path(pyproject).resolve()} is a {found} map, not a {fmt} "
                          f"map ([tool.judge_eval.imports.{name}]: {how})")
    return cmap

"""``scores``: a team's own pointwise judgements (a score per answer and judge), JSONL or CSV.

One record is one pointwise item: a question and one answer (optionally its model, a reference
answer, an id, a split and a source passage), and one column per score judge. A column map
(``judge_eval.config.import_maps.ScoresMap``, from ``[tool.judge_eval.imports.NAME]`` with
``format = "scores"`` or from flags) says where each part is, the scale every judge scores on
(``parse_scale``: ``1-5``, ``1-5:0.5``, ``0,1``) and what text values mean.

A judge's value becomes a score verdict (``kind: score``, ``scale`` the declared one):

- a number on the scale (a JSON number or a numeric string, ``4`` = ``4.0``): source ``scored``,
  the score written as the scale has it (``4``, not ``4.0``);
- an empty cell, blank string or null: the judge has no verdict on that item (missing, not an
  error; counted per judge in ``run.json``);
- any other value (JSON booleans as ``true``/``false``) is looked up, stripped and lower-cased,
  in the value map: a number on the scale, ``missing``, ``unparseable`` (source
  ``output-cannot-be-parsed``, score null: the judge answered, but not with a score) or ``error``
  (source ``error``, score null: the call failed). Without a ``verdicts`` map the defaults are the
  store's own names ``output-cannot-be-parsed`` and ``error``, and on the scale ``[0, 1]`` only
  pass/fail, true/false and yes/no (``DEFAULT_SCORE_WORDS``, ``DEFAULT_BINARY_LABELS``); a map
  replaces them. There is no default marker for a failed parse besides the store's own name:
  an export that writes a failed parse as null reads as missing.

A number off the scale, or a value neither on the scale nor in the map, names file, line (CSV:
where the row starts) and column, and nothing is written. So does a missing column. The same
question with the same answer (and model) twice in one split, with no id column to tell them
apart, is a duplicate naming both lines, as in ``pairs``. A reference answer is kept on the item
as ``reference_answer`` (the store keeps unknown fields and writes them back after the known
ones; ``reference`` alone would read as the reference *judge* of ``report --reference``); an
empty one is left out.

The importer does not pick a reference judge: ``report`` and ``gate`` take ``--reference NAME``,
and the closing note names the judges found.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterator

from judge_eval.config.import_maps import (BINARY_SCALE, DEFAULT_BINARY_LABELS, DEFAULT_SCORE_WORDS, SCORE_WORDS,
                                           ScoreMeaning, ScoresMap, parse_scale)
from judge_eval.core.items import ERROR, PARSE_FAILURE, SCORE, SCORED, Answer, Verdict, scale_text
from judge_eval.errors import ConfigError
from judge_eval.importing.output import ImportResult, Located, make_item
from judge_eval.importing.sources import Record, kind_of, read_source, records, source_kind
from judge_eval.importing.tabular import UNKNOWN_MODEL, explicit_id_of, normal_value, split_of, tabular_result

#: Where a value-map word sends a verdict: (source, score).
_WORD_SOURCES = {"unparseable": PARSE_FAILURE, "error": ERROR}
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def scale_option(spec: str, option: str = "--scale") -> tuple[int | float, ...]:
    """``parse_scale`` for a command-line option: a bad spec is a ConfigError naming the option."""
    try:
        return parse_scale(spec)
    except ValueError as exc:
        raise ConfigError(f"{option} {spec!r}: {exc}") from None


def parse_score_verdicts(spec: str, option: str = "--verdicts") -> dict[str, ScoreMeaning]:
    """``"pass=1, fail=0, n/a=missing"`` -> ``{"pass": 1, "fail": 0, "n/a": "missing"}``; a
    meaning is a number or one of ``SCORE_WORDS``."""
    out: dict[str, ScoreMeaning] = {}
    example = f'e.g. {option} "pass=1,fail=0,n/a=missing,???=unparseable"'
    for entry in spec.split(","):
        if not entry.strip():
            continue
        value, sep, meaning = entry.rpartition("=")
        meaning = meaning.strip()
        parsed: ScoreMeaning
        if sep and meaning in SCORE_WORDS:
            parsed = meaning  # type: ignore[assignment]
        elif sep and _NUMBER.match(meaning):
            number = float(meaning)
            parsed = int(number) if number.is_integer() and "." not in meaning and "e" not in meaning.lower() \
                else number
        else:
            raise ConfigError(f"{option} {spec!r}: {entry.strip()!r} is not VALUE=SCORE with SCORE a number on the "
                              f"scale or one of {', '.join(SCORE_WORDS)}; {example}")
        key = normal_value(value)
        if not key:
            raise ConfigError(f"{option} {spec!r}: {entry.strip()!r} has no VALUE before '='; {example}")
        if key in out and out[key] != parsed:
            raise ConfigError(f"{option} {spec!r}: value {value.strip()!r} is given two meanings")
        out[key] = parsed
    if not out:
        raise ConfigError(f"{option} {spec!r}: no VALUE=SCORE entry; {example}")
    return out


def _on_scale(number: float, scale: tuple[int | float, ...]) -> int | float | None:
    """The scale's own value equal to ``number`` (so ``4.0`` is stored as the scale's ``4``)."""
    for value in scale:
        if float(value) == number:
            return value
    return None


def score_map(cmap: ScoresMap, scale: tuple[int | float, ...], where: str) -> dict[str, ScoreMeaning]:
    """The effective value -> meaning map (keys normalised); a mapped number off the scale is a
    ConfigError naming ``where`` the map came from."""
    if cmap.verdicts is None:
        defaults = dict(DEFAULT_SCORE_WORDS)
        if tuple(float(v) for v in scale) == tuple(float(v) for v in BINARY_SCALE):
            defaults.update({k: scale[int(v)] for k, v in DEFAULT_BINARY_LABELS.items()})  # 0 -> scale[0]
        return defaults
    out: dict[str, ScoreMeaning] = {}
    for key, meaning in cmap.verdicts.items():
        if not isinstance(meaning, str):
            on_scale = _on_scale(float(meaning), scale)
            if on_scale is None:
                raise ConfigError(f"{where}: {key}={meaning!r} maps to a score off the declared scale "
                                  f"{scale_text(scale)}; map it to a score on the scale, or to one of "
                                  f"{', '.join(SCORE_WORDS)}")
            meaning = on_scale
        out[normal_value(key)] = meaning
    return out


def _cell(rec: Record, column: str) -> tuple[str, str, float | None] | None:
    """(normalised value, value as written, the number it is or None); None for no verdict
    (an empty cell, a blank string, null)."""
    value = rec.raw(column)
    if value is None:
        return None
    if isinstance(value, bool):
        shown = "true" if value else "false"
        return shown, shown, None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer can be beyond every float
            raise rec.fail(column, f"an integer of {len(str(abs(value)))} digits is not a finite number (within "
                           "the range of a 64-bit float)") from None
        if not math.isfinite(number):
            raise rec.fail(column, f"{value!r} is not a finite number")
        shown = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return normal_value(shown), shown, number
    if not isinstance(value, str):
        raise rec.fail(column, f"expected a score (a number or a text label), found {kind_of(value)}")
    if not value.strip():
        return None
    number = float(value) if _NUMBER.match(value.strip()) else None
    return normal_value(value), value.strip(), number


def _verdict(rec: Record, judge: str, column: str, scale: tuple[int | float, ...],
             meanings: dict[str, ScoreMeaning], fix: str) -> Verdict | None:
    found = _cell(rec, column)
    if found is None:
        return None
    key, shown, number = found
    meaning: ScoreMeaning | None = meanings.get(key)
    if meaning is None and number is not None:
        meaning = _on_scale(number, scale)
        if meaning is None:
            raise rec.fail(column, f"score {shown!r} of judge {judge!r} is not on the declared scale "
                           f"{scale_text(scale)}", fix=f"declare the scale the judge used ({fix}); nothing was written")
    if meaning is None:
        known = ", ".join(f"{k}={v}" for k, v in meanings.items()) or "none"
        raise rec.fail(column, f"value {shown!r} of judge {judge!r} is neither a score on the scale "
                       f"{scale_text(scale)} nor in the value map ({known})",
                       fix="map it with --verdicts VALUE=SCORE,... (SCORE a number on the scale, or missing, "
                           "unparseable, error), or the map's verdicts table; nothing was written")
    if meaning == "missing":
        return None
    if isinstance(meaning, str):
        return Verdict(llm=judge, score=None, text=shown, source=_WORD_SOURCES[meaning], kind=SCORE, scale=scale)
    return Verdict(llm=judge, score=meaning, text=shown, source=SCORED, kind=SCORE, scale=scale)


def _reference_answer(rec: Record, column: str | None) -> dict[str, Any]:
    if column is None or rec.raw(column) is None:
        return {}
    text = rec.text(column)
    return {"reference_answer": text} if text.strip() else {}


def import_scores(src: Path | str, cmap: ScoresMap, *, map_name: str | None = None,
                  verdicts_from: str | None = None) -> ImportResult:
    """The items of ``src`` per ``cmap``; ``cmap.scale`` must be set (``--scale`` or the map's).
    ``verdicts_from`` names where ``cmap.verdicts`` came from, for messages (default: the map's
    table when ``map_name`` is given, else ``--verdicts``)."""
    src = Path(src)
    where = verdicts_from or (f"[tool.judge_eval.imports.{map_name}].verdicts" if map_name else "--verdicts")
    if cmap.scale is None:
        raise ConfigError("import scores needs the scale the judges score on: --scale 1-5 (1, 2, 3, 4, 5), "
                          "--scale 1-5:0.5 (halves), --scale 0,1, or scale = ... in the map")
    if not cmap.judges:
        raise ConfigError("import scores needs at least one judge column: --judge NAME=COLUMN (repeat for each "
                          "judge), or judges = {NAME = \"COLUMN\"} in the map")
    scale = tuple(cmap.scale)
    kind = source_kind(src)
    meanings = score_map(cmap, scale, where)
    data = read_source(src)
    fix = f"--scale SPEC, or scale = ... in the map; declared: {scale_text(scale)}"
    tally = {name: dict.fromkeys(("scored", "unparseable", "errors", "missing"), 0) for name in cmap.judges}
    bucket = {SCORED: "scored", PARSE_FAILURE: "unparseable", ERROR: "errors"}

    def located() -> Iterator[Located]:
        for rec in records(src, data, kind):
            split = split_of(rec, cmap.split)
            question = rec.text(cmap.question, empty=False)
            answer = Answer(rec.name(cmap.model) if cmap.model else UNKNOWN_MODEL, rec.text(cmap.answer))
            evaluations: list[Verdict] = []
            for judge, column in cmap.judges.items():
                verdict = _verdict(rec, judge, column, scale, meanings, fix)
                tally[judge]["missing" if verdict is None else bucket[verdict.source]] += 1
                if verdict is not None:
                    evaluations.append(verdict)
            source = rec.text(cmap.source) if cmap.source else ""
            yield Located(make_item(split, question, (answer,), explicit_id=explicit_id_of(rec, cmap.id),
                                    source=source, evaluations=evaluations,
                                    extra=_reference_answer(rec, cmap.reference_answer)), src, rec.line)

    options = {**cmap.model_dump(), "scale": list(scale), "verdicts": meanings, "map": map_name, "kind": kind,
               "empty": "an empty cell or null is no verdict (counted under missing)"}
    result = tabular_result("scores", src, data, options, located())
    for name in ("scored", "unparseable", "errors", "missing"):
        result.counts[name] = {judge: counts[name] for judge, counts in tally.items()}
    judges = list(cmap.judges)
    # every verdict that is not a score, shown where it is read first (run.json keeps the same counts)
    result.notes += [f"  {judge}: {c['scored']} scored, {c['unparseable']} unparseable, {c['errors']} errors, "
                     f"{c['missing']} missing" + (" (no verdict: the judge is in no item of the run)"
                                                  if c["missing"] == sum(c.values()) else "")
                     for judge, c in tally.items()]
    result.notes.append(f"score judges: {', '.join(judges)} on {scale_text(scale)}; no reference judge is chosen: "
                        f"pass one to report and gate (judge-eval report OUT_DIR --reference {judges[0]})")
    return result

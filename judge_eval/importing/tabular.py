"""Two tabular formats, JSONL or CSV (told apart by the file's ending):

- ``pairs``: one answer pair per record and one column per judge. A column map
  (``judge_eval.config.import_maps.PairsMap``, from ``[tool.judge_eval.imports.NAME]`` or flags)
  names the question, the two answers, optionally their models, an id, a split and a source
  passage, and each judge's column. A judge's value is looked up (spaces stripped, lower-cased)
  in the verdict map: ``first`` (score 1), ``second`` (0), ``tie`` (0.5, a verdict), ``neither``
  (inconclusive) or ``missing`` (no verdict); an empty cell or null is always missing. A verdict
  is stored with source ``original``: the file says which answer won, not in which order a
  judge saw them.
- ``preference``: ``prompt, chosen, rejected``. The two answers are placed in a seeded random
  order: the chosen answer goes first when the first bit of sha256 of ``[seed, prompt, chosen,
  rejected]`` (JSON) is 0, so an item's order depends on its content and the seed, never on
  its position in the file. The item records it (``preference: {seed, chosen: first|second}``),
  both answers' model is ``unknown`` (the label is not leaked into the answers), and the
  reference judge ``preference`` says which one was chosen.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from judge_eval.config.import_maps import DEFAULT_VERDICTS, MEANINGS, PairsMap
from judge_eval.core.items import SPLITS, Answer, Verdict
from judge_eval.errors import ConfigError
from judge_eval.importing.output import ImportResult, Located, make_item, meaning_verdict, unique_items
from judge_eval.importing.sources import Record, kind_of, read_source, records, sha256_of, source_kind

PREFERENCE_JUDGE = "preference"
UNKNOWN_MODEL = "unknown"


def normal_value(value: str) -> str:
    return value.strip().lower()


def parse_verdicts(spec: str, option: str = "--verdicts") -> dict[str, str]:
    """``"A=first,B=second,tie=tie"`` -> ``{"a": "first", "b": "second", "tie": "tie"}``."""
    out: dict[str, str] = {}
    for entry in spec.split(","):
        if not entry.strip():
            continue
        value, sep, meaning = entry.rpartition("=")
        meaning = meaning.strip()
        if not sep or meaning not in MEANINGS:
            raise ConfigError(f"{option} {spec!r}: {entry.strip()!r} is not VALUE=MEANING with MEANING one of "
                              f"{', '.join(MEANINGS)}; e.g. {option} \"A=first,B=second,tie=tie\"")
        key = normal_value(value)
        if key in out and out[key] != meaning:
            raise ConfigError(f"{option} {spec!r}: value {value.strip()!r} is given two meanings")
        out[key] = meaning
    if not out:
        raise ConfigError(f"{option} {spec!r}: no VALUE=MEANING entry")
    return out


def parse_judges(specs: list[str], option: str = "--judge") -> dict[str, str]:
    """``["teacher=gpt4", "candidate=verdict"]`` -> ``{"teacher": "gpt4", "candidate": "verdict"}``."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, column = spec.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise ConfigError(f"{option} {spec!r}: expected NAME=COLUMN, e.g. {option} teacher=gpt4_verdict")
        if name.strip() in out:
            raise ConfigError(f"{option}: judge {name.strip()!r} is given twice")
        out[name.strip()] = column.strip()
    return out


def verdict_map(cmap: PairsMap) -> dict[str, str]:
    """The effective value -> meaning map (keys normalised)."""
    if cmap.verdicts is None:
        return dict(DEFAULT_VERDICTS)
    return {normal_value(k): v for k, v in cmap.verdicts.items()}


def _judge_value(rec: Record, column: str) -> tuple[str, str] | None:
    """(normalised value, value as written), or None for an empty cell or null."""
    value = rec.raw(column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise rec.fail(column, f"expected a verdict value (a string or a number), found {kind_of(value)}")
    if isinstance(value, float):
        shown = str(int(value)) if value.is_integer() else repr(value)
    else:
        shown = str(value)
    if not shown.strip():
        return None
    return normal_value(shown), shown


def split_of(rec: Record, column: str | None) -> str:
    if column is None:
        return "test"
    value = normal_value(rec.text(column))
    if value not in SPLITS:
        raise rec.fail(column, f"{rec.values[column]!r} is not a split; expected one of {', '.join(SPLITS)}")
    return value


def explicit_id_of(rec: Record, column: str | None) -> str | None:
    return rec.name(column) if column is not None else None


def tabular_result(fmt: str, src: Path, data: bytes, options: dict[str, Any],
                   located: Iterator[Located]) -> ImportResult:
    items = unique_items(located)
    result = ImportResult(format=fmt, source=src, source_sha256=sha256_of(data), options=options,
                          train=[i for i in items if i.split == "train"], test=[i for i in items if i.split == "test"])
    counts: dict[str, Any] = {"records": len(items), "items_train": len(result.train), "items_test": len(result.test)}
    verdicts: dict[str, int] = {}
    for item in items:
        for v in item.evaluations:
            verdicts[v.llm] = verdicts.get(v.llm, 0) + 1
    counts["verdicts"] = verdicts
    result.counts = counts
    return result


# --------------------------------------------------------------------------- pairs


def import_pairs(src: Path | str, cmap: PairsMap, *, map_name: str | None = None) -> ImportResult:
    src = Path(src)
    kind = source_kind(src)
    data = read_source(src)
    meanings = verdict_map(cmap)
    known = ", ".join(f"{k}={v}" for k, v in meanings.items())

    def located() -> Iterator[Located]:
        for rec in records(src, data, kind):
            split = split_of(rec, cmap.split)
            question = rec.text(cmap.question, empty=False)
            answers = (Answer(rec.name(cmap.model_a) if cmap.model_a else "a", rec.text(cmap.answer_a)),
                       Answer(rec.name(cmap.model_b) if cmap.model_b else "b", rec.text(cmap.answer_b)))
            evaluations: list[Verdict] = []
            for judge, column in cmap.judges.items():
                found = _judge_value(rec, column)
                if found is None:
                    continue
                value, shown = found
                if value not in meanings:
                    raise rec.fail(column, f"verdict {shown!r} of judge {judge!r} is not in the verdict map ({known})",
                                   fix="map it with --verdicts VALUE=MEANING,... (or the map's verdicts table); "
                                       "nothing was written")
                if meanings[value] != "missing":
                    evaluations.append(meaning_verdict(judge, meanings[value], shown))
            source = rec.text(cmap.source) if cmap.source else ""
            yield Located(make_item(split, question, answers, explicit_id=explicit_id_of(rec, cmap.id), source=source,
                                    evaluations=evaluations), src, rec.line)

    options = {**cmap.model_dump(), "verdicts": meanings, "map": map_name, "kind": kind}
    return tabular_result("pairs", src, data, options, located())


# --------------------------------------------------------------------------- preference


def chosen_first(seed: int, prompt: str, chosen: str, rejected: str) -> bool:
    """Whether the chosen answer goes first: a coin flip seeded by ``seed`` and the row's content."""
    digest = hashlib.sha256(json.dumps([seed, prompt, chosen, rejected]).encode("utf-8")).digest()
    return digest[0] & 1 == 0


def import_preference(src: Path | str, *, prompt: str = "prompt", chosen: str = "chosen", rejected: str = "rejected",
                      id_column: str | None = None, split: str | None = None, source: str | None = None,
                      seed: int = 0) -> ImportResult:
    src = Path(src)
    kind = source_kind(src)
    data = read_source(src)

    def located() -> Iterator[Located]:
        for rec in records(src, data, kind):
            item_split = split_of(rec, split)
            question = rec.text(prompt, empty=False)
            good, bad = rec.text(chosen), rec.text(rejected)
            first = chosen_first(seed, question, good, bad)
            texts = (good, bad) if first else (bad, good)
            answers = (Answer(UNKNOWN_MODEL, texts[0]), Answer(UNKNOWN_MODEL, texts[1]))
            position = "first" if first else "second"
            verdict = meaning_verdict(PREFERENCE_JUDGE, position, f"the {position} answer was chosen")
            yield Located(make_item(item_split, question, answers, explicit_id=explicit_id_of(rec, id_column),
                                    source=rec.text(source) if source else "", evaluations=[verdict],
                                    extra={"preference": {"seed": seed, "chosen": position}}), src, rec.line)

    options: Mapping[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "id": id_column,
                                  "split": split, "source": source, "seed": seed, "kind": kind,
                                  "order": "chosen first when sha256(json [seed, prompt, chosen, rejected]) "
                                           "starts with an even byte"}
    result = tabular_result("preference", src, data, dict(options), located())
    result.notes.append(f"reference judge: {PREFERENCE_JUDGE} "
                        f"(judge-eval report OUT_DIR --reference {PREFERENCE_JUDGE})")
    return result

"""Read and write a run directory in the published study's JSONL schema.

A run directory holds any of:

- ``train_qa.jsonl``, ``test_qa_complete.jsonl``: one QA item per line,
  ``{question, answers: [{model, text}] x2, source, evaluations: [{llm, score, text, source}]}``
- ``pairwise_finetuning_events.jsonl``: judge calls in chat fine-tuning format, both orders
- ``resolved_pairwise_finetuning_events.jsonl``: the events kept for fine-tuning
- ``run.json``: our provenance (optional when reading)

Lines are written exactly as the study wrote them (``json.dumps`` defaults, one record a line,
a trailing newline), so the study's files round-trip byte for byte. Fields we do not know are
kept and written back after the known ones. Every malformed line raises ``RunFileError`` naming
file, line and field.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from judge_eval.errors import RunFileError
from judge_eval.core.items import (
    CONCLUSIVE_SOURCES, ORDERS, SCORES, SOURCES, Answer, FinetuneEvent, Message, QAItem,
    Verdict, item_id,
)

QA_FILES = {"train": "train_qa.jsonl", "test": "test_qa_complete.jsonl"}
EVENTS_FILE = "pairwise_finetuning_events.jsonl"
RESOLVED_FILE = "resolved_pairwise_finetuning_events.jsonl"
RUN_JSON = "run.json"

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """Everything a run directory holds; absent files are empty tuples / an empty dict."""

    path: Path
    train: tuple[QAItem, ...] = ()
    test: tuple[QAItem, ...] = ()
    events: tuple[FinetuneEvent, ...] = ()
    resolved: tuple[FinetuneEvent, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def items(self, split: str) -> tuple[QAItem, ...]:
        return {"train": self.train, "test": self.test}[split]


# --------------------------------------------------------------------------- parsing


class _Line:
    """Field access on one parsed line that raises RunFileError with file, line and field."""

    def __init__(self, path: Path, lineno: int) -> None:
        self.path, self.lineno = path, lineno

    def fail(self, field_name: str | None, problem: str) -> RunFileError:
        return RunFileError(self.path, problem, line=self.lineno, field=field_name)

    def obj(self, value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(name or None, f"expected a JSON object, found {_kind(value)}")
        return value

    def get(self, obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise self.fail(name, "missing")
        value = obj[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise self.fail(name, f"expected {kind.__name__}, found {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null", int: "number", float: "number"}.get(type(value), type(value).__name__)


def _extra(obj: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    known = set(known)
    return {k: v for k, v in obj.items() if k not in known}


def _parse_verdict(ln: _Line, raw: Any, where: str) -> Verdict:
    obj = ln.obj(raw, where)
    llm = ln.get(obj, "llm", str, where)
    text = ln.get(obj, "text", str, where)
    source = ln.get(obj, "source", str, where)
    if source not in SOURCES:
        raise ln.fail(f"{where}.source", f"{source!r} is not one of {', '.join(SOURCES)}")
    if "score" not in obj:
        raise ln.fail(f"{where}.score", "missing")
    score = obj["score"]
    if score is not None:
        score = ln.get(obj, "score", float, where)
        if float(score) not in SCORES:
            raise ln.fail(f"{where}.score", f"{score!r} is not one of 0, 0.5, 1 or null")
        score = float(score)
    elif source in CONCLUSIVE_SOURCES:
        raise ln.fail(f"{where}.score", f"null, but source {source!r} needs a score")
    return Verdict(llm=llm, score=score, text=text, source=source,
                   extra=_extra(obj, ("llm", "score", "text", "source")))


def _parse_qa(ln: _Line, raw: Any, split: str) -> QAItem:
    obj = ln.obj(raw, "")
    question = ln.get(obj, "question", str, "")
    answers_raw = ln.get(obj, "answers", list, "")
    if len(answers_raw) != 2:
        raise ln.fail("answers", f"expected 2 answers, found {len(answers_raw)}")
    answers = []
    for i, a in enumerate(answers_raw):
        where = f"answers[{i}]"
        a = ln.obj(a, where)
        answers.append(Answer(model=ln.get(a, "model", str, where), text=ln.get(a, "text", str, where),
                              extra=_extra(a, ("model", "text"))))
    source = ln.get(obj, "source", str, "")
    evals_raw = ln.get(obj, "evaluations", list, "") if "evaluations" in obj else []
    evaluations = tuple(_parse_verdict(ln, e, f"evaluations[{i}]") for i, e in enumerate(evals_raw))
    seen: set[str] = set()
    for i, v in enumerate(evaluations):
        if v.llm in seen:
            raise ln.fail(f"evaluations[{i}].llm", f"judge {v.llm!r} has two verdicts on this item")
        seen.add(v.llm)
    return QAItem(id=item_id(split, question), split=split, question=question,
                  answers=(answers[0], answers[1]), source=source, evaluations=evaluations,
                  extra=_extra(obj, ("question", "answers", "source", "evaluations")))


def _parse_event(ln: _Line, raw: Any) -> FinetuneEvent:
    obj = ln.obj(raw, "")
    msgs_raw = ln.get(obj, "messages", list, "")
    if not msgs_raw:
        raise ln.fail("messages", "empty")
    messages = []
    for i, m in enumerate(msgs_raw):
        where = f"messages[{i}]"
        m = ln.obj(m, where)
        messages.append(Message(role=ln.get(m, "role", str, where),
                                content=ln.get(m, "content", str, where),
                                extra=_extra(m, ("role", "content"))))
    item = obj.get("item_id")
    if item is not None and not isinstance(item, str):
        raise ln.fail("item_id", f"expected string, found {_kind(item)}")
    order = obj.get("order")
    if order is not None and order not in ORDERS:
        raise ln.fail("order", f"{order!r} is not one of {', '.join(ORDERS)}")
    return FinetuneEvent(messages=tuple(messages), item_id=item, order=order,
                         extra=_extra(obj, ("messages", "item_id", "order")))


def _read_jsonl(path: Path, parse: Callable[[_Line, Any], T]) -> tuple[tuple[int, T], ...]:
    """Parse every non-blank line; returns (line number, record) pairs."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunFileError(path, "file not found", fix="check the run directory path "
                           "(for the study: judge-eval fetch-study DIR)") from None
    out = []
    for lineno, raw_line in enumerate(data.split(b"\n"), start=1):
        if not raw_line.strip():
            continue
        ln = _Line(path, lineno)
        try:
            text = raw_line.decode("utf-8")
            value = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunFileError(path, f"not valid JSON ({exc})", line=lineno) from None
        out.append((lineno, parse(ln, value)))
    return tuple(out)


def read_qa(path: Path | str, split: str) -> tuple[QAItem, ...]:
    """Read a QA file of ``split``; ids must be unique (no repeated question in one split)."""
    path = Path(path)
    numbered = _read_jsonl(path, lambda ln, v: _parse_qa(ln, v, split))
    first_line: dict[str, int] = {}
    for lineno, item in numbered:
        if item.id in first_line:
            raise RunFileError(path, f"question repeated (same text as line {first_line[item.id]}); "
                               "ids are derived from split + question, so each question may appear "
                               "once per split", line=lineno, field="question")
        first_line[item.id] = lineno
    return tuple(item for _, item in numbered)


def read_events(path: Path | str) -> tuple[FinetuneEvent, ...]:
    return tuple(event for _, event in _read_jsonl(Path(path), _parse_event))


def read_run(path: Path | str, *, require: Sequence[str] = ("test",)) -> Run:
    """Read whatever the run directory holds. ``require`` names the parts that must exist:
    any of ``train``, ``test``, ``events``, ``resolved``."""
    root = Path(path)
    if not root.is_dir():
        raise RunFileError(root, "run directory not found",
                           fix="pass a directory holding at least test_qa_complete.jsonl "
                           "(for the study: judge-eval fetch-study DIR)")
    files = {**QA_FILES, "events": EVENTS_FILE, "resolved": RESOLVED_FILE}
    unknown = set(require) - set(files)
    if unknown:
        raise ValueError(f"unknown run parts {sorted(unknown)}; known: {sorted(files)}")
    for part in require:
        if not (root / files[part]).exists():
            raise RunFileError(root / files[part], "file not found",
                               fix=f"this command needs {files[part]} in {root}")
    parts: dict[str, Any] = {}
    for split, name in QA_FILES.items():
        if (root / name).exists():
            parts[split] = read_qa(root / name, split)
    for part, name in (("events", EVENTS_FILE), ("resolved", RESOLVED_FILE)):
        if (root / name).exists():
            parts[part] = read_events(root / name)
    meta: dict[str, Any] = {}
    if (root / RUN_JSON).exists():
        try:
            meta = json.loads((root / RUN_JSON).read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunFileError(root / RUN_JSON, f"not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise RunFileError(root / RUN_JSON, f"expected a JSON object, found {_kind(meta)}")
    return Run(path=root, meta=meta, **parts)


def verdict_from_json(obj: Any, where: str = "journal") -> Verdict:
    """A verdict from its JSON form (as ``verdict_to_json`` wrote it)."""
    return _parse_verdict(_Line(Path(where), 0), obj, "verdict")


def event_from_json(obj: Any, where: str = "journal") -> FinetuneEvent:
    return _parse_event(_Line(Path(where), 0), obj)


# --------------------------------------------------------------------------- writing


def verdict_to_json(v: Verdict) -> dict[str, Any]:
    return {"llm": v.llm, "score": v.score, "text": v.text, "source": v.source, **v.extra}


def qa_to_json(item: QAItem) -> dict[str, Any]:
    return {
        "question": item.question,
        "answers": [{"model": a.model, "text": a.text, **a.extra} for a in item.answers],
        "source": item.source,
        "evaluations": [verdict_to_json(v) for v in item.evaluations],
        **item.extra,
    }


def event_to_json(event: FinetuneEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content, **m.extra}
                                        for m in event.messages]}
    if event.item_id is not None:
        out["item_id"] = event.item_id
    if event.order is not None:
        out["order"] = event.order
    out.update(event.extra)
    return out


def _check_finite(obj: Any) -> None:
    # json.dumps would write NaN, which is not JSON; refuse instead of writing a bad file.
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"refusing to write non-finite number {obj!r}")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_finite(v)
    elif isinstance(obj, list):
        for v in obj:
            _check_finite(v)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename, so a
    reader never sees a half-written file and a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path | str, rows: Iterable[Mapping[str, Any]]) -> None:
    lines = []
    for row in rows:
        _check_finite(row)
        lines.append(json.dumps(row) + "\n")
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))


def write_qa(path: Path | str, items: Iterable[QAItem]) -> None:
    write_jsonl(path, (qa_to_json(i) for i in items))


def write_events(path: Path | str, events: Iterable[FinetuneEvent]) -> None:
    write_jsonl(path, (event_to_json(e) for e in events))


def write_run(run: Run, path: Path | str | None = None) -> Path:
    """Write every non-empty part of ``run`` into ``path`` (default: ``run.path``)."""
    root = Path(path or run.path)
    root.mkdir(parents=True, exist_ok=True)
    for split, name in QA_FILES.items():
        if run.items(split):
            write_qa(root / name, run.items(split))
    if run.events:
        write_events(root / EVENTS_FILE, run.events)
    if run.resolved:
        write_events(root / RESOLVED_FILE, run.resolved)
    if run.meta:
        _check_finite(dict(run.meta))
        atomic_write_bytes(root / RUN_JSON, (json.dumps(run.meta, indent=2, sort_keys=True) + "\n").encode())
    return root

"""Read and write a run directory in the published study's JSONL schema.

A run directory holds any of:

- ``train_qa.jsonl``, ``test_qa_complete.jsonl``: one QA item per line,
  ``{question, answers: [{model, text}] x2, source, evaluations: [{llm, score, text, source}]}``
  and optionally ``id``, the item's explicit id (``judge_eval.core.items.item_id``); or a
  pointwise item: one answer, and score evaluations
  ``{llm, score, text, source, kind: "score", scale: [allowed scores, ascending]}`` (below)
- ``pairwise_finetuning_events.jsonl``: judge calls in chat fine-tuning format, both orders
- ``resolved_pairwise_finetuning_events.jsonl``: the events kept for fine-tuning
- ``run.json``: our provenance (optional when reading)

Lines are written exactly as the study wrote them (``json.dumps`` defaults, one record a line,
a trailing newline), so the study's files round-trip byte for byte. Fields we do not know are
kept and written back after the known ones. Every malformed line raises ``RunFileError`` naming
file, line and field; so does a file that cannot be read (a folder in its place, no permission).
A line must be valid Unicode text: invalid UTF-8 bytes and lone surrogate escapes (``\\ud800``
without its pair) are refused, and so are arrays/objects nested deeper than ``MAX_DEPTH``.

Pointwise items (score judges). An item with one answer is pointwise; its evaluations are score
verdicts: ``"kind": "score"``, ``"scale"`` (at least two finite numbers, strictly ascending, e.g.
``[1, 2, 3, 4, 5]``, ``[0, 1]``, ``[1, 1.5, ..., 5]``), and either ``"source": "scored"`` with a
``score`` on that scale, or ``output-cannot-be-parsed`` / ``error`` with a null score. A pair's
evaluations are pairwise: no ``kind`` (or ``"kind": "pairwise"``, kept and written back as read)
and no ``scale``. Within one file a judge has one kind and one scale. Each of these rules broken
is a ``RunFileError`` naming file, line and field; the readers (``read_qa``, ``iter_qa``,
``iter_qa_rows``, ``stream_split``, ``read_run``) all apply them. Scores and scale values are
kept as the line has them (``4`` stays an int), so a pointwise file round-trips byte for byte.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, TypeVar

from judge_eval.errors import RunFileError
from judge_eval.core.items import (
    CONCLUSIVE_SOURCES, ORDERS, PAIRWISE, POINTWISE, SCORE, SCORE_SOURCES, SCORED, SCORES, SOURCES,
    VERDICT_KINDS, Answer, FinetuneEvent, Message, QAItem, Verdict, item_id, question_key, scale_text,
)

QA_FILES = {"train": "train_qa.jsonl", "test": "test_qa_complete.jsonl"}
EVENTS_FILE = "pairwise_finetuning_events.jsonl"
RESOLVED_FILE = "resolved_pairwise_finetuning_events.jsonl"
RUN_JSON = "run.json"

#: The parts of a run directory, and the file each one is read from.
PART_FILES = {**QA_FILES, "events": EVENTS_FILE, "resolved": RESOLVED_FILE, "meta": RUN_JSON}

#: The deepest nesting of arrays/objects a line may have. A record of the study's schema is 4
#: levels deep; the bound keeps unknown fields far from Python's recursion limit (json.loads
#: raises RecursionError near 1000 levels, and writing them back would too).
MAX_DEPTH = 100

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


def _parse_scale(ln: _Line, raw: Any, name: str) -> tuple[float, ...]:
    """A score verdict's scale: at least two finite numbers, strictly ascending; kept as read."""
    example = "a scale lists the allowed scores in ascending order, e.g. [1, 2, 3, 4, 5] or [0, 1]"
    if not isinstance(raw, list):
        raise ln.fail(name, f"expected array, found {_kind(raw)}; {example}")
    if len(raw) < 2:
        raise ln.fail(name, f"{len(raw)} value(s); a scale needs at least two scores to tell answers apart "
                      f"({example})")
    for j, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ln.fail(f"{name}[{j}]", f"expected number, found {_kind(value)}; {example}")
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            raise ln.fail(f"{name}[{j}]", f"{value!r} is not a finite number (within the range of a 64-bit "
                          f"float); {example}")
        if j and not value > raw[j - 1]:
            raise ln.fail(f"{name}[{j}]", f"{value!r} does not come after {raw[j - 1]!r}: {example}, each "
                          "score once")
    return tuple(raw)


def _parse_score_verdict(ln: _Line, obj: dict[str, Any], where: str, llm: str, text: str,
                         source: str) -> Verdict:
    if source not in SCORE_SOURCES:
        raise ln.fail(f"{where}.source", f"{source!r} is not one of {', '.join(SCORE_SOURCES)} (the sources "
                      "of a score verdict)")
    if "scale" not in obj:
        raise ln.fail(f"{where}.scale", "missing; a score verdict declares its scale, the allowed scores in "
                      "ascending order (e.g. [1, 2, 3, 4, 5])")
    scale = _parse_scale(ln, obj["scale"], f"{where}.scale")
    if "score" not in obj:
        raise ln.fail(f"{where}.score", "missing")
    score = obj["score"]
    if source == SCORED:
        if score is None:
            raise ln.fail(f"{where}.score", f"null, but source {SCORED!r} needs a score")
        score = ln.get(obj, "score", float, where)
        if score not in scale:
            raise ln.fail(f"{where}.score", f"{score!r} is not on the declared scale {scale_text(scale)}")
    elif score is not None:
        raise ln.fail(f"{where}.score", f"{score!r} with source {source!r}; only a {SCORED!r} verdict has a "
                      "score, this one's is null")
    return Verdict(llm=llm, score=score, text=text, source=source, kind=SCORE, scale=scale,
                   extra=_extra(obj, ("llm", "score", "text", "source", "kind", "scale")))


def _parse_verdict(ln: _Line, raw: Any, where: str) -> Verdict:
    """A pairwise or (``"kind": "score"``) a score verdict; ``_parse_qa`` checks that the kind
    fits the item."""
    obj = ln.obj(raw, where)
    llm = ln.get(obj, "llm", str, where)
    text = ln.get(obj, "text", str, where)
    source = ln.get(obj, "source", str, where)
    if "kind" in obj:
        kind = obj["kind"]
        if not isinstance(kind, str):
            raise ln.fail(f"{where}.kind", f"expected string, found {_kind(kind)}; one of "
                          f"{', '.join(VERDICT_KINDS)}")
        if kind not in VERDICT_KINDS:
            raise ln.fail(f"{where}.kind", f"{kind!r} is not one of {', '.join(VERDICT_KINDS)}")
        if kind == SCORE:
            return _parse_score_verdict(ln, obj, where, llm, text, source)
    if "scale" in obj:
        raise ln.fail(f"{where}.scale", "a pairwise verdict has no scale; a score verdict (on an item with one "
                      "answer) says \"kind\": \"score\" as well")
    if source not in SOURCES:
        hint = (f" ({SCORED!r} is the source of a score verdict, which says \"kind\": \"score\" and its "
                "\"scale\")" if source == SCORED else "")
        raise ln.fail(f"{where}.source", f"{source!r} is not one of {', '.join(SOURCES)}{hint}")
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
    # an explicit "kind": "pairwise" stays in extra: it is written back where the line had it
    return Verdict(llm=llm, score=score, text=text, source=source,
                   extra=_extra(obj, ("llm", "score", "text", "source")))


def _kind_mismatch(ln: _Line, count: int, index: int, verdict: Verdict) -> RunFileError:
    """A verdict whose kind does not fit the item's number of answers."""
    if count == 1:
        return ln.fail("answers", f"expected 2 answers, found 1: evaluations[{index}] (judge {verdict.llm!r}) is a "
                       "pairwise verdict, which compares two answers; a pointwise item (one answer) takes score "
                       "verdicts, each with \"kind\": \"score\" and its \"scale\"")
    return ln.fail("answers", f"expected 1 answer, found {count}: evaluations[{index}] (judge {verdict.llm!r}) "
                   "is a score verdict, which rates one answer; a pair takes pairwise verdicts (no \"kind\", or "
                   "\"kind\": \"pairwise\")")


def _parse_qa(ln: _Line, raw: Any, split: str) -> QAItem:
    obj = ln.obj(raw, "")
    question = ln.get(obj, "question", str, "")
    answers_raw = ln.get(obj, "answers", list, "")
    if len(answers_raw) not in (1, 2):
        raise ln.fail("answers", f"expected 2 answers (a pair) or 1 (a pointwise item), found {len(answers_raw)}")
    answers = []
    for i, a in enumerate(answers_raw):
        where = f"answers[{i}]"
        a = ln.obj(a, where)
        answers.append(Answer(model=ln.get(a, "model", str, where), text=ln.get(a, "text", str, where),
                              extra=_extra(a, ("model", "text"))))
    source = ln.get(obj, "source", str, "")
    evals_raw = ln.get(obj, "evaluations", list, "") if "evaluations" in obj else []
    evaluations = tuple(_parse_verdict(ln, e, f"evaluations[{i}]") for i, e in enumerate(evals_raw))
    wanted = PAIRWISE if len(answers) == 2 else SCORE
    seen: set[str] = set()
    for i, v in enumerate(evaluations):
        if v.kind != wanted:
            raise _kind_mismatch(ln, len(answers), i, v)
        if v.llm in seen:
            raise ln.fail(f"evaluations[{i}].llm", f"judge {v.llm!r} has two verdicts on this item")
        seen.add(v.llm)
    explicit = None
    if "id" in obj:
        explicit = obj["id"]
        if not isinstance(explicit, str):
            raise ln.fail("id", f"expected string, found {_kind(explicit)}")
        if not explicit.strip():
            raise ln.fail("id", "empty; an explicit id must name the item")
        if _CONTROL.search(explicit):
            raise ln.fail("id", "holds a control character (a newline, a tab, NUL...); an id is one line "
                          "of printable text")
    return QAItem(id=item_id(split, question, answers, explicit=explicit), split=split, question=question,
                  answers=tuple(answers), source=source, evaluations=evaluations,
                  # an explicit "id" stays in extra: it is written back where the line had it
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


_PERMISSION_FIX = ("make it readable by this user (chmod u+r on the file, u+rx on the folders "
                   "above it) or run as a user who may read it")


def _stat_kind(path: Path) -> str | None:
    """``"dir"``, ``"file"`` or None (absent); a folder we may not look into is a RunFileError."""
    try:
        return "dir" if path.is_dir() else "file" if path.exists() else None
    except PermissionError:
        raise RunFileError(path.parent, "permission denied: cannot look inside this folder",
                           fix=_PERMISSION_FIX) from None
    except OSError as exc:
        raise RunFileError(path, f"cannot be read ({exc.strerror or exc})",
                           fix="check the path and the disk") from None


def _read_file(path: Path) -> bytes:
    """The bytes of a run file; every reason it cannot be read is a RunFileError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RunFileError(path, "file not found", fix="check the run directory path "
                           "(for the study: judge-eval fetch-study DIR)") from None
    except IsADirectoryError:
        raise RunFileError(path, "is a folder, not a file",
                           fix=f"replace that folder with the file {path.name} (or remove it)") from None
    except PermissionError:
        raise RunFileError(path, "permission denied: cannot read this file", fix=_PERMISSION_FIX) from None
    except OSError as exc:
        raise RunFileError(path, f"cannot be read ({exc.strerror or exc})",
                           fix="check the path and the disk") from None


def _open_errors(path: Path, exc: OSError) -> RunFileError:
    """The RunFileError of ``_read_file`` for an error opening or reading ``path``."""
    if isinstance(exc, FileNotFoundError):
        return RunFileError(path, "file not found", fix="check the run directory path "
                            "(for the study: judge-eval fetch-study DIR)")
    if isinstance(exc, IsADirectoryError):
        return RunFileError(path, "is a folder, not a file",
                            fix=f"replace that folder with the file {path.name} (or remove it)")
    if isinstance(exc, PermissionError):
        return RunFileError(path, "permission denied: cannot read this file", fix=_PERMISSION_FIX)
    return RunFileError(path, f"cannot be read ({exc.strerror or exc})", fix="check the path and the disk")


def _iter_lines(path: Path, *, stream: bool = True) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) of every line of ``path``, with the errors of
    ``_read_file``. ``stream``: read a line at a time, the file is never held whole (the path of
    report, gate and compare); otherwise the file is read whole first (``Path.read_bytes``,
    which ``read_run`` keeps: it holds every item anyway) and cut a line at a time."""
    if not stream:
        data = _read_file(path)
        start, lineno = 0, 0
        while start < len(data):  # a last empty segment (after the final newline) is blank anyway
            end = data.find(b"\n", start)
            lineno += 1
            if end < 0:
                yield lineno, data[start:]
                return
            yield lineno, data[start:end]
            start = end + 1
        return
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise _open_errors(path, exc) from None
    with fh:
        lineno = 0
        while True:
            try:
                raw = fh.readline()
            except OSError as exc:
                raise _open_errors(path, exc) from None
            if not raw:
                return
            lineno += 1
            yield lineno, raw[:-1] if raw.endswith(b"\n") else raw


# A lone surrogate can only come from a \uXXXX escape (the UTF-8 decoder refuses encoded ones);
# lines without such an escape are not walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_TOO_DEEP = (f"arrays/objects nested deeper than {MAX_DEPTH} levels; a run record is a few levels "
             "deep")


def _field_name(steps: Sequence[str | int]) -> str | None:
    name = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".")
    return name or None


def _check_value(path: Path, lineno: int | None, value: Any, *, surrogates: bool) -> None:
    """Refuse nesting deeper than MAX_DEPTH and (when ``surrogates``) lone surrogates in any
    string or key. Iterative, so a deep value cannot exhaust the stack."""
    def fail(steps: Sequence[str | int], problem: str, fix: str | None = None) -> RunFileError:
        return RunFileError(path, problem, line=lineno, field=_field_name(steps), fix=fix)

    def lone(text: str, steps: Sequence[str | int], what: str) -> None:
        found = _SURROGATE.search(text)
        if found:
            raise fail(steps, f"{what}lone surrogate \\u{ord(found.group()):04x} at character "
                       f"{found.start()}: not valid Unicode text (a run's JSON text must be)",
                       fix="fix the line: replace that escape with the character it was meant to be "
                       "(a pair such as \\ud83d\\ude00 is one valid character)")

    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, steps = stack.pop()
        if isinstance(node, (dict, list)) and len(steps) >= MAX_DEPTH:
            raise fail(steps[:1], _TOO_DEEP)
        if isinstance(node, dict):
            for key, child in node.items():
                if surrogates:
                    lone(key, steps, f"key {key[:40]!r}: ")
                stack.append((child, (*steps, key)))
        elif isinstance(node, list):
            stack.extend((child, (*steps, i)) for i, child in enumerate(node))
        elif surrogates and isinstance(node, str):
            lone(node, steps, "")


def _loads(path: Path, lineno: int | None, raw: bytes) -> Any:
    """One JSON value from ``raw``: valid UTF-8, valid JSON, valid Unicode, not too deep."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFileError(path, f"not valid JSON ({exc})", line=lineno) from None
    except RecursionError:
        raise RunFileError(path, _TOO_DEEP, line=lineno) from None
    except ValueError:  # json's plain ValueError: an integer longer than Python converts from text
        raise RunFileError(path, f"holds an integer of more than {sys.get_int_max_str_digits()} digits, more "
                           "than a run (or an import) reads", line=lineno) from None
    surrogates = _SURROGATE_ESCAPE.search(raw) is not None
    # Walking the value is the costliest part of reading a line; skip it when it cannot fail:
    # no surrogate escape, and too few brackets for MAX_DEPTH + 1 nested arrays/objects.
    if surrogates or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        _check_value(path, lineno, value, surrogates=surrogates)
    return value


def loads_line(path: Path, lineno: int | None, raw: bytes) -> Any:
    """One JSON value of a line of ``path`` under the rules of run files (valid UTF-8, valid JSON,
    no lone surrogate, at most ``MAX_DEPTH`` levels); a ``RunFileError`` naming file and line
    otherwise. Importers read their sources through it."""
    return _loads(path, lineno, raw)


def _iter_jsonl(path: Path, parse: Callable[[_Line, Any], T], *,
                stream: bool = True) -> Iterator[tuple[int, T]]:
    """Parse every non-blank line: (line number, record) pairs, one at a time."""
    for lineno, raw_line in _iter_lines(path, stream=stream):
        if not raw_line.strip():
            continue
        value = _loads(path, lineno, raw_line)
        yield lineno, parse(_Line(path, lineno), value)


def _read_jsonl(path: Path, parse: Callable[[_Line, Any], T]) -> tuple[tuple[int, T], ...]:
    """Parse every non-blank line; returns (line number, record) pairs."""
    return tuple(_iter_jsonl(path, parse, stream=False))


def iter_qa(path: Path | str, split: str, *, stream: bool = True) -> Iterator[QAItem]:
    """The items of a QA file of ``split``, one at a time, read a line at a time: what
    ``read_qa`` returns, for callers that keep only part of each item (``VerdictTable``). The
    checks and errors are ``read_qa``'s, raised as it raises them: a line that does not parse
    before any duplicate (so a duplicate is raised only once the whole file has parsed; the
    items before have been yielded by then)."""
    path = Path(path)
    first_line: dict[str, int] = {}
    duplicate: RunFileError | None = None
    judges = _JudgeScales(path)
    for lineno, item in _iter_jsonl(path, lambda ln, v: _parse_qa(ln, v, split), stream=stream):
        judges.check(lineno, [(v.llm, v.scale) for v in item.evaluations])
        if duplicate is None and item.id in first_line:
            duplicate = _duplicate_error(path, item.id, item.explicit_id is not None, first_line[item.id], lineno,
                                         len(item.answers))
        if duplicate is None:
            first_line[item.id] = lineno
            yield item
    if duplicate is not None:
        raise duplicate


class _JudgeScales:
    """Each judge's kind and scale in one file, as the first line with its verdict has them
    (scale None: pairwise): a judge keeps one kind and one scale in a file, so its verdicts can be
    compared with each other and the metrics have one scale per judge."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first: dict[str, tuple[int, tuple[float, ...] | None]] = {}

    def check(self, lineno: int, verdicts: Sequence[tuple[str, tuple[float, ...] | None]]) -> None:
        """``verdicts``: (judge, scale) of each evaluation of the line at ``lineno``, in order."""
        for index, (llm, scale) in enumerate(verdicts):
            seen = self.first.get(llm)
            if seen is None:
                self.first[llm] = (lineno, scale)
            elif seen[1] is not scale and seen[1] != scale:
                raise self._error(lineno, index, llm, scale, *seen)

    def _error(self, lineno: int, index: int, llm: str, scale: tuple[float, ...] | None,
               first: int, first_scale: tuple[float, ...] | None) -> RunFileError:
        where = f"evaluations[{index}]"
        if scale is None or first_scale is None:
            here, there = ("a pairwise", "score") if scale is None else ("a score", "pairwise")
            return RunFileError(self.path, f"judge {llm!r} gives {here} verdict here but {there} verdicts on "
                                f"line {first}; a judge has one kind in a file", line=lineno,
                                field=f"{where}.kind", fix=f"give the score judge its own name (e.g. "
                                f"'{llm}-score'), or move one kind of verdict to another run")
        return RunFileError(self.path, f"judge {llm!r} declares the scale {scale_text(scale)} here but "
                            f"{scale_text(first_scale)} on line {first}; a judge keeps one scale in a file",
                            line=lineno, field=f"{where}.scale", fix=f"give every verdict of judge {llm!r} the "
                            "same scale, or give the judge of one of the scales another name")


def _duplicate_error(path: Path, ident: str, explicit: bool, first: int, lineno: int,
                     answers: int = 2) -> RunFileError:
    if explicit:
        return RunFileError(path, f"duplicate id {ident!r}: line {first} has the same id; "
                            "each item may appear once per split", line=lineno, field="id",
                            fix=f"give one of lines {first} and {lineno} another id, or remove one")
    same = "the same two answers (models and texts)" if answers == 2 else "the same answer (model and text)"
    return RunFileError(path, f"duplicate item: the same question and {same} as line {first}; an item is its "
                        "split, question and answers, so each may appear once per split", line=lineno,
                        field="question", fix=f"remove line {lineno} or line {first}, or give "
                        "each line its own \"id\"")


class ScoreEntry(tuple):
    """A score verdict in ``QARow.verdicts``: a 3-tuple ``(llm, score, source)`` like a pairwise
    verdict's entry (so every consumer that unpacks three values reads it unchanged), with the
    judge's ``scale`` as an attribute (floats, ascending). ``score`` is a float or None."""

    scale: tuple[float, ...]

    def __new__(cls, llm: str, score: float | None, source: str, scale: tuple[float, ...]) -> "ScoreEntry":
        entry = super().__new__(cls, (llm, score, source))
        entry.scale = scale
        return entry

    def __getnewargs__(self) -> tuple[Any, ...]:  # copy / pickle
        return (*self, self.scale)


class QARow(NamedTuple):
    """What the metrics keep of a QA item (``judge_eval.core.metrics.VerdictTable``): its id,
    its ``order_key``, the lengths of its two answer texts and its verdicts as (llm, score,
    source), in stored order.

    A pointwise item (one answer) has the same shape: ``len_second`` is -1 (no second answer;
    ``kind`` says "pointwise") and each verdict is a ``ScoreEntry``, which unpacks as (llm, score,
    source) and carries the judge's scale. ``VerdictTable.from_rows`` skips such a row (it holds
    pairwise items only); ``judge_eval.core.scores.split_tables`` sends pairwise rows to a
    ``VerdictTable`` and pointwise rows to a ``ScoreTable`` in one pass."""

    id: str
    order_key: str
    len_first: int
    len_second: int
    verdicts: tuple[tuple[str, float | None, str], ...]

    @property
    def kind(self) -> str:
        return POINTWISE if self.len_second < 0 else PAIRWISE


def _float_scale(scale: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(float(v) for v in scale)


def qa_row(item: QAItem) -> QARow:
    if item.kind == POINTWISE:
        return QARow(item.id, item.order_key, len(item.answers[0].text), -1,
                     tuple(ScoreEntry(v.llm, None if v.score is None else float(v.score), v.source,
                                      _float_scale(v.scale or ())) for v in item.evaluations))
    return QARow(item.id, item.order_key, len(item.answers[0].text), len(item.answers[1].text),
                 tuple((v.llm, v.score, v.source) for v in item.evaluations))


_SCORE_VALUES = frozenset(SCORES)
_MAX_CACHED_SCALES = 256


def _plain_scale(raw: Any, cache: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[float, ...]]]
                 ) -> tuple[tuple[Any, ...], tuple[float, ...]] | None:
    """(the scale as read, as floats) when ``raw`` passes every check of ``_parse_scale``, else
    None. Validated scales are cached: a file repeats its few scales on every line."""
    if type(raw) is not list:
        return None
    for value in raw:
        if type(value) is not int and type(value) is not float:
            return None
    key = tuple(raw)
    found = cache.get(key)
    if found is not None:
        return found
    if len(key) < 2:
        return None
    try:
        floats = tuple(float(v) for v in key)
    except OverflowError:
        return None
    if not all(math.isfinite(v) for v in floats) or not all(b > a for a, b in zip(key, key[1:])):
        return None
    if len(cache) < _MAX_CACHED_SCALES:
        cache[key] = (key, floats)
    return key, floats


def _fast_row(obj: Any, split: str, scales: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[float, ...]]]
              ) -> QARow | None:
    """The row of a parsed line that is plainly well formed (exact JSON types, every check of
    ``_parse_qa`` passes), without building the item; None for anything else, which
    ``_parse_qa`` then reads (and refuses with its own error). Accepts only what _parse_qa does.
    ``scales``: the cache of ``_plain_scale``."""
    if type(obj) is not dict:
        return None
    question, answers, source = obj.get("question"), obj.get("answers"), obj.get("source")
    if type(question) is not str or type(answers) is not list or type(source) is not str:
        return None
    if len(answers) == 1:
        return _fast_pointwise_row(obj, split, question, answers[0], scales)
    if len(answers) != 2:
        return None
    a1, a2 = answers
    if type(a1) is not dict or type(a2) is not dict:
        return None
    m1, t1, m2, t2 = a1.get("model"), a1.get("text"), a2.get("model"), a2.get("text")
    if type(m1) is not str or type(t1) is not str or type(m2) is not str or type(t2) is not str:
        return None
    verdicts = []
    if "evaluations" in obj:
        evals = obj["evaluations"]
        if type(evals) is not list:
            return None
        seen = set()
        for e in evals:
            if type(e) is not dict:
                return None
            llm, text, vsource = e.get("llm"), e.get("text"), e.get("source")
            if type(llm) is not str or type(text) is not str or type(vsource) is not str \
                    or vsource not in SOURCES or llm in seen or "score" not in e or "scale" in e \
                    or ("kind" in e and e["kind"] != PAIRWISE):
                return None
            score = e["score"]
            if score is None:
                if vsource in CONCLUSIVE_SOURCES:
                    return None
            elif type(score) is float or type(score) is int:
                if score not in _SCORE_VALUES:
                    return None
                score = float(score)
            else:
                return None
            seen.add(llm)
            verdicts.append((llm, score, vsource))
    explicit = _plain_explicit_id(obj)
    if explicit is False:
        return None
    ident = item_id(split, question, (Answer(m1, t1), Answer(m2, t2)), explicit=explicit)
    return QARow(ident, f"{question_key(split, question)} {ident}", len(t1), len(t2), tuple(verdicts))


def _plain_explicit_id(obj: dict[str, Any]) -> str | None | bool:
    """The line's explicit id, None without one, False when ``_parse_qa`` would refuse it."""
    if "id" not in obj:
        return None
    explicit = obj["id"]
    if type(explicit) is not str or not explicit.strip() or _CONTROL.search(explicit):
        return False
    return explicit


def _fast_pointwise_row(obj: dict[str, Any], split: str, question: str, answer: Any,
                        scales: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[float, ...]]]) -> QARow | None:
    """``_fast_row`` of a line with one answer: score verdicts only, each plainly well formed."""
    if type(answer) is not dict:
        return None
    model, text = answer.get("model"), answer.get("text")
    if type(model) is not str or type(text) is not str:
        return None
    verdicts = []
    if "evaluations" in obj:
        evals = obj["evaluations"]
        if type(evals) is not list:
            return None
        seen = set()
        for e in evals:
            if type(e) is not dict:
                return None
            llm, vtext, vsource = e.get("llm"), e.get("text"), e.get("source")
            if type(llm) is not str or type(vtext) is not str or type(vsource) is not str \
                    or e.get("kind") != SCORE or vsource not in SCORE_SOURCES or llm in seen or "score" not in e:
                return None
            scale = _plain_scale(e.get("scale"), scales)
            if scale is None:
                return None
            score = e["score"]
            if vsource == SCORED:
                if (type(score) is not float and type(score) is not int) or score not in scale[0]:
                    return None
                score = float(score)
            elif score is not None:
                return None
            seen.add(llm)
            verdicts.append(ScoreEntry(llm, score, vsource, scale[1]))
    explicit = _plain_explicit_id(obj)
    if explicit is False:
        return None
    ident = item_id(split, question, (Answer(model, text),), explicit=explicit)
    return QARow(ident, f"{question_key(split, question)} {ident}", len(text), -1, tuple(verdicts))


def iter_qa_rows(path: Path | str, split: str, *, stream: bool = True) -> Iterator[QARow]:
    """``iter_qa`` as ``QARow``s, without building the items: the same checks and errors (a
    line the fast check does not accept is parsed by ``_parse_qa``, which raises its error or
    gives the item its row is taken from). What report, gate and compare read; ``stream``: see
    ``stream_split``."""
    path = Path(path)
    scales: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[float, ...]]] = {}

    def parse(ln: _Line, value: Any) -> tuple[QARow, bool]:
        row = _fast_row(value, split, scales)
        if row is not None:
            return row, "id" in value
        item = _parse_qa(ln, value, split)
        return qa_row(item), item.explicit_id is not None

    first_line: dict[str, int] = {}
    duplicate: RunFileError | None = None
    judges = _JudgeScales(path)
    for lineno, (row, explicit) in _iter_jsonl(path, parse, stream=stream):
        judges.check(lineno, [(v[0], getattr(v, "scale", None)) for v in row.verdicts])
        if duplicate is None and row.id in first_line:
            duplicate = _duplicate_error(path, row.id, explicit, first_line[row.id], lineno,
                                         1 if row.len_second < 0 else 2)
        if duplicate is None:
            first_line[row.id] = lineno
            yield row
    if duplicate is not None:
        raise duplicate


def read_qa(path: Path | str, split: str) -> tuple[QAItem, ...]:
    """Read a QA file of ``split``; ids must be unique. A question may appear with any number of
    answer pairs; the same question with the same two answers (or the same explicit id) twice is
    an error naming both lines."""
    return tuple(iter_qa(path, split, stream=False))


def stream_split(path: Path | str, split: str = "test", *, stream: bool = True) -> Iterator[QARow]:
    """``iter_qa_rows`` of the split's file in run directory ``path``, with the checks (and errors)
    of ``read_run(path, require=(split,), parts=(split,))``; raised on the first ``next``.

    The items come one at a time and no line is kept: by default the file is read a line at a time
    (``Path.open``), never held whole (354 MB for 1,000,000 items); ``stream=False`` reads its bytes
    whole first (``Path.read_bytes``), with the same errors."""
    root = Path(path)
    if _stat_kind(root) != "dir":
        raise RunFileError(root, "run directory not found",
                           fix="pass a directory holding at least test_qa_complete.jsonl "
                           "(for the study: judge-eval fetch-study DIR)")
    name = QA_FILES[split]
    if _stat_kind(root / name) is None:
        raise RunFileError(root / name, "file not found", fix=f"this command needs {name} in {root}")
    yield from iter_qa_rows(root / name, split, stream=stream)


def read_events(path: Path | str) -> tuple[FinetuneEvent, ...]:
    return tuple(event for _, event in _read_jsonl(Path(path), _parse_event))


def read_run(path: Path | str, *, require: Sequence[str] = ("test",),
             parts: Sequence[str] | None = None) -> Run:
    """Read a run directory. ``require`` names the parts that must exist: any of ``train``,
    ``test``, ``events``, ``resolved``. ``parts`` names the parts to read (those and
    ``meta``, i.e. ``run.json``); the others are left empty and their files are not opened, so
    a broken file a command does not need cannot stop it. By default (None) every part present
    is read. The required parts are always read."""
    root = Path(path)
    unknown = (set(require) - set(QA_FILES) - {"events", "resolved"}) | (set(parts or ()) - set(PART_FILES))
    if unknown:
        raise ValueError(f"unknown run parts {sorted(unknown)}; known: {sorted(PART_FILES)}")
    if _stat_kind(root) != "dir":
        raise RunFileError(root, "run directory not found",
                           fix="pass a directory holding at least test_qa_complete.jsonl "
                           "(for the study: judge-eval fetch-study DIR)")
    wanted = set(PART_FILES) if parts is None else set(parts) | set(require)
    present = {part: _stat_kind(root / name) is not None
               for part, name in PART_FILES.items() if part in wanted}
    for part in require:
        if not present[part]:
            raise RunFileError(root / PART_FILES[part], "file not found",
                               fix=f"this command needs {PART_FILES[part]} in {root}")
    found: dict[str, Any] = {}
    for split, name in QA_FILES.items():
        if present.get(split):
            found[split] = read_qa(root / name, split)
    for part, name in (("events", EVENTS_FILE), ("resolved", RESOLVED_FILE)):
        if present.get(part):
            found[part] = read_events(root / name)
    meta: dict[str, Any] = {}
    if present.get("meta"):
        meta = _loads(root / RUN_JSON, None, _read_file(root / RUN_JSON))
        if not isinstance(meta, dict):
            raise RunFileError(root / RUN_JSON, f"expected a JSON object, found {_kind(meta)}")
    return Run(path=root, meta=meta, **found)


def verdict_from_json(obj: Any, where: str = "journal") -> Verdict:
    """A verdict from its JSON form (as ``verdict_to_json`` wrote it)."""
    return _parse_verdict(_Line(Path(where), 0), obj, "verdict")


def event_from_json(obj: Any, where: str = "journal") -> FinetuneEvent:
    return _parse_event(_Line(Path(where), 0), obj)


# --------------------------------------------------------------------------- writing


def verdict_to_json(v: Verdict) -> dict[str, Any]:
    """A verdict as its evaluation line has it: ``kind`` and ``scale`` follow ``source`` for a
    score verdict; a pairwise one has neither (an explicit ``"kind": "pairwise"`` is in ``extra``)."""
    out: dict[str, Any] = {"llm": v.llm, "score": v.score, "text": v.text, "source": v.source}
    if v.kind != PAIRWISE:
        if v.scale is None:
            raise ValueError(f"refusing to write a {v.kind!r} verdict of judge {v.llm!r} without a scale")
        out["kind"] = v.kind
        out["scale"] = list(v.scale)
    elif v.scale is not None:
        raise ValueError(f"refusing to write a pairwise verdict of judge {v.llm!r} with a scale (a score "
                         "verdict has kind 'score')")
    out.update(v.extra)
    return out


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

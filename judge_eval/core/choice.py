"""Verdicts by choice: a judge's probabilities for ``A`` / ``B`` / ``C`` at its verdict position,
read from the token logprobs of its call, and the position-debiased verdict of both orders.

This is a verdict source *alongside* the parsed text, never a replacement: the text verdict stays
what the evaluator resolved; the probabilities are kept on it (``extra["choice"]``, one entry per
order) and ``with_choice_verdicts`` derives a separate judge ``<judge>@choice`` from them at
report time, so the two can be compared row by row.

**Verdict position.** The generated text is the concatenation of the call's tokens. Its verdict
position is the character right after the *last* ``[[`` in that text (and any whitespace after
it, as the parser allows ``[[ A ]]``); the verdict token is the token that holds this character.
The text of that token before the character is its *prefix* (``""`` for a token ``A`` after a
token ``[[``; ``" [["`` for a token ``" [[A"``). A candidate token (one of the position's
``top_logprobs``, or the sampled token itself) *says* letter X when, after the prefix and any
whitespace, it starts with X not followed by a letter or digit: with the prefix ``""`` the
tokens ``A``, ``" A"``, ``A]]`` and ``A]`` say A, ``About`` says nothing; with the prefix ``"[["``
the token ``[[B]]`` says B. SmolLM2's tokeniser under llama.cpp gives ``" [["``, ``"A"``, ``"]]"``
for ``" [[A]]"`` (checked with llama-cpp-python 0.3.36); other tokenisers that merge the letter
with brackets or a space (``" A"``, ``"A]]"``, ``"[[A"``) are covered by the prefix rule. (OpenAI's
tokenisation of ``[[A]]`` was not checked here: no network for its tokeniser files.)

The probability of a letter is the sum of ``exp(logprob)`` over the distinct candidate tokens
that say it; ``mass`` is the sum over the three (the share of the model's next-token mass the
top-k list shows on a verdict letter: small means the position is doubtful). ``A``, ``B`` and
``C`` are then renormalised over the three; a letter outside the top-k gets 0.

**Debiased combination** (``combine``): the answers as stored are shown first in the original
call and second in the flipped one, so P(first stored answer wins) = mean(P_orig(A), P_flip(B)),
P(second wins) = mean(P_orig(B), P_flip(A)), P(tie) = mean(P_orig(C), P_flip(C)). The verdict is
the largest of the three, inconclusive (``neither``) when its lead over the second largest is
below ``margin`` or zero. A profile sets the margin (``choice_margin``); ``pick_margin`` is the
rule that chooses it on a validation slice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from judge_eval.core.items import FLIPPED, NEITHER, ORDERS, ORIGINAL, PAIRWISE, PARSE_FAILURE, QAItem, Verdict

LETTERS = ("A", "B", "C")
#: The suffix of a derived judge's name: ``<judge>@choice``.
CHOICE_SUFFIX = "@choice"
#: The key of a verdict's ``extra`` holding its choice probabilities, one entry per order.
CHOICE_KEY = "choice"

_OPEN = re.compile(r"\[\[\s*")
_WHITESPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Choice:
    """The probabilities at one call's verdict position, or why there are none (``probs`` None)."""

    probs: Mapping[str, float] | None  # "A", "B", "C", renormalised over the three
    mass: float | None = None  # raw probability mass on the three letters among the candidates
    reason: str = "verdict position"

    def to_json(self) -> dict[str, Any]:
        if self.probs is None:
            return {"reason": self.reason}
        return {**{k: self.probs[k] for k in LETTERS}, "mass": self.mass}

    @staticmethod
    def from_json(value: Any) -> "Choice":
        """A stored entry back; an entry without all three letters is a ``Choice`` without
        probabilities (its reason kept), never an error: the text verdict is what must load."""
        if isinstance(value, Mapping) and all(isinstance(value.get(k), (int, float)) for k in LETTERS):
            mass = value.get("mass")
            return Choice({k: float(value[k]) for k in LETTERS},
                          float(mass) if isinstance(mass, (int, float)) else None)
        reason = value.get("reason") if isinstance(value, Mapping) else None
        return Choice(None, None, str(reason or "no probabilities stored"))


def token_entries(logprobs: Any) -> list[dict[str, Any]] | None:
    """The logprobs of one call as a list of ``{"token", "logprob", "top_logprobs": [{"token",
    "logprob"}]}``, the chat completions form (``choices[0].logprobs.content``), from either that
    form or the completions endpoint's (``{"tokens", "token_logprobs", "top_logprobs": [{token:
    logprob}]}``). None when there are none."""
    if logprobs is None:
        return None
    if isinstance(logprobs, Mapping):
        if "content" in logprobs:
            return token_entries(logprobs["content"])
        tokens = logprobs.get("tokens")
        if not tokens:
            return None
        lps = logprobs.get("token_logprobs") or [None] * len(tokens)
        tops = logprobs.get("top_logprobs") or [{}] * len(tokens)
        return [{"token": t, "logprob": lp,
                 "top_logprobs": [{"token": k, "logprob": v} for k, v in (top or {}).items()]}
                for t, lp, top in zip(tokens, lps, tops)]
    entries = list(logprobs)
    return entries or None


def _says(token: str, prefix: str) -> str | None:
    """The letter a candidate token says after ``prefix`` (see the module docstring), or None."""
    if not token.startswith(prefix):
        return None
    rest = token[len(prefix):].lstrip()
    if rest[:1] in LETTERS and not (len(rest) > 1 and rest[1].isalnum()):
        return rest[0]
    return None


def verdict_position(tokens: Sequence[str]) -> tuple[int, str] | str:
    """``(index of the verdict token, its prefix)`` in the generated tokens, or the reason there is
    no verdict position."""
    text = "".join(tokens)
    opens = list(_OPEN.finditer(text))
    if not opens:
        return "no [[ in the output"
    at = opens[-1].end()
    if at >= len(text):
        return "the output ends after its last [["
    start = 0
    for index, token in enumerate(tokens):
        if start <= at < start + len(token):
            return index, token[:at - start]
        start += len(token)
    return "no token holds the verdict position"  # unreachable: ``at`` is inside ``text``


def choice_probs(logprobs: Any) -> Choice:
    """P(A), P(B), P(C) at the verdict position of one call's logprobs (either endpoint's form;
    ``token_entries``), or a ``Choice`` without probabilities and the reason."""
    entries = token_entries(logprobs)
    if not entries:
        return Choice(None, None, "no logprobs")
    tokens = [str(e.get("token") or "") for e in entries]
    found = verdict_position(tokens)
    if isinstance(found, str):
        return Choice(None, None, found)
    index, prefix = found
    entry = entries[index]
    candidates: dict[str, float] = {}
    for cand in [*(entry.get("top_logprobs") or []), entry]:
        token, logprob = cand.get("token"), cand.get("logprob")
        if isinstance(token, str) and isinstance(logprob, (int, float)) and token not in candidates:
            candidates[token] = float(logprob)
    raw = dict.fromkeys(LETTERS, 0.0)
    for token, logprob in candidates.items():
        letter = _says(token, prefix)
        if letter is not None:
            raw[letter] += math.exp(logprob)
    mass = sum(raw.values())
    if mass <= 0.0:
        return Choice(None, 0.0, "no A, B or C among the candidates at the verdict position")
    return Choice({k: raw[k] / mass for k in LETTERS}, mass)


@dataclass(frozen=True)
class Combined:
    """The position-debiased verdict of both orders, in the frame of the answers as stored."""

    first: float  # P(the first stored answer wins)
    second: float
    tie: float
    outcome: str | None  # "first", "second", "tie", or None (inconclusive)
    margin: float  # the lead of the largest probability over the second largest

    @property
    def score(self) -> float:
        """1 = first stored answer wins, 0 = second, 0.5 = tie or inconclusive."""
        return {"first": 1.0, "second": 0.0}.get(self.outcome or "", 0.5)


def combine(original: Mapping[str, float], flipped: Mapping[str, float], margin: float = 0.0) -> Combined:
    """Combine the probabilities of the original call (answers as stored) and the flipped call
    (answers swapped) before deciding; inconclusive when the lead is below ``margin`` or zero."""
    if margin < 0:
        raise ValueError(f"margin {margin!r} is negative; give 0 or more")
    first = (original["A"] + flipped["B"]) / 2
    second = (original["B"] + flipped["A"]) / 2
    tie = (original["C"] + flipped["C"]) / 2
    ranked = sorted((first, second, tie), reverse=True)
    lead = ranked[0] - ranked[1]
    if lead <= 0 or lead < margin:
        outcome = None
    else:
        outcome = "first" if first == ranked[0] else "second" if second == ranked[0] else "tie"
    return Combined(first, second, tie, outcome, lead)


def stored_choices(verdict: Verdict) -> dict[str, Choice] | None:
    """The choice entries a verdict carries (order -> ``Choice``), or None when it has none."""
    value = verdict.extra.get(CHOICE_KEY)
    if not isinstance(value, Mapping):
        return None
    return {order: Choice.from_json(value[order]) for order in ORDERS if order in value}


def choice_verdict(verdict: Verdict, margin: float = 0.0) -> Verdict:
    """The ``<judge>@choice`` verdict of a verdict with choice entries: source ``original`` with
    the combined outcome's score (in the stored frame), ``neither`` when inconclusive, or
    ``output-cannot-be-parsed`` when an order has no probabilities (the reason in ``extra``).
    The combined probabilities are in ``extra["choice"]``."""
    name = verdict.llm + CHOICE_SUFFIX
    choices = stored_choices(verdict) or {}
    missing = [f"{order}: {choices[order].reason if order in choices else 'no call'}"
               for order in ORDERS if order not in choices or choices[order].probs is None]
    if missing:
        return Verdict(llm=name, score=None, text="", source=PARSE_FAILURE,
                       extra={CHOICE_KEY: {"reason": "; ".join(missing)}})
    c = combine(choices[ORIGINAL].probs, choices[FLIPPED].probs, margin)  # type: ignore[arg-type]
    extra = {CHOICE_KEY: {"first": c.first, "second": c.second, "tie": c.tie, "margin": c.margin}}
    if c.outcome is None:
        return Verdict(llm=name, score=0.5, text="", source=NEITHER, extra=extra)
    return Verdict(llm=name, score=c.score, text="", source=ORIGINAL, extra=extra)


def choice_judges(items: Iterable[QAItem]) -> list[str]:
    """Judges with choice entries on at least one pairwise verdict, in order of appearance."""
    seen: dict[str, None] = {}
    for item in items:
        for v in item.evaluations:
            if v.kind == PAIRWISE and not v.llm.endswith(CHOICE_SUFFIX) and stored_choices(v) is not None:
                seen.setdefault(v.llm, None)
    return list(seen)


def with_choice_verdicts(items: Sequence[QAItem], margin: float = 0.0) -> list[QAItem]:
    """The items with a derived ``<judge>@choice`` verdict next to every verdict of a judge that has
    choice entries anywhere (a verdict of such a judge without them gets a parse-failure one). An
    item that already holds ``<judge>@choice`` keeps it: a stored verdict wins."""
    judges = set(choice_judges(items))
    if not judges:
        return list(items)
    out = []
    for item in items:
        have = {v.llm for v in item.evaluations}
        extra = [choice_verdict(v, margin) for v in item.evaluations
                 if v.llm in judges and v.llm + CHOICE_SUFFIX not in have]
        out.append(replace(item, evaluations=item.evaluations + tuple(extra)) if extra else item)
    return out


def first_wins_probability(verdict: Verdict) -> float | None:
    """P(the first stored answer wins) of a derived ``@choice`` verdict, else None."""
    value = verdict.extra.get(CHOICE_KEY)
    if isinstance(value, Mapping) and isinstance(value.get("first"), (int, float)):
        return float(value["first"])
    return None


#: The margins ``pick_margin`` tries by default: 0.00, 0.05, ..., 0.50 (``i / 20`` is the double
#: nearest each decimal, the same float as the literal ``0.05``, ``0.15``, ...).
MARGIN_GRID = tuple(i / 20 for i in range(11))


@dataclass(frozen=True)
class MarginRow:
    """One margin of ``pick_margin``'s grid: what ``<judge>@choice`` does with it against the
    reference, corrected frame, ties with (``judge_eval.core.metrics.compare``'s counts)."""

    margin: float
    agreements: int  # items both judged conclusively with the same first-answer score
    comparable: int  # items both judged conclusively (compare's ``total``)
    inconclusive: int  # ``<judge>@choice`` verdicts of source ``neither`` (compare's ``inconclusive``)
    items: int  # pairwise items (compare's ``items``)
    qualifies: bool  # inconclusive / items <= max_inconclusive_rate

    @property
    def agreement_rate(self) -> float | None:
        return self.agreements / self.comparable if self.comparable else None

    @property
    def inconclusive_rate(self) -> float | None:
        """The rate the gate ``max_inconclusive_rate`` reads (``Comparison.inconclusive_rate``)."""
        return self.inconclusive / self.items if self.items else None


@dataclass(frozen=True)
class MarginChoice:
    """``pick_margin``'s answer: the margin, every row of the grid, and why, in one line."""

    margin: float
    rows: tuple[MarginRow, ...]
    reason: str


def pick_margin(items: Sequence[QAItem], judge: str, reference: str, *, max_inconclusive_rate: float = 0.25,
                grid: Sequence[float] | None = None) -> MarginChoice:
    """The ``choice_margin`` of a profile, chosen on a validation slice ``items`` (never on the
    pairs the profile gates: a margin picked on them is fitted to them).

    For each margin of ``grid`` (default ``MARGIN_GRID``: 0.00, 0.05, ..., 0.50) the
    ``<judge>@choice`` verdicts are derived with it (``with_choice_verdicts``) and compared with
    ``reference`` in the corrected frame, ties with, as ``judge_eval.core.metrics.compare`` counts:
    *comparable* items are those both judged conclusively, *agreements* those of them with the same
    first-answer score; the *inconclusive rate* is ``<judge>@choice``'s verdicts of source
    ``neither`` over all pairwise items, the rate the gate ``max_inconclusive_rate`` checks
    (``Comparison.inconclusive_rate``; unparseable verdicts, an order without probabilities, are
    not in it: ``max_parse_failures`` gates them, and no margin changes them).

    Rule: among the margins whose inconclusive rate is <= ``max_inconclusive_rate``, pick the
    highest agreement rate (agreements / comparable, compared as exact fractions) on the pairs both
    judged conclusively; ties -> the smaller margin. A margin with no comparable pair has no
    agreement rate and ranks below every margin that has one. If no margin qualifies, the margin
    is 0.0 and ``reason`` says so.

    ``judge``: the judge with choice probabilities (``<judge>@choice`` also accepted). A
    ``ValueError`` when it has none in ``items``, when ``items`` already hold a stored
    ``<judge>@choice`` (it would win over every derived one: no margin would change it), or when a
    setting is out of range."""
    from fractions import Fraction

    from judge_eval.core.metrics import as_table, judge_stats

    base = judge[:-len(CHOICE_SUFFIX)] if judge.endswith(CHOICE_SUFFIX) else judge
    name = base + CHOICE_SUFFIX
    margins = tuple(MARGIN_GRID if grid is None else grid)
    if not margins:
        raise ValueError("grid is empty; give at least one margin (default: 0.00, 0.05, ..., 0.50)")
    if any(not (isinstance(m, (int, float)) and 0 <= m <= 1) for m in margins):
        raise ValueError(f"grid {list(margins)!r} holds a margin outside [0, 1]")
    if not 0 <= max_inconclusive_rate <= 1:
        raise ValueError(f"max_inconclusive_rate {max_inconclusive_rate!r} is outside [0, 1]")
    items = [item for item in items if item.kind == PAIRWISE]
    if base not in choice_judges(items):
        raise ValueError(f"judge {base!r} has no choice probabilities (extra[{CHOICE_KEY!r}]) on a pairwise item, "
                         f"so {name!r} has no verdict to decide with a margin")
    if any(item.verdict(name) is not None for item in items):
        raise ValueError(f"the items already hold stored {name!r} verdicts, which win over derived ones: no margin "
                         "would change them. Pick the margin on items without them")
    rows = []
    for margin in margins:
        table = as_table(with_choice_verdicts(items, float(margin)))
        if reference not in table.judges:
            raise ValueError(f"reference judge {reference!r} has no verdict in these items; judges found: "
                             f"{', '.join(j for j in table.judges if j != name)}")
        r, c = table.column(reference), table.column(name)
        both = r.conclusive & c.conclusive  # compare(ties="with")'s compared items
        agreements = int((r.frame_scores("corrected")[both] == c.frame_scores("corrected")[both]).sum())
        stats = judge_stats(table, name, "corrected")
        rows.append(MarginRow(margin=float(margin), agreements=agreements, comparable=int(both.sum()),
                              inconclusive=stats.inconclusive, items=stats.items,
                              # the gate's comparison: inconclusive / items <= max_inconclusive_rate
                              qualifies=bool(stats.items) and stats.inconclusive / stats.items <= max_inconclusive_rate))
    qualifying = [row for row in rows if row.qualifies]
    if not qualifying:
        lowest = min(rows, key=lambda row: (row.inconclusive, row.margin))
        return MarginChoice(0.0, tuple(rows), (
            f"no margin of the grid keeps the inconclusive rate of {name} at or below {max_inconclusive_rate} "
            f"(lowest {lowest.inconclusive}/{lowest.items} at margin {lowest.margin:g}): margin 0.0"))

    def rank(row: MarginRow) -> tuple[bool, Fraction, float]:
        rate = Fraction(row.agreements, row.comparable) if row.comparable else Fraction(0)
        return (row.comparable > 0, rate, -row.margin)

    best = max(qualifying, key=rank)
    rate = f"{best.agreements}/{best.comparable}" if best.comparable else "undefined (no comparable pair)"
    return MarginChoice(best.margin, tuple(rows), (
        f"margin {best.margin:g}: agreement {rate} of {name} with {reference}, the highest of the "
        f"{len(qualifying)} margin(s) whose inconclusive rate is <= {max_inconclusive_rate} (here "
        f"{best.inconclusive}/{best.items}); ties go to the smaller margin"))


#: The suffix of the per-order choice judge: ``<judge>@choice-orders``.
ORDERS_SUFFIX = "@choice-orders"


def _top_letter(probs: Mapping[str, float]) -> str | None:
    """The letter with the highest probability, None when two share it."""
    ranked = sorted(LETTERS, key=lambda k: probs[k], reverse=True)
    return None if probs[ranked[0]] == probs[ranked[1]] else ranked[0]


def orders_choice_verdict(verdict: Verdict) -> Verdict:
    """The verdict by choice *without* the debiased combination: each order's verdict is its most
    probable letter, and the two orders are resolved exactly as the text verdicts are
    (``judge_eval.core.resolution.resolve_orders``: A/A or B/B is inconclusive). This is the step
    between the parsed text and ``choice_verdict``: what reading the probabilities alone changes.
    An order without probabilities, or with two letters equally probable, is unparseable."""
    from judge_eval.core.resolution import resolve_orders

    name = verdict.llm + ORDERS_SUFFIX
    choices = stored_choices(verdict) or {}
    letters = {order: _top_letter(choices[order].probs) if order in choices and choices[order].probs else None
               for order in ORDERS}
    score, source = resolve_orders(letters[ORIGINAL], letters[FLIPPED])
    return Verdict(llm=name, score=score, text="", source=source,
                   extra={"choice_letters": {order: letters[order] for order in ORDERS}})


def with_orders_choice_verdicts(items: Sequence[QAItem]) -> list[QAItem]:
    """The items with ``<judge>@choice-orders`` (``orders_choice_verdict``) next to every verdict
    of a judge that has choice entries anywhere."""
    judges = set(choice_judges(items))
    out = []
    for item in items:
        extra = [orders_choice_verdict(v) for v in item.evaluations if v.llm in judges]
        out.append(replace(item, evaluations=item.evaluations + tuple(extra)) if extra else item)
    return out

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
below ``margin`` or zero.
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

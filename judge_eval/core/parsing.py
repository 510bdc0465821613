"""The project's judge-output parser, passed to ``PairwiseComparisonEvaluator`` as
``parser_function`` in every live profile.

The evaluator's default parser reads any text containing ``[[A]]`` as A (it checks ``[[A]]``,
then ``[[B]]``, then ``[[C]]`` as substrings), so an output that quotes the instructions
("respond with [[A]] or [[B]]") before its own verdict is read as A whatever it concluded.
Here:

- a *format quote* is a run of two or more different verdict tokens joined by short connective
  text on one line (``[[A]] or [[B]]``, ``'[[A]]' if assistant A is better, '[[B]]' if ...``);
  its tokens are not verdicts;
- the remaining tokens are the verdicts: none -> parse failure ("no verdict"); all the same ->
  that verdict; different ones -> parse failure ("conflicting verdicts"). A judge that says
  "[[A]]" and later "[[B]]" has not decided, and guessing would turn noise into agreement.

Every classification keeps the raw text and a reason, so a parse failure can be inspected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A parsed judge output: "A" (first shown answer better), "B", "C" (tie), or None (unparseable).
OUTCOME_SCORES = {"A": 1.0, "B": 0.0, "C": 0.5}

_TOKEN = re.compile(r"\[\[\s*([ABC])\s*\]\]")
# Text allowed between two tokens of one format quote: short, on one line, no sentence end.
_CONNECTIVE = re.compile(r"[^\n.!?\[\]]{0,60}")


@dataclass(frozen=True)
class ParsedVerdict:
    outcome: str | None  # "A", "B", "C", or None when the output has no usable verdict
    reason: str  # why: "verdict", "no verdict", "conflicting verdicts: A, B", ...
    raw: str

    @property
    def score(self) -> float | None:
        return None if self.outcome is None else OUTCOME_SCORES[self.outcome]


def _quoted_spans(text: str, tokens: list[re.Match[str]]) -> set[int]:
    """Indices of tokens that belong to a format quote."""
    quoted: set[int] = set()
    i = 0
    while i < len(tokens):
        j = i
        while j + 1 < len(tokens) and _CONNECTIVE.fullmatch(text[tokens[j].end():tokens[j + 1].start()]):
            j += 1
        run = tokens[i:j + 1]
        if len({m.group(1) for m in run}) >= 2:
            quoted.update(range(i, j + 1))
        i = j + 1
    return quoted


def parse_verdict(text: str) -> ParsedVerdict:
    """Classify one judge output."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return ParsedVerdict(None, "no verdict", text)
    quoted = _quoted_spans(text, tokens)
    verdicts = [m.group(1) for n, m in enumerate(tokens) if n not in quoted]
    if not verdicts:
        return ParsedVerdict(None, "no verdict (only a quoted format string)", text)
    distinct = sorted(set(verdicts))
    if len(distinct) > 1:
        return ParsedVerdict(None, f"conflicting verdicts: {', '.join(distinct)}", text)
    reason = "verdict after a quoted format string" if quoted else "verdict"
    return ParsedVerdict(distinct[0], reason, text)


def parser_function(text: str) -> tuple[bool | None, float | None, str | None]:
    """``parser_function`` for ``PairwiseComparisonEvaluator``: ``(passing, score, feedback)``,
    and ``(None, None, None)`` for an unparseable output, which the evaluator turns into an
    invalid result (the raw text stays in its ``feedback``)."""
    parsed = parse_verdict(text)
    if parsed.outcome is None:
        return None, None, None
    passing = {"A": True, "B": False, "C": None}[parsed.outcome]
    return passing, parsed.score, text

"""Several annotators of one kind as a group: a majority reference, and their agreement as the ceiling.

Judges named ``<group>:<id>`` (``human:17``: one group name and one id, neither containing a
colon) form the group ``<group>`` when at least two such judges are in the run. A judge named
exactly ``<group>`` (``human``) is the group's majority judge when the data has one; otherwise the
majority is computed per item. For every other judge of the run (the reference included), in
each frame and each tie mode (``judge_eval.core.metrics``):

- **agreement with the majority**: a full ``Comparison`` of the judge against the majority
  (the majority judge's verdicts, or the computed ones: the strict-majority vote among the
  group's conclusive votes on the item, a tie being a vote like the others; no strict majority,
  or no conclusive vote, is an inconclusive majority; an item nobody in the group voted on has
  no majority verdict and counts as the reference's missing verdict);
- **per-vote agreement** (MT-Bench's way of counting): every (item, group vote) pair where the
  judge and the vote are both conclusive is one comparison; the share of them that agree;
- the group's **own agreement**, the ceiling a judge is read against (MT-Bench's definition):
  over all items, over all unordered pairs of distinct annotators who both voted conclusively on
  the item, the share that agree.

Without ties (MT-Bench's S2) a comparison where either side says tie is dropped: for the
majority, the majority is computed as above and the items where it or the judge says tie are
dropped, exactly as ``compare`` drops them for any reference.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from itertools import combinations
from typing import Any, Iterable, Sequence

from judge_eval.core.items import NEITHER, ORIGINAL, QAItem, Verdict
from judge_eval.core.metrics import (DEFAULT_RESAMPLES, DEFAULT_SEED, FRAMES, TIES, Comparison, check_ties,
                                     compare, frame_score, is_tie)

_MEMBER = re.compile(r"^([^:]+):([^:]+)$")


def group_of(judge: str) -> str | None:
    """The group a judge name ``<group>:<id>`` belongs to, else None."""
    match = _MEMBER.match(judge)
    return match.group(1) if match else None


def discover_groups(judges: Iterable[str]) -> dict[str, list[str]]:
    """group -> its members, in order of first appearance; a group needs two members or more
    (a single ``ft:model`` name is a judge, not a group of one)."""
    groups: dict[str, list[str]] = {}
    for judge in judges:
        group = group_of(judge)
        if group is not None and judge not in groups.setdefault(group, []):
            groups[group].append(judge)
    return {g: members for g, members in groups.items() if len(members) >= 2}


def majority_verdict(votes: Sequence[Verdict | None], frame: str, name: str) -> Verdict | None:
    """The strict-majority verdict of ``votes`` in ``frame`` (source ``original``: its score is
    already in that frame), an inconclusive one when no strict majority of the conclusive votes
    agrees, None when nobody voted."""
    cast = [v for v in votes if v is not None]
    if not cast:
        return None
    scores = [frame_score(v, frame) for v in cast if v.conclusive]
    for score, n in Counter(scores).items():
        if 2 * n > len(scores):
            return Verdict(name, score, "", ORIGINAL, extra={"votes": len(scores), "majority": n})
    return Verdict(name, 0.5, "", NEITHER, extra={"votes": len(scores), "majority": 0})


@dataclass(frozen=True)
class Tally:
    """Agreements over comparisons."""

    agreements: int
    comparisons: int

    @property
    def rate(self) -> float | None:
        return self.agreements / self.comparisons if self.comparisons else None

    @property
    def fraction(self) -> Fraction | None:
        return Fraction(self.agreements, self.comparisons) if self.comparisons else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


def _counted(pairs: Iterable[tuple[Verdict, Verdict]], frame: str, ties: str) -> Tally:
    """Agreements over the pairs where both verdicts are conclusive (and, without ties, where
    neither says tie)."""
    agreements = comparisons = 0
    for a, b in pairs:
        if not (a.conclusive and b.conclusive) or (ties == "without" and (is_tie(a) or is_tie(b))):
            continue
        comparisons += 1
        agreements += frame_score(a, frame) == frame_score(b, frame)
    return Tally(agreements, comparisons)


def _votes(item: QAItem, members: Sequence[str]) -> list[Verdict]:
    """The members' verdicts on the item (each member's first, as ``QAItem.verdict``), in one pass."""
    wanted, seen, out = frozenset(members), set(), []
    for v in item.evaluations:
        if v.llm in wanted and v.llm not in seen:
            seen.add(v.llm)
            out.append(v)
    return out


def ceiling(items: Sequence[QAItem], members: Sequence[str], frame: str = "corrected",
            ties: str = "with") -> Tally:
    """The group's own agreement: every unordered pair of distinct annotators who both voted
    conclusively on an item is one comparison."""
    check_ties(ties)
    return _counted((pair for item in items for pair in combinations(_votes(item, members), 2)), frame, ties)


def per_vote(items: Sequence[QAItem], judge: str, members: Sequence[str], frame: str = "corrected",
             ties: str = "with") -> Tally:
    """``judge`` against every group vote: every (item, vote) pair is one comparison."""
    check_ties(ties)
    pairs = ((v, vote) for item in items if (v := item.verdict(judge)) is not None
             for vote in _votes(item, members))
    return _counted(pairs, frame, ties)


def with_majority(items: Sequence[QAItem], group: str, members: Sequence[str],
                  frame: str) -> list[QAItem]:
    """The items with the computed majority verdict of ``members`` added as judge ``group``."""
    out = []
    for item in items:
        verdict = majority_verdict(_votes(item, members), frame, group)
        out.append(item if verdict is None else replace(item, evaluations=(*item.evaluations, verdict)))
    return out


@dataclass(frozen=True)
class GroupJudge:
    """One judge against a group, in one frame and tie mode."""

    judge: str
    majority: Comparison  # the judge against the group's majority (its reference is the group)
    per_vote: Tally

    def to_json(self) -> dict[str, Any]:
        return {"judge": self.judge, "majority": self.majority.to_json(), "per_vote": self.per_vote.to_json()}


@dataclass(frozen=True)
class GroupView:
    """A group in one frame and one tie mode: its ceiling and every other judge against it."""

    group: str
    frame: str
    ties: str
    ceiling: Tally  # annotator-annotator agreement
    judges: dict[str, GroupJudge]
    majority_conclusive: int = 0  # items with a conclusive majority verdict
    majority_inconclusive: int = 0  # items with a majority verdict that is not conclusive (no strict majority)
    majority_missing: int = 0  # items with no majority verdict (nobody in the group voted)

    def to_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "ties": self.ties, "ceiling": self.ceiling.to_json(),
                "majority_conclusive": self.majority_conclusive,
                "majority_inconclusive": self.majority_inconclusive,
                "majority_missing": self.majority_missing,
                "judges": {name: j.to_json() for name, j in self.judges.items()}}


@dataclass(frozen=True)
class GroupMetrics:
    group: str
    members: tuple[str, ...]
    majority_judge: bool  # True: the judge named ``group`` is in the data; False: majority computed
    votes: int  # verdicts of any source cast by the members
    conclusive_votes: int
    items_voted: int  # items with at least one member's verdict
    items: int
    views: dict[str, dict[str, GroupView]]  # frame -> ties -> view

    @property
    def majority_source(self) -> str:
        return (f"the judge {self.group!r}" if self.majority_judge
                else "computed: the strict majority of the conclusive votes")

    def view(self, frame: str = "corrected", ties: str = "with") -> GroupView:
        return self.views[frame][ties]

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "members": list(self.members), "majority_judge": self.majority_judge,
                "majority": self.majority_source, "votes": self.votes,
                "conclusive_votes": self.conclusive_votes, "items_voted": self.items_voted,
                "items": self.items,
                "frames": {f: {t: v.to_json() for t, v in by_ties.items()} for f, by_ties in self.views.items()}}


def group_metrics(items: Sequence[QAItem], group: str, members: Sequence[str], *, judges: Sequence[str],
                  seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES) -> GroupMetrics:
    """The group ``group`` of ``members`` against every judge of ``judges`` that is neither a
    member nor the majority judge, in both frames and both tie modes."""
    others = [j for j in dict.fromkeys(judges) if j != group and j not in members]
    has_majority = any(item.verdict(group) is not None for item in items)
    votes = [v for item in items for v in _votes(item, members)]
    views: dict[str, dict[str, GroupView]] = {}
    for frame in FRAMES:
        majority_items = items if has_majority else with_majority(items, group, members, frame)
        majority = [item.verdict(group) for item in majority_items]
        views[frame] = {}
        for ties in TIES:
            views[frame][ties] = GroupView(
                group=group, frame=frame, ties=ties, ceiling=ceiling(items, members, frame, ties),
                judges={j: GroupJudge(
                    judge=j,
                    majority=compare(majority_items, j, group, frame, seed=seed, resamples=resamples, ties=ties),
                    per_vote=per_vote(items, j, members, frame, ties)) for j in others},
                majority_conclusive=sum(1 for v in majority if v is not None and v.conclusive),
                majority_inconclusive=sum(1 for v in majority if v is not None and not v.conclusive),
                majority_missing=sum(1 for v in majority if v is None))
    return GroupMetrics(group=group, members=tuple(members), majority_judge=has_majority, votes=len(votes),
                        conclusive_votes=sum(1 for v in votes if v.conclusive),
                        items_voted=sum(1 for item in items if _votes(item, members)), items=len(items),
                        views=views)

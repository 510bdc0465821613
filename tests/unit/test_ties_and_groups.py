"""Metrics with and without ties (MT-Bench's S1 / S2), annotator groups, and the gates' tie mode.

The group example is small enough to count by hand; every expected number below is counted in
the comments next to it, never copied from judge_eval's output. The study's numbers without ties
are checked against a count over the raw file written here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import pearsonr
from sklearn.metrics import cohen_kappa_score, jaccard_score

from judge_eval.config.profiles import Profile, load_profiles
from judge_eval.core.groups import (ceiling, discover_groups, group_metrics, group_of, majority_verdict,
                                    per_vote)
from judge_eval.core.items import Answer, QAItem, Verdict, item_id
from judge_eval.core.metrics import compare, is_tie, run_metrics
from judge_eval.core.store import Run
from judge_eval.errors import ConfigError, JudgeEvalError
from judge_eval.gating.gates import check_comparison, check_judge, check_run
from judge_eval.reporting.report import render_json, render_markdown, render_text

O, F, N = "original", "flipped", "neither"
CONCLUSIVE = (O, F)

# The published table (study frame, with ties), and the corrected frame's agreements as the README
# states them: with ties nothing may move.
PUBLISHED = {
    "ft_gpt_3p5": (15, 41, 47, 0.8723404255319149, 0.765365523658036, 0.773126734505088),
    "gpt_3p5": (24, 32, 38, 0.8421052631578947, 0.671929323262293, 0.7308712958867757),
}
CORRECTED_WITH_TIES = {"ft_gpt_3p5": (44, 47), "gpt_3p5": (34, 38)}


def make_item(n: int, verdicts: dict[str, tuple[float | None, str]]) -> QAItem:
    question = f"question {n}"
    return QAItem(id=item_id("test", question), split="test", question=question,
                  answers=(Answer("m1", "a"), Answer("m2", "bb")), source="",
                  evaluations=tuple(Verdict(llm, score, "", source) for llm, (score, source) in verdicts.items()))


# --------------------------------------------------------------------------- the hand-counted group
#
# Four items, three annotators (human:1..3) and a model judge. Scores below are in the corrected
# frame ("first answer wins"); the two flipped verdicts on item D are stored raw, in the flipped
# order (human:1 raw 1.0 = the second answer wins = 0 corrected; model raw 0.0 = 1 corrected).
#
#   item | human:1 | human:2 | human:3        | computed majority             | model
#   A    | 1       | 1       | 0.5 (tie)      | 1   (2 of 3 conclusive votes) | 1
#   B    | 0.5     | 0.5     | 0              | 0.5 (tie majority, 2 of 3)    | 0.5
#   C    | 1       | 0       | neither        | none: 1 of 2 is no strict     | 0
#        |         |         |                | majority -> inconclusive      |
#   D    | 0 (F)   | 0       | 1              | 0   (2 of 3)                  | 1 (F)
#
# Model vs the majority, where both are conclusive (A, B, D):
#   S1 (with ties):    A 1=1 yes, B 0.5=0.5 yes, D 1 vs 0 no            -> 2 of 3
#   S2 (without ties): B dropped (both say tie)                         -> 1 of 2
# Per vote, model against every conclusive vote on the item (human:3 on C is inconclusive):
#   S1: A 1v1 y, 1v1 y, 1v0.5 n (2/3); B 0.5v0.5 y, y, 0.5v0 n (2/3); C 0v1 n, 0v0 y (1/2);
#       D 1v0 n, 1v0 n, 1v1 y (1/3)                                      -> 6 of 11
#   S2: A the two non-tie votes agree (2/2); B the model says tie: all dropped (0/0); C 1/2; D 1/3
#                                                                        -> 4 of 7
# Human-human, every unordered pair of annotators both conclusive on the item:
#   S1: A (1,2) y, (1,3) n, (2,3) n (1/3); B (1,2) y, (1,3) n, (2,3) n (1/3); C (1,2) n (0/1);
#       D (1,2) y, (1,3) n, (2,3) n (1/3)                                -> 3 of 10
#   S2: A (1,2) y (1/1); B every pair has a tie (0/0); C (1,2) n (0/1); D 1/3 -> 2 of 5
# The model against one annotator with `compare`, human:1 as the reference:
#   S1: A y, B y (a tie on both sides), C 1 vs 0 n, D 0 vs 1 n           -> 2 of 4, 1 item with a tie
#   S2: B dropped                                                        -> 1 of 3

GROUP_ITEMS = [
    make_item(0, {"model": (1.0, O), "human:1": (1.0, O), "human:2": (1.0, O), "human:3": (0.5, O)}),
    make_item(1, {"model": (0.5, O), "human:1": (0.5, O), "human:2": (0.5, O), "human:3": (0.0, O)}),
    make_item(2, {"model": (0.0, O), "human:1": (1.0, O), "human:2": (0.0, O), "human:3": (0.5, N)}),
    make_item(3, {"model": (0.0, F), "human:1": (1.0, F), "human:2": (0.0, O), "human:3": (1.0, O)}),
]
HUMANS = ["human:1", "human:2", "human:3"]


def test_ties_with_and_without_on_the_hand_count() -> None:
    with_ties = compare(GROUP_ITEMS, "model", "human:1")
    without = compare(GROUP_ITEMS, "model", "human:1", ties="without")
    assert (with_ties.ties, with_ties.agreements, with_ties.total, with_ties.tie_items) == ("with", 2, 4, 1)
    assert (without.ties, without.agreements, without.total, without.tie_items) == ("without", 1, 3, 1)
    assert Fraction(with_ties.agreements, with_ties.total) == Fraction(1, 2)
    assert without.agreement_rate == 1 / 3
    with pytest.raises(JudgeEvalError, match="unknown ties mode 'sometimes'"):
        compare(GROUP_ITEMS, "model", "human:1", ties="sometimes")


def test_the_hand_counted_group() -> None:
    assert discover_groups(["model", *HUMANS]) == {"human": HUMANS}
    g = group_metrics(GROUP_ITEMS, "human", HUMANS, judges=["model"])
    assert not g.majority_judge and (g.votes, g.conclusive_votes, g.items_voted) == (12, 11, 4)
    s1, s2 = g.view("corrected", "with"), g.view("corrected", "without")
    assert (s1.majority_conclusive, s1.majority_inconclusive, s1.majority_missing) == (3, 1, 0)
    assert list(s1.judges) == ["model"]

    assert (s1.ceiling.agreements, s1.ceiling.comparisons, s1.ceiling.fraction) == (3, 10, Fraction(3, 10))
    assert (s2.ceiling.agreements, s2.ceiling.comparisons, s2.ceiling.fraction) == (2, 5, Fraction(2, 5))

    m1, m2 = s1.judges["model"], s2.judges["model"]
    assert (m1.majority.agreements, m1.majority.total) == (2, 3)
    assert Fraction(m1.majority.agreements, m1.majority.total) == Fraction(2, 3)
    assert (m2.majority.agreements, m2.majority.total) == (1, 2)
    assert m1.majority.reference == "human" and m1.majority.inconclusive == 0
    assert (m1.per_vote.agreements, m1.per_vote.comparisons, m1.per_vote.fraction) == (6, 11, Fraction(6, 11))
    assert (m2.per_vote.agreements, m2.per_vote.comparisons, m2.per_vote.fraction) == (4, 7, Fraction(4, 7))
    assert m1.per_vote.rate == 6 / 11 and s1.ceiling.rate == 3 / 10


def test_the_computed_majority() -> None:
    def votes(n: int) -> list[Verdict | None]:
        return [GROUP_ITEMS[n].verdict(h) for h in HUMANS]

    assert [majority_verdict(votes(n), "corrected", "human").score for n in (0, 1, 3)] == [1.0, 0.5, 0.0]
    assert majority_verdict(votes(2), "corrected", "human").source == N  # 1 vs 0: no strict majority
    # D in the study frame (raw scores: 1, 0, 1): the majority is 1
    assert majority_verdict(votes(3), "study", "human").score == 1.0
    assert majority_verdict([None, None], "corrected", "human") is None
    assert majority_verdict([Verdict("h", None, "", "error")], "corrected", "human").source == N


def test_a_majority_judge_in_the_data_is_the_majority() -> None:
    # The judge "human" says 0 on A, where the computed majority says 1: A now disagrees with the
    # model. S1 over A (0 vs 1: no), B (0.5 = 0.5: yes), C (1 vs 0: no), D (0 vs 1: no) -> 1 of 4.
    given_majority = {0: 0.0, 1: 0.5, 2: 1.0, 3: 0.0}
    items = [replace(item, evaluations=(*item.evaluations, Verdict("human", given_majority[n], "", O)))
             for n, item in enumerate(GROUP_ITEMS)]
    metrics = run_metrics(items, "model", resamples=50)
    g = metrics.groups["human"]
    assert g.majority_judge and list(g.view().judges) == ["model"]  # "human" is not an "other judge"
    majority = g.view("corrected", "with").judges["model"].majority
    assert (majority.agreements, majority.total) == (1, 4)
    # per vote and the ceiling do not read the majority judge
    assert g.view("corrected", "with").judges["model"].per_vote.fraction == Fraction(6, 11)


def test_groups_are_named_group_colon_id() -> None:
    assert group_of("human:17") == "human" and group_of("gpt_4") is None
    assert group_of("ft:gpt-3.5-turbo-0613:org::abc") is None  # a fine-tuned model's name, no group
    assert discover_groups(["gpt_4", "human:1", "crowd:a", "human:2", "crowd:b", "expert:1"]) == {
        "human": ["human:1", "human:2"], "crowd": ["crowd:a", "crowd:b"]}  # one expert is no group


def test_reports_show_the_tie_mode_and_the_group() -> None:
    metrics = run_metrics(GROUP_ITEMS, "model", resamples=50)
    assert list(metrics.groups) == ["human"]
    text = render_text(metrics)
    assert "Shown: ties with (MT-Bench S1" in text
    assert "== corrected frame: scores normalised to 'first answer wins'; ties with ==" in text
    assert "human-human agreement (the ceiling): ties with 3 of 10 (0.3000); ties without 2 of 5 (0.4000)" in text
    assert ("model: per-vote agreement: ties with 6 of 11 (0.5455) vs human-human 0.3000; "
            "ties without 4 of 7 (0.5714) vs human-human 0.4000") in text
    assert "model: agreement with the human majority: ties with 2 of 3 (0.6667" in text
    assert "Majority verdicts: 3 conclusive, 1 inconclusive (no strict majority), 0 missing (no vote)" in text
    # human:1 against the model, the run's reference (the hand count above, the other way round)
    block = text.split("== corrected frame", 1)[1].split("\nhuman:1\n-----------------\n", 1)[1].split("\n\n")[0]
    assert "Number of agreements with model: 2 out of 4\n" in block
    assert "Ties without (MT-Bench S2; 1 item where either says tie dropped): 1 agreements out of 3;" in block

    shown_without = render_text(metrics, ties="without")
    assert "Shown: ties without (MT-Bench S2" in shown_without
    block = shown_without.split("== corrected frame", 1)[1].split("\nhuman:1\n-----------------\n", 1)[1]
    assert block.startswith("Number of inconclusives: 0\nNumber of agreements with model: 1 out of 3\n")
    assert "model: per-vote agreement: ties without 4 of 7 (0.5714) vs human-human 0.4000; ties with" in shown_without

    md = render_markdown(metrics)
    assert "Tables: ties with (MT-Bench S1" in md
    assert "| model | with | 2 of 3 (0.667) |" in md and "| 6 of 11 (0.545) | 0.300 |" in md
    assert "| model | without | 1 of 2 (0.500) |" in md and "| 4 of 7 (0.571) | 0.400 |" in md
    assert "- human:1: 1 of 3 agreements (0.333)" in md  # the without-ties list under the with-ties table
    md_without = render_markdown(metrics, ties="without")
    assert "| human:1 | 0 | 0 | 0 | 1 of 3 | 0.333 |" in md_without

    data = json.loads(render_json(metrics))
    assert data["judges"]["human:1"]["corrected"]["ties"] == "with"
    assert data["judges_without_ties"]["human:1"]["corrected"]["ties"] == "without"
    assert (data["judges"]["human:1"]["corrected"]["total"],
            data["judges_without_ties"]["human:1"]["corrected"]["total"]) == (4, 3)
    group = data["groups"]["human"]
    assert group["members"] == HUMANS and group["majority_judge"] is False
    view = group["frames"]["corrected"]["without"]
    assert view["ceiling"] == {"agreements": 2, "comparisons": 5, "rate": 0.4}
    assert view["judges"]["model"]["per_vote"] == {"agreements": 4, "comparisons": 7, "rate": 4 / 7}
    assert view["judges"]["model"]["majority"]["agreements"] == 1
    assert view["judges"]["model"]["majority"]["total"] == 2


# --------------------------------------------------------------------------- properties

verdict_st = st.one_of(
    st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from(CONCLUSIVE)),
    st.just((0.5, N)),
    st.tuples(st.none(), st.sampled_from(["output-cannot-be-parsed", "error"])),
)
items_st = st.lists(st.tuples(verdict_st, verdict_st), min_size=0, max_size=25).map(
    lambda rows: [make_item(n, {"ref": a, "cand": b}) for n, (a, b) in enumerate(rows)])
frames = st.sampled_from(["study", "corrected"])


def pairwise(c) -> tuple:
    return (c.agreements, c.total, c.agreement_rate, c.correlation, c.jaccard, c.kappa, c.agreement_ci)


@given(items=items_st, frame=frames)
def test_without_ties_is_with_ties_on_the_items_without_a_tie(items, frame) -> None:
    without = compare(items, "cand", "ref", frame, resamples=200, ties="without")
    untied = [i for i in items if not (is_tie(i.verdict("ref")) or is_tie(i.verdict("cand")))]
    assert pairwise(without) == pairwise(compare(untied, "cand", "ref", frame, resamples=200))
    with_ties = compare(items, "cand", "ref", frame, resamples=200)
    assert with_ties.tie_items == without.tie_items
    assert with_ties.total == without.total + without.tie_items
    # what is not pairwise does not depend on ties
    assert (with_ties.inconclusive, with_ties.missing, with_ties.reference_missing) == \
           (without.inconclusive, without.missing, without.reference_missing)


@given(items=items_st, frame=frames)
def test_ties_with_is_the_default_computation(items, frame) -> None:
    assert compare(items, "cand", "ref", frame, resamples=200) == \
        compare(items, "cand", "ref", frame, resamples=200, ties="with")


@given(items=items_st, frame=frames, ties=st.sampled_from(["with", "without"]))
def test_per_vote_against_one_annotator_is_plain_agreement(items, frame, ties) -> None:
    """A group vote is compared like any reference verdict: with one annotator, per-vote agreement
    is `compare`'s agreement, and the ceiling has no pair to count."""
    tally = per_vote(items, "cand", ["ref"], frame, ties)
    c = compare(items, "cand", "ref", frame, resamples=10, ties=ties)
    assert (tally.agreements, tally.comparisons) == (c.agreements, c.total)
    assert ceiling(items, ["ref"], frame, ties).comparisons == 0
    # two annotators: the ceiling is their agreement
    pair = ceiling(items, ["ref", "cand"], frame, ties)
    assert (pair.agreements, pair.comparisons) == (c.agreements, c.total)


# --------------------------------------------------------------------------- the study

def raw_rows(study_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "test_qa_complete.jsonl").read_text("utf-8").splitlines()
            if line.strip()]


def without_ties_by_hand(study_dir: Path, judge: str, frame: str) -> dict:
    """Counted over the raw file, sharing no code with judge_eval: the score, or in the corrected
    frame 1 - score when the source is "flipped"; items kept where gpt_4 and the judge are both
    conclusive and neither says tie (score 0.5 with a conclusive source). Items are sorted by the
    sha256 of split and question, as the bootstrap documents."""
    def score(e: dict) -> float:
        return 1.0 - e["score"] if frame == "corrected" and e["source"] == "flipped" else e["score"]

    rows, ties = [], 0
    for line in raw_rows(study_dir):
        ev = {e["llm"]: e for e in line["evaluations"]}
        ref, cand = ev["gpt_4"], ev[judge]
        if ref["source"] not in CONCLUSIVE or cand["source"] not in CONCLUSIVE:
            continue
        if ref["score"] == 0.5 or cand["score"] == 0.5:
            ties += 1
            continue
        key = "test-" + hashlib.sha256(f"test\n{line['question']}".encode("utf-8")).hexdigest()[:16]
        rows.append((key, score(ref), score(cand)))
    ref = [r for _, r, _ in rows]
    cand = [c for _, _, c in rows]
    agree = np.array([float(r == c) for _, r, c in sorted(rows)])
    idx = np.random.default_rng(0).integers(0, len(agree), size=(2000, len(agree)))
    low, high = np.percentile(agree[idx].mean(axis=1), [2.5, 97.5])
    return {"agreements": int(sum(r == c for r, c in zip(ref, cand))), "total": len(rows), "tie_items": ties,
            "correlation": float(pearsonr(ref, cand).statistic),
            "jaccard": float(jaccard_score([str(float(x)) for x in ref], [str(float(x)) for x in cand],
                                          average="weighted")),
            "kappa": float(cohen_kappa_score([str(float(x)) for x in ref], [str(float(x)) for x in cand])),
            "ci": (float(low), float(high))}


@pytest.mark.parametrize("frame", ["corrected", "study"])
@pytest.mark.parametrize("judge", sorted(PUBLISHED))
def test_the_study_without_ties_against_a_count_of_the_raw_file(study_run: Run, study_dir: Path, judge: str,
                                                                 frame: str) -> None:
    expected = without_ties_by_hand(study_dir, judge, frame)
    c = run_metrics(study_run.test).comparison(judge, frame, "without")
    assert (c.ties, c.agreements, c.total, c.tie_items) == \
           ("without", expected["agreements"], expected["total"], expected["tie_items"])
    assert c.agreement_rate == expected["agreements"] / expected["total"]
    assert c.agreement_ci == expected["ci"]
    assert c.jaccard == expected["jaccard"]
    assert c.correlation == pytest.approx(expected["correlation"], rel=1e-12, abs=0.0)
    assert c.kappa == pytest.approx(expected["kappa"], rel=1e-12, abs=0.0)
    assert expected["tie_items"] > 0  # the study has ties: the two modes differ


def test_the_study_with_ties_is_todays_table(study_run: Run) -> None:
    metrics = run_metrics(study_run.test)
    for judge, published in PUBLISHED.items():
        c = metrics.comparison(judge, "study", "with")
        assert c is metrics.judges[judge]["study"] and c.ties == "with"
        assert (c.inconclusive, c.agreements, c.total, c.agreement_rate, c.correlation, c.jaccard) == published
        corrected = metrics.comparison(judge, "corrected")
        assert (corrected.agreements, corrected.total) == CORRECTED_WITH_TIES[judge]
        for frame in ("study", "corrected"):
            assert metrics.judges[judge][frame] == compare(study_run.test, judge, frame=frame)
    assert metrics.groups == {}  # the study has no annotator group


# --------------------------------------------------------------------------- profiles and gates

def test_the_profile_names_its_tie_mode(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.judge_eval.profiles.a]\ngated = ["cand"]\n'
                    '[tool.judge_eval.profiles.b]\ngated = ["cand"]\nties = "without"\n')
    profiles = load_profiles(path)
    assert (profiles["a"].ties, profiles["b"].ties) == ("with", "without")
    path.write_text('[tool.judge_eval.profiles.p]\ngated = ["cand"]\nties = "sometimes"\n')
    with pytest.raises(ConfigError) as info:
        load_profiles(path)
    assert "tool.judge_eval.profiles.p.ties = 'sometimes': Input should be 'with' or 'without'" in str(info.value)


def test_gates_read_the_profiles_tie_mode(tmp_path: Path) -> None:
    # ref and cand agree on the two ties and on 1 of the 2 other items:
    #   with ties 3 of 4 = 0.75 passes min_agreement 0.7; without ties 1 of 2 = 0.5 fails it.
    items = [make_item(n, {"ref": (r, O), "cand": (c, O)})
             for n, (r, c) in enumerate([(0.5, 0.5), (0.5, 0.5), (1.0, 1.0), (1.0, 0.0)])]
    metrics = run_metrics(items, "ref", resamples=50)
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.judge_eval.profiles.p]\ngated = ["cand"]\nreference = "ref"\n'
                    '[tool.judge_eval.profiles.p.thresholds]\nmin_agreement = 0.7\n')
    with_ties: Profile = load_profiles(path)["p"]
    without = with_ties.model_copy(update={"ties": "without"})
    assert check_run(metrics, with_ties, run_dir="R") == []
    (failure,) = check_run(metrics, without, run_dir="R")
    assert (failure.metric, failure.ties) == ("agreement_rate", "without")
    assert failure.message == ("gate failed: judge 'cand', agreement_rate: measured 0.5000 (1 of 2), "
                               "allowed >= 0.7 (run R, corrected frame, ties without, profile p)")
    # check_comparison reads the mode of the comparison it is given
    c = metrics.comparison("cand", "corrected", "without")
    assert [f.message for f in check_comparison(c, with_ties.thresholds, run_dir="R", profile="p")] == \
        [failure.message]


def test_the_study_gate_without_ties_names_it(study_run: Run, study_profile: Profile) -> None:
    metrics = run_metrics(study_run.test)
    without = study_profile.model_copy(update={"ties": "without"})
    assert check_judge(metrics, "ft_gpt_3p5", without, run_dir=study_run.path) == []
    (failure,) = check_judge(metrics, "gpt_3p5", without, run_dir=study_run.path)
    assert failure.message == (
        f"gate failed: judge 'gpt_3p5', inconclusive_rate: measured 0.3750 (24 of 64), "
        f"allowed <= 0.25 (run {study_run.path}, corrected frame, ties without, profile study)")

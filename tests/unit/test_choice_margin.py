"""The margin of the ``<judge>@choice`` verdicts: the profile key ``choice_margin``, the CLI's report,
gate and compare seeing ``@choice`` judges, and ``pick_margin``'s rule on a validation slice.

Every expected number is a hand count written next to the items it comes from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_eval.cli import main
from judge_eval.config.profiles import load_profile
from judge_eval.core.choice import MARGIN_GRID, pick_margin
from judge_eval.core.items import Answer, QAItem, Verdict
from judge_eval.core.metrics import VerdictTable
from judge_eval.core.store import write_qa
from judge_eval.errors import ConfigError
from judge_eval.gating.compare import compare_runs, has_choice_verdicts, load_metrics_input

PROFILES = """
[tool.judge_eval.profiles.cm]
reference = "gpt_4"
gated = ["student@choice"]
choice_margin = 0.2

[tool.judge_eval.profiles.cm.thresholds]
min_agreement = 0.7
max_inconclusive_rate = 0.2

[tool.judge_eval.profiles.cm0]
reference = "gpt_4"
gated = ["student@choice"]

[tool.judge_eval.profiles.cm0.thresholds]
min_agreement = 0.7
max_inconclusive_rate = 0.2
"""


def student(a_orig: float, b_orig: float, a_flip: float, b_flip: float, c: float = 0.0) -> Verdict:
    """The student's text verdict (always ``[[A]]``) with its choice probabilities per order."""
    return Verdict("student", 1.0, "[[A]]", "original", extra={"choice": {
        "original": {"A": a_orig, "B": b_orig, "C": c, "mass": 0.9},
        "flipped": {"A": a_flip, "B": b_flip, "C": c, "mass": 0.9}}})


def ref(score: float, source: str = "original") -> Verdict:
    return Verdict("gpt_4", score, "", source)


def item(i: int, *verdicts: Verdict, first: str = "x") -> QAItem:
    return QAItem(id=f"t{i}", split="test", question=f"q{i}", answers=(Answer("m1", first), Answer("m2", "y")),
                  source="ctx", evaluations=verdicts)


# P(first wins) = (P_orig(A) + P_flip(B)) / 2, P(second wins) = (P_orig(B) + P_flip(A)) / 2; C is 0 here.
RUN = [
    item(0, ref(1.0), student(0.9, 0.1, 0.1, 0.9)),     # first 0.9, second 0.1: lead 0.8 -> first; agrees
    item(1, ref(0.0), student(0.2, 0.8, 0.8, 0.2)),     # first 0.2, second 0.8: lead 0.6 -> second; agrees
    item(2, ref(1.0), student(0.6, 0.4, 0.46, 0.54)),   # first (0.6 + 0.54) / 2 = 0.57, second (0.4 + 0.46) / 2
                                                        # = 0.43: lead 0.14 -> first at margin 0 (agrees),
                                                        # inconclusive at margin 0.2 (0.14 < 0.2)
    item(3, ref(1.0), student(0.3, 0.7, 0.7, 0.3)),     # first 0.3, second 0.7: lead 0.4 -> second; disagrees
]
# margin 0 (no profile, or profile cm0): student@choice 0/4 inconclusive, agreement 3/4 (t0, t1, t2)
# margin 0.2 (profile cm): 1/4 inconclusive (t2), agreement 2/3 (t0, t1 of t0, t1, t3)
# calibration (margin-free): P(first) 0.9, 0.2, 0.57, 0.3 against reference first-wins 1, 0, 1, 1:
# Brier (0.1^2 + 0.2^2 + 0.43^2 + 0.7^2) / 4 = (0.01 + 0.04 + 0.1849 + 0.49) / 4 = 0.181225; AUC 1 (every
# first-wins item's P above the one second-wins item's 0.2); n=4, 3 first-answer wins


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    write_qa(out / "test_qa_complete.jsonl", RUN)
    return out


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(PROFILES)
    return path


def row(out: str, judge: str) -> list[str]:
    """The cells of ``judge``'s row of the compact table after its name: inconclusive, missing,
    parse failures, errors, agreement count, agreement rate, ..."""
    (line,) = [ln for ln in out.splitlines() if ln[2:].startswith(judge + " ")]  # "* " marks a gated judge
    return line[2:].split()[1:]


# --------------------------------------------------------------------------- (a) the profile key


def test_the_profile_key_is_read_defaults_to_0_and_is_validated(config: Path, tmp_path: Path) -> None:
    assert load_profile("cm", config).choice_margin == 0.2
    assert load_profile("cm0", config).choice_margin == 0.0
    for bad, allowed in (("-0.1", "greater than or equal to 0"), ("1.5", "less than or equal to 1"),
                         ('"wide"', "valid number")):
        path = tmp_path / "bad.toml"
        path.write_text(f"[tool.judge_eval.profiles.bad]\nchoice_margin = {bad}\n")
        with pytest.raises(ConfigError, match=rf"tool\.judge_eval\.profiles\.bad\.choice_margin = .*{allowed}"):
            load_profile("bad", path)


# --------------------------------------------------------------------------- (b) report and gate


def test_report_shows_the_choice_judge_and_its_calibration_line(run_dir: Path, capsys) -> None:
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert row(out, "student@choice")[:6] == ["0/4", "0", "0", "0", "3/4", "0.750"]
    assert ("Verdict probabilities of student@choice against gpt_4's decisive verdicts (n=4, 3 first-answer wins): "
            "Brier 0.1812, ECE") in out
    assert "AUC 1.0000" in out


def test_the_profile_s_margin_makes_a_choice_verdict_inconclusive(run_dir: Path, config: Path, capsys) -> None:
    assert main(["report", str(run_dir), "--profile", "cm", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # t2's lead 0.14 is below the profile's 0.2: 1/4 inconclusive, agreement 2/3
    assert row(out, "student@choice")[:6] == ["1/4", "0", "0", "0", "2/3", "0.667"]
    assert row(out, "student")[:6] == ["0/4", "0", "0", "0", "3/4", "0.750"]  # the text verdict: no margin
    assert "Verdict probabilities of student@choice against gpt_4's decisive verdicts (n=4" in out


def test_gate_passes_at_margin_0_and_fails_with_the_profile_s_margin(run_dir: Path, config: Path, capsys) -> None:
    # (d) a gate on a @choice judge through the CLI, and its message
    assert main(["gate", str(run_dir), "--profile", "cm0", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert row(out, "student@choice")[:6] == ["0/4", "0", "0", "0", "3/4", "0.750"]
    assert "PASS: profile cm0, gated judge(s) student@choice, 0 gate failure(s)" in out

    assert main(["gate", str(run_dir), "--profile", "cm", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "Verdict probabilities of student@choice" in out
    assert (f"gate failed: judge 'student@choice', agreement_rate: measured 0.6667 (2 of 3), allowed >= 0.7 "
            f"(run {run_dir}, corrected frame, profile cm)") in out
    assert (f"gate failed: judge 'student@choice', inconclusive_rate: measured 0.2500 (1 of 4), allowed <= 0.2 "
            f"(run {run_dir}, corrected frame, profile cm)") in out
    assert "FAIL: profile cm, gated judge(s) student@choice, 2 gate failure(s)" in out


# --------------------------------------------------------------------------- detection and compare


def test_only_a_verdict_with_choice_probabilities_makes_the_cli_read_the_items(run_dir: Path, tmp_path: Path) -> None:
    items, _ = load_metrics_input(run_dir)
    assert has_choice_verdicts(run_dir) and not isinstance(items, VerdictTable)
    # the word choice in an answer text, a verdict text, an unknown item key, or a verdict key that is not an
    # object: the line holds the bytes "choice" but no verdict has probabilities, so the compact table stays
    plain = tmp_path / "plain"
    plain.mkdir()
    decoy = Verdict("student", 1.0, "choice", "original", extra={"choice": "none"})
    write_qa(plain / "test_qa_complete.jsonl",
             [item(0, ref(1.0), decoy, first="choice"),
              QAItem(id="t1", split="test", question="q1", answers=(Answer("m1", "x"), Answer("m2", '"choice"')),
                     source="ctx", evaluations=(ref(0.0), Verdict("student", 0.0, "", "original")),
                     extra={"choice": ["a"]})])
    assert b'"choice"' in (plain / "test_qa_complete.jsonl").read_bytes()
    assert not has_choice_verdicts(plain)
    assert isinstance(load_metrics_input(plain)[0], VerdictTable)


def test_compare_sees_the_choice_judge_of_both_runs_with_the_profile_s_margin(run_dir: Path, config: Path,
                                                                             tmp_path: Path, capsys) -> None:
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    # t3 now: first (0.7 + 0.7) / 2 = 0.7, second 0.3: lead 0.4 -> first; agrees with the reference
    write_qa(new_dir / "test_qa_complete.jsonl", [*RUN[:3], item(3, ref(1.0), student(0.7, 0.3, 0.3, 0.7))])
    profile = load_profile("cm", config)
    (old, _), (new, _) = load_metrics_input(run_dir), load_metrics_input(new_dir)
    result = compare_runs(old, new, reference="gpt_4", gated=profile.gated, profile=profile)
    (j,) = [j for j in result.judges if j.judge == "student@choice"]
    # margin 0.2 in both runs: t2 inconclusive; agreement 2/3 -> 3/3, t3 moved from second (0.0) to first (1.0)
    assert (j.old["agreements"], j.old["total"], j.new["agreements"], j.new["total"]) == (2, 3, 3, 3)
    assert (j.old["inconclusive"], j.new["inconclusive"]) == (1, 1)
    t3 = old[3].id  # the stored id (write_qa writes none: it is derived from the question and answers)
    assert [(c.id, c.old, c.new) for c in j.changed] == [(t3, "original 0.0", "original 1.0")]
    assert result.removed == [] and result.added == []
    # the same through the CLI
    assert main(["compare", str(run_dir), str(new_dir), "--profile", "cm", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "student@choice (gated)" in out and f"{t3}: original 0.0 -> original 1.0" in out


# --------------------------------------------------------------------------- (c) pick_margin


def symmetric(p: float) -> Verdict:
    """P_orig(A) = P_flip(B) = p: P(first wins) = p, P(second wins) = 1 - p, lead |2p - 1|."""
    return student(p, 1 - p, 1 - p, p)


# Leads and whether the conclusive student@choice verdict agrees with the reference (corrected frame):
SLICE = [
    item(0, ref(1.0), symmetric(0.9)),              # lead 0.8, first; reference first: agrees
    item(1, ref(1.0, "flipped"), symmetric(0.1)),   # lead 0.8, second; reference flipped 1.0 = second: agrees
                                                    # (in the study frame it would not)
    item(2, ref(1.0), symmetric(0.66)),             # lead 0.32, first: agrees
    item(3, ref(0.0), symmetric(0.56)),             # lead 0.12, first; reference second: disagrees
    item(4, ref(0.0), symmetric(0.535)),            # lead 0.07: disagrees
    item(5, ref(0.0), symmetric(0.51)),             # lead 0.02: disagrees
]
# margin -> (agreements, comparable, inconclusive) of 6 items (inconclusive when lead < margin):
#   0.00: all 6 conclusive, agree t0 t1 t2                      -> (3, 6, 0)
#   0.05: t5 out                                                -> (3, 5, 1)
#   0.10: t4, t5 out                                            -> (3, 4, 2)
#   0.15, 0.20, 0.25, 0.30: t3, t4, t5 out                      -> (3, 3, 3)
#   0.35, 0.40, 0.45, 0.50: t2 out too                          -> (2, 2, 4)
HAND = ([(0.0, 3, 6, 0), (0.05, 3, 5, 1), (0.1, 3, 4, 2)] + [(m, 3, 3, 3) for m in (0.15, 0.2, 0.25, 0.3)]
        + [(m, 2, 2, 4) for m in (0.35, 0.4, 0.45, 0.5)])


def test_the_default_grid() -> None:
    assert MARGIN_GRID == (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def test_pick_margin_takes_the_best_agreement_among_margins_within_the_inconclusive_rate() -> None:
    choice = pick_margin(SLICE, "student", "gpt_4")  # max_inconclusive_rate 0.25: 0/6 and 1/6 qualify, 2/6 not
    assert [(r.margin, r.agreements, r.comparable, r.inconclusive, r.items) for r in choice.rows] == \
        [(m, a, c, i, 6) for m, a, c, i in HAND]
    assert [r.qualifies for r in choice.rows] == [True, True] + [False] * 9
    # 3/6 = 0.5 at margin 0, 3/5 = 0.6 at 0.05: 0.05
    assert choice.margin == 0.05
    assert "\n" not in choice.reason and "margin 0.05" in choice.reason and "3/5" in choice.reason


def test_pick_margin_ties_go_to_the_smaller_margin() -> None:
    # max 0.5: 0/6 .. 3/6 qualify (margins 0 to 0.30); 3/3 = 1.0 at 0.15, 0.20, 0.25 and 0.30: the smallest
    assert pick_margin(SLICE, "student", "gpt_4", max_inconclusive_rate=0.5).margin == 0.15
    # max 1: 2/2 at 0.35 .. 0.50 ties with 3/3 too: still 0.15
    assert pick_margin(SLICE, "student@choice", "gpt_4", max_inconclusive_rate=1.0).margin == 0.15
    # a grid of its own: 0.1 (3/4) against 0.3 (3/3) and 0.4 (2/2), both 1.0: 0.3
    assert pick_margin(SLICE, "student", "gpt_4", max_inconclusive_rate=1.0, grid=[0.4, 0.1, 0.3]).margin == 0.3


def test_pick_margin_returns_0_and_says_so_when_no_margin_qualifies() -> None:
    # t6: P 0.5 both ways, lead 0: inconclusive at every margin, 1/7 > 0.1 at best
    items = [*SLICE, item(6, ref(1.0), symmetric(0.5))]
    choice = pick_margin(items, "student", "gpt_4", max_inconclusive_rate=0.1)
    assert choice.margin == 0.0
    assert not any(r.qualifies for r in choice.rows)
    assert (choice.rows[0].inconclusive, choice.rows[0].items) == (1, 7)
    assert choice.reason.startswith("no margin of the grid keeps the inconclusive rate of student@choice at or "
                                    "below 0.1")


def test_pick_margin_counts_the_rate_the_gate_counts() -> None:
    # t6: the student has no probabilities: its @choice verdict is unparseable, which the gate's
    # inconclusive rate (source neither over all items) does not count: 0/7 at margin 0, still qualifying at 0.25
    items = [*SLICE, item(6, ref(1.0), Verdict("student", 1.0, "[[A]]", "original"))]
    choice = pick_margin(items, "student", "gpt_4")
    assert [(r.margin, r.inconclusive, r.items, r.comparable) for r in choice.rows[:3]] == \
        [(0.0, 0, 7, 6), (0.05, 1, 7, 5), (0.1, 2, 7, 4)]
    assert choice.margin == 0.05  # 1/7 <= 0.25 qualifies, 2/7 = 0.29 does not; 3/5 > 3/6


def test_pick_margin_refuses_what_it_cannot_decide() -> None:
    with pytest.raises(ValueError, match="'gpt_4' has no choice probabilities"):
        pick_margin(SLICE, "gpt_4", "student")
    with pytest.raises(ValueError, match="already hold stored 'student@choice'"):
        pick_margin([*SLICE, item(6, ref(1.0), Verdict("student@choice", 1.0, "", "original"), symmetric(0.9))],
                    "student", "gpt_4")
    with pytest.raises(ValueError, match="outside"):
        pick_margin(SLICE, "student", "gpt_4", grid=[-0.1])


# --------------------------------------------------------------------------- per-order choice


def _orders(orig: dict, flip: dict):
    from judge_eval.core.choice import orders_choice_verdict
    from judge_eval.core.items import Verdict

    v = Verdict(llm="s", score=None, text="", source="output-cannot-be-parsed",
                extra={"choice": {"original": orig, "flipped": flip}})
    return orders_choice_verdict(v)


def p(a: float, b: float, c: float) -> dict:
    return {"A": a, "B": b, "C": c, "mass": 1.0}


def test_per_order_choice_resolves_the_orders_like_the_text_verdicts() -> None:
    # original says A (0.6), flipped says B (0.5): both name the first stored answer -> first wins
    v = _orders(p(0.6, 0.3, 0.1), p(0.2, 0.5, 0.3))
    assert (v.llm, v.score, v.source) == ("s@choice-orders", 1.0, "original")
    # A in both orders: the verdict followed the position -> inconclusive, as the text rule says
    v = _orders(p(0.7, 0.2, 0.1), p(0.5, 0.4, 0.1))
    assert (v.score, v.source) == (0.5, "neither")
    # original C, flipped A (= second stored answer): votes 0.5 + 0 for the first, 0.5 + 1 for the
    # second -> the second wins, decided by the flipped call (score 1.0 in its frame)
    v = _orders(p(0.2, 0.3, 0.5), p(0.6, 0.3, 0.1))
    assert (v.score, v.source) == (1.0, "flipped")
    # two letters equally probable in one order: no letter there -> unparseable
    v = _orders(p(0.4, 0.4, 0.2), p(0.1, 0.8, 0.1))
    assert (v.score, v.source) == (None, "output-cannot-be-parsed")
    v = _orders(p(0.6, 0.3, 0.1), {"reason": "no [[ in the output"})
    assert v.source == "output-cannot-be-parsed"

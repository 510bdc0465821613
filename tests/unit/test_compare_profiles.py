"""judge-eval compare: the profile from the runs' run.json (an explicit --profile wins), counts as
counts with old and new values, every changed metric in the text, and the failure rules of a
gated judge (significant loss of conclusive verdicts, parse failures or errors above the
profile's maximum; a single moved verdict reported, not failed).

Every run here is written in the test from a hand-made verdict table, and every expected number
is counted by hand (or comes from scipy) in the test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scipy.stats import binomtest

from judge_eval.cli import _parser, main, resolve
from judge_eval.core.items import Answer, QAItem, Verdict, item_id
from judge_eval.core.store import RUN_JSON, Run, write_run

ROOT = Path(__file__).resolve().parents[2]

#: A verdict code -> (score, text, source): 1/0/t conclusive (first answer wins, second wins, tie),
#: n inconclusive (the two orders disagreed), p unparseable, e a call that failed, - no verdict.
CODES = {"1": (1.0, "[[A]]", "original"), "0": (0.0, "[[B]]", "original"), "t": (0.5, "[[C]]", "original"),
         "n": (0.5, "[[A]] then [[A]]", "neither"), "p": (None, "no verdict here", "output-cannot-be-parsed"),
         "e": (None, "", "error")}

#: A project with three profiles over the judges `teacher` (reference) and `student` (gated).
PROJECT = """
[tool.judge_eval.profiles.plain]
reference = "teacher"
gated = ["student"]

[tool.judge_eval.profiles.strict]
reference = "teacher"
gated = ["student"]

[tool.judge_eval.profiles.strict.thresholds]
max_parse_failures = 2
max_errors = 0

[tool.judge_eval.profiles.other]
reference = "teacher"
gated = ["other"]
"""


def ident(i: int) -> str:
    return item_id("test", f"question {i}", (Answer("m1", "answer one"), Answer("m2", "answer two")))


def write(folder: Path, judges: dict[str, str], profile: str | None = None, meta: dict | None = None) -> Path:
    """A run whose item i carries, per judge, the verdict coded by ``judges[judge][i]``; its
    run.json names ``profile`` (none written when both ``profile`` and ``meta`` are None)."""
    n = len(next(iter(judges.values())))
    assert all(len(codes) == n for codes in judges.values())
    items = []
    for i in range(n):
        answers = (Answer("m1", "answer one"), Answer("m2", "answer two"))
        verdicts = tuple(Verdict(j, *CODES[codes[i]]) for j, codes in judges.items() if codes[i] != "-")
        items.append(QAItem(id=item_id("test", f"question {i}", answers), split="test", question=f"question {i}",
                            answers=answers, source="a passage", evaluations=verdicts))
    run_meta = dict(meta or {})
    if profile is not None:
        run_meta["profile"] = profile
    write_run(Run(path=folder, test=tuple(items), meta=run_meta))
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project" / "pyproject.toml"
    path.parent.mkdir()
    path.write_text(PROJECT, "utf-8")
    return path


def last_line(out: str) -> str:
    return out.rstrip("\n").splitlines()[-1]


def judge_block(out: str, judge: str) -> list[str]:
    """The text lines of one judge's block (its title line to the next blank line)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{judge} (gated)") or line == judge)
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


# --------------------------------------------------------------- the local case (issue 13, item 5)

# 16 test items, as the local profile records. The distilled student gave one conclusive verdict
# (item 0, agreeing with the teacher), 3 inconclusive ones and 12 it could not parse; in the new
# run its one conclusive verdict is unparseable too.
LOCAL_OLD = {"smollm2_teacher": "1011101110111011", "smollm2_lora": "1nnnpppppppppppp",
             "smollm2_base": "10nn101n10n1nn0n"}
LOCAL_NEW = {**LOCAL_OLD, "smollm2_lora": "pnnnpppppppppppp"}

#: The local profile's judges, without thresholds (only the default coverage gates) unless added.
LOCAL_PROJECT = """
[tool.judge_eval.profiles.local]
reference = "smollm2_teacher"
gated = ["smollm2_lora"]
"""
#: The same with the default-on min_compared gate turned off: only the comparison's own rules decide.
LOCAL_NO_MIN = LOCAL_PROJECT + "\n[tool.judge_eval.profiles.local.thresholds]\nmin_compared = 0\n"


def local_runs(tmp_path: Path) -> tuple[Path, Path]:
    return (write(tmp_path / "old", LOCAL_OLD, profile="local"), write(tmp_path / "new", LOCAL_NEW, profile="local"))


def test_two_local_runs_compare_without_profile_and_show_the_parse_failure_change(tmp_path: Path,
                                                                                  capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(LOCAL_NO_MIN, "utf-8")
    old, new = local_runs(tmp_path)
    # No --profile: run.json of both runs names `local`, the project's pyproject.toml defines it.
    code = main(["compare", str(old), str(new), "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0, out  # one moved verdict, and this profile sets no max_parse_failures nor min_compared
    assert "against reference smollm2_teacher" in out
    assert "profile local (from run.json of both runs); gated judge(s): smollm2_lora; 16 test items" in out
    block = judge_block(out, "smollm2_lora")
    counts = next(line for line in block if line.startswith("  counts"))
    # Hand count: parse failures 12 -> 13; the one agreement and the one compared item are gone.
    assert counts.startswith("  counts: parse failures 12 -> 13 (+1), agreements 1 -> 0 (-1), "
                             "compared items 1 -> 0 (-1); unchanged: inconclusive 3, errors 0, missing 0")
    metrics = next(line for line in block if line.startswith("  metrics"))
    assert "agreement rate 1.00 -> n/a" in metrics and "consistency rate 0.0625 -> 0.00 (-0.0625)" in metrics
    # Reported, with its item, and not failed: one discordant item cannot be significant.
    assert binomtest(1, 1, 0.5).pvalue == 1.0
    assert "  lost agreement on 1 item(s), gained on 0; p = 1.00" in block
    assert "  conclusive verdicts: lost on 1 item(s), gained on 0; p = 1.00 (reported, not significant)" in block
    assert f"    {ident(0)}: original 1.0 -> output-cannot-be-parsed None" in block
    # Counts are never printed as rates (the old text read "inconclusive -1.0000").
    assert not re.search(r"\d\.0000", out)
    assert last_line(out) == "OK: no gated judge got worse (smollm2_lora: no failure rule fired)"


def test_losing_the_last_compared_item_fails_the_default_min_compared_gate(tmp_path: Path, capsys) -> None:
    """The same two runs under the default gates: the student's one compared item (item 0) became
    unparseable, so it is compared on nothing. McNemar cannot call one item significant, but
    min_compared = 1 (on by default) passed before and fails now."""
    config = tmp_path / "pyproject.toml"
    config.write_text(LOCAL_PROJECT, "utf-8")
    old, new = local_runs(tmp_path)
    assert main(["compare", str(old), str(new), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "  conclusive verdicts: lost on 1 item(s), gained on 0; p = 1.00 (reported, not significant)" in out
    assert last_line(out) == "FAIL: a gated judge got worse: smollm2_lora: gate(s) passed before and fail now: compared"


def test_the_local_case_fails_when_parse_failures_exceed_the_maximum(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(LOCAL_PROJECT + "\n[tool.judge_eval.profiles.local.thresholds]\nmax_parse_failures = 12\n",
                      "utf-8")
    old, new = local_runs(tmp_path)
    assert main(["compare", str(old), str(new), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    # 12 passed max_parse_failures 12 in the old run, 13 fails it: both rules name it.
    assert last_line(out) == ("FAIL: a gated judge got worse: smollm2_lora: parse failures 13 > max_parse_failures "
                              "12 (was 12); gate(s) passed before and fail now: compared, parse_failures")


def test_two_local_runs_with_the_projects_own_local_profile(tmp_path: Path, capsys) -> None:
    """The repository's pyproject.toml: compare reads its `local` profile from run.json, and the
    verdict follows that profile's max_parse_failures, whatever it is set to."""
    from judge_eval.config.profiles import load_profile

    old, new = local_runs(tmp_path)
    code = main(["compare", str(old), str(new), "--config", str(ROOT / "pyproject.toml")])
    out = capsys.readouterr().out
    assert "profile local (from run.json of both runs); gated judge(s): smollm2_lora; 16 test items" in out
    assert "  counts: parse failures 12 -> 13 (+1)" in out
    allowed = load_profile("local", ROOT / "pyproject.toml").thresholds.max_parse_failures
    over = allowed is not None and 13 > allowed
    assert (f"parse failures 13 > max_parse_failures {allowed} (was 12)" in last_line(out)) == over
    if over:
        assert code == 1 and last_line(out).startswith("FAIL: a gated judge got worse: smollm2_lora: ")


def test_the_local_case_in_json_keeps_old_and_new_values(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(LOCAL_NO_MIN, "utf-8")
    old, new = local_runs(tmp_path)
    assert main(["compare", str(old), str(new), "--config", str(config), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["profile"], data["profile_origin"], data["items"]) == ("local", "run.json of both runs", 16)
    lora = next(j for j in data["judges"] if j["judge"] == "smollm2_lora")
    assert (lora["old"]["parse_failures"], lora["new"]["parse_failures"], lora["deltas"]["parse_failures"]) \
        == (12, 13, 1)
    assert isinstance(lora["deltas"]["parse_failures"], int) and isinstance(lora["deltas"]["inconclusive"], int)
    assert (lora["old"]["consistency_rate"], lora["new"]["consistency_rate"]) == (1 / 16, 0.0)
    assert (lora["old"]["agreement_rate"], lora["new"]["agreement_rate"], lora["deltas"]["agreement_rate"]) \
        == (1.0, None, None)
    assert (lora["lost_conclusive"], lora["gained_conclusive"], lora["conclusive_p_value"]) == (1, 0, 1.0)
    assert not lora["significant_conclusive_loss"] and not lora["fails"] and lora["fail_reasons"] == []
    # The reference's own counts, old and new: all 16 verdicts conclusive in both runs.
    assert data["reference_old"] == data["reference_new"] == {"inconclusive": 0, "parse_failures": 0,
                                                              "errors": 0, "missing": 0}


# --------------------------------------------------------------- losing conclusive verdicts

# 24 items. Old: the student agrees with the teacher on items 0-9, disagrees on 10-19 and is
# inconclusive on 20-23. New: it is inconclusive on 10-18 (9 conclusive verdicts lost, none of
# them agreeing) and agrees on item 20 (1 gained). Its agreement *rises* (10/20 -> 11/12): only
# the conclusive-verdict test sees that it stopped answering where it used to disagree.
LOSS_OLD = {"teacher": "1" * 24, "student": "1" * 10 + "0" * 10 + "nnnn"}
LOSS_NEW = {"teacher": "1" * 24, "student": "1" * 10 + "n" * 9 + "0" + "1nnn"}


def test_many_lost_conclusive_verdicts_fail_with_the_exact_binomial_p_value(tmp_path: Path, project: Path,
                                                                            capsys) -> None:
    old = write(tmp_path / "old", LOSS_OLD, profile="plain")
    new = write(tmp_path / "new", LOSS_NEW, profile="plain")
    assert main(["compare", str(old), str(new), "--config", str(project), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    student = data["judges"][0]
    expected = binomtest(1, 1 + 9, 0.5, alternative="two-sided").pvalue  # 22/1024 by hand
    assert expected == pytest.approx(22 / 1024, rel=1e-12)
    assert (student["lost_conclusive"], student["gained_conclusive"]) == (9, 1)
    assert student["conclusive_p_value"] == pytest.approx(expected, rel=1e-12)
    assert student["significant_conclusive_loss"] and not student["significant_drop"]
    assert (student["lost_agreement"], student["gained_agreement"]) == (0, 1)
    assert (student["old"]["agreement_rate"], student["new"]["agreement_rate"]) == (10 / 20, 11 / 12)
    assert (student["old"]["inconclusive"], student["new"]["inconclusive"]) == (4, 12)
    assert data["fails"] and student["fails"]

    assert main(["compare", str(old), str(new), "--config", str(project)]) == 1
    out = capsys.readouterr().out
    block = judge_block(out, "student")
    assert "  conclusive verdicts: lost on 9 item(s), gained on 1; p = 0.0215 -> SIGNIFICANT LOSS" in block
    counts = next(line for line in block if line.startswith("  counts"))
    assert counts.startswith("  counts: inconclusive 4 -> 12 (+8), agreements 10 -> 11 (+1), "
                             "compared items 20 -> 12 (-8); unchanged: parse failures 0, errors 0, missing 0")
    metrics = next(line for line in block if line.startswith("  metrics"))
    assert "agreement rate 0.500 -> 0.917 (+0.417)" in metrics
    assert last_line(out) == ("FAIL: a gated judge got worse: student: conclusive verdicts lost significantly "
                              "(lost on 9 item(s), gained on 1, p = 0.0215 < alpha 0.05)")


def test_the_conclusive_test_uses_the_same_alpha_as_agreement(tmp_path: Path, project: Path, capsys) -> None:
    old = write(tmp_path / "old", LOSS_OLD, profile="plain")
    new = write(tmp_path / "new", LOSS_NEW, profile="plain")
    # p = 22/1024 = 0.0215: significant at 0.05, not at 0.01.
    assert main(["compare", str(old), str(new), "--config", str(project), "--alpha", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "  conclusive verdicts: lost on 9 item(s), gained on 1; p = 0.0215 (reported, not significant)" in out
    assert last_line(out) == "OK: no gated judge got worse (student: no failure rule fired)"


def test_an_agreement_drop_names_its_rule(tmp_path: Path, project: Path, capsys) -> None:
    # 8 items agreed and now disagree, none gained: p = 2 / 2**8 by hand; verdicts stay conclusive.
    old = write(tmp_path / "old", {"teacher": "1" * 10, "student": "1" * 10}, profile="plain")
    new = write(tmp_path / "new", {"teacher": "1" * 10, "student": "0" * 8 + "11"}, profile="plain")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 1
    out = capsys.readouterr().out
    assert binomtest(0, 8, 0.5).pvalue == pytest.approx(2 / 2 ** 8, rel=1e-12)
    assert last_line(out) == ("FAIL: a gated judge got worse: student: agreement with the reference dropped "
                              "significantly (lost on 8 item(s), gained on 0, p = 0.00781 < alpha 0.05)")
    assert "  conclusive verdicts: lost on 0 item(s), gained on 0; p = 1.00" in judge_block(out, "student")


# --------------------------------------------------------------- the profile's maximum

def test_parse_failures_above_the_profile_maximum_fail_naming_the_threshold(tmp_path: Path, project: Path,
                                                                             capsys) -> None:
    # strict: max_parse_failures = 2. Old: 3 unparseable (that gate already failed, so it is no
    # gate that "passed before and fails now"); new: 4 (one conclusive verdict became unparseable).
    old = write(tmp_path / "old", {"teacher": "11111111", "student": "1111pppn"}, profile="strict")
    new = write(tmp_path / "new", {"teacher": "11111111", "student": "p111pppn"}, profile="strict")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 1
    out = capsys.readouterr().out
    block = judge_block(out, "student")
    assert "  above the profile's maximum: parse failures 4 > max_parse_failures 2 (was 3)" in block
    assert not any(line.startswith("  gates that passed before") for line in block)
    assert "  counts: parse failures 3 -> 4 (+1), agreements 4 -> 3 (-1), compared items 4 -> 3 (-1)" in out
    assert last_line(out) == ("FAIL: a gated judge got worse: student: parse failures 4 > max_parse_failures 2 "
                              "(was 3)")
    assert main(["compare", str(old), str(new), "--config", str(project), "--format", "json"]) == 1
    student = json.loads(capsys.readouterr().out)["judges"][0]
    assert student["over_max"] == [{"metric": "parse_failures", "threshold": "max_parse_failures", "old": 3,
                                    "new": 4, "allowed": 2}]
    assert student["new_gate_failures"] == [] and not student["significant_conclusive_loss"]


def test_parse_failures_at_the_maximum_pass(tmp_path: Path, project: Path, capsys) -> None:
    old = write(tmp_path / "old", {"teacher": "11111111", "student": "11111ppn"}, profile="strict")
    new = write(tmp_path / "new", {"teacher": "11111111", "student": "11111ppn"}, profile="strict")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 0
    out = capsys.readouterr().out
    assert "above the profile's maximum" not in out
    assert "  counts unchanged: inconclusive 1, parse failures 2, errors 0, missing 0" in out


def test_an_error_above_max_errors_fails_and_is_a_newly_failing_gate(tmp_path: Path, project: Path,
                                                                    capsys) -> None:
    old = write(tmp_path / "old", {"teacher": "1111", "student": "1111"}, profile="strict")
    new = write(tmp_path / "new", {"teacher": "1111", "student": "e111"}, profile="strict")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 1
    out = capsys.readouterr().out
    assert last_line(out) == ("FAIL: a gated judge got worse: student: errors 1 > max_errors 0 (was 0); "
                              "gate(s) passed before and fail now: errors")


def test_a_judge_that_is_not_gated_is_reported_never_failed(tmp_path: Path, project: Path, capsys) -> None:
    old = write(tmp_path / "old", {"teacher": "1" * 8, "student": "1" * 8, "aux": "1" * 8}, profile="strict")
    new = write(tmp_path / "new", {"teacher": "1" * 8, "student": "1" * 8, "aux": "pppppppp"}, profile="strict")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 0
    out = capsys.readouterr().out
    assert "  counts: parse failures 0 -> 8 (+8)" in "\n".join(judge_block(out, "aux"))
    assert "  conclusive verdicts: lost on 8 item(s), gained on 0; p = 0.00781 -> SIGNIFICANT LOSS" in out
    assert last_line(out) == "OK: no gated judge got worse (student: no failure rule fired)"


def test_every_changed_metric_is_in_the_text(tmp_path: Path, project: Path, capsys) -> None:
    """Whatever moved in the JSON (old != new) is named among the changes of the text, before
    its `unchanged:` part; whatever did not is named after it."""
    from judge_eval.gating.compare import COUNTS, RATES

    old = write(tmp_path / "old", LOSS_OLD, profile="plain")
    new = write(tmp_path / "new", LOSS_NEW, profile="plain")
    main(["compare", str(old), str(new), "--config", str(project), "--format", "json"])
    student = json.loads(capsys.readouterr().out)["judges"][0]
    main(["compare", str(old), str(new), "--config", str(project)])
    block = judge_block(capsys.readouterr().out, "student")
    for prefix, labels in (("  counts", COUNTS), ("  metrics", RATES)):
        line = next(x for x in block if x.startswith(prefix))
        changed_part, _, unchanged_part = line.partition("unchanged: ")
        for key, label in labels.items():
            moved = student["old"][key] != student["new"][key]
            assert re.search(rf"(^|: |, ){re.escape(label)} ", changed_part if moved else unchanged_part), \
                (key, line)
    # What moved, by hand: inconclusive, agreements, compared items; agreement rate, consistency
    # (20/24 -> 12/24), inconclusive rate (4/24 -> 12/24).
    assert (student["old"]["consistency_rate"], student["new"]["consistency_rate"]) == (20 / 24, 12 / 24)
    assert (student["old"]["inconclusive_rate"], student["new"]["inconclusive_rate"]) == (4 / 24, 12 / 24)


# --------------------------------------------------------------- which profile

def run_pair(tmp_path: Path, old_profile: str | None, new_profile: str | None) -> tuple[Path, Path]:
    judges = {"teacher": "1111", "student": "1110"}
    return (write(tmp_path / "old", judges, profile=old_profile), write(tmp_path / "new", judges, profile=new_profile))


def test_the_profile_both_run_json_name_is_used(tmp_path: Path, project: Path, capsys) -> None:
    old, new = run_pair(tmp_path, "strict", "strict")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 0
    assert "profile strict (from run.json of both runs); gated judge(s): student; 4 test items" in \
        capsys.readouterr().out
    s = resolve(_parser().parse_args(["compare", str(old), str(new), "--config", str(project)]))
    assert s.profile is not None and (s.profile.name, s.profile_origin, s.reference) == \
        ("strict", "run.json of both runs", "teacher")


def test_runs_naming_different_profiles_ask_for_profile(tmp_path: Path, project: Path, capsys) -> None:
    old, new = run_pair(tmp_path, "plain", "strict")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"judge-eval: error: the runs name different profiles: {old}: run.json names profile 'plain'; "
        f"{new}: run.json names profile 'strict'. Which profile's reference, gated judges and thresholds apply "
        f"is yours to say: pass --profile NAME (--profile plain or --profile strict) (profiles in the project: "
        f"other, plain, strict)\n")


@pytest.mark.parametrize("meta", [None, {"imports": [{"format": "pairs"}]}, {}])
def test_runs_naming_no_profile_ask_for_profile(tmp_path: Path, project: Path, capsys, meta) -> None:
    judges = {"teacher": "1111", "student": "1110"}
    old, new = write(tmp_path / "old", judges, meta=meta), write(tmp_path / "new", judges, meta=meta)
    if meta == {}:  # write_run writes no empty run.json: an empty object, written by hand
        for run in (old, new):
            (run / RUN_JSON).write_text("{}\n")
    assert (old / RUN_JSON).exists() == (meta is not None)
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 2
    err = capsys.readouterr().err
    says = "no run.json" if meta is None else "run.json names no profile (no key 'profile'; an import writes none)"
    assert err == (f"judge-eval: error: no profile to compare with: {old}: {says}; {new}: {says}. Pass --profile "
                   f"NAME, the profile whose reference, gated judges and thresholds apply (profiles in the project: "
                   f"other, plain, strict)\n")
    assert "--judge-profile" not in err and "Traceback" not in err


@pytest.mark.parametrize("side", ["old", "new"])
def test_one_run_naming_a_profile_is_used_and_said(tmp_path: Path, project: Path, capsys, side: str) -> None:
    old, new = run_pair(tmp_path, "strict" if side == "old" else None, "strict" if side == "new" else None)
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 0
    named, other = (old, new) if side == "old" else (new, old)
    assert f"profile strict (from run.json of {named}; {other}: no run.json); gated judge(s): student" in \
        capsys.readouterr().out


@pytest.mark.parametrize(("old_profile", "new_profile"), [("plain", "plain"), ("plain", "other"), (None, None)])
def test_an_explicit_profile_always_wins(tmp_path: Path, project: Path, capsys, old_profile, new_profile) -> None:
    old, new = run_pair(tmp_path, old_profile, new_profile)
    assert main(["compare", str(old), str(new), "--config", str(project), "--profile", "strict"]) == 0
    assert "profile strict (from --profile); gated judge(s): student" in capsys.readouterr().out


def test_with_profile_a_broken_run_json_is_not_read(tmp_path: Path, project: Path, capsys) -> None:
    old, new = run_pair(tmp_path, None, None)
    (new / RUN_JSON).write_text("[1, 2]")
    assert main(["compare", str(old), str(new), "--config", str(project), "--profile", "plain"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"judge-eval: error: {new / RUN_JSON}: expected a JSON object, found array. ")
    assert err.rstrip("\n").endswith("How to fix: fix run.json, or pass --profile NAME (compare then does not "
                                     "read run.json).") and err.count("\n") == 1


def test_a_profile_the_project_does_not_define_is_refused(tmp_path: Path, project: Path, capsys) -> None:
    old, new = run_pair(tmp_path, "local", "local")
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 2
    err = capsys.readouterr().err
    assert err == (f"judge-eval: error: profile 'local' (from run.json of both runs) is not defined in {project}; "
                   f"known profiles: other, plain, strict. Pass --config PATH of the project that recorded the runs, "
                   f"or pick a profile with --profile\n")


def test_a_profile_that_is_not_a_name_is_refused(tmp_path: Path, project: Path, capsys) -> None:
    old, new = run_pair(tmp_path, "plain", None)
    (new / RUN_JSON).write_text(json.dumps({"profile": 7}))
    assert main(["compare", str(old), str(new), "--config", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"judge-eval: error: {new / RUN_JSON}: key 'profile' should name a profile, found 7. "
                          "How to fix: fix run.json, or pass --profile NAME")


# --------------------------------------------------------------- a profile gating its own reference

def _point_run(folder: Path, teacher: list[int], student: list[int]) -> Path:
    """A run of pointwise items (one answer, score verdicts on 1-5) by ``teacher`` and ``student``."""
    folder.mkdir(parents=True)
    lines = [{"question": f"Question {n}?", "answers": [{"model": "m", "text": f"answer {n}"}], "source": "",
              "evaluations": [{"llm": llm, "score": s, "text": str(s), "source": "scored", "kind": "score",
                               "scale": [1, 2, 3, 4, 5]} for llm, s in (("teacher", t), ("student", j))]}
             for n, (t, j) in enumerate(zip(teacher, student))]
    (folder / "test_qa_complete.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


@pytest.mark.parametrize("kind", ["pairwise", "score"])
def test_a_profile_gating_its_reference_is_refused_never_ok(tmp_path: Path, capsys, kind: str) -> None:
    """The reference is compared with nothing, so gating it checked nothing: compare said "OK: no
    gated judge to check" and exited 0, a gate passing by omission."""
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.judge_eval.profiles.self]\nreference = "teacher"\ngated = ["teacher"]\n')
    if kind == "pairwise":
        old = write(tmp_path / "old", {"teacher": "1111", "student": "1111"})
        new = write(tmp_path / "new", {"teacher": "1111", "student": "0000"})
    else:
        old = _point_run(tmp_path / "old", [1, 2, 3, 4], [1, 2, 3, 4])
        new = _point_run(tmp_path / "new", [1, 2, 3, 4], [5, 5, 5, 5])
    assert main(["compare", str(old), str(new), "--config", str(config), "--profile", "self"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("judge-eval: error: ") and err.count("\n") == 0
    assert "gated judge 'teacher' is the reference" in err and "[tool.judge_eval.profiles.self]" in err


def test_a_gated_judge_that_changed_kind_is_refused_never_ok(tmp_path: Path, capsys) -> None:
    """Judge x gives pairwise verdicts in the old run and score verdicts in the new one (both runs
    hold 2 pairs and 2 pointwise items): it is in neither the pairwise nor the score comparison."""
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.judge_eval.profiles.k]\nreference = "gpt_4"\nscore_reference = "teacher"\n'
                      'gated = ["x"]\n')

    def run(folder: Path, x_kind: str) -> Path:
        folder.mkdir()
        lines = []
        for n in range(2):
            pair = [{"llm": "gpt_4", "score": 1.0, "text": "[[A]]", "source": "original"}]
            point = [{"llm": "teacher", "score": 3, "text": "3", "source": "scored", "kind": "score",
                      "scale": [1, 2, 3, 4, 5]}]
            if x_kind == "pairwise":
                pair.append({"llm": "x", "score": 1.0, "text": "[[A]]", "source": "original"})
            else:
                point.append({**point[0], "llm": "x"})
            lines.append({"question": f"Pair {n}?", "answers": [{"model": "a", "text": "one"},
                                                                 {"model": "b", "text": "two"}],
                          "source": "", "evaluations": pair})
            lines.append({"question": f"Point {n}?", "answers": [{"model": "a", "text": "one"}], "source": "",
                          "evaluations": point})
        (folder / "test_qa_complete.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        return folder

    old, new = run(tmp_path / "old", "pairwise"), run(tmp_path / "new", "score")
    assert main(["compare", str(old), str(new), "--config", str(config), "--profile", "k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("judge-eval: error: gated judge 'x' is a pairwise judge in run ")
    assert "but a score judge in run " in err and err.count("\n") == 1

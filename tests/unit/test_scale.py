"""Report, gate and compare at a million items: the compact read path and the bootstrap switch.

- ``bootstrap_means`` draws a ``(resamples, n)`` index table up to ``INDEX_DRAW_MAX_N`` items (the
  published intervals, bit for bit) and, above, the exact sampling distribution of the means
  (binomial / multinomial cell counts), whose memory does not grow with n;
- ``iter_qa_rows`` / ``VerdictTable`` (what the CLI reads) give the metrics and the errors of
  ``read_qa`` / ``QAItem``s;
- Jaccard without scikit-learn is scikit-learn's float to the last bit.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from judge_eval.core.metrics import (INDEX_DRAW_MAX_N, VerdictTable, _jaccard, bootstrap_ci, bootstrap_means,
                                     cell_bootstrap_means, compare, run_metrics)
from judge_eval.core.store import iter_qa_rows, read_qa, read_run
from judge_eval.errors import RunFileError
from judge_eval.gating.compare import compare_runs, load_for_metrics, load_table

stats = pytest.importorskip("scipy.stats")


# ------------------------------------------------------------------ the bootstrap switch


def _ones(n: int, k: int) -> np.ndarray:
    return np.array([1.0] * k + [0.0] * (n - k))


def test_up_to_the_switch_the_index_table_is_drawn_bit_for_bit() -> None:
    n = INDEX_DRAW_MAX_N
    agree = np.random.default_rng(5).integers(0, 2, n).astype(float)
    idx = np.random.default_rng(0).integers(0, n, size=(50, n))
    (means,) = bootstrap_means(agree, seed=0, resamples=50)
    assert np.array_equal(means, agree[idx].mean(axis=1))


def test_the_studys_intervals_do_not_move(study_run) -> None:
    assert compare(study_run.test, "ft_gpt_3p5").agreement_ci == (0.851063829787234, 1.0)
    assert compare(study_run.test, "gpt_3p5").agreement_ci == (0.7894736842105263, 0.9736842105263158)


def test_above_the_switch_the_means_come_from_the_cell_counts() -> None:
    n, k = INDEX_DRAW_MAX_N + 1, 7_000
    (means,) = bootstrap_means(_ones(n, k), seed=3, resamples=200)
    (expected,) = cell_bootstrap_means(np.array([0.0, 1.0]), np.array([n - k, k]), seed=3, resamples=200)
    assert np.array_equal(means, expected)
    # the binomial draw itself
    assert np.array_equal(expected, np.random.default_rng(3).binomial(n, k / n, size=200) / n)


@pytest.mark.parametrize(("n", "k"), [(20_000, 15_000), (1_000_000, 800_000), (10**6, 999_990)])
def test_the_binomial_interval_matches_the_exact_quantiles(n: int, k: int) -> None:
    low, high = bootstrap_ci(_ones(n, k), seed=0, resamples=2000)
    exact_low, exact_high = stats.binom.ppf([0.025, 0.975], n, k / n) / n
    se = np.sqrt(k / n * (1 - k / n) / n)
    # the percentile of 2000 draws sits within a fraction of a standard error of the exact one
    assert abs(low - exact_low) <= 0.25 * se + 1 / n and abs(high - exact_high) <= 0.25 * se + 1 / n
    normal = k / n - 1.959964 * se, k / n + 1.959964 * se
    assert abs(low - normal[0]) <= 0.3 * se + 1 / n and abs(high - normal[1]) <= 0.3 * se + 1 / n


def test_a_hundred_million_items_cost_no_memory_and_no_time() -> None:
    n, k = 10**8, 87 * 10**6
    tracemalloc.start()
    start = time.perf_counter()
    (means,) = cell_bootstrap_means(np.array([0.0, 1.0]), np.array([n - k, k]), seed=0, resamples=2000)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 1_000_000  # an index table would be 1.6 TB
    low, high = np.percentile(means, [2.5, 97.5])
    exact_low, exact_high = stats.binom.ppf([0.025, 0.975], n, k / n) / n
    se = np.sqrt(0.87 * 0.13 / n)
    assert abs(low - exact_low) <= 0.25 * se and abs(high - exact_high) <= 0.25 * se


def test_memory_of_the_bootstrap_does_not_grow_with_n() -> None:
    peaks = {}
    for n in (50_000, 500_000):
        agree = (np.random.default_rng(n).random(n) < 0.8).astype(float)
        tracemalloc.start()
        bootstrap_ci(agree)
        bootstrap_means(agree, 1.0 - agree)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # what remains is O(n) (the stacked vectors and their cell codes: under 100 bytes an item),
    # never resamples x n (an index table of 500,000 items: 8 GB)
    assert peaks[500_000] < 100 * 500_000 and peaks[50_000] < 100 * 50_000 + 1_000_000


def test_the_paired_draw_is_a_multinomial_over_the_four_cells() -> None:
    rng = np.random.default_rng(9)
    n = 400_000
    old = (rng.random(n) < 0.80).astype(float)
    new = np.where(rng.random(n) < 0.9, old, 1.0 - old)
    new_means, old_means = bootstrap_means(new, old, seed=2, resamples=2000)
    cells = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)  # (new, old) as bits 0 and 1
    counts = np.array([np.sum((new == a) & (old == b)) for a, b in cells])
    expected = cell_bootstrap_means(cells, counts, seed=2, resamples=2000)
    assert np.array_equal(new_means, expected[0]) and np.array_equal(old_means, expected[1])
    diffs = new_means - old_means
    d = new - old
    se = d.std() / np.sqrt(n)  # the paired difference's standard error
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert abs(low - (d.mean() - 1.96 * se)) < 0.3 * se and abs(high - (d.mean() + 1.96 * se)) < 0.3 * se


def test_many_distinct_values_fall_back_to_bounded_index_draws() -> None:
    x = np.random.default_rng(4).random(20_000)
    (means,) = bootstrap_means(x, seed=1, resamples=100)
    assert means.shape == (100,) and abs(means.std() - x.std() / np.sqrt(len(x))) < 0.3 * x.std() / np.sqrt(len(x))


# ------------------------------------------------------------------ Jaccard without scikit-learn


def test_jaccard_is_scikit_learns_to_the_last_bit() -> None:
    from sklearn.metrics import jaccard_score

    rng = np.random.default_rng(0)
    for trial in range(500):
        labels = ([0.0, 0.5, 1.0], [0.0, 1.0], [1.0], [0.5, 1.0], [0.0, 0.5, 1.0, 2.0, 10.0])[trial % 5]
        ref, cand = rng.choice(labels, size=(2, int(rng.integers(1, 200))))
        assert _jaccard(ref, cand)[0] == float(jaccard_score(ref.astype(str), cand.astype(str), average="weighted"))


# ------------------------------------------------------------------ the compact read path


def _verdict(rng: np.random.Generator, llm: str) -> dict:
    source = str(rng.choice(["original", "flipped", "neither", "output-cannot-be-parsed", "error"],
                            p=[0.5, 0.25, 0.15, 0.05, 0.05]))
    score = None if source in ("output-cannot-be-parsed", "error") else rng.choice([0.0, 0.5, 1.0, 1, 0])
    return {"llm": llm, "score": score if score is None else (int(score) if score in (0, 1) and rng.random() < 0.2
                                                             else float(score)),
            "text": "t", "source": source, **({"extra": [1]} if rng.random() < 0.1 else {})}


def _synthetic(path: Path, n: int, seed: int) -> Path:
    """Items with every kind of verdict, missing judges, a judge first seen late, int scores,
    explicit ids and repeated questions."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        evals = [_verdict(rng, j) for j in ("ref", "a", "b") if rng.random() < 0.9]
        if i > n // 2:
            evals.append(_verdict(rng, "late"))
        row = {"question": f"q{i % (n // 3)}", "answers": [{"model": "m1", "text": "x" * int(rng.integers(1, 9))},
                                                         {"model": "m2", "text": "y" * int(rng.integers(1, 9)) + str(i)}],
               "source": "s", "evaluations": evals}
        if rng.random() < 0.2:
            row["id"] = f"explicit-{i}"
        lines.append(json.dumps(row))
    (path / "test_qa_complete.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_the_table_gives_the_metrics_of_the_items(tmp_path: Path, study_dir: Path) -> None:
    for run in (study_dir, _synthetic(tmp_path / "syn", 300, 1)):
        items = read_run(run, parts=("test",)).test
        reference = "gpt_4" if run == study_dir else "ref"
        from_items = run_metrics(items, reference).to_json()
        from_table = run_metrics(load_table(run), reference).to_json()
        assert json.dumps(from_items, sort_keys=True) == json.dumps(from_table, sort_keys=True)
        assert VerdictTable.from_items(items).ids == load_table(run).ids


def test_compare_runs_on_tables_is_compare_runs_on_items(tmp_path: Path) -> None:
    old = _synthetic(tmp_path / "old", 240, 2)
    new = tmp_path / "new"
    new.mkdir()
    rows = [json.loads(line) for line in (old / "test_qa_complete.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(3)
    for row in rows[::-1]:  # another file order, and some verdicts changed
        if rng.random() < 0.3 and row["evaluations"]:
            row["evaluations"][0] = _verdict(rng, row["evaluations"][0]["llm"])
    (new / "test_qa_complete.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    on_items = compare_runs(read_qa(old / "test_qa_complete.jsonl", "test"),
                            read_qa(new / "test_qa_complete.jsonl", "test"), reference="ref", gated=("a",))
    on_tables = compare_runs(load_table(old), load_table(new), reference="ref", gated=("a",))
    assert on_items.to_json() == on_tables.to_json()
    assert any(j.changed for j in on_tables.judges)


def test_runs_with_judge_groups_are_read_as_items(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answers": [{"model": "m", "text": "a"}, {"model": "n", "text": "b"}],
             "source": "s", "evaluations": [{"llm": j, "score": 1.0, "text": "", "source": "original"}
                                            for j in ("ref", "human:1", "human:2", "c")]} for i in range(5)]
    (tmp_path / "test_qa_complete.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_for_metrics(tmp_path)
    assert not isinstance(loaded, VerdictTable)
    assert "human" in run_metrics(loaded, "ref").groups
    with pytest.raises(ValueError, match="need the items themselves"):
        run_metrics(load_table(tmp_path), "ref")


GOOD = {"question": "q", "answers": [{"model": "m1", "text": "one"}, {"model": "m2", "text": "two"}],
        "source": "s", "evaluations": [{"llm": "g", "score": 1.0, "text": "", "source": "original"}]}


def _with(**overrides) -> dict:
    return {**json.loads(json.dumps(GOOD)), **overrides}


@pytest.mark.parametrize("bad", [
    "[1, 2]", "{not json", '{"question": "q"', json.dumps(_with(question=3)),
    json.dumps(_with(answers=[{"model": "m", "text": "t"}])),
    json.dumps(_with(answers=[{"model": "m", "text": "t"}, {"model": 1, "text": "t"}])),
    json.dumps(_with(evaluations={"llm": "g"})),
    json.dumps(_with(evaluations=[{"llm": "g", "score": True, "text": "", "source": "original"}])),
    json.dumps(_with(evaluations=[{"llm": "g", "score": 0.7, "text": "", "source": "original"}])),
    json.dumps(_with(evaluations=[{"llm": "g", "score": None, "text": "", "source": "original"}])),
    json.dumps(_with(evaluations=[{"llm": "g", "score": 1, "text": "", "source": "sideways"}])),
    json.dumps(_with(evaluations=[{"llm": "g", "text": "", "source": "neither"}])),
    json.dumps(_with(evaluations=[{"llm": "g", "score": 1, "text": 2, "source": "original"}])),
    json.dumps(_with(evaluations=[{"llm": "g", "score": 1, "text": "", "source": "original"},
                                  {"llm": "g", "score": 0, "text": "", "source": "original"}])),
    json.dumps(_with(id=7)), json.dumps(_with(id=" ")), json.dumps(_with(id="a\tb")),
    json.dumps(_with(question="first")),  # a duplicate of line 1
    json.dumps(_with(id="x")) + "\n" + json.dumps(_with(id="x", question="other")),
    json.dumps(_with(question="\ud800 lone")), json.dumps(_with(x=[[[[]]]] * 30)),
    json.dumps(_with(x=json.loads("[" * 120 + "]" * 120))),
    b"\xff\xfe not utf-8".decode("latin-1"),
    json.dumps(_with(question="first")) + "\n{broken",  # a broken line after a duplicate wins, as in read_qa
])
@pytest.mark.parametrize("stream", [False, True])
def test_rows_fail_exactly_as_items_do(tmp_path: Path, bad: str, stream: bool) -> None:
    path = tmp_path / "test_qa_complete.jsonl"
    path.write_bytes((json.dumps(_with(question="first")) + "\n" + bad + "\n").encode("utf-8", "surrogatepass")
                     if "\ud800" not in bad else (json.dumps(_with(question="first")) + "\n" + bad + "\n").encode())
    if bad.startswith("\xff"):
        path.write_bytes(path.read_bytes().replace(bad.encode(), b"\xff\xfe not utf-8"))
    try:
        expected = ("ok", [(i.id, i.order_key) for i in read_qa(path, "test")])
    except RunFileError as exc:
        expected = ("error", str(exc))
    try:
        got = ("ok", [(r.id, r.order_key) for r in iter_qa_rows(path, "test", stream=stream)])
    except RunFileError as exc:
        got = ("error", str(exc))
    assert got == expected


def test_the_line_stream_maps_read_errors_as_read_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "test_qa_complete.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    original = Path.open

    def denied(self: Path, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(RunFileError, match="permission denied: cannot read this file"):
        list(iter_qa_rows(path, "test", stream=True))
    with pytest.raises(RunFileError, match="is a folder, not a file"):
        list(iter_qa_rows(tmp_path, "test", stream=True))


def test_the_table_keeps_only_arrays_and_ids(tmp_path: Path) -> None:
    run = _synthetic(tmp_path / "syn", 3000, 5)
    table = load_table(run)
    assert len(table) == 3000 and set(table.judges) == {"ref", "a", "b", "late"}
    assert all(c.score.dtype == np.float64 and c.source.dtype == np.int8 for c in table.judges.values())
    assert list(table.judges) == ["ref", "a", "b", "late"]  # in order of first appearance


def test_mcnemar_is_exact_and_fast_with_many_discordant_pairs() -> None:
    import math

    from judge_eval.gating.compare import mcnemar_exact

    def by_comb(b: int, c: int) -> float:
        n = b + c
        return 1.0 if n == 0 else min(1.0, 2 * (sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n))

    for b, c in [(0, 0), (0, 7), (7, 0), (3, 9), (40, 61), (250, 240), (1000, 1100)]:
        assert mcnemar_exact(b, c) == by_comb(b, c)
    start = time.perf_counter()
    assert 0.0 < mcnemar_exact(7400, 7600) < 1.0
    assert time.perf_counter() - start < 2.0

"""Progress in a CI log: a start line, a line every 10% or 30 s (whichever comes later), an end
line with the counts."""

from __future__ import annotations

import io

from judge_eval.core.progress import LogProgress, progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_tenth_of_the_work_but_not_more_often_than_every_30_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    bar = LogProgress(100, "judging (gpt_4)", stream=out, clock=clock)
    for _ in range(100):
        clock.now += 1.0  # 1 s per item: 10% takes 10 s, so the 30 s rule decides
        bar.update(1)
    bar.close()
    bar.close()  # once only
    lines = out.getvalue().splitlines()
    # by hand: a line at items 30, 60 and 90 (30 s since the last line, and >= 10 items more)
    assert lines == ["[judge-eval] judging (gpt_4): started, 100 to do",
                     "[judge-eval] judging (gpt_4): 30/100 (30 s)",
                     "[judge-eval] judging (gpt_4): 60/100 (60 s)",
                     "[judge-eval] judging (gpt_4): 90/100 (90 s)",
                     "[judge-eval] judging (gpt_4): done, 100/100 in 100 s"]


def test_slow_items_log_every_tenth() -> None:
    out, clock = io.StringIO(), Clock()
    with LogProgress(20, "LoRA training", stream=out, clock=clock) as bar:
        for _ in range(20):
            clock.now += 60.0  # a minute per step: the 10% rule decides (every 2 steps)
            bar.update(1)
    middle = out.getvalue().splitlines()[1:-1]
    assert [line.split(": ")[1].split(" ")[0] for line in middle] == [f"{n}/20" for n in range(2, 20, 2)]


def test_not_a_terminal_gives_log_lines(capsys) -> None:
    bar = progress(3, "answers (test)")  # pytest captures stderr: not a terminal
    assert isinstance(bar, LogProgress)
    bar.update(3)
    bar.close()
    assert "[judge-eval] answers (test): done, 3/3 in" in capsys.readouterr().err


def test_a_temporary_work_folder_is_removed_unless_kept(tmp_path, capsys) -> None:
    from judge_eval.orchestration.rerecord import finish_workdir

    for keep in (False, True):
        work = tmp_path / f"work-{keep}"
        (work / "distill").mkdir(parents=True)
        (work / "distill" / "adapter.gguf").write_bytes(b"x" * 2_500_000)
        said = finish_workdir(work, temporary=True, keep=keep)
        assert work.exists() is keep
        assert f"{work} (2.5 MB)" in said and said in capsys.readouterr().out
    named = tmp_path / "named"
    named.mkdir()
    assert finish_workdir(named, temporary=False, keep=False).startswith("kept the work folder")
    assert named.exists()

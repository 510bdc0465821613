"""MT-Bench's public judgements, in FastChat's ``fastchat/llm_judge`` layouts.

An item is one (question_id, unordered model pair, turn): its answers are in sorted model order
(as FastChat keys them in ``compute_agreement.py``), its question is the user message of that
turn and its answers the two models' assistant messages of that turn. Its explicit id is
``mt-bench-q<question_id>-t<turn>-<model>-vs-<model>`` (``mt_bench_id``), the same in both
importers, so a run of one can take the other's verdicts (``import_gpt4_pair(into=RUN)``).

Human judgements (``import_human``; the ``human`` split of ``lmsys/mt_bench_human_judgments``,
as JSONL): ``question_id, model_a, model_b, winner, judge, turn, conversation_a,
conversation_b``, ``winner`` one of ``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``. Every
annotator is a judge ``human:<judge>``; a tie is a verdict (score 0.5, source ``original``).
An annotator who voted more than once on one item gets one verdict: their vote when the votes
agree (both ties count as a tie), else ``neither`` (their own votes disagree, like a judge whose
two presentation orders disagree), with the votes in ``extra.votes``. The majority judge
``human`` counts each annotator's conclusive verdict once: the outcome with more votes than every
other (first wins, second wins, tie) is its verdict; a tie for the most votes is ``neither``.

GPT-4 pair judgements (``import_gpt4_pair``; ``model_judgment/gpt-4_pair.jsonl``):
``question_id, model_1, model_2, g1_winner, g2_winner, judge, turn`` and the judgement texts
``g1_judgment``, ``g2_judgment``. ``g1`` is the call that showed ``model_1`` first, ``g2`` the
swapped one; their winners (``model_1``, ``model_2``, ``tie``, ``error``) become the outcomes of
the original-order call (the one showing the first stored answer first) and the flipped-order
call, resolved by ``judge_eval.core.resolution.resolve_orders`` exactly as the study's evaluator
does, so a ``flipped`` verdict's score refers to the flipped order, as in the study.
``inconsistent_as_tie`` counts two calls that name different winners as a tie (FastChat's
``show_result.py``); an ``error`` (FastChat found no verdict) is a parse failure either way.
These records carry no answer texts: either ``questions`` (FastChat's ``question.jsonl``) and
``answers`` (its ``model_answer/`` folder, one ``<model>.jsonl`` per model) give them, or
``into`` names a run imported with ``import_human`` whose items (same ids) take the verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge_eval.core.items import FLIPPED, NEITHER, ORIGINAL, Answer, QAItem, Verdict
from judge_eval.core.resolution import resolve_orders
from judge_eval.core.store import read_run
from judge_eval.errors import JudgeEvalError, RunFileError
from judge_eval.importing.output import ImportResult, Located, make_item, meaning_verdict, unique_items
from judge_eval.importing.sources import Record, kind_of, read_source, records, sha256_of, source_kind

MAJORITY_JUDGE = "human"
ANNOTATOR_PREFIX = "human:"
HUMAN_WINNERS = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "tie"}
PAIR_WINNERS = ("model_1", "model_2", "tie", "error")
OUTCOMES = ("first", "second", "tie")


def mt_bench_id(question_id: str, turn: int, models: tuple[str, str]) -> str:
    return f"mt-bench-q{question_id}-t{turn}-{models[0]}-vs-{models[1]}"


@dataclass
class _Item:
    """One item being built, with the line that first defined its texts."""

    key: tuple[str, int, str, str]
    question: str
    answers: tuple[Answer, Answer]
    line: int
    votes: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # annotator -> (line, outcome, raw)
    verdicts: list[Verdict] = field(default_factory=list)


def _models(rec: Record, key_1: str, key_2: str) -> tuple[str, str]:
    m1, m2 = rec.name(key_1), rec.name(key_2)
    if m1 == m2:
        raise rec.fail(key_2, f"the same model as {key_1} ({m1!r}); a pair compares two models")
    return m1, m2


def _turn_texts(rec: Record, key: str, turn: int) -> tuple[str, str]:
    """The user message and the assistant message of ``turn`` in conversation ``key``."""
    conversation = rec.raw(key)
    if not isinstance(conversation, list):
        raise rec.fail(key, f"expected an array of messages, found {kind_of(conversation)}")
    if len(conversation) < 2 * turn:
        raise rec.fail(key, f"{len(conversation)} message(s), but turn {turn} needs {2 * turn} (user, assistant "
                       "per turn)")
    out = []
    for index, role in ((2 * turn - 2, "user"), (2 * turn - 1, "assistant")):
        where = f"{key}[{index}]"
        message = conversation[index]
        if not isinstance(message, dict):
            raise rec.fail(where, f"expected a message object, found {kind_of(message)}")
        if message.get("role") != role:
            raise rec.fail(f"{where}.role", f"expected {role!r} (turn {turn}), found {message.get('role')!r}")
        content = message.get("content")
        if not isinstance(content, str):
            raise rec.fail(f"{where}.content", f"expected a string, found {kind_of(content)}")
        out.append(content)
    return out[0], out[1]


def _same_texts(rec: Record, item: _Item, question: str, answers: tuple[Answer, Answer],
                fields: tuple[str, str, str]) -> None:
    for name, mine, theirs in ((fields[0], question, item.question), (fields[1], answers[0].text, item.answers[0].text),
                               (fields[2], answers[1].text, item.answers[1].text)):
        if mine != theirs:
            raise rec.fail(name, f"differs from line {item.line} for the same item (question {item.key[0]}, turn "
                           f"{item.key[1]}, {item.key[2]} vs {item.key[3]}); one item has one text per part")


# --------------------------------------------------------------------------- human judgements


def _annotator_verdict(judge: str, votes: list[tuple[int, str, str]], models: tuple[str, str]) -> Verdict:
    outcomes = {outcome for _, outcome, _ in votes}
    raws = [raw for _, _, raw in votes]
    extra: dict[str, Any] = {}
    if len(votes) > 1:
        extra = {"votes": raws, "lines": [line for line, _, _ in votes]}
    if len(outcomes) > 1:
        return Verdict(llm=judge, score=0.5, text=f"conflicting votes on this item: {', '.join(raws)}",
                       source=NEITHER, extra=extra)
    (outcome,) = outcomes
    text = {"first": f"{models[0]} wins", "second": f"{models[1]} wins"}.get(outcome, raws[0])
    return meaning_verdict(judge, outcome, text, extra)


def _majority(verdicts: list[Verdict]) -> Verdict:
    counts = dict.fromkeys(OUTCOMES, 0)
    for v in verdicts:
        if v.conclusive:
            counts[{1.0: "first", 0.0: "second", 0.5: "tie"}[v.score]] += 1
    top = max(counts.values())
    leaders = [o for o, n in counts.items() if n == top]
    shown = ", ".join(f"{o} {n}" for o, n in counts.items())
    if top == 0 or len(leaders) > 1:
        return Verdict(llm=MAJORITY_JUDGE, score=0.5, text=f"no majority ({shown})", source=NEITHER,
                       extra={"votes": counts})
    return meaning_verdict(MAJORITY_JUDGE, leaders[0], f"majority {leaders[0]} ({shown})", {"votes": counts})


def import_human(src: Path | str) -> ImportResult:
    src = Path(src)
    kind = source_kind(src, ("jsonl",))
    data = read_source(src)
    items: dict[tuple[str, int, str, str], _Item] = {}
    n_records = 0
    for rec in records(src, data, kind):
        n_records += 1
        qid = rec.name("question_id")
        model_a, model_b = _models(rec, "model_a", "model_b")
        winner = rec.text("winner")
        if winner not in HUMAN_WINNERS:
            raise rec.fail("winner", f"{winner!r} is not one of {', '.join(HUMAN_WINNERS)}")
        annotator = rec.name("judge")
        turn = rec.whole("turn", 1)
        question_a, answer_a = _turn_texts(rec, "conversation_a", turn)
        question_b, answer_b = _turn_texts(rec, "conversation_b", turn)
        if question_a != question_b:
            raise rec.fail(f"conversation_b[{2 * turn - 2}].content", f"turn {turn}'s question differs from "
                           "conversation_a's; both models must answer one question")
        models = tuple(sorted((model_a, model_b)))
        by_model = {model_a: (answer_a, f"conversation_a[{2 * turn - 1}].content"),
                    model_b: (answer_b, f"conversation_b[{2 * turn - 1}].content")}
        answers = (Answer(models[0], by_model[models[0]][0]), Answer(models[1], by_model[models[1]][0]))
        key = (qid, turn, models[0], models[1])
        if key not in items:
            items[key] = _Item(key, question_a, answers, rec.line)
        else:
            _same_texts(rec, items[key], question_a, answers, (f"conversation_a[{2 * turn - 2}].content",
                                                                by_model[models[0]][1], by_model[models[1]][1]))
        side = HUMAN_WINNERS[winner]
        won = {"a": model_a, "b": model_b}.get(side)
        outcome = "tie" if won is None else ("first" if won == models[0] else "second")
        items[key].votes.setdefault(annotator, []).append((rec.line, outcome, winner))

    located = []
    repeated = conflicting = 0
    annotators: set[str] = set()
    for key, item in items.items():
        verdicts = []
        for annotator in sorted(item.votes):
            votes = item.votes[annotator]
            annotators.add(annotator)
            repeated += len(votes) > 1
            verdict = _annotator_verdict(ANNOTATOR_PREFIX + annotator, votes, (key[2], key[3]))
            conflicting += verdict.source == NEITHER
            verdicts.append(verdict)
        evaluations = [_majority(verdicts), *verdicts]
        located.append(Located(make_item("test", item.question, item.answers,
                                         explicit_id=mt_bench_id(key[0], key[1], (key[2], key[3])),
                                         evaluations=evaluations,
                                         extra={"mt_bench": {"question_id": key[0], "turn": key[1]}}),
                               src, item.line))
    result = ImportResult(
        format="mt-bench-human", source=src, source_sha256=sha256_of(data),
        options={"majority_judge": MAJORITY_JUDGE, "annotator_judges": ANNOTATOR_PREFIX + "<judge>",
                 "answer_order": "sorted model names",
                 "repeated_votes": "one verdict per annotator and item: their vote if their votes agree, else "
                                   "neither; the majority counts each annotator's conclusive verdict once",
                 "majority": "the outcome (first, second, tie) with more votes than every other; else neither"},
        test=unique_items(located))
    result.counts = {"records": n_records, "items": len(result.test), "annotators": len(annotators),
                     "annotator_items_voted_more_than_once": repeated,
                     "annotator_items_with_conflicting_votes": conflicting}
    if repeated:
        result.notes.append(f"{repeated} (item, annotator) pair(s) had more than one vote; {conflicting} of them "
                            "disagreed and are 'neither' for that annotator")
    result.notes.append(f"reference judge: {MAJORITY_JUDGE} (judge-eval report OUT_DIR --reference {MAJORITY_JUDGE})")
    return result


# --------------------------------------------------------------------------- GPT-4 pair judgements


def _judge_name(rec: Record) -> str:
    judge = rec.raw("judge")
    if isinstance(judge, list) and judge and isinstance(judge[0], str) and judge[0].strip():
        return f"{judge[0]}-pair"  # FastChat writes (model, prompt name), e.g. ["gpt-4", "pair-v2"]
    if isinstance(judge, str) and judge.strip():
        return judge
    raise rec.fail("judge", f"expected [model, prompt name] or a name, found {kind_of(judge)}")


def _call_outcome(winner: str, shown_first: str, other: str) -> str | None:
    """A pair winner in terms of positions of the call that showed ``shown_first`` first."""
    return {shown_first: "A", other: "B", "tie": "C"}.get(winner)


def _judgment(rec: Record, key: str) -> str:
    if not rec.has(key):
        return ""
    return rec.text(key)


def _load_questions(path: Path) -> dict[str, tuple[list[str], int]]:
    data = read_source(path)
    out: dict[str, tuple[list[str], int]] = {}
    for rec in records(path, data, source_kind(path, ("jsonl",))):
        qid = rec.name("question_id")
        turns = rec.raw("turns")
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise rec.fail("turns", f"expected an array of strings, found {kind_of(turns)}")
        if qid in out:
            raise rec.fail("question_id", f"question {qid} is defined twice (also on line {out[qid][1]})")
        out[qid] = (turns, rec.line)
    return out


def _load_answers(path: Path) -> dict[str, tuple[list[str], int]]:
    data = read_source(path)
    out: dict[str, tuple[list[str], int]] = {}
    for rec in records(path, data, "jsonl"):
        qid = rec.name("question_id")
        choices = rec.raw("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise rec.fail("choices", "expected a non-empty array of {index, turns} objects")
        turns = choices[0].get("turns")
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise rec.fail("choices[0].turns", f"expected an array of strings, found {kind_of(turns)}")
        if qid in out:
            raise rec.fail("question_id", f"question {qid} is answered twice (also on line {out[qid][1]})")
        out[qid] = (turns, rec.line)
    return out


class _Texts:
    """Questions and answers from FastChat's question.jsonl and model_answer/ folder."""

    def __init__(self, questions: Path, answers: Path) -> None:
        self.questions_path, self.answers_dir = Path(questions), Path(answers)
        if not self.answers_dir.is_dir():
            raise JudgeEvalError(f"{self.answers_dir}: not a folder; --answers names FastChat's model_answer/ "
                                 "folder (one <model>.jsonl per model)")
        self.questions = _load_questions(self.questions_path)
        self.answers: dict[str, dict[str, tuple[list[str], int]]] = {}

    def question(self, rec: Record, qid: str, turn: int) -> str:
        if qid not in self.questions:
            raise rec.fail("question_id", f"question {qid} is not in {self.questions_path}")
        turns = self.questions[qid][0]
        if len(turns) < turn:
            raise rec.fail("turn", f"question {qid} has {len(turns)} turn(s) in {self.questions_path}")
        return turns[turn - 1]

    def answer(self, rec: Record, model: str, key: str, qid: str, turn: int) -> str:
        if model not in self.answers:
            path = self.answers_dir / f"{model}.jsonl"
            if not path.is_file():
                raise rec.fail(key, f"no answers of model {model!r}: {path} not found")
            self.answers[model] = _load_answers(path)
        path = self.answers_dir / f"{model}.jsonl"
        if qid not in self.answers[model]:
            raise rec.fail(key, f"{path} has no answer to question {qid}")
        turns, line = self.answers[model][qid]
        if len(turns) < turn:
            raise rec.fail("turn", f"{path}:{line} answers {len(turns)} turn(s) of question {qid}")
        return turns[turn - 1]


def import_gpt4_pair(src: Path | str, *, questions: Path | None = None, answers: Path | None = None,
                     into: Path | None = None, inconsistent_as_tie: bool = False) -> ImportResult:
    src = Path(src)
    with_texts = questions is not None and answers is not None
    if (into is None) != with_texts or (into is not None and (questions is not None or answers is not None)):
        raise JudgeEvalError("mt-bench-gpt4-pair needs the answer texts: either --questions question.jsonl and "
                             "--answers model_answer/ (FastChat's layout), or --into RUN_DIR (a run imported with "
                             "mt-bench-human, whose items take the verdicts)")
    kind = source_kind(src, ("jsonl",))
    data = read_source(src)
    texts = _Texts(questions, answers) if questions is not None and answers is not None else None
    base = read_run(into, require=("test",)) if into is not None else None
    base_ids = {i.id: n for n, i in enumerate(base.test)} if base is not None else {}
    items: dict[tuple[str, int, str, str], _Item] = {}
    judged: dict[tuple[str, str], int] = {}  # (item id, judge) -> line
    skipped = n_records = 0
    sources: dict[str, int] = {}
    for rec in records(src, data, kind):
        n_records += 1
        qid = rec.name("question_id")
        model_1, model_2 = _models(rec, "model_1", "model_2")
        g1, g2 = rec.text("g1_winner"), rec.text("g2_winner")
        for name, value in (("g1_winner", g1), ("g2_winner", g2)):
            if value not in PAIR_WINNERS:
                raise rec.fail(name, f"{value!r} is not one of {', '.join(PAIR_WINNERS)}")
        judge = _judge_name(rec)
        turn = rec.whole("turn", 1)
        j1, j2 = _judgment(rec, "g1_judgment"), _judgment(rec, "g2_judgment")
        models = (model_1, model_2) if model_1 < model_2 else (model_2, model_1)
        ident = mt_bench_id(qid, turn, models)
        if (ident, judge) in judged:
            raise rec.fail("question_id", f"judge {judge!r} already judged this item (question {qid}, turn {turn}, "
                           f"{models[0]} vs {models[1]}) on line {judged[ident, judge]}",
                           fix="keep one judgement per item and judge (nothing was written)")
        judged[ident, judge] = rec.line
        # Winners as model labels -> outcomes of each call; g1 showed model_1 first.
        label = {"model_1": model_1, "model_2": model_2}
        w1, w2 = label.get(g1, g1), label.get(g2, g2)
        o1 = _call_outcome(w1, model_1, model_2)
        o2 = _call_outcome(w2, model_2, model_1)
        if model_1 == models[0]:
            (orig, orig_text, orig_raw), (flip, flip_text, flip_raw) = (o1, j1, g1), (o2, j2, g2)
        else:
            (orig, orig_text, orig_raw), (flip, flip_text, flip_raw) = (o2, j2, g2), (o1, j1, g1)
        score, source = resolve_orders(orig, flip)
        inconsistent = orig is not None and flip is not None and w1 != w2
        if inconsistent_as_tie and inconsistent:
            score, source = 0.5, ORIGINAL
        text = flip_text if source == FLIPPED else orig_text
        extra: dict[str, Any] = {"orders": {"original": {"winner": orig_raw, "judgment": orig_text},
                                            "flipped": {"winner": flip_raw, "judgment": flip_text}}}
        if inconsistent_as_tie and inconsistent:
            extra["inconsistent_counted_as_tie"] = True
        verdict = Verdict(llm=judge, score=score, text=text, source=source, extra=extra)
        sources[source] = sources.get(source, 0) + 1
        if base is not None:
            if ident not in base_ids:
                skipped += 1
                continue
            key = (qid, turn, models[0], models[1])
            items.setdefault(key, _Item(key, "", (Answer(models[0], ""), Answer(models[1], "")), rec.line))
            items[key].verdicts.append(verdict)
            continue
        assert texts is not None
        key = (qid, turn, models[0], models[1])
        question = texts.question(rec, qid, turn)
        field_of = {model_1: "model_1", model_2: "model_2"}
        pair = (Answer(models[0], texts.answer(rec, models[0], field_of[models[0]], qid, turn)),
                Answer(models[1], texts.answer(rec, models[1], field_of[models[1]], qid, turn)))
        if key not in items:
            items[key] = _Item(key, question, pair, rec.line)
        items[key].verdicts.append(verdict)

    options = {"texts": "merged into " + str(Path(into).resolve()) if into is not None
               else {"questions": str(Path(questions).resolve()), "answers": str(Path(answers).resolve())},
               "inconsistent_as_tie": inconsistent_as_tie,
               "orders": "g1 shows model_1 first; the call showing the first stored answer (sorted model names) "
                         "first is the original order; resolved with resolve_orders",
               "error_winner": "output-cannot-be-parsed"}
    counts: dict[str, Any] = {"records": n_records, "sources": sources}
    if base is not None:
        if not items:
            raise JudgeEvalError(f"{src}: none of its {n_records} judgement(s) is about an item of {into} (ids like "
                                 f"{mt_bench_id('81', 1, ('model-x', 'model-y'))}); --into takes a run imported "
                                 "with `judge-eval import mt-bench-human`. Nothing was written")
        test = list(base.test)
        for item in items.values():
            n = base_ids[mt_bench_id(item.key[0], item.key[1], (item.key[2], item.key[3]))]
            test[n] = _with_verdicts(test[n], item.verdicts, src, item.line, into)
        result = ImportResult(format="mt-bench-gpt4-pair", source=src, source_sha256=sha256_of(data),
                              options=options, train=list(base.train), test=test, base=base)
        counts.update({"items_judged": len(items), "records_not_in_run": skipped,
                       "run_items_without_a_judgement": len(base.test) - len(items)})
        if skipped:
            result.notes.append(f"{skipped} judgement(s) skipped: their item is not in {into}")
        if len(base.test) > len(items):
            result.notes.append(f"{len(base.test) - len(items)} item(s) of {into} have no judgement from this file "
                                "(counted as missing by reports and gates)")
    else:
        located = [Located(make_item("test", i.question, i.answers, explicit_id=mt_bench_id(i.key[0], i.key[1],
                                                                                             (i.key[2], i.key[3])),
                                     evaluations=i.verdicts,
                                     extra={"mt_bench": {"question_id": i.key[0], "turn": i.key[1]}}), src, i.line)
                   for i in items.values()]
        result = ImportResult(format="mt-bench-gpt4-pair", source=src, source_sha256=sha256_of(data),
                              options=options, test=unique_items(located))
        counts["items"] = len(result.test)
    result.counts = counts
    judges = sorted({v.llm for i in items.values() for v in i.verdicts})
    how = ("counted as a tie (FastChat's show_result.py)" if inconsistent_as_tie
           else "resolved as the study's evaluator does (neither, or the deciding call)")
    result.notes.append(f"judge(s) {', '.join(judges)}; orders that name different winners: {how}")
    return result


def _with_verdicts(item: QAItem, verdicts: list[Verdict], src: Path, line: int, into: Path | None) -> QAItem:
    from dataclasses import replace

    for v in verdicts:
        if item.verdict(v.llm) is not None:
            raise RunFileError(src, f"judge {v.llm!r} already has a verdict on item {item.id!r} of {into}", line=line,
                               field="judge", fix="import into a run without that judge (nothing was written)")
    return replace(item, evaluations=item.evaluations + tuple(verdicts))


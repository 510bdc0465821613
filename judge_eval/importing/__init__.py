"""Importers: other teams' judge data as a run directory (``judge-eval import FORMAT SRC OUT_DIR``).

Every importer reads its whole source first; a malformed record raises ``RunFileError`` naming
the file, the line (for CSV: the line where the row starts) and the field, and nothing is
written. A good source is written into a staging folder beside ``OUT_DIR``, read back with the
run store's own checks, then renamed into place (``output.write_import``): ``OUT_DIR`` holds a
complete run or nothing. Every item carries an explicit ``id``; ``run.json`` records the source
(path and sha256), the format and the options used.

Formats:

- ``pairs`` (``tabular.import_pairs``): a JSONL or CSV file of answer pairs with one column per
  judge; a column map (``judge_eval.config.import_maps.PairsMap``) says where each part is and
  what each verdict value means.
- ``scores`` (``scores_import.import_scores``): a JSONL or CSV file of single answers with one
  score column per judge (pointwise items, score verdicts on a declared scale); a column map
  (``judge_eval.config.import_maps.ScoresMap``) says where each part is, the scale, and what text
  values mean.
- ``preference`` (``tabular.import_preference``): ``prompt, chosen, rejected`` rows; the two
  answers are put in a seeded random order and the reference judge ``preference`` says which
  one was chosen.
- ``mt-bench-human`` (``mt_bench.import_human``): FastChat's MT-Bench human judgements.
- ``mt-bench-gpt4-pair`` (``mt_bench.import_gpt4_pair``): FastChat's pairwise GPT-4 judgements
  (``gpt-4_pair.jsonl``), both presentation orders resolved as the study's evaluator does.

This package may use ``judge_eval.core`` and ``judge_eval.config`` only (the layer contract in
pyproject.toml).
"""

from __future__ import annotations

FORMATS = ("pairs", "scores", "preference", "mt-bench-human", "mt-bench-gpt4-pair")

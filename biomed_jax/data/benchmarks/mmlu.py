"""MMLU (CSV without header: question, A, B, C, D, answer letter), the medical subjects."""

from __future__ import annotations

import csv
import os
from typing import Sequence

from biomed_jax.data.readers import _file_stem
from biomed_jax.data.benchmarks.common import _require, BenchmarkReport, LETTERS, MCQuestion, MEDICAL_SUBJECTS, MMLU_SPLITS


def _mmlu_files(path: str, subjects: Sequence[str], split: str) -> list[tuple[str, str]]:
    """(subject, csv path) for each subject: `path` is MMLU's data folder ({split}/{subject}_{split}.csv),
    one split's folder ({subject}_{split}.csv) or a single CSV file (subject from its name)."""
    if os.path.isfile(path):
        stem = _file_stem(path)
        for suffix in (f"_{s}" for s in MMLU_SPLITS):
            if stem.endswith(suffix):
                stem = stem[:-len(suffix)]
                break
        return [(stem, path)]
    folder = os.path.join(path, split) if os.path.isdir(os.path.join(path, split)) else path
    files = [(subject, os.path.join(folder, f"{subject}_{split}.csv")) for subject in subjects]
    missing = [file for _, file in files if not os.path.isfile(file)]
    if missing:
        raise FileNotFoundError(f"MMLU {split} file(s) not found: {', '.join(missing)} (expected MMLU's layout "
                                f"{{split}}/{{subject}}_{{split}}.csv under {path!r}, or pass subjects=...)")
    return files


def load_mmlu(path: str, subjects: Sequence[str] = MEDICAL_SUBJECTS,
              split: str = "test") -> tuple[list[MCQuestion], BenchmarkReport]:
    """MMLU questions of `subjects` (default: the six medical ones) from one split: "test", "dev" (the
    5-shot exemplar pool) or "val".

    Fields may contain quoted newlines, so rows are parsed by the csv module, not by lines. Ids are
    "<subject>_<split>:<row>" (1-based row). A row without 6 fields counts as "malformed_record", an answer
    other than A-D as "bad_answer"; the report's info gives per-subject counts.
    """
    if split not in MMLU_SPLITS:
        raise ValueError(f"MMLU split must be one of {', '.join(MMLU_SPLITS)}, not {split!r}")
    if isinstance(subjects, str):
        subjects = (subjects,)
    _require(path, "MMLU data folder or CSV file")
    report = BenchmarkReport(path=path, info={"split": split, "subjects": {}})
    questions = []
    for subject, file in _mmlu_files(path, subjects, split):
        before = len(questions)
        try:
            with open(file, encoding="utf-8-sig", newline="") as fh:
                for row_number, row in enumerate(csv.reader(fh), start=1):
                    if not row or not any(cell.strip() for cell in row):
                        continue
                    report.records += 1
                    if len(row) != 6:
                        report.skip("malformed_record")
                        continue
                    letter = row[5].strip().upper()
                    if letter not in LETTERS[:4]:
                        report.skip("bad_answer")
                        continue
                    questions.append(MCQuestion(
                        id=f"{subject}_{split}:{row_number}", question=row[0].strip(), context="",
                        options=[cell.strip() for cell in row[1:5]], answer=LETTERS.index(letter),
                        letters=list(LETTERS[:4]), subject=subject, meta={"row": row_number, "file": file}))
        except (UnicodeDecodeError, csv.Error, OSError) as err:
            report.error(file, f"read stopped: {type(err).__name__}: {err}")
        report.info["subjects"][subject] = len(questions) - before
    report.loaded = len(questions)
    return questions, report

"""MedQA (US, 4 options; JSON lines as released)."""

from __future__ import annotations

import os

from biomed_jax.data.readers import _file_stem
from biomed_jax.data.benchmarks.common import _json_lines, _lettered, _pick_split_file, _require, _same_text, BenchmarkReport, MCQuestion


# A known typo in the released MedQA US test file (line 72); the raw value stays in meta["meta_info"].
_MEDQA_META_FIXES = {"stfep2&3": "step2&3"}


def load_medqa(path: str, split: str | None = None) -> tuple[list[MCQuestion], BenchmarkReport]:
    """MedQA JSON lines: {question, answer, options{A..}, answer_idx, meta_info, metamap_phrases}.

    `path` is the file, or a folder with `{split}.jsonl` (the synthetic world's layout) or one
    `*_{split}.jsonl` (the release's). Ids are "<file stem>:<line>" (the release has none). A line whose
    answer_idx is not an option counts as "bad_answer"; one whose `answer` text contradicts the option at
    answer_idx as "answer_mismatch" (which of the two is right cannot be known). Options are kept as many
    as the line has (4 or 5 depending on the variant).
    """
    _require(path, "MedQA file or folder")
    if os.path.isdir(path):
        path = _pick_split_file(path, split or "test", ".jsonl")
    report = BenchmarkReport(path=path)
    stem = _file_stem(path)
    questions = []
    for number, record in _json_lines(path, report):
        parsed = _lettered(record.get("options"))
        question = record.get("question")
        if parsed is None or not isinstance(question, str) or not question.strip():
            report.skip("malformed_record")
            continue
        letters, options = parsed
        answer_idx, answer_text = record.get("answer_idx"), record.get("answer")
        if isinstance(answer_idx, str) and answer_idx.strip().upper() in letters:
            answer = letters.index(answer_idx.strip().upper())
            if isinstance(answer_text, str) and not _same_text(answer_text, options[answer]):
                report.skip("answer_mismatch")
                continue
        elif answer_idx is None and isinstance(answer_text, str) and \
                sum(_same_text(answer_text, o) for o in options) == 1:
            answer = next(i for i, o in enumerate(options) if _same_text(answer_text, o))
        else:
            report.skip("bad_answer")
            continue
        meta_info = record.get("meta_info")
        subject = _MEDQA_META_FIXES.get(meta_info, meta_info) if isinstance(meta_info, str) else ""
        questions.append(MCQuestion(
            id=f"{stem}:{number}", question=question.strip(), context="", options=options, answer=answer,
            letters=letters, subject=subject,
            meta={"meta_info": meta_info, "metamap_phrases": record.get("metamap_phrases"), "line": number}))
    report.loaded = len(questions)
    return questions, report

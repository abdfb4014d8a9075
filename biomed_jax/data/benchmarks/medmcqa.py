"""MedMCQA (JSON lines, opa..opd, cop; the base of cop detected or given)."""

from __future__ import annotations

import os
from typing import Any, Iterable

from biomed_jax.data.readers import _file_stem
from biomed_jax.data.benchmarks.common import _json_lines, _pick_split_file, _require, BenchmarkReport, LETTERS, MCQuestion


_MEDMCQA_OPTIONS = ("opa", "opb", "opc", "opd")


def _cop_value(cop: Any) -> int | None:
    """`cop` as an int (the files hold ints; a digit string is accepted), else None."""
    if isinstance(cop, bool):
        return None
    if isinstance(cop, int):
        return cop
    if isinstance(cop, str) and cop.strip().lstrip("-").isdigit():
        return int(cop)
    return None


def detect_cop_base(cops: Iterable[int], path: str = "") -> int:
    """0 or 1: the base of MedMCQA's `cop` (correct option), read off the values themselves.

    The original release is 1-based (1 = opa .. 4 = opd), the Hugging Face copy 0-based (0 .. 3). A 0
    proves 0-based and a 4 proves 1-based; a file with neither (or both) cannot tell, and guessing would
    shift every answer by one, so it raises and asks for `cop_base`.
    """
    seen = set(cops)
    where = f" in {path!r}" if path else ""
    if 0 in seen and 4 in seen:
        raise ValueError(f"MedMCQA cop values{where} include both 0 and 4, which fits neither base; the file "
                         f"mixes releases or is damaged: set cop_base=0 or cop_base=1 explicitly")
    if 0 in seen:
        return 0
    if 4 in seen:
        return 1
    raise ValueError(f"cannot tell the base of MedMCQA cop{where} (values seen: {sorted(seen) or 'none'}; no 0 "
                     f"and no 4): set cop_base=1 for the original release or cop_base=0 for the Hugging Face copy")


def load_medmcqa(path: str, cop_base: int | str = "auto",
                 split: str | None = None) -> tuple[list[MCQuestion], BenchmarkReport]:
    """MedMCQA JSON lines: {id, question, opa, opb, opc, opd, cop, choice_type, exp, subject_name, topic_name}.

    `cop_base` is 1 (original release), 0 (Hugging Face copy) or "auto" (`detect_cop_base`); the base used
    is in `report.info["cop_base"]` with how it was chosen. Lines without `cop` (the unlabelled test split)
    count as "no_answer", cop outside the base's range as "bad_answer"; `exp` may be null (kept as None).
    `path` may be a folder holding `{split}.json`.
    """
    if cop_base not in ("auto", 0, 1):
        raise ValueError(f"cop_base must be 'auto', 0 or 1, not {cop_base!r}")
    _require(path, "MedMCQA file or folder")
    if os.path.isdir(path):
        path = _pick_split_file(path, split or "dev", ".json")
    report = BenchmarkReport(path=path)
    stem = _file_stem(path)
    rows = []
    for number, record in _json_lines(path, report):
        options = [record.get(key) for key in _MEDMCQA_OPTIONS]
        question = record.get("question")
        if not isinstance(question, str) or not question.strip() or not all(isinstance(o, str) for o in options):
            report.skip("malformed_record")
            continue
        if record.get("cop") is None:
            report.skip("no_answer")
            continue
        cop = _cop_value(record.get("cop"))
        if cop is None:
            report.skip("bad_answer")
            continue
        rows.append((number, record, [o.strip() for o in options], cop))
    if cop_base == "auto":
        base = detect_cop_base((cop for *_, cop in rows), path) if rows else 1
        report.info["cop_base"] = base
        report.info["cop_base_from"] = "detected" if rows else "default (no labelled records)"
    else:
        base = cop_base
        report.info["cop_base"] = base
        report.info["cop_base_from"] = "configured"
    questions = []
    for number, record, options, cop in rows:
        answer = cop - base
        if not 0 <= answer < len(options):
            report.skip("bad_answer")
            continue
        record_id = record.get("id")
        questions.append(MCQuestion(
            id=str(record_id) if record_id is not None else f"{stem}:{number}", question=record["question"].strip(),
            context="", options=options, answer=answer, letters=list(LETTERS[:len(options)]),
            subject=record.get("subject_name") or "",
            meta={"topic_name": record.get("topic_name"), "choice_type": record.get("choice_type"),
                  "exp": record.get("exp"), "cop": cop, "line": number}))
    report.loaded = len(questions)
    return questions, report

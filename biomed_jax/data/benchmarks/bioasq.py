"""BioASQ Task B golden files (yes/no questions, in release order)."""

from __future__ import annotations

import glob
import os
import re
from typing import Any, Sequence

from biomed_jax.data.benchmarks.common import _load_json, _require, BenchmarkReport, BIOASQ_LABELS, MCQuestion


def _json_files(path: str, pattern: str = "*.json") -> list[str]:
    """`path` itself, or every `pattern` file under the folder `path` (recursively) in release order:
    numbers compare as numbers, so Task7B..Task9B come before Task10B, 11B (plain sorting puts 10B first)."""
    if os.path.isfile(path):
        return [path]
    files = glob.glob(os.path.join(glob.escape(path), "**", pattern), recursive=True)
    return sorted(files, key=lambda f: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", f)])


def _yes_no(answer: Any) -> str | None:
    """"yes"/"no" from an exact_answer ("yes", "Yes", ["yes"]); None for anything else."""
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if isinstance(answer, str) and answer.strip().lower() in BIOASQ_LABELS:
        return answer.strip().lower()
    return None


def load_bioasq(path: str, types: Sequence[str] = ("yesno",)) -> tuple[list[MCQuestion], BenchmarkReport]:
    """BioASQ Task B golden JSON ({"questions": [{id, type, body, snippets[{text}], exact_answer, ...}]}):
    the yes/no questions of one file or of every *.json under a folder (readme files are ignored).

    The context is the snippets' texts, one per line, exact repeats dropped. Questions of other types count
    as "other_type"; an id already loaded from an earlier file (release order: 7B before 10B) as
    "duplicate_id" (the 7B-11B golden sets hold none); an exact_answer other than yes/no as "bad_answer".
    """
    if tuple(types) != ("yesno",):
        raise ValueError(f"BioASQ types {tuple(types)!r}: only ('yesno',) maps to multiple choice; factoid, "
                         f"list and summary questions have free-text answers")
    _require(path, "BioASQ golden JSON file or folder")
    files = _json_files(path)
    if not files:
        raise FileNotFoundError(f"no BioASQ golden *.json files under {path!r}")
    report = BenchmarkReport(path=path, info={"files": len(files)})
    questions, seen = [], set()
    for file in files:
        document = _load_json(file, report)
        if document is None:
            continue
        records = document.get("questions") if isinstance(document, dict) else None
        if not isinstance(records, list):
            report.error(file, 'expected {"questions": [...]}')
            continue
        for record in records:
            report.records += 1
            if not isinstance(record, dict) or not isinstance(record.get("body"), str) or record.get("id") is None:
                report.skip("malformed_record")
                continue
            if record.get("type") not in types:
                report.skip("other_type")
                continue
            qid = str(record["id"])
            if qid in seen:
                report.skip("duplicate_id")
                continue
            label = _yes_no(record.get("exact_answer"))
            if label is None:
                report.skip("bad_answer")
                continue
            seen.add(qid)
            snippets = []
            for snippet in record.get("snippets") or []:
                text = snippet.get("text") if isinstance(snippet, dict) else None
                if isinstance(text, str) and text.strip() and text.strip() not in snippets:
                    snippets.append(text.strip())
            questions.append(MCQuestion(
                id=qid, question=record["body"].strip(), context="\n".join(snippets), options=list(BIOASQ_LABELS),
                answer=BIOASQ_LABELS.index(label), letters=list(BIOASQ_LABELS), subject="",
                meta={"file": os.path.relpath(file, path) if os.path.isdir(path) else os.path.basename(file),
                      "ideal_answer": record.get("ideal_answer"), "documents": len(record.get("documents") or [])}))
    report.loaded = len(questions)
    return questions, report

"""Local-file datasets and prompts for the lm-eval task definitions beside this file.

The files are read as their publishers released them (README.md beside this file), from
a data directory chosen, first found, by:
  1. lm-eval's `--metadata '{"data_dir": "/path/to/data"}'` (or TaskManager(metadata=...)),
  2. the BIOMED_EVAL_DATA environment variable,
  3. ../shared/data beside the project checkout.
Each task YAML names its file(s) relative to that directory (`dataset_kwargs.files`). Nothing is
downloaded: JSON lines go through the `datasets` json loader, the other formats through Python's
json / csv readers, and a missing file fails naming the path and how to point at the right one.
Damaged records (an answer outside the options, a short CSV row) are skipped and counted in a warning.
"""

from __future__ import annotations

import csv
import json
import logging
import os

import datasets

logger = logging.getLogger(__name__)

ENV_VAR = "BIOMED_EVAL_DATA"
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                                 "shared", "data"))
LETTERS = ["A", "B", "C", "D"]
PUBMEDQA_LABELS = ["yes", "no", "maybe"]


def _path(data_dir: str | None, relative: str) -> str:
    base = data_dir or os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR
    path = os.path.join(os.path.expanduser(base), relative)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"benchmark file {path} not found; point the tasks at the folder that holds {relative} with "
            f"--metadata '{{\"data_dir\": \"/path/to/data\"}}' or the {ENV_VAR} environment variable")
    return path


def _jsonl(path: str) -> datasets.Dataset:
    """A JSON-lines file through the `datasets` json loader (local, cached beside the HF cache)."""
    return datasets.load_dataset("json", data_files={"test": path}, split="test")


def _dataset(rows: list[dict], skipped: int, path: str) -> datasets.Dataset:
    if skipped:
        logger.warning("%s: skipped %d damaged record(s)", path, skipped)
    if not rows:
        raise ValueError(f"{path}: no usable record")
    return datasets.Dataset.from_list(rows)


def lettered_prompt(doc: dict) -> str:
    """Question, lettered options, 'Answer:' (the layout of lm-eval's medqa_4options / medmcqa)."""
    options = "".join(f"{letter}. {option}\n" for letter, option in zip(LETTERS, doc["options"]))
    return f"Question: {doc['question']}\n{options}Answer:"


def medqa(data_dir: str | None = None, files: str = "medqa/phrases_no_exclude_test.jsonl", **_) -> dict:
    """MedQA (USMLE, US, 4 options): {question, options{A..D}, answer_idx} per line."""
    path = _path(data_dir, files)
    rows, skipped = [], 0
    for record in _jsonl(path):
        options = record.get("options") or {}
        if record.get("answer_idx") not in LETTERS or any(not options.get(k) for k in LETTERS):
            skipped += 1
            continue
        rows.append(dict(question=record["question"], options=[options[k] for k in LETTERS],
                         answer=LETTERS.index(record["answer_idx"])))
    return {"test": _dataset(rows, skipped, path)}


def medmcqa(data_dir: str | None = None, files: str = "medmcqa/dev.json", cop_base: int = 1, **_) -> dict:
    """MedMCQA dev, original release: opa..opd and `cop`, 1-based in that release (1 = opa); the
    Hugging Face copy is 0-based: pass cop_base=0 in dataset_kwargs for it."""
    path = _path(data_dir, files)
    rows, skipped = [], 0
    for record in _jsonl(path):
        options = [record.get(k) for k in ("opa", "opb", "opc", "opd")]
        cop = record.get("cop")
        if not isinstance(cop, int) or not 0 <= cop - cop_base < 4 or any(o is None for o in options):
            skipped += 1
            continue
        rows.append(dict(question=record["question"], options=options, answer=cop - cop_base,
                         subject=record.get("subject_name") or ""))
    return {"test": _dataset(rows, skipped, path)}


def pubmedqa(data_dir: str | None = None, files: str = "pubmedqa/ori_pqal.json",
             test_ids: str = "pubmedqa/test_ground_truth.json", **_) -> dict:
    """PubMedQA PQA-L: ori_pqal.json is {pmid: {QUESTION, CONTEXTS, final_decision, ...}} (one JSON
    object, not lines); the test split is the 500 pmids of test_ground_truth.json, with its labels."""
    path, ids_path = _path(data_dir, files), _path(data_dir, test_ids)
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    with open(ids_path, encoding="utf-8") as f:
        labels = json.load(f)
    rows, skipped = [], 0
    for pmid, label in labels.items():
        record = records.get(pmid)
        if record is None or label not in PUBMEDQA_LABELS:
            skipped += 1
            continue
        rows.append(dict(pmid=pmid, question=record["QUESTION"], context="\n".join(record.get("CONTEXTS", [])),
                         answer=PUBMEDQA_LABELS.index(label)))
    return {"test": _dataset(rows, skipped, ids_path)}


def pubmedqa_prompt(doc: dict) -> str:
    """The layout of lm-eval's pubmedqa task."""
    return f"Abstract: {doc['context']}\nQuestion: {doc['question']}\nAnswer:"


def mmlu(data_dir: str | None = None, subject: str = "anatomy", **_) -> dict:
    """One MMLU subject from the original CSVs (no header: question, A, B, C, D, answer letter;
    fields may hold newlines): splits test, validation (val) and dev (the 5 few-shot exemplars)."""
    splits = {}
    for split, folder in (("test", "test"), ("validation", "val"), ("dev", "dev")):
        path = _path(data_dir, os.path.join("mmlu", folder, f"{subject}_{folder}.csv"))
        rows, skipped = [], 0
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if len(row) != 6 or row[5].strip() not in LETTERS:
                    skipped += 1
                    continue
                rows.append(dict(question=row[0], options=row[1:5], answer=LETTERS.index(row[5].strip()),
                                 subject=subject))
        splits[split] = _dataset(rows, skipped, path)
    return splits

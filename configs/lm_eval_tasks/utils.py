"""Local-file datasets and prompts for the lm-eval task definitions beside this file.

The files are read as their publishers released them (README.md beside this file), from
a data directory chosen, first found, by:
  1. lm-eval's `--metadata '{"data_dir": "/path/to/data"}'` (or TaskManager(metadata=...)),
  2. the BIOMED_EVAL_DATA environment variable,
  3. ../shared/data beside the project checkout.
Each task YAML names its file(s) relative to that directory (`dataset_kwargs.files`). Nothing is
downloaded. The files go through biomed_jax's own benchmark loaders (biomed_jax/data/benchmarks/),
the ones `experiments.evaluate` uses, so both read the same questions in the same order (the
publisher's: PubMedQA in ori_pqal.json's order, not the label-sorted ground-truth file's). lm-eval's
`--limit N` keeps its own meaning, the first N documents in that order; a missing file fails naming
the path and how to point at the right one. Damaged records are skipped and counted in a warning.
"""

from __future__ import annotations

import logging
import os

import datasets

from biomed_jax.data import benchmarks

logger = logging.getLogger(__name__)

ENV_VAR = "BIOMED_EVAL_DATA"
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                                 "shared", "data"))
LETTERS = ["A", "B", "C", "D"]


def _path(data_dir: str | None, relative: str) -> str:
    base = data_dir or os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR
    path = os.path.join(os.path.expanduser(base), relative)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"benchmark file {path} not found; point the tasks at the folder that holds {relative} with "
            f"--metadata '{{\"data_dir\": \"/path/to/data\"}}' or the {ENV_VAR} environment variable")
    return path


def _dataset(loaded: tuple[list[benchmarks.MCQuestion], benchmarks.BenchmarkReport], path: str,
             row=lambda q: dict(question=q.question, options=q.options, answer=q.answer, subject=q.subject),
             options: int | None = 4) -> datasets.Dataset:
    """The loader's questions as rows; those without `options` options (the task's fixed choices) are
    skipped, and every skip is counted in a warning."""
    questions, report = loaded
    skipped = sum(report.skipped.values())
    kept = [q for q in questions if options is None or len(q.options) == options]
    skipped += len(questions) - len(kept)
    if skipped:
        logger.warning("%s: skipped %d damaged record(s) %s", path, skipped, report.skipped or "")
    if not kept:
        raise ValueError(f"{path}: no usable record")
    return datasets.Dataset.from_list([row(q) for q in kept])


def lettered_prompt(doc: dict) -> str:
    """Question, lettered options, 'Answer:' (the layout of lm-eval's medqa_4options / medmcqa)."""
    options = "".join(f"{letter}. {option}\n" for letter, option in zip(LETTERS, doc["options"]))
    return f"Question: {doc['question']}\n{options}Answer:"


def medqa(data_dir: str | None = None, files: str = "medqa/phrases_no_exclude_test.jsonl", **_) -> dict:
    """MedQA (USMLE, US, 4 options): {question, options{A..D}, answer_idx} per line."""
    path = _path(data_dir, files)
    return {"test": _dataset(benchmarks.load_medqa(path), path)}


def medmcqa(data_dir: str | None = None, files: str = "medmcqa/dev.json", cop_base: int = 1, **_) -> dict:
    """MedMCQA dev, original release: opa..opd and `cop`, 1-based in that release (1 = opa); the
    Hugging Face copy is 0-based: pass cop_base=0 in dataset_kwargs for it."""
    path = _path(data_dir, files)
    return {"test": _dataset(benchmarks.load_medmcqa(path, cop_base=cop_base), path)}


def pubmedqa(data_dir: str | None = None, files: str = "pubmedqa/ori_pqal.json",
             test_ids: str = "pubmedqa/test_ground_truth.json", **_) -> dict:
    """PubMedQA PQA-L: ori_pqal.json is {pmid: {QUESTION, CONTEXTS, final_decision, ...}} (one JSON
    object, not lines); the test split is the 500 pmids of test_ground_truth.json, in ori_pqal.json's order."""
    path, ids_path = _path(data_dir, files), _path(data_dir, test_ids)
    loaded = benchmarks.load_pubmedqa(path, split="test", ground_truth_path=ids_path)
    return {"test": _dataset(loaded, path, options=None,
                             row=lambda q: dict(pmid=q.id, question=q.question, context=q.context, answer=q.answer))}


def pubmedqa_prompt(doc: dict) -> str:
    """The layout of lm-eval's pubmedqa task."""
    return f"Abstract: {doc['context']}\nQuestion: {doc['question']}\nAnswer:"


def mmlu(data_dir: str | None = None, subject: str = "anatomy", **_) -> dict:
    """One MMLU subject from the original CSVs (no header: question, A, B, C, D, answer letter;
    fields may hold newlines): splits test, validation (val) and dev (the 5 few-shot exemplars)."""
    splits = {}
    for split, folder in (("test", "test"), ("validation", "val"), ("dev", "dev")):
        path = _path(data_dir, os.path.join("mmlu", folder, f"{subject}_{folder}.csv"))
        splits[split] = _dataset(benchmarks.load_mmlu(path, split=folder), path)
    return splits

"""PubMedQA (ori_pqal.json + test_ground_truth.json, in ori_pqal.json's order)."""

from __future__ import annotations

import os

from biomed_jax.data.benchmarks.common import _load_json, _require, BenchmarkReport, MCQuestion, PUBMEDQA_LABELS, PUBMEDQA_SPLITS


def load_pubmedqa(path: str, split: str = "test",
                  ground_truth_path: str | None = None) -> tuple[list[MCQuestion], BenchmarkReport]:
    """PubMedQA expert-labelled items: ori_pqal.json {pmid: {QUESTION, CONTEXTS, LABELS, MESHES, YEAR,
    final_decision, LONG_ANSWER}}; `path` is that file or its folder.

    split "test" takes the ids of test_ground_truth.json (next to it unless `ground_truth_path` is given),
    "train" the other items (the 500 train/dev pool), "all" every item; every split keeps ori_pqal.json's
    order (the ground-truth file is sorted by label). The context is CONTEXTS joined by
    newlines (their section LABELS are in meta). Options are ["yes", "no", "maybe"], labelled by themselves.
    A ground-truth id absent from ori_pqal.json counts as "missing_item"; a ground-truth label that
    differs from the item's final_decision as "answer_mismatch".
    """
    if split not in PUBMEDQA_SPLITS:
        raise ValueError(f"PubMedQA split must be one of {', '.join(PUBMEDQA_SPLITS)}, not {split!r}")
    _require(path, "PubMedQA ori_pqal.json or its folder")
    if os.path.isdir(path):
        path = os.path.join(path, "ori_pqal.json")
        _require(path, "PubMedQA ori_pqal.json")
    report = BenchmarkReport(path=path, info={"split": split})
    truth: dict | None = None
    if split != "all":
        ground_truth_path = ground_truth_path or os.path.join(os.path.dirname(path), "test_ground_truth.json")
        if not os.path.isfile(ground_truth_path):
            raise FileNotFoundError(f"PubMedQA split {split!r} needs the test ids of test_ground_truth.json, "
                                    f"not found: {ground_truth_path!r} (pass ground_truth_path, or split='all')")
        report.info["ground_truth"] = ground_truth_path
        truth = _load_json(ground_truth_path, report)
        if truth is None:
            return [], report
        if not isinstance(truth, dict):
            report.error(ground_truth_path, "expected a JSON object {pmid: label}")
            return [], report
    items = _load_json(path, report)
    if items is None:
        return [], report
    if not isinstance(items, dict):
        report.error(path, "expected a JSON object {pmid: item}")
        return [], report
    report.info["items_in_file"] = len(items)
    if split == "test":
        # ori_pqal.json's order, not the ground-truth file's (which lists every "yes", then "no", "maybe").
        missing = [pid for pid in truth if pid not in items]
        if missing:
            report.records += len(missing)
            report.skip("missing_item", len(missing))
        ids = [pid for pid in items if pid in truth]
    elif split == "train":
        ids = [pid for pid in items if pid not in truth]
    else:
        ids = list(items)
    questions = []
    for pid in ids:
        report.records += 1
        item = items[pid]
        if not isinstance(item, dict) or not isinstance(item.get("QUESTION"), str) or \
                not isinstance(item.get("CONTEXTS", []), list):
            report.skip("malformed_record")
            continue
        label = item.get("final_decision")
        label = label.strip().lower() if isinstance(label, str) else label
        if label not in PUBMEDQA_LABELS:
            report.skip("bad_answer")
            continue
        if truth is not None and pid in truth and str(truth[pid]).strip().lower() != label:
            report.skip("answer_mismatch")
            continue
        contexts = [c.strip() for c in item.get("CONTEXTS", []) if isinstance(c, str)]
        questions.append(MCQuestion(
            id=str(pid), question=item["QUESTION"].strip(), context="\n".join(contexts),
            options=list(PUBMEDQA_LABELS), answer=PUBMEDQA_LABELS.index(label), letters=list(PUBMEDQA_LABELS),
            subject="", meta={"context_labels": item.get("LABELS"), "meshes": item.get("MESHES"),
                              "year": item.get("YEAR"), "long_answer": item.get("LONG_ANSWER")}))
    report.loaded = len(questions)
    return questions, report

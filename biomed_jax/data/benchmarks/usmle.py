"""The USMLE self-assessment as MedAlpaca evaluates it."""

from __future__ import annotations

import glob
import os
import re
from typing import Sequence

from biomed_jax.data.readers import _file_stem
from biomed_jax.data.benchmarks.common import _lettered, _load_json, _require, _same_text, BenchmarkReport, MCQuestion


# A question is taken to show an image when its text names one; "imaging" and "clinical picture" do not count.
IMAGE_PATTERN = re.compile(
    r"\b(images?|figures?|(?<!clinical )pictures?|photo(graph)?s?|photomicrographs?|micrographs?|diagrams?|"
    r"illustrations?|exhibits?)\b", re.IGNORECASE)

# "C", "C: text", "C. text", "(C) text", "C) text": the label then, optionally, the option's text.
_ANSWER_PATTERN = re.compile(r"^\s*\(?([A-Za-z])\)?\s*(?:[:.)\-]\s*(.*))?$", re.DOTALL)


def parse_option_answer(answer: str, letters: Sequence[str]) -> tuple[str, str | None] | None:
    """("C", "text" or None) from an "Option: Answer" string such as "C: Hepatitis C serology" or "C";
    None where it starts with no label of `letters`."""
    match = _ANSWER_PATTERN.match(answer) if isinstance(answer, str) else None
    if not match or match.group(1).upper() not in letters:
        return None
    text = match.group(2)
    return match.group(1).upper(), (text.strip() or None) if text is not None else None


def _usmle_image_numbers(folder: str, report: BenchmarkReport) -> dict[str, set[str]]:
    """{step name: question numbers} from MedAlpaca's question_with_images.json next to the step files
    ({"step1": [4, 7, ...], ...}); empty where the file is absent."""
    path = os.path.join(folder, "question_with_images.json")
    if not os.path.isfile(path):
        return {}
    listed = _load_json(path, report)
    if not isinstance(listed, dict) or not all(isinstance(v, list) for v in listed.values()):
        if listed is not None:
            report.error(path, 'expected {"step1": [question numbers], ...}')
        return {}
    report.info["image_list"] = path
    return {str(step): {str(no) for no in numbers} for step, numbers in listed.items()}


def _usmle_step_files(path: str, split: str | None) -> list[str]:
    """The question files: `path` itself, or the folder's step*.json (solutions and image list excluded)."""
    if os.path.isfile(path):
        return [path]
    files = [f for f in sorted(glob.glob(os.path.join(glob.escape(path), "*.json")))
             if not _file_stem(f).endswith("_solutions") and os.path.basename(f) != "question_with_images.json"]
    if split is not None:
        files = [f for f in files if _file_stem(f) == split]
        if not files:
            raise FileNotFoundError(f"USMLE split {split!r}: no {split}.json in {path!r}")
    if not files:
        raise FileNotFoundError(f"no USMLE question files (step1.json, ...) in {path!r}")
    return files


def load_usmle(path: str, split: str | None = None,
               exclude_images: bool = True) -> tuple[list[MCQuestion], BenchmarkReport]:
    """USMLE self-assessment questions as MedAlpaca evaluates them: step1/2/3.json, each a JSON list of
    {no?, question, options{letter: text}, answer?}; `path` is one file or their folder (`split` picks
    "step1".. there).

    The answer is the record's `answer`, else `{step}_solutions.json` beside it ({"<no>": answer}, keyed by
    `no` or the 1-based position), parsed from "Option: Answer" ("C", "C: text"); a text that contradicts
    the option counts as "answer_mismatch", no label of the options as "bad_answer", none at all as
    "no_answer". With `exclude_images`, questions that need an image are left out ("image_question"), as
    MedAlpaca did: those listed in question_with_images.json beside the files, and those whose question
    text matches IMAGE_PATTERN (image, figure, picture, photograph, micrograph, diagram, ...).
    Options are kept as many as each question has (4 to 9 in the release).
    """
    _require(path, "USMLE step JSON file or folder")
    files = _usmle_step_files(path, split)
    report = BenchmarkReport(path=path, info={"files": [os.path.basename(f) for f in files]})
    questions, image_lists = [], {}
    for file in files:
        stem, folder = _file_stem(file), os.path.dirname(file)
        if exclude_images and folder not in image_lists:
            image_lists[folder] = _usmle_image_numbers(folder, report)
        images = image_lists.get(folder, {}).get(stem, set())
        records = _load_json(file, report)
        if records is None:
            continue
        if not isinstance(records, list):
            report.error(file, "expected a JSON list of questions")
            continue
        solutions_path = os.path.join(os.path.dirname(file), f"{stem}_solutions.json")
        solutions = _load_json(solutions_path, report) if os.path.isfile(solutions_path) else {}
        if not isinstance(solutions, dict):
            if solutions is not None:
                report.error(solutions_path, 'expected {"<question number>": "answer"}')
            solutions = {}
        for position, record in enumerate(records, start=1):
            report.records += 1
            parsed = _lettered(record.get("options")) if isinstance(record, dict) else None
            if parsed is None or not isinstance(record.get("question"), str) or not record["question"].strip():
                report.skip("malformed_record")
                continue
            letters, options = parsed
            number = str(record.get("no", position))
            if exclude_images and (number in images or IMAGE_PATTERN.search(record["question"])):
                report.skip("image_question")
                continue
            raw = record.get("answer", solutions.get(number))
            if raw is None:
                report.skip("no_answer")
                continue
            answer = parse_option_answer(raw, letters)
            if answer is None:
                report.skip("bad_answer")
                continue
            letter, text = answer
            index = letters.index(letter)
            if text is not None and not _same_text(text, options[index]):
                report.skip("answer_mismatch")
                continue
            questions.append(MCQuestion(
                id=f"{stem}:{number}", question=record["question"].strip(), context="", options=options,
                answer=index, letters=letters, subject=stem, meta={"no": number, "file": os.path.basename(file)}))
    report.loaded = len(questions)
    return questions, report

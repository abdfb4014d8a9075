"""Biomedical benchmark loaders into one multiple-choice schema: MedQA, MedMCQA, PubMedQA, MMLU-medical,
BioASQ (yes/no) and the USMLE self-assessment as MedAlpaca evaluates it.

Every loader reads the files as their publishers released them and returns `MCQuestion`s plus a
`BenchmarkReport`. As with the corpus readers (readers.py), damaged records (a bad JSON line, an answer
that is not one of the options, a CSV row with the wrong number of fields) are skipped and counted by
reason, never raised mid-file; an unreadable file is named in `report.errors`. What raises is what the
caller must fix: a missing file, an unknown option, or a choice the loader must not guess (the base of
MedMCQA's `cop` when the file does not show it).

Labels (`MCQuestion.letters`) are what a model emits to pick an option: "A".."I" for lettered
benchmarks, and the answer words themselves ("yes", "no", "maybe") for PubMedQA and BioASQ, whose
options are those words. Top-token scoring and prompt rendering both use them.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import inspect
import json
import os
import re
import string
import zlib
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from biomed_jax.data.readers import _decoded_lines, _file_stem, _open_binary

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PUBMEDQA_LABELS = ("yes", "no", "maybe")
BIOASQ_LABELS = ("yes", "no")
MEDICAL_SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                    "professional_medicine")
MMLU_SPLITS = ("test", "dev", "val")
PUBMEDQA_SPLITS = ("test", "train", "all")
KINDS = ("medqa", "medmcqa", "pubmedqa", "mmlu", "bioasq", "usmle")


@dataclasses.dataclass
class MCQuestion:
    """One benchmark question: `options[answer]` is the right option's text, `letters[answer]` its label."""

    id: str
    question: str
    context: str
    options: list[str]
    answer: int
    letters: list[str]
    subject: str = ""
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def answer_letter(self) -> str:
        return self.letters[self.answer]

    @property
    def answer_text(self) -> str:
        return self.options[self.answer]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BenchmarkReport:
    """What a loader saw: records read, questions loaded, skips by reason, loader choices (`info`, e.g. the
    MedMCQA cop base or the PubMedQA split) and file-level errors, each naming its file."""

    path: str = ""
    records: int = 0
    loaded: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    errors: list = dataclasses.field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")
        self.skip("unreadable_file")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------
# Shared helpers


def _require(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path!r}")


def _json_lines(path: str, report: BenchmarkReport) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-blank JSON line of `path` (.gz allowed); other lines are counted as
    "malformed_record" (not JSON, not an object, or not UTF-8)."""
    with _open_binary(path) as fh:
        try:
            for number, line in _decoded_lines(fh):
                if line is not None and not line.strip():
                    continue
                report.records += 1
                try:
                    record = json.loads(line) if line is not None else None
                except json.JSONDecodeError:
                    record = None
                if not isinstance(record, dict):
                    report.skip("malformed_record")
                    continue
                yield number, record
        except (OSError, EOFError, zlib.error) as err:
            report.error(path, f"read stopped: {type(err).__name__}: {err}")


def _load_json(path: str, report: BenchmarkReport) -> Any:
    """The parsed JSON document, or None with the reason in `report.errors`."""
    try:
        with _open_binary(path) as fh:
            return json.loads(fh.read().decode("utf-8-sig"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        report.error(path, f"not valid JSON: {type(err).__name__}: {err}")
        return None


def _lettered(options: Any) -> tuple[list[str], list[str]] | None:
    """(letters, texts) from {"A": text, ...} (file order) or a list of texts; None when not that shape."""
    if isinstance(options, dict):
        letters = [str(key).strip().upper() for key in options]
        texts = list(options.values())
    elif isinstance(options, list):
        letters, texts = list(LETTERS[:len(options)]), options
    else:
        return None
    if not texts or len(set(letters)) != len(letters) or not all(isinstance(text, str) for text in texts):
        return None
    return letters, [text.strip() for text in texts]


def _same_text(a: str, b: str) -> bool:
    """Equal up to case, surrounding whitespace, inner whitespace runs and a final period."""
    def norm(s):
        return " ".join(s.split()).casefold().rstrip(".")
    return norm(a) == norm(b)


def _pick_split_file(directory: str, split: str, suffix: str) -> str:
    """`{split}{suffix}` in `directory`, else the one file named `*_{split}{suffix}` (MedQA's release names
    its test file `phrases_no_exclude_test.jsonl`)."""
    exact = os.path.join(directory, f"{split}{suffix}")
    if os.path.isfile(exact):
        return exact
    candidates = sorted(glob.glob(os.path.join(glob.escape(directory), f"*_{split}{suffix}")))
    if len(candidates) == 1:
        return candidates[0]
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(directory), f"*{suffix}")))
    problem = "several files match" if candidates else "no file matches"
    raise FileNotFoundError(f"split {split!r} in {directory!r}: {problem} {split}{suffix} or *_{split}{suffix} "
                            f"(files there: {', '.join(found) or 'none'}); pass the file itself")


# ---------------------------------------------------------------------------------------------------
# MedQA (US, 4 options; JSON lines)

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


# ---------------------------------------------------------------------------------------------------
# MedMCQA (JSON lines, opa..opd, cop)

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


# ---------------------------------------------------------------------------------------------------
# PubMedQA (ori_pqal.json + test_ground_truth.json)


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


# ---------------------------------------------------------------------------------------------------
# MMLU (CSV without header: question, A, B, C, D, answer letter)


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


# ---------------------------------------------------------------------------------------------------
# BioASQ Task B golden files (yes/no questions)


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


# ---------------------------------------------------------------------------------------------------
# USMLE self-assessment (MedAlpaca's evaluation files)

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


# ---------------------------------------------------------------------------------------------------
# Dispatch, batching, prompts

LOADERS: dict[str, Callable[..., tuple[list[MCQuestion], BenchmarkReport]]] = {
    "medqa": load_medqa,
    "medmcqa": load_medmcqa,
    "pubmedqa": load_pubmedqa,
    "mmlu": load_mmlu,
    "bioasq": load_bioasq,
    "usmle": load_usmle,
}


def load_benchmark(kind: str, path: str, split: str | None = None,
                   **options) -> tuple[list[MCQuestion], BenchmarkReport]:
    """The questions of `path` read by the `kind` loader (`KINDS`); `split` and `options` go to it.

    Checks the kind, the options and the path first, so a typo fails naming what to fix.
    """
    if kind not in LOADERS:
        raise ValueError(f"unknown benchmark kind {kind!r}; known kinds: {', '.join(KINDS)}")
    loader = LOADERS[kind]
    accepted = [name for name in inspect.signature(loader).parameters if name != "path"]
    if split is not None:
        if "split" not in accepted:
            raise ValueError(f"{kind} has no splits (got split={split!r}); pass the file or folder to read")
        options["split"] = split
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown {kind} option(s) {', '.join(unknown)}; {kind} accepts: {', '.join(accepted)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} input not found: {path!r}")
    return loader(path, **options)


def sample_questions(questions: Sequence[MCQuestion], limit: int, seed: int) -> list[MCQuestion]:
    """`limit` of `questions` drawn at random, reproducibly from `seed`, kept in the split's order.

    Released files can be ordered by label, subject or year (PubMedQA's test_ground_truth.json lists its
    276 "yes" before its 169 "no" and 55 "maybe"; MMLU-medical is read subject by subject), so the first n
    questions can be a wholly unrepresentative subset. The draw is stratified by the gold answer label:
    each label gets its share of `limit` (largest remainder, ties to the label seen first), so the subset
    keeps the split's answer prior, and its members are a seeded uniform draw within each label. A limit
    of 0, or one not below len(questions), keeps them all.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0 (0 = every question), got {limit}")
    if not limit or limit >= len(questions):
        return list(questions)
    by_label: dict[str, list[int]] = {}
    for index, q in enumerate(questions):
        by_label.setdefault(q.answer_letter, []).append(index)
    shares = {label: limit * len(members) / len(questions) for label, members in by_label.items()}
    quota = {label: int(share) for label, share in shares.items()}
    by_remainder = sorted(shares, key=lambda label: -(shares[label] - quota[label]))  # stable: first seen wins
    for label in by_remainder[:limit - sum(quota.values())]:
        quota[label] += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for label, members in by_label.items():
        chosen.extend(int(i) for i in rng.choice(members, size=quota[label], replace=False))
    return [questions[i] for i in sorted(chosen)]


def pad_options(questions: Sequence[MCQuestion], pad: str = "") -> tuple[list[list[str]], np.ndarray]:
    """(texts [n, max_options], mask [n, max_options] bool) for batching questions whose number of options
    differs: short rows are filled with `pad`, and the mask is False there so a scorer can exclude them."""
    width = max((len(q.options) for q in questions), default=0)
    texts = [list(q.options) + [pad] * (width - len(q.options)) for q in questions]
    mask = np.zeros((len(questions), width), dtype=bool)
    for row, q in enumerate(questions):
        mask[row, :len(q.options)] = True
    return texts, mask


def options_block(q: MCQuestion) -> str:
    """The options one per line: "A. text" for lettered options, the word alone where it is its own label."""
    return "\n".join(text if letter == text else f"{letter}. {text}" for letter, text in zip(q.letters, q.options))


def template_fields(q: MCQuestion) -> dict[str, Any]:
    """The fields a prompt template may use."""
    return {"id": q.id, "question": q.question, "context": q.context, "options": options_block(q),
            "letters": ", ".join(q.letters), "answer_letter": q.answer_letter, "answer_text": q.answer_text,
            "answer_index": q.answer, "subject": q.subject.replace("_", " "), "n_options": len(q.options)}


def render(template: str, q: MCQuestion, **extra) -> str:
    """`template` (str.format syntax) filled from `q` and `extra`; a field that neither provides raises
    ValueError naming it and the known fields, rather than a bare KeyError deep in an evaluation."""
    fields = template_fields(q)
    hidden = sorted(set(extra) & set(fields))
    if hidden:
        raise ValueError(f"extra field(s) {', '.join(hidden)} would hide the question's own; rename them")
    fields.update(extra)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"malformed prompt template ({err}): {template[:80]!r}") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if root == "" or root.isdigit():
            raise ValueError(f"prompt template uses a positional field {{{name}}}; name it, one of: "
                             f"{', '.join(sorted(fields))}")
        if root not in fields:
            raise ValueError(f"prompt template field {{{name}}} is unknown; known fields: {', '.join(sorted(fields))}")
    return template.format(**fields)


def summarize(questions: Sequence[MCQuestion]) -> dict:
    """Answer-label and options-count distributions: a skewed answer prior or a stray 5-option question
    shows at a glance."""
    answers = collections.Counter(q.answer_letter for q in questions)
    counts = collections.Counter(len(q.options) for q in questions)
    return {"answer_distribution": dict(sorted(answers.items())),
            "options_count": {str(k): v for k, v in sorted(counts.items())}}

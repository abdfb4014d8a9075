"""The one multiple-choice schema (MCQuestion), the loaders' report, the label constants and the helpers
every loader shares."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import zlib
from typing import Any, Iterator

from biomed_jax.data.readers import _open_binary, json_objects


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
            yield from json_objects(fh, report)
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

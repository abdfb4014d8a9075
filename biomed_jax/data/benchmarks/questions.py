"""One entry for every benchmark (load_benchmark), seeded stratified subsets, option padding and prompt
rendering."""

from __future__ import annotations

import collections
import inspect
import os
import re
import string
from typing import Any, Callable, Sequence

import numpy as np

from biomed_jax.data.benchmarks.bioasq import load_bioasq
from biomed_jax.data.benchmarks.common import BenchmarkReport, KINDS, MCQuestion
from biomed_jax.data.benchmarks.medmcqa import load_medmcqa
from biomed_jax.data.benchmarks.medqa import load_medqa
from biomed_jax.data.benchmarks.mmlu import load_mmlu
from biomed_jax.data.benchmarks.pubmedqa import load_pubmedqa
from biomed_jax.data.benchmarks.usmle import load_usmle


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

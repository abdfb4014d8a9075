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

One module per benchmark (medqa, medmcqa, pubmedqa, mmlu, bioasq, usmle), the shared schema in
`common`, and `questions` (load_benchmark, sampling, rendering); everything public is importable from
this package.
"""

from biomed_jax.data.benchmarks.common import (
    BIOASQ_LABELS, BenchmarkReport, KINDS, LETTERS, MCQuestion, MEDICAL_SUBJECTS, MMLU_SPLITS, PUBMEDQA_LABELS, PUBMEDQA_SPLITS)
from biomed_jax.data.benchmarks.medqa import load_medqa
from biomed_jax.data.benchmarks.medmcqa import (
    detect_cop_base, load_medmcqa)
from biomed_jax.data.benchmarks.pubmedqa import load_pubmedqa
from biomed_jax.data.benchmarks.mmlu import load_mmlu
from biomed_jax.data.benchmarks.bioasq import load_bioasq
from biomed_jax.data.benchmarks.usmle import (
    IMAGE_PATTERN, load_usmle, parse_option_answer)
from biomed_jax.data.benchmarks.questions import (
    LOADERS, load_benchmark, options_block, pad_options, render, sample_questions, summarize, template_fields)

__all__ = [
    "BIOASQ_LABELS",
    "BenchmarkReport",
    "KINDS",
    "LETTERS",
    "MCQuestion",
    "MEDICAL_SUBJECTS",
    "MMLU_SPLITS",
    "PUBMEDQA_LABELS",
    "PUBMEDQA_SPLITS",
    "load_medqa",
    "detect_cop_base",
    "load_medmcqa",
    "load_pubmedqa",
    "load_mmlu",
    "load_bioasq",
    "IMAGE_PATTERN",
    "load_usmle",
    "parse_option_answer",
    "LOADERS",
    "load_benchmark",
    "options_block",
    "pad_options",
    "render",
    "sample_questions",
    "summarize",
    "template_fields",
]

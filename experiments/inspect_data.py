"""Prints one JSON line per input: what a reader or benchmark loader finds in it (counts, skips, damage,
first record).

    python -m experiments.inspect_data --kind=pubmed_xml ../shared/data/pubmed/*.xml*
    {"path": "...", "kind": "pubmed_xml", "records": 604, "with_text": 526, "skipped": {...}, ...}
    python -m experiments.inspect_data --kind=medmcqa ../shared/data/medmcqa/dev.json
    {"path": "...", "kind": "medmcqa", "records": 4183, "loaded": 4183, "skipped": {}, "info": {"cop_base": 1, ...},
     "answer_distribution": {"A": 1348, ...}, "options_count": {"4": 4183}, "first_question": {...}}

Use it to check a corpus file before building on it (a truncated download shows `"truncated": true`), and a
benchmark before evaluating on it (a skewed answer distribution, skipped questions, the MedMCQA cop base).
Benchmark kinds (medqa, medmcqa, pubmedqa, mmlu, bioasq, usmle) also take folders, and --split.
"""

import functools
import json
import os

from absl import app, flags

from biomed_jax import cli
from biomed_jax.data.benchmarks import KINDS as BENCHMARK_KINDS
from biomed_jax.data.benchmarks import load_benchmark, summarize
from biomed_jax.data.readers import READERS, ReadReport, read_documents
from biomed_jax.logs import quiet_library_logs

FIRST_TEXT_CHARS = 300


def inspect_documents(kind: str, path: str) -> dict:
    """Reads the whole file with the `kind` document reader; its report plus a preview of the first document."""
    report = ReadReport()
    first = None
    for document in read_documents(kind, path, report):
        if first is None:
            first = {"id": document.id, "title": document.title, "text": document.text[:FIRST_TEXT_CHARS],
                     "meta": document.meta}
    summary = report.to_dict()
    return {"path": path, "kind": kind, **{key: value for key, value in summary.items() if key != "path"},
            "first_record": first}


def inspect_benchmark(kind: str, path: str, **options) -> dict:
    """Loads `path` with the `kind` benchmark loader; its report, the answer and options-count
    distributions, and the first question as a dict."""
    questions, report = load_benchmark(kind, path, **options)
    summary = report.to_dict()
    return {"path": path, "kind": kind, **{key: value for key, value in summary.items() if key != "path"},
            **summarize(questions), "first_question": questions[0].to_dict() if questions else None}


# kind -> function(path, **options) -> JSON-serialisable summary.
INSPECTORS = {kind: functools.partial(inspect_documents, kind) for kind in READERS}
INSPECTORS.update({kind: functools.partial(inspect_benchmark, kind) for kind in BENCHMARK_KINDS})

_KIND = flags.DEFINE_enum("kind", None, sorted(INSPECTORS), "How to read the files.")
_SPLIT = flags.DEFINE_string("split", None, "Benchmark split: pubmedqa test|train|all, mmlu test|dev|val, medqa or "
                             "medmcqa the {split} file of a folder, usmle the step file of a folder.")
_COP_BASE = flags.DEFINE_enum("cop_base", None, ["auto", "0", "1"], "medmcqa only: base of `cop` (auto detects).")


def _options(kind: str) -> dict:
    """The loader options given on the command line; an option the kind does not take is a usage error."""
    options = {}
    if _SPLIT.value is not None:
        if kind not in BENCHMARK_KINDS or kind == "bioasq":
            raise app.UsageError(f"--split does not apply to --kind={kind}")
        options["split"] = _SPLIT.value
    if _COP_BASE.value is not None:
        if kind != "medmcqa":
            raise app.UsageError(f"--cop_base applies to --kind=medmcqa only, not {kind}")
        options["cop_base"] = _COP_BASE.value if _COP_BASE.value == "auto" else int(_COP_BASE.value)
    return options


def main(argv):
    quiet_library_logs()
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give one or more files to inspect after the flags")
    kind = _KIND.value
    options = _options(kind)
    benchmark = kind in BENCHMARK_KINDS
    missing = [path for path in paths if not (os.path.exists(path) if benchmark else os.path.isfile(path))]
    if missing:
        raise FileNotFoundError(
            f"{'input' if benchmark else 'file'} not found: {', '.join(missing)}"
            + ("" if benchmark else " (pass existing files, not folders)"))
    for path in paths:
        try:
            summary = INSPECTORS[kind](path, **options)
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"{path}: {err}") from err
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    flags.mark_flags_as_required(["kind"])
    cli.run(main)

"""Prints one JSON line per input file: what a reader finds in it (counts, skips, damage, first record).

    python -m experiments.inspect --kind=pubmed_xml ../shared/data/pubmed/*.xml*
    {"path": "...", "kind": "pubmed_xml", "records": 604, "with_text": 526, "skipped": {...}, ...}

Use it to check a corpus file before building on it: a truncated download shows `"truncated": true`.
"""

import functools
import json
import os
import sys

from absl import app, flags

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


# kind -> function(path) -> JSON-serialisable summary; other input kinds (benchmarks) add entries here.
INSPECTORS = {kind: functools.partial(inspect_documents, kind) for kind in READERS}

_KIND = flags.DEFINE_enum("kind", None, sorted(INSPECTORS), "How to read the files.")


def main(argv):
    quiet_library_logs()
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give one or more files to inspect after the flags")
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        sys.exit(f"inspect: file not found: {', '.join(missing)} (pass existing files, not folders)")
    for path in paths:
        print(json.dumps(INSPECTORS[_KIND.value](path)), flush=True)


if __name__ == "__main__":
    flags.mark_flags_as_required(["kind"])
    app.run(main)

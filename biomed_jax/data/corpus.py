"""The cleaned corpus: every configured source read, cleaned and deduplicated once, kept as JSON lines.

Stage one of data preparation (the tokenizer trains on it, the TFDS builder mixes and tokenizes it).
Output, under WORK_DIR/clean/: one `<source>.jsonl` per source ({id, text, title, source, split}),
`settings.json` (what the output depends on: a rerun with other settings is refused, naming them) and
`clean_report.json` (reader reports per file, every filter's counts, deleted PMIDs), written last
into a temporary folder that is renamed into place (in an object store, moved file by file with the
report last): a half-built stage never looks finished. WORK_DIR and the raw files may be in an object
store (biomed_jax/files.py).
Documents are assigned to train/validation by a stable hash of `source:id`, independent of the seed.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from typing import Any, Iterator, Mapping

from absl import logging

from biomed_jax import files as fs
from biomed_jax.data import decontaminate
from biomed_jax.data.clean import Cleaner
from biomed_jax.data.readers import READERS, Document, ReadReport, read_documents
from biomed_jax.run_dir import ensure_same_settings, read_json, write_json
from biomed_jax.synthetic.generate import generate_world

SPLITS = ("train", "validation")
ENGINES = ("local", "beam")
REPORT = "clean_report.json"
DECONTAMINATION = "decontamination.json"
SETTINGS = "settings.json"


def check_data_config(cfg: Mapping[str, Any]) -> None:
    """Fails early, naming the field, on a data config that cannot work."""
    sources = cfg.get("sources")
    if not sources:
        raise ValueError("data config has no `sources`; add at least one (see configs/data.py)")
    for name, source in sources.items():
        if source.get("kind") not in READERS:
            raise ValueError(f"sources.{name}.kind must be one of {sorted(READERS)}, got {source.get('kind')!r}")
        if not str(source.get("paths", "")).strip():
            raise ValueError(f"sources.{name}.paths is empty; give comma-separated file globs")
        epochs, fraction = float(source.get("epochs", 1.0)), float(source.get("fraction", 0.0))
        if epochs < 0:
            raise ValueError(f"sources.{name}.epochs must be >= 0, got {epochs}")
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"sources.{name}.fraction must be in [0, 1), got {fraction}")
    total_fraction = sum(float(s.get("fraction", 0.0)) for s in sources.values())
    if total_fraction >= 1.0:
        raise ValueError(f"the sources' `fraction` values sum to {total_fraction}; they must sum to < 1")
    if all(float(s.get("fraction", 0.0)) > 0 for s in sources.values()):
        raise ValueError("every source has a `fraction`; at least one must be sized by `epochs`")
    if cfg.get("engine", "local") not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {cfg.get('engine')!r}")
    validation_fraction = float(cfg["split"]["validation_fraction"])
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"split.validation_fraction must be in [0, 1), got {validation_fraction}")


def world_dir(work_dir: str) -> str:
    """Where the synthetic world is generated when no `manual_dir` is given."""
    return fs.join(work_dir, "manual", "synthetic_world")


def resolve_manual_dir(cfg: Mapping[str, Any], default_root: str) -> str:
    """The folder relative source paths point into; generates the synthetic world there if asked."""
    manual_dir = cfg.get("manual_dir") or ""
    if cfg.get("generate_world"):
        manual_dir = manual_dir or world_dir(default_root)
        if fs.is_remote(manual_dir):
            raise ValueError(f"generate_world writes the synthetic world to a local folder, not {manual_dir!r}: "
                             f"give a local --config.manual_dir (copy it to the bucket afterwards if needed)")
        generate_world(manual_dir, dict(cfg["world"]))
    if not manual_dir:
        raise ValueError("data config has no `manual_dir`: pass --config.manual_dir=FOLDER holding the raw files")
    if not fs.is_remote(manual_dir) and not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"manual_dir {manual_dir!r} does not exist; it should hold the raw source files")
    return manual_dir


def source_files(name: str, source: Mapping[str, Any], manual_dir: str) -> list[str]:
    """The sorted files matched by a source's comma-separated globs; none matched is an error."""
    files: set[str] = set()
    patterns = [p.strip() for p in str(source["paths"]).split(",") if p.strip()]
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) or fs.is_remote(pattern) else fs.join(manual_dir, pattern)
        files.update(fs.match(full))
    if not files:
        raise FileNotFoundError(
            f"sources.{name}.paths={source['paths']!r} matched no files under {manual_dir!r}; "
            f"check --config.manual_dir and the globs")
    return sorted(files)


def split_of(source: str, doc_id: str, validation_fraction: float) -> str:
    """'train' or 'validation' from a stable hash of `source:id` (the same on every machine and run)."""
    digest = hashlib.sha256(f"{source}:{doc_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if u < validation_fraction else "train"


@dataclasses.dataclass
class CleanCorpus:
    """A finished clean stage: per-source JSON-lines files, their report and the settings they were
    cleaned with (`clean_settings`; a tokenizer trained on the corpus records them)."""

    directory: str
    report: dict
    settings: dict

    @property
    def sources(self) -> list[str]:
        return list(self.report["sources"])

    def paths(self, source: str) -> list[str]:
        """The source's JSON-lines files: one from the in-process engine, shards from Beam."""
        single = fs.join(self.directory, f"{source}.jsonl")
        shards = fs.match(fs.join(glob.escape(self.directory), f"{glob.escape(source)}-*-of-*.jsonl"))
        return ([single] if fs.exists(single) else []) + shards

    def iter_documents(self, split: str | None = None, sources: list[str] | None = None) -> Iterator[Document]:
        """Cleaned documents of `split` (None = both), source by source (sorted by name)."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for source in sources or self.sources:
            for path in self.paths(source):
                with fs.open_text(path) as f:
                    for line in f:
                        record = json.loads(line)
                        if split is None or record["split"] == split:
                            yield Document(id=record["id"], text=record["text"], title=record["title"],
                                           source=source, meta={"split": record["split"]})


def load_clean_corpus(work_dir: str) -> CleanCorpus | None:
    """WORK_DIR/clean as it was built, or None where no clean stage finished there."""
    directory = fs.join(work_dir, "clean")
    if not fs.exists(fs.join(directory, REPORT)):
        return None
    return CleanCorpus(directory, read_json(fs.join(directory, REPORT), "clean report"),
                       read_json(fs.join(directory, SETTINGS), "cleaned corpus settings"))


def clean_corpus(cfg: Mapping[str, Any], work_dir: str, progress: bool = False, beam_options: str = "") -> CleanCorpus:
    """Runs (or reuses) the clean stage for data config `cfg` into WORK_DIR/clean/: in this process
    (`engine` local) or as an Apache Beam pipeline (`engine` beam, run with `beam_options`, TFDS's
    comma-separated format); both keep the same documents and write the same report."""
    check_data_config(cfg)
    settings = clean_settings(cfg)
    final_dir = fs.join(work_dir, "clean")
    if fs.exists(fs.join(final_dir, REPORT)):
        ensure_same_settings(fs.join(final_dir, SETTINGS), settings, "a cleaned corpus",
                             hint="use a different work directory, or delete this one to rebuild it")
        return load_clean_corpus(work_dir)
    manual_dir = resolve_manual_dir(cfg, work_dir)
    files = {name: source_files(name, source, manual_dir) for name, source in cfg["sources"].items()}
    tmp_dir = f"{final_dir}.tmp-{os.getpid()}"
    fs.rmtree(tmp_dir)
    ensure_same_settings(fs.join(tmp_dir, SETTINGS), settings, "a cleaned corpus")  # records them
    if cfg.get("engine", "local") == "beam":
        from biomed_jax.data.beam_engine import run_clean   # imports apache_beam: only when engine=beam

        result = run_clean(cfg, files, tmp_dir, beam_options, manual_dir)
        return _finish(cfg, tmp_dir, final_dir, manual_dir, settings, files, result["cleaner"], result["kept"],
                       result["files"], result["deleted_ids"], result["deleted_dropped"], result["decontamination"])
    cleaner = Cleaner(dict(cfg["clean"]), seed=int(cfg["seed"]), priorities=source_priorities(cfg))
    validation_fraction = float(cfg["split"]["validation_fraction"])
    file_reports, deleted_ids, prepared = [], set(), []
    # Pass 1: read, normalise, filter, hash; the texts wait on disk while only hashes stay in memory.
    staged = fs.join(tmp_dir, "staged.jsonl")
    with fs.open_text(staged, "w") as out:
        for name, source in cfg["sources"].items():
            for path in _progress(files[name], progress, f"clean {name}"):
                report = ReadReport(path=path)
                for doc in read_documents(source["kind"], path, report):
                    doc.source = name
                    item = cleaner.prepare(doc)
                    if item is None:
                        continue
                    out.write(json.dumps(document_record(item.doc, validation_fraction), ensure_ascii=False) + "\n")
                    item.doc = dataclasses.replace(item.doc, text="", title="")
                    prepared.append(item)
                deleted_ids.update(report.deleted_ids)
                file_reports.append(report.to_dict())
                if report.error or report.truncated:
                    logging.warning("%s: %s (truncated=%s); kept the %d records before it",
                                    path, report.error, report.truncated, report.with_text)
    # The keeper rule over the whole corpus, then pass 2 checks the survivors against the benchmarks'
    # test questions and writes them source by source.
    dropped = cleaner.decide(prepared)
    section, index, decontam = decontamination(cfg, manual_dir)
    kept = {name: zero_split_counts() for name in cfg["sources"]}
    outputs = {name: fs.open_text(fs.join(tmp_dir, f"{name}.jsonl"), "w") for name in cfg["sources"]}
    try:
        with fs.open_text(staged) as f:
            for position, line in enumerate(f):
                if position in dropped:
                    continue
                cleaner.kept(prepared[position].doc.source, prepared[position].chars)
                record = json.loads(line)
                if index is not None:
                    hits = index.hits(record["text"])
                    decontam.add(record["source"], record["id"], hits)
                    if hits and section["action"] == "drop":
                        continue
                count_split(kept[record["source"]], record)
                outputs[record["source"]].write(line)
    finally:
        for out in outputs.values():
            out.close()
    fs.remove(staged)
    deleted_dropped = _drop_deleted(tmp_dir, cfg["sources"], deleted_ids, kept) if deleted_ids else 0
    return _finish(cfg, tmp_dir, final_dir, manual_dir, settings, files, cleaner, kept, file_reports, deleted_ids,
                   deleted_dropped, decontam.to_dict() if decontam is not None else None)


def decontamination(cfg: Mapping[str, Any], manual_dir: str):
    """(the `decontam` section validated, its n-gram index, an empty report), index and report None when
    the stage is off (no `decontam.benchmarks`). An empty `decontam.data_root` is `manual_dir` (the
    synthetic world writes its benchmark files beside its corpus)."""
    section = dict(_plain(cfg.get("decontam")) or {})
    section["data_root"] = section.get("data_root") or manual_dir
    section = decontaminate.validate(section)
    if not section["benchmarks"]:
        return section, None, None
    index = decontaminate.build_index(section)
    return section, index, decontaminate.DecontamReport.for_index(index, section)


def _finish(cfg, tmp_dir: str, final_dir: str, manual_dir: str, settings: dict, files: Mapping[str, list],
            cleaner: Cleaner, kept: dict, file_reports: list, deleted_ids: set, deleted_dropped: int,
            decontam: dict | None) -> CleanCorpus:
    """Checks what survived, writes clean_report.json (and decontamination.json) and moves the finished
    stage into place."""
    if decontam is not None:
        write_json(fs.join(tmp_dir, DECONTAMINATION), decontam)
        logging.info("decontamination: %d of %d documents contain test questions (%s); %s",
                     decontam["documents_hit"], decontam["documents_checked"],
                     ", ".join(f"{name} {b['questions_hit']}" for name, b in decontam["benchmarks"].items()),
                     f"dropped {decontam['documents_dropped']}" if decontam["action"] == "drop" else "kept")
    for name, counts in kept.items():
        if counts["train"] + counts["validation"] == 0:
            logging.warning("sources.%s: no document kept from %d file(s); see %s in the clean report",
                            name, len(files[name]), REPORT)
    if not any(c["train"] for c in kept.values()):
        fs.rmtree(tmp_dir)
        raise ValueError(f"no training document survived reading and cleaning of {sum(map(len, files.values()))} "
                         f"file(s) under {manual_dir!r}: check the files (python -m experiments.inspect_data) and the "
                         f"clean.min_chars / clean.min_words settings")
    report = {
        "manual_dir": fs.absolute(manual_dir),
        "sources": kept,
        "filters": cleaner.report(),
        "deleted_citations": {"pmids": len(deleted_ids), "documents_dropped": deleted_dropped},
        "files": file_reports,
    }
    write_json(fs.join(tmp_dir, REPORT), report)
    fs.move_tree(tmp_dir, final_dir, last=REPORT)
    return CleanCorpus(final_dir, report, settings)


def _drop_deleted(directory: str, sources: Mapping[str, Any], deleted_ids: set, kept: dict) -> int:
    """Removes PubMed documents whose PMID a DeleteCitation block (in any file) withdrew."""
    dropped = 0
    for name, source in sources.items():
        if source["kind"] != "pubmed_xml":
            continue
        path = fs.join(directory, f"{name}.jsonl")
        with fs.open_text(path) as f, fs.open_text(path + ".new", "w") as out:
            for line in f:
                record = json.loads(line)
                if record["id"] in deleted_ids:
                    dropped += 1
                    kept[name][record["split"]] -= 1
                    kept[name][f"chars_{record['split']}"] -= len(record["text"])
                    continue
                out.write(line)
        fs.rename(path + ".new", path)
    return dropped


def source_priorities(cfg: Mapping[str, Any]) -> dict[str, int]:
    """{source: rank} in the config's order: where copies of a document sit in several sources, the first
    source's copy is kept (PubMed before guidelines before replay, as configs/data.py lists them)."""
    return {name: rank for rank, name in enumerate(cfg["sources"])}


def document_record(doc: Document, validation_fraction: float) -> dict:
    """A cleaned document as its JSON line ({id, text, title, source, split})."""
    return {"id": doc.id, "text": doc.text, "title": doc.title, "source": doc.source,
            "split": split_of(doc.source, doc.id, validation_fraction)}


def zero_split_counts() -> dict[str, int]:
    return {"train": 0, "validation": 0, "chars_train": 0, "chars_validation": 0}


def count_split(counts: dict[str, int], record: Mapping[str, Any]) -> None:
    counts[record["split"]] += 1
    counts[f"chars_{record['split']}"] += len(record["text"])


def clean_settings(cfg: Mapping[str, Any]) -> dict:
    """What the clean stage's output depends on (sources, manual dir, world, clean and split settings), as
    plain JSON values."""
    keys = ("sources", "manual_dir", "generate_world", "world", "clean", "split", "seed", "decontam")
    return json.loads(json.dumps({k: _plain(cfg[k]) for k in keys if k in cfg}, default=str))


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="file")

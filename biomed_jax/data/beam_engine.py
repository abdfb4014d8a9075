"""Data preparation on Apache Beam (`engine` beam): the same documents kept, the same report and the same
tokens as the in-process engine (biomed_jax/data/corpus.py, token_dataset.py), at any scale, on any Beam
runner (DirectRunner here; Dataflow, Flink or Spark on a cluster).

The clean stage (`run_clean`):

    files -> read + normalise + filter + hash (a DoFn per file: readers.py and Cleaner.prepare)
          -> exact dedup: GroupByKey(exact hash -> document key), every key but the smallest (source
             priority, id, hash) dropped
          -> near dedup: one (bucket, document) per LSH band (a document: its key and read position),
             GroupByKey(bucket), each bucket's pairs counted (CombinePerKey), each pair joined with both
             documents' sketches (two CoGroupByKeys) and verified (clean.similarity), the smallest
             verified smaller neighbour per document (CombinePerKey(min))
          -> the drops applied as side inputs -> benchmark decontamination (the n-gram index shipped with
             the DoFn; reports combined) -> PubMed deletions dropped (a side input)
          -> per source, JSON lines in shards: OUT_DIR/<source>-SSSSS-of-NNNNN.jsonl

No step holds the corpus in one place: the dedup index is the shuffle, and only keys and sketches go
through it (each sketch twice, not once per band); the texts stay where they were read until the few
dropped keys (side inputs) are known. The filters' counts are made per
bundle and combined (a bundle a runner retries has its outputs discarded with it, so it is counted
once), and only those small combined counts come back to the driver, which writes clean_report.json.
They equal the in-process engine's: tests build the synthetic world and the real PubMed files both ways
and compare kept ids and reports.

The token dataset (`dataset_examples`): TFDS's Beam support runs a PTransform per split (read the clean
shards, mix, tokenize) and writes the array_record shards itself.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from biomed_jax import files as fs
from biomed_jax.data import mixture
from biomed_jax.data.clean import Cleaner, band_keys, similarity
from biomed_jax.data.corpus import decontamination, source_priorities, split_of, zero_split_counts
from biomed_jax.data.readers import ReadReport, read_documents
from biomed_jax.data.tokenizer import load_tokenizer
from biomed_jax.run_dir import write_json

_COUNTS, _FILES = "counts", "files"


def pipeline_options(options: str):
    """Beam PipelineOptions from TFDS's comma-separated format, e.g.
    "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"."""
    flags = [f"--{item.strip()}" for item in options.split(",") if item.strip()]
    return PipelineOptions(flags)


def _counter(seed: int) -> Cleaner:
    """A Cleaner used only to count (no MinHash permutations to build or ship)."""
    return Cleaner({"near_dedup": False}, seed)


class _ReadAndPrepare(beam.DoFn):
    """DoFn: one (source, kind, path) -> its documents, normalised, filtered and hashed; the file's read
    report and the bundle's filter counts (seen, empty, too_short, characters) as side outputs."""

    def __init__(self, clean_options: Mapping[str, Any], seed: int, priorities: Mapping[str, int],
                 validation_fraction: float):
        self.clean_options, self.seed, self.priorities = dict(clean_options), seed, dict(priorities)
        self.validation_fraction = validation_fraction

    def setup(self):
        self.cleaner = None

    def start_bundle(self):
        self.cleaner = Cleaner(self.clean_options, self.seed, self.priorities)

    def process(self, item):
        name, kind, path = item
        report = ReadReport(path=path)
        for n, doc in enumerate(read_documents(kind, path, report)):
            doc.source = name
            prepared = self.cleaner.prepare(doc)
            if prepared is None:
                continue
            # uid tells apart two copies of one record (same source, id and text: equal keys)
            yield {"key": prepared.key, "uid": f"{path}#{n}", "exact": prepared.exact, "chars": prepared.chars,
                   "sketch": None if prepared.sketch is None else prepared.sketch.tobytes(),
                   "record": {"id": prepared.doc.id, "text": prepared.doc.text, "title": prepared.doc.title,
                              "source": name, "split": split_of(name, prepared.doc.id, self.validation_fraction)}}
        yield beam.pvalue.TaggedOutput(_FILES, [self.priorities.get(name, 0), path, report.to_dict(),
                                                sorted(report.deleted_ids)])

    def finish_bundle(self):
        yield beam.pvalue.TaggedOutput(_COUNTS, WindowedValue(self.cleaner.partial(), 0, [GlobalWindow()]))


class _Counts(beam.CombineFn):
    """Combines the filters' counts: bundle partials, kept documents' characters and drop records, into
    one Cleaner partial (JSON values) for the driver's report."""

    def __init__(self, seed: int):
        self.seed = seed

    def create_accumulator(self):
        return _counter(self.seed)

    def add_input(self, counter: Cleaner, item):
        kind, value = item
        if kind == "partial":
            counter.add_partial(value)
        elif kind == "kept":
            counter.kept(*value)
        else:
            key, duplicate_of = value
            key = tuple(key)
            counter.dropped(key, key[1], key[2], kind, duplicate_of)
        return counter

    def merge_accumulators(self, counters):
        merged = _counter(self.seed)
        for counter in counters:
            merged.add_partial(counter.partial())
        return merged

    def extract_output(self, counter: Cleaner):
        return counter.partial()


def _exact_drops(item):
    """One exact group (hash, [(document key, uid)]) -> (uid, (key, the keeper's "source/id")) for all but
    the smallest (key, uid)."""

    _, members = item
    members = sorted(members)
    for key, uid in members[1:]:
        yield uid, (key, _name(members[0][0]))


def _name(key) -> str:
    """The "source/id" a document key names (key = (priority, source, id, hash))."""
    return f"{key[1]}/{key[2]}"


def _bucket_keys(item, bands: int, rows: int):
    document, sketch = item
    for bucket in band_keys(np.frombuffer(sketch, dtype=np.uint32), bands, rows):
        yield bucket, document


def _bucket_pairs(item):
    """One LSH bucket -> ((smaller, larger), 1) for each pair of documents in it: the in-process engine
    compares every pair of every bucket (clean.near_drops), so a pair in k buckets counts k comparisons."""
    _, documents = item
    documents = sorted(documents)
    for i, larger in enumerate(documents):
        for smaller in documents[:i]:
            yield (smaller, larger), 1


def _with_larger_sketch(item):
    """(larger, {sketch, pairs: [(smaller, times)]}) -> (smaller, (larger, times, larger's sketch))."""
    larger, grouped = item
    for sketch in grouped["sketch"]:
        for smaller, times in grouped["pairs"]:
            yield smaller, (larger, times, sketch)


def _verify_pairs(item, threshold: float):
    """(smaller, {sketch, pairs: [(larger, times, its sketch)]}) -> (larger, smaller) for every verified
    pair, and the comparison counts (times per pair, as clean.near_drops counts them) as a side output."""
    smaller, grouped = item
    if not grouped["pairs"]:
        return
    checked = below = 0
    for sketch in grouped["sketch"]:
        mine = np.frombuffer(sketch, dtype=np.uint32)
        for larger, times, other in grouped["pairs"]:
            checked += times
            if similarity(mine, np.frombuffer(other, dtype=np.uint32)) >= threshold:
                yield larger, smaller
            else:
                below += times
    yield beam.pvalue.TaggedOutput(_COUNTS, ("partial", {"sources": {}, "chars": {}, "examples": {},
                                                         "candidates": {"checked": checked,
                                                                        "below_threshold": below}}))


def _not_dropped(doc, dropped, field: str = ""):
    """Whether a document is not among `dropped` (a side input): by its uid, or by (key, uid)."""
    return (doc[field] if field else (tuple(doc["key"]), doc["uid"])) not in dropped


class _Decontaminate(beam.DoFn):
    """Checks each kept document against the benchmarks' n-gram index (shipped with the DoFn); with
    action drop, documents containing a test question leave the corpus. Each check is a side output."""

    def __init__(self, index, action: str):
        self.index, self.action = index, action

    def process(self, doc):
        record = doc["record"]
        hits = self.index.hits(record["text"])
        yield beam.pvalue.TaggedOutput("hits", (record["source"], record["id"],
                                                {name: sorted(ids) for name, ids in hits.items()}))
        if not (hits and self.action == "drop"):
            yield doc


class _DecontamCounts(beam.CombineFn):
    """DecontamReport as a CombineFn: every check added, partial reports merged, its dict extracted."""

    def __init__(self, empty_report):
        self.empty = empty_report

    def create_accumulator(self):
        import copy

        return copy.deepcopy(self.empty)

    def add_input(self, report, check):
        source, doc_id, hits = check
        report.add(source, doc_id, {name: set(ids) for name, ids in hits.items()})
        return report

    def merge_accumulators(self, reports):
        reports = list(reports)
        for other in reports[1:]:
            reports[0].merge(other)
        return reports[0]

    def extract_output(self, report):
        return report.to_dict()


def _without_deleted(doc, deleted, pubmed_sources):
    """Drops PubMed documents a DeleteCitation (in any file) withdrew; they count as deleted."""

    record = doc["record"]
    if record["source"] in pubmed_sources and record["id"] in deleted:
        yield beam.pvalue.TaggedOutput("deleted", 1)
    else:
        yield record


def run_clean(cfg: Mapping[str, Any], files: Mapping[str, list[str]], out_dir: str, options: str,
              manual_dir: str) -> dict:
    """Runs the Beam clean pipeline over `files` ({source: paths}), writing each source's kept documents
    into OUT_DIR as JSON-lines shards. Returns what the driver needs for the report: {"cleaner": the
    combined counts, "files": the read reports in the in-process engine's order, "deleted_ids",
    "kept": {source: split counts}, "deleted_dropped", "decontamination": its report or None}."""
    priorities = source_priorities(cfg)
    driver = Cleaner(dict(cfg["clean"]), seed=int(cfg["seed"]), priorities=priorities)
    opts, seed = driver.options, driver.seed
    names = list(cfg["sources"])
    pubmed = [name for name in names if cfg["sources"][name]["kind"] == "pubmed_xml"]
    items = [(name, cfg["sources"][name]["kind"], path) for name in names for path in files[name]]
    results = fs.join(out_dir, "_results")
    with beam.Pipeline(options=pipeline_options(options)) as pipeline:
        read = (pipeline | "files" >> beam.Create(items) | "spread files" >> beam.Reshuffle()
                | "read and prepare" >> beam.ParDo(_ReadAndPrepare(
                    opts, seed, priorities, float(cfg["split"]["validation_fraction"])))
                .with_outputs(_COUNTS, _FILES, main="docs"))
        docs = read.docs
        counts = [read[_COUNTS] | "partials" >> beam.Map(lambda partial: ("partial", partial))]
        if opts["exact_dedup"]:
            exact = (docs | "by exact hash" >> beam.Map(lambda d: (d["exact"], (tuple(d["key"]), d["uid"])))
                     | "group exact" >> beam.GroupByKey() | "exact drops" >> beam.FlatMap(_exact_drops))
            counts.append(exact | "exact counts" >> beam.Map(lambda drop: ("exact_duplicate", drop[1])))
            docs = docs | "drop exact" >> beam.Filter(_not_dropped, beam.pvalue.AsDict(exact), "uid")
        if opts["near_dedup"]:
            # A document is (key, uid) here: two copies of one record (equal keys, kept by exact_dedup false)
            # are two documents, as in process, where the second is the first's near duplicate.
            sketches = docs | "sketches" >> beam.Map(lambda d: ((tuple(d["key"]), d["uid"]), d["sketch"]))
            pairs = (sketches | "buckets" >> beam.FlatMap(_bucket_keys, driver.bands, driver.rows)
                     | "group buckets" >> beam.GroupByKey() | "bucket pairs" >> beam.FlatMap(_bucket_pairs)
                     | "count pairs" >> beam.CombinePerKey(sum)
                     | "by larger" >> beam.Map(lambda pair: (pair[0][1], (pair[0][0], pair[1]))))
            with_larger = ({"sketch": sketches, "pairs": pairs} | "join larger" >> beam.CoGroupByKey()
                           | "larger sketch" >> beam.FlatMap(_with_larger_sketch))
            verified = ({"sketch": sketches, "pairs": with_larger} | "join smaller" >> beam.CoGroupByKey()
                        | "verify" >> beam.FlatMap(_verify_pairs, opts["jaccard_threshold"])
                        .with_outputs(_COUNTS, main="near"))
            counts.append(verified[_COUNTS])
            nearest = verified.near | "nearest" >> beam.CombinePerKey(min)
            counts.append(nearest | "near counts" >> beam.Map(
                lambda drop: ("near_duplicate", (drop[0][0], _name(drop[1][0])))))
            docs = docs | "drop near" >> beam.Filter(_not_dropped, beam.pvalue.AsDict(nearest))
        counts.append(docs | "kept chars" >> beam.Map(lambda d: ("kept", (d["record"]["source"], d["chars"]))))
        section, index, report = decontamination(cfg, manual_dir)
        if index is not None:
            checked = (docs | "decontaminate" >> beam.ParDo(_Decontaminate(index, section["action"]))
                       .with_outputs("hits", main="docs"))
            docs = checked.docs
            _write(checked.hits | "combine decontamination" >> beam.CombineGlobally(_DecontamCounts(report)),
                   results, "decontamination")
        deleted = read[_FILES] | "deleted ids" >> beam.FlatMap(lambda item: item[3])
        final = (docs | "drop deleted" >> beam.FlatMap(_without_deleted, beam.pvalue.AsList(deleted), pubmed)
                 .with_outputs("deleted", main="records"))
        records = final.records
        by_source = records | "by source" >> beam.Partition(lambda r, n: names.index(r["source"]), len(names))
        for index, name in enumerate(names):
            (by_source[index] | f"json {name}" >> beam.Map(json.dumps, ensure_ascii=False)
             | f"write {name}" >> beam.io.WriteToText(fs.join(out_dir, name), file_name_suffix=".jsonl"))
        splits = (records | "split sizes" >> beam.Map(
            lambda r: ((r["source"], r["split"]), (1, len(r["text"])))) | "sum splits" >> beam.CombinePerKey(
                lambda pairs: tuple(map(sum, zip(*pairs)))))
        _write(splits, results, "splits")
        _write(final.deleted | "count deleted" >> beam.combiners.Count.Globally(), results, "deleted")
        _write(read[_FILES], results, "files")
        _write(counts | "all counts" >> beam.Flatten() | "combine counts" >> beam.CombineGlobally(_Counts(seed)),
               results, "counts")
    return _results(cfg, driver, results)


def _write(pcoll, results: str, name: str) -> None:
    (pcoll | f"json {name} result" >> beam.Map(json.dumps)
     | f"write {name} result" >> beam.io.WriteToText(fs.join(results, name), file_name_suffix=".jsonl"))


def _read(results: str, name: str) -> list:
    values = []
    for path in fs.match(fs.join(results, f"{name}-*.jsonl")):
        with fs.open_text(path) as f:
            values += [json.loads(line) for line in f]
    return values


def _results(cfg: Mapping[str, Any], driver: Cleaner, results: str) -> dict:
    for partial in _read(results, "counts"):
        driver.add_partial(partial)
    files = sorted(_read(results, "files"), key=lambda item: (item[0], item[1]))
    kept = {name: zero_split_counts() for name in cfg["sources"]}
    for (source, split), (n, chars) in _read(results, "splits"):
        kept[source][split] += n
        kept[source][f"chars_{split}"] += chars
    deleted_dropped = sum(_read(results, "deleted"))
    decontam = _read(results, "decontamination")
    fs.rmtree(results)
    return {"cleaner": driver, "files": [report for _, _, report, _ in files],
            "deleted_ids": {pmid for *_, ids in files for pmid in ids}, "kept": kept,
            "deleted_dropped": deleted_dropped, "decontamination": decontam[0] if decontam else None}


# --- the token dataset: mixture, tokenization, TFDS's array_record write -----------------------------


def dataset_examples(paths: list[str], split: str, epochs: Mapping[str, float], seed: int, tokenizer_path: str,
                     counts_path: str) -> beam.PTransform:
    """One split's examples as a PTransform for TFDS's Beam support (token_dataset.BiomedCorpus), made as
    the in-process engine makes them (same keys, same tokens): the clean corpus's JSON lines read in
    parallel, each document repeated per the mixture (mixture.copies), tokenized by workers that each
    load the tokenizer once. Per-source counts are written to `counts_path` (JSON) for the driver to put
    into the dataset's metadata."""

    @beam.ptransform_fn
    def examples(root):
        records = (root | "paths" >> beam.Create(paths) | "read" >> beam.io.ReadAllFromText()
                   | "parse" >> beam.Map(json.loads) | "split" >> beam.Filter(lambda r: r["split"] == split))
        keyed = (records | "mix" >> beam.FlatMap(_copies, seed, dict(epochs))
                 | "tokenize" >> beam.ParDo(_Tokenize(tokenizer_path)))
        (keyed | "sizes" >> beam.Map(lambda kv: (kv[1]["source"], (1, len(kv[1]["tokens"]))))
         | "sum sizes" >> beam.CombinePerKey(lambda pairs: tuple(map(sum, zip(*pairs))))
         | "all sizes" >> beam.combiners.ToList()
         | "write sizes" >> beam.Map(_write_counts, counts_path, sorted(epochs)))
        return keyed

    return examples()


def _copies(record: Mapping[str, Any], seed: int, epochs: Mapping[str, float]):
    source = record["source"]
    for copy in range(mixture.copies(seed, source, record["id"], epochs[source])):
        yield f"{source}:{record['id']}:{copy}", record


def _write_counts(sizes: list, path: str, sources: list[str]) -> None:
    """Per-source {documents, tokens}; a source with no example in the split counts zeros, as in-process."""
    found = dict(sizes)
    write_json(path, {source: dict(zip(("documents", "tokens"), found.get(source, (0, 0)))) for source in sources})


class _Tokenize(beam.DoFn):
    """(key, record) -> (key, example) with the record's tokens; documents that tokenize to nothing are
    left out, as the in-process engine leaves them out."""

    def __init__(self, tokenizer_path: str):
        self.tokenizer_path = tokenizer_path

    def setup(self):
        self.tokenizer = load_tokenizer(self.tokenizer_path)

    def process(self, item):
        key, record = item
        tokens = self.tokenizer.encode(record["text"], add_special_tokens=False).ids
        if tokens:
            yield key, {"tokens": np.asarray(tokens, np.int32), "id": record["id"], "source": record["source"]}

"""Data preparation on Apache Beam (`engine` beam): the same documents kept, the same report and the same
tokens as the in-process engine (biomed_jax/data/corpus.py, token_dataset.py), at any scale, on any Beam
runner (DirectRunner here; Dataflow, Flink or Spark on a cluster).

The clean stage (`run_clean`) works as the in-process engine does (the texts wait on disk while only
hashes move), file by file:

    files -> read + normalise + filter + hash (a DoFn per file: readers.py and Cleaner.prepare); the
             prepared records go to the file's spill, and out come 32-bit fingerprints of its exact
             hashes and LSH band values, in one batch per file and shuffle key (_entries)
          -> GroupByKey, one shuffle per table (the exact hashes, each band): the fingerprints more than
             one document has, per key (a few percent)
          -> a DoFn per spilled file (the shared fingerprints a side input) sends on the full entries of
             those documents only: (key, position) for exact keys, (band values, position) for band keys
          -> exact dedup: GroupByKey(split of the hash); of each hash's documents all but the smallest
             (source priority, id, hash; then reading position) are dropped
          -> near dedup: GroupByKey(band and split), one shuffle per band; the pairs of each bucket
             (equal band values) go to their first document's file, where each pair is counted once
             (with the buckets it shares) and the first document's key and sketch are read from the
             spill and sent, batched per pair of files, to the second's; there each pair is verified
             (clean.similarity), in _VERIFY_PARTS shuffles by file; the smallest verified smaller
             neighbour per document (GroupByKey, min)
          -> the drops joined with their files (CoGroupByKey), and a DoFn per spilled file writes its
             survivors, checks them against the benchmarks' test questions (the n-gram index shipped
             with the DoFn) and leaves out PubMed's deleted citations (a side input), in reading order:
             OUT_DIR/<source>-SSSSS-of-NNNNN.jsonl, one shard per input file

No step holds the corpus in one place: the dedup index is the shuffle, and its first pass carries 60
bytes a document (15 fingerprints), its second only the documents that share one; texts never leave the
worker that reads them. Worker memory stays flat as the corpus grows: each table, and verification,
shuffles in parts (_in_parts), the per-pair steps move arrays rather than an object per pair, no combiner
table is lifted into a worker, output streams flush every 0.5 s (pipeline_options) and glibc hands large
buffers back (_steady_heap). Spills and shards are written whole (files.replacing), so a bundle a runner
retries rewrites the same files; the counts are made per bundle and combined (a retried bundle's outputs
are discarded with it, so it is counted once), and only those small combined counts come back to the
driver, which writes clean_report.json. They equal the in-process engine's: tests build the synthetic
world and the real PubMed files both ways and compare kept documents and reports.

The token dataset (`dataset_examples`): TFDS's Beam support runs a PTransform per split (read the clean
shards, mix, tokenize) and writes the array_record shards itself.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import ctypes
import ctypes.util
import io
import json
from typing import Any, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from biomed_jax import files as fs
from biomed_jax.data import mixture
from biomed_jax.data.clean import Cleaner, band_rows, similarity
from biomed_jax.data.corpus import (count_split, decontamination, document_record, source_priorities,
                                    zero_split_counts)
from biomed_jax.data.readers import ReadReport, read_documents
from biomed_jax.data.tokenizer import load_tokenizer
from biomed_jax.run_dir import write_json

_COUNTS, _FILES, _EXACT, _BANDS, _PRINTS = "counts", "files", "exact", "bands", "fingerprints"
# Dedup moves in two shuffles, both keyed by _SPLITS splits of the exact hashes (by their first byte) and
# of each LSH band's values (by the first value), with one batch per file and key, so that a runner moves
# about a thousand elements per file rather than a dozen per document. The first carries a 32-bit
# fingerprint per document and key (60 bytes a document) to find the fingerprints two documents share;
# the second carries the full entries of those documents only (a few percent of the corpus), which are
# then compared exactly. One key's group stays small at PubMed's scale (36M documents / 64: about 560k
# fingerprints, 2 MB).
_SPLITS = 64
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: a band's values -> its fingerprint (_entries)
# Verification runs in this many shuffles (by the second document's file), so that a worker takes a
# quarter of the first documents' sketches (512 bytes a candidate pair) at a time (_in_parts).
_VERIFY_PARTS = 4


# Python SDK workers flush each output stream every 0.5 s as well as at 10 MB. Without it the DirectRunner's
# workers hold a whole stage's outputs per stream until 10 MB, so their memory grows with the corpus
# (docs/data.md, worker memory); on a cluster runner it only adds a timed flush. A user's own value wins.
_FLUSH = "data_buffer_time_limit_ms"


def pipeline_options(options: str):
    """Beam PipelineOptions from TFDS's comma-separated format, e.g.
    "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing", with the 0.5 s
    flush (_FLUSH) unless the user's experiments set it. A value Beam cannot parse is a ValueError naming
    the option, not argparse's usage text."""
    flags = [f"--{item.strip()}" for item in options.split(",") if item.strip()]
    try:
        with contextlib.redirect_stderr(io.StringIO()) as usage:
            experiments = PipelineOptions(flags).get_all_options()["experiments"] or []
    except SystemExit:
        error = usage.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        raise ValueError(f"beam pipeline options {options!r}: {error}") from None
    if not any(e.split("=")[0] == _FLUSH for e in experiments):
        flags.append(f"--experiments={_FLUSH}=500")
    return PipelineOptions(flags)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)
_M_MMAP_THRESHOLD = -3   # glibc's mallopt parameter


def _steady_heap() -> None:
    """Fixes glibc's mmap threshold at its default, 128 KiB, in this worker (elsewhere nothing): every
    larger buffer is then its own mapping, handed back to the OS when freed. A worker handles one file
    after another, each with megabyte arrays (its spill, its sketches, its batches). glibc otherwise raises
    the threshold to the largest block freed so far, after which such arrays come from the heap, and the
    small long-lived buffers left between them keep the heap from shrinking: the worker's resident memory
    then ratchets up with the number of files it handles. Cheap and idempotent: called per file."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _counter(seed: int) -> Cleaner:
    """A Cleaner used only to count (no MinHash permutations to build or ship)."""
    return Cleaner({"near_dedup": False}, seed)


def _ref(file: int, position: int) -> tuple[int, int]:
    """A document: its file's index in the run's file list and its position among that file's prepared
    documents. In that order they are the in-process engine's reading order, which breaks ties between
    equal keys (two copies of one record) as it does."""
    return file, position


class _ReadAndPrepare(beam.DoFn):
    """DoFn: one input file -> its documents read, normalised, filtered and hashed.

    The prepared records wait in the spill (SPILL/<file>.jsonl, a line per position; with dedup
    SPILL/<file>.npz keeps each position's id, hash and sketch), written whole so that a retried bundle
    rewrites the same files. What leaves the DoFn is small: the file (main output), the fingerprints of its
    documents' exact hashes and band values in one batch per shuffle key (_entries), its read report,
    and the bundle's filter counts (seen, empty, too_short, characters)."""

    def __init__(self, clean_options: Mapping[str, Any], seed: int, priorities: Mapping[str, int],
                 validation_fraction: float, spill: str):
        self.clean_options, self.seed, self.priorities = dict(clean_options), seed, dict(priorities)
        self.validation_fraction, self.spill = validation_fraction, spill

    def setup(self):
        self.cleaner = None

    def start_bundle(self):
        self.cleaner = Cleaner(self.clean_options, self.seed, self.priorities)

    def process(self, item):
        _steady_heap()
        file, name = item["file"], item["source"]
        cleaner, report = self.cleaner, ReadReport(path=item["path"])
        ids, hashes, sketches = [], [], []
        with fs.replacing(fs.join(self.spill, f"{file}.jsonl")) as out:
            for doc in read_documents(item["kind"], item["path"], report):
                doc.source = name
                prepared = cleaner.prepare(doc)
                if prepared is None:
                    continue
                out.write(json.dumps(document_record(prepared.doc, self.validation_fraction), ensure_ascii=False))
                out.write("\n")
                ids.append(prepared.key[2])
                hashes.append(prepared.key[3])
                if prepared.sketch is not None:
                    sketches.append(prepared.sketch)
        opts = cleaner.options
        if opts["exact_dedup"] or opts["near_dedup"]:
            stored = {"priority": cleaner.priority(name), "source": name, "ids": np.asarray(ids, dtype=str),
                      "hashes": np.asarray(hashes, dtype=str),
                      "sketches": np.asarray(sketches, np.uint32).reshape(len(ids), -1 if sketches else 0)}
            buffer = io.BytesIO()
            np.savez(buffer, **stored)
            with fs.replacing(fs.join(self.spill, f"{file}.npz"), "wb") as out:
                out.write(buffer.getvalue())
            for key, _, prints, _ in _entries(stored, opts, cleaner.bands, cleaner.rows):
                yield beam.pvalue.TaggedOutput(_PRINTS, (key, prints.tobytes()))
        yield beam.pvalue.TaggedOutput(_FILES, [file, report.to_dict(), sorted(report.deleted_ids)])
        yield item

    def finish_bundle(self):
        yield beam.pvalue.TaggedOutput(_COUNTS, WindowedValue(("partial", self.cleaner.partial()), 0,
                                                              [GlobalWindow()]))


def _entries(stored: Mapping[str, Any], opts: Mapping[str, Any], bands: int, rows: int):
    """A spilled file's dedup entries, one batch per shuffle key: (key, positions, fingerprints, band
    values or None). Keys 0.._SPLITS-1 split the exact hashes by their first byte (fingerprint: the next 4
    bytes); key _SPLITS * (1 + band) + split splits a band's values [n, rows] by their first value
    (fingerprint: the values mixed into 32 bits). Equal hashes, or equal band values, have equal keys and
    fingerprints."""
    n = len(stored["ids"])
    if n == 0:
        return
    positions = np.arange(n, dtype=np.int32)
    batches = []
    if opts["exact_dedup"]:
        digests = np.frombuffer(bytes.fromhex("".join(stored["hashes"])), np.uint8).reshape(n, -1)
        batches.append((0, digests[:, 0], np.ascontiguousarray(digests[:, 1:5]).view(np.uint32)[:, 0], None))
    if opts["near_dedup"]:
        for band in range(bands):
            values = np.ascontiguousarray(band_rows(stored["sketches"], band, rows))
            mixed = np.zeros(n, np.uint64)
            for column in values.T:
                mixed = (mixed ^ column) * _MIX
            batches.append((_SPLITS * (1 + band), values[:, 0], (mixed >> np.uint64(32)).astype(np.uint32), values))
    for offset, first, prints, values in batches:
        splits = first % _SPLITS
        for split in np.unique(splits):
            chosen = splits == split
            yield offset + int(split), positions[chosen], prints[chosen], None if values is None else values[chosen]


def _shared(item):
    """(shuffle key, fingerprint batches) -> (key, the fingerprints of more than one document, as bytes)."""
    key, batches = item
    prints, counts = np.unique(np.concatenate([np.frombuffer(batch, np.uint32) for batch in batches]),
                               return_counts=True)
    if (counts > 1).any():
        yield key, prints[counts > 1].tobytes()


def _load_spill(spill: str, file: int) -> dict:
    """A file's spilled dedup data (_ReadAndPrepare): priority, source, ids, hashes, sketches."""
    with fs.open_read(fs.join(spill, f"{file}.npz")) as f:
        stored = np.load(io.BytesIO(f.read()))
        return {name: stored[name] for name in stored.files}


def _key(stored: Mapping[str, Any], position: int) -> tuple:
    """The keeper rule's key of a spilled document: (source priority, source, id, hash)."""
    return (int(stored["priority"]), str(stored["source"]), str(stored["ids"][position]),
            str(stored["hashes"][position]))


def _candidates(item, shared, spill: str, opts: Mapping[str, Any], bands: int, rows: int):
    """A spilled file -> the entries of its documents whose fingerprint another document shares under the
    same key (`shared`): (key, (file, [(document key, position)])) for exact keys and (key, (file, band
    values, positions as int32 bytes)) for band keys, the only documents exact or near dedup can drop."""
    _steady_heap()
    file = item["file"]
    stored = _load_spill(spill, file)
    for key, positions, prints, values in _entries(stored, opts, bands, rows):
        if key not in shared:
            continue
        chosen = np.isin(prints, np.frombuffer(shared[key], np.uint32))
        if not chosen.any():
            continue
        if values is None:
            yield beam.pvalue.TaggedOutput(_EXACT, (key, (file, [(_key(stored, int(p)), int(p))
                                                                 for p in positions[chosen]])))
        else:
            yield beam.pvalue.TaggedOutput(_BANDS, (key, (file, values[chosen].tobytes(),
                                                          positions[chosen].tobytes())))


class _Counts(beam.CombineFn):
    """Combines the filters' counts: bundle partials, compared candidate pairs and drop records, into one
    Cleaner partial (JSON values) for the driver's report."""

    def __init__(self, seed: int):
        self.seed = seed

    def create_accumulator(self):
        return _counter(self.seed)

    def add_input(self, counter: Cleaner, item):
        kind, value = item
        if kind == "partial":
            counter.add_partial(value)
        elif kind == "candidates":
            counter.candidates(*value)
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
    """One exact shuffle key's batches [(file, [(key, position)])] -> (ref, (key, the keeper's
    "source/id")) for every document of a hash but the smallest (key, ref)."""
    _, batches = item
    groups = collections.defaultdict(list)
    for file, entries in batches:
        for key, position in entries:
            key = tuple(key)
            groups[key[3]].append((key, _ref(file, position)))
    for members in groups.values():
        if len(members) > 1:
            members.sort()
            for key, ref in members[1:]:
                yield ref, (key, _name(members[0][0]))


def _name(key) -> str:
    """The "source/id" a document key names (key = (priority, source, id, hash))."""
    return f"{key[1]}/{key[2]}"


def _numbered(files, positions) -> np.ndarray:
    """Refs as one int64 each (file in the high 32 bits), for sets of refs as sorted arrays."""
    return np.asarray(files, np.int64) << 32 | np.asarray(positions, np.int64)


def _ref_set(refs) -> bytes:
    """Refs -> a sorted int64 array's bytes: a side input of 8 bytes a ref rather than a dict of tuples."""
    refs = list(refs)
    return np.sort(_numbered([f for f, _ in refs], [p for _, p in refs])).tobytes()


def _bucket_pairs(item, exact_dropped: bytes, rows: int):
    """One band shuffle key's batches [(file, band values, positions)] -> the pairs (first, second) of
    documents in an LSH bucket (equal band values), first the smaller ref, exact duplicates
    (`exact_dropped`, a _ref_set) left out, in one batch per file of the first: (that file, int32 [m, 3]
    bytes of (first's position, second's file, second's position)). A pair in k buckets comes k times:
    the in-process engine compares every pair of every bucket (clean.near_drops), so it counts k
    comparisons (_send_sketches)."""
    _, batches = item
    batches = list(batches)
    values = np.concatenate([np.frombuffer(v, np.uint32).reshape(-1, rows) for _, v, _ in batches])
    files = np.concatenate([np.full(len(p) // 4, file, np.int64) for file, _, p in batches])
    positions = np.concatenate([np.frombuffer(p, np.int32) for _, _, p in batches])
    _, bucket, sizes = np.unique(values, axis=0, return_inverse=True, return_counts=True)
    bucket = bucket.reshape(-1)
    kept = ~np.isin(_numbered(files, positions), np.frombuffer(exact_dropped, np.int64))
    shared = collections.defaultdict(list)
    for i in np.flatnonzero((sizes[bucket] > 1) & kept):
        shared[bucket[i]].append(_ref(int(files[i]), int(positions[i])))
    pairs = collections.defaultdict(list)
    for refs in shared.values():
        refs.sort()
        for i, (file, position) in enumerate(refs):
            for first_file, first_position in refs[:i]:
                pairs[first_file].append((first_position, file, position))
    for file, found in pairs.items():
        yield file, np.asarray(found, np.int32).tobytes()


def _send_sketches(item, spill: str):
    """(file, pair batches from _bucket_pairs) -> (second's file, (int32 [m, 3] bytes of (second's
    position, first's position, times), this file, and the first documents' priority, source, ids, hashes
    (raw bytes) and sketches [m, num_perm] (bytes))): each candidate pair once, with the number of buckets
    it shares (times), and its first document's key and sketch, read from the spill once per file and
    sent in one batch per file of the second: arrays, and one string (the id) per pair."""
    _steady_heap()
    file, batches = item
    stored = _load_spill(spill, file)
    pairs, times = np.unique(np.concatenate([np.frombuffer(b, np.int32).reshape(-1, 3) for b in batches]),
                             axis=0, return_counts=True)
    for second_file in np.unique(pairs[:, 1]):
        chosen = pairs[:, 1] == second_file
        firsts = pairs[chosen, 0]
        yield int(second_file), (np.stack([pairs[chosen, 2], firsts, times[chosen]], axis=1).astype(np.int32).tobytes(),
                                 file, int(stored["priority"]), str(stored["source"]), stored["ids"][firsts].tolist(),
                                 bytes.fromhex("".join(stored["hashes"][firsts])), stored["sketches"][firsts].tobytes())


def _verify(item, spill: str, threshold: float):
    """(file, batches from _send_sketches) -> (ref, ((neighbour key, neighbour ref), key)) for the document
    of each candidate pair with the larger (key, ref), when the pair's estimated Jaccard similarity reaches
    the threshold (clean.similarity); the comparisons the pairs stand for (times) are counted as a side
    output."""
    _steady_heap()
    file, batches = item
    stored = _load_spill(spill, file)
    checked = below = 0
    for pairs, first_file, priority, source, ids, hashes, sketches in batches:
        positions, firsts, times = np.frombuffer(pairs, np.int32).reshape(-1, 3).T
        verified = similarity(stored["sketches"][positions],
                              np.frombuffer(sketches, np.uint32).reshape(len(positions), -1)) >= threshold
        checked += int(times.sum())
        below += int(times[~verified].sum())
        width = len(hashes) // len(positions)
        for i in np.flatnonzero(verified):
            first = ((priority, source, ids[i], hashes[i * width:(i + 1) * width].hex()),
                     _ref(first_file, int(firsts[i])))
            second = (_key(stored, int(positions[i])), _ref(file, int(positions[i])))
            smaller, larger = sorted((first, second))
            yield larger[1], (smaller, larger[0])
    yield beam.pvalue.TaggedOutput(_COUNTS, ("candidates", (checked, below)))


class _WriteKept(beam.DoFn):
    """DoFn: (file, {"item": [the spilled file], "drops": [positions dedup dropped there]}) -> the source's
    shard OUT_DIR/<source>-SSSSS-of-NNNNN.jsonl (the file's place among the source's files), written whole,
    in reading order, with the documents that survived: not dropped, no benchmark test question in them
    (with decontam.action drop) and no DeleteCitation withdrew them (PubMed). The in-process engine's
    second pass, per file. Its counts (kept characters, split sizes, deleted documents, the
    decontamination report) are made per bundle and leave when the bundle finishes."""

    def __init__(self, spill: str, out_dir: str, seed: int, pubmed: list[str], index, empty_report):
        self.spill, self.out_dir, self.seed, self.pubmed = spill, out_dir, seed, set(pubmed)
        self.index, self.empty_report = index, empty_report

    def start_bundle(self):
        self.counter, self.splits, self.deleted = _counter(self.seed), {}, 0
        self.decontam = copy.deepcopy(self.empty_report)

    def process(self, element, deleted):
        _steady_heap()
        file, joined = element
        (item,), dropped = joined["item"], set(joined["drops"])
        name = item["source"]
        shard = fs.join(self.out_dir, f"{name}-{item['shard']:05d}-of-{item['shards']:05d}.jsonl")
        counts = self.splits.setdefault(name, zero_split_counts())
        with fs.open_text(fs.join(self.spill, f"{file}.jsonl")) as f, fs.replacing(shard) as out:
            for position, line in enumerate(f):
                if position in dropped:
                    continue
                record = json.loads(line)
                self.counter.kept(name, len(record["text"]))
                if self.index is not None:
                    hits = self.index.hits(record["text"])
                    self.decontam.add(name, record["id"], hits)
                    if hits and self.decontam.action == "drop":
                        continue
                if name in self.pubmed and record["id"] in deleted:
                    self.deleted += 1
                    continue
                count_split(counts, record)
                out.write(line)

    def finish_bundle(self):
        for tag, value in ((_COUNTS, ("partial", self.counter.partial())),
                           ("kept", {"splits": self.splits, "deleted": self.deleted}),
                           ("decontamination", self.decontam)):
            yield beam.pvalue.TaggedOutput(tag, WindowedValue(value, 0, [GlobalWindow()]))


class _MergeReports(beam.CombineFn):
    """Merges DecontamReports made per bundle (decontaminate.DecontamReport: sums, unions and the
    smallest examples, so any order gives the same) into its dict."""

    def __init__(self, empty_report):
        self.empty = empty_report

    def create_accumulator(self):
        return copy.deepcopy(self.empty)

    def add_input(self, report, other):
        return report.merge(other)

    def merge_accumulators(self, reports):
        reports = list(reports)
        for other in reports[1:]:
            reports[0].merge(other)
        return reports[0]

    def extract_output(self, report):
        return report.to_dict()


def run_clean(cfg: Mapping[str, Any], files: Mapping[str, list[str]], out_dir: str, options: str,
              manual_dir: str) -> dict:
    """Runs the Beam clean pipeline over `files` ({source: paths}), writing each source's kept documents
    into OUT_DIR as JSON-lines shards (one per input file). Returns what the driver needs for the report:
    {"cleaner": the combined counts, "files": the read reports in the in-process engine's order,
    "deleted_ids", "kept": {source: split counts}, "deleted_dropped", "decontamination": its report or
    None}."""
    priorities = source_priorities(cfg)
    driver = Cleaner(dict(cfg["clean"]), seed=int(cfg["seed"]), priorities=priorities)
    opts, seed = driver.options, driver.seed
    names = list(cfg["sources"])
    items = [{"source": name, "kind": cfg["sources"][name]["kind"], "path": path, "shard": shard,
              "shards": len(files[name])} for name in names for shard, path in enumerate(files[name])]
    items = [dict(item, file=file) for file, item in enumerate(items)]
    _, index, empty_report = decontamination(cfg, manual_dir)
    results, spill = fs.join(out_dir, "_results"), fs.join(out_dir, "_spill")
    with beam.Pipeline(options=pipeline_options(options)) as pipeline:
        read = (pipeline | "files" >> beam.Create(items) | "spread files" >> beam.Reshuffle()
                | "read and prepare" >> beam.ParDo(_ReadAndPrepare(
                    opts, seed, priorities, float(cfg["split"]["validation_fraction"]), spill))
                .with_outputs(_COUNTS, _FILES, _PRINTS, main="spilled"))
        counts = [read[_COUNTS]]
        exact = nearest = pipeline | "no drops" >> beam.Create([])
        spilled = read.spilled | "spread spill" >> beam.Reshuffle()
        tables = 1 + (driver.bands if opts["near_dedup"] else 0)  # the exact hashes' table, then the bands'
        if opts["exact_dedup"] or opts["near_dedup"]:
            shared = _per_table(read[_PRINTS], "shared fingerprints", tables, _shared)
            candidates = spilled | "candidates" >> beam.FlatMap(
                _candidates, beam.pvalue.AsDict(shared), spill, opts, driver.bands, driver.rows
            ).with_outputs(_EXACT, _BANDS)
        if opts["exact_dedup"]:
            exact = (candidates[_EXACT] | "group exact" >> beam.GroupByKey()
                     | "exact drops" >> beam.FlatMap(_exact_drops))
            counts.append(exact | "exact counts" >> beam.Map(lambda drop: ("exact_duplicate", drop[1])))
        if opts["near_dedup"]:
            exact_refs = (exact | "exact refs" >> beam.Map(lambda drop: drop[0])
                          | "all exact refs" >> beam.combiners.ToList() | "exact ref set" >> beam.Map(_ref_set))
            pairs = _per_table(candidates[_BANDS], "bucket pairs", tables, _bucket_pairs,
                               beam.pvalue.AsSingleton(exact_refs), driver.rows)
            sent = (pairs | "by first file" >> beam.GroupByKey()
                    | "sketches" >> beam.FlatMap(_send_sketches, spill))
            verified = _in_parts(sent, "verify", _VERIFY_PARTS, lambda file: file % _VERIFY_PARTS, lambda: beam.FlatMap(
                _verify, spill, opts["jaccard_threshold"]).with_outputs(_COUNTS, main="near"))
            counts.extend(part[_COUNTS] for part in verified)
            # Not CombinePerKey(min): almost every document has one verified neighbour, so a lifted
            # combiner's table would hold them all in the worker for nothing.
            nearest = ([part.near for part in verified] | "verified" >> beam.Flatten()
                       | "by document" >> beam.GroupByKey()
                       | "nearest" >> beam.MapTuple(lambda ref, found: (ref, min(found))))
            counts.append(nearest | "near counts" >> beam.Map(
                lambda drop: ("near_duplicate", (drop[1][1], _name(drop[1][0][0])))))
        drops = (exact, nearest) | "drops" >> beam.Flatten() | "dropped refs" >> beam.Map(lambda drop: tuple(drop[0]))
        deleted = read[_FILES] | "deleted ids" >> beam.FlatMap(lambda item: ((pmid, True) for pmid in item[2]))
        pubmed = [name for name in names if cfg["sources"][name]["kind"] == "pubmed_xml"]
        written = ({"item": spilled | "by file of spill" >> beam.Map(lambda item: (item["file"], item)), "drops": drops}
                   | "join drops" >> beam.CoGroupByKey()
                   | "write kept" >> beam.ParDo(_WriteKept(spill, out_dir, seed, pubmed, index, empty_report),
                                                beam.pvalue.AsDict(deleted))
                   .with_outputs(_COUNTS, "kept", "decontamination"))
        counts.append(written[_COUNTS])
        if index is not None:
            _write(written.decontamination | "merge decontamination" >> beam.CombineGlobally(
                _MergeReports(empty_report)), results, "decontamination")
        _write(written.kept, results, "kept")
        _write(read[_FILES], results, "files")
        _write(counts | "all counts" >> beam.Flatten() | "combine counts" >> beam.CombineGlobally(_Counts(seed)),
               results, "counts")
    fs.rmtree(spill)
    return _results(cfg, driver, results)


def _per_table(pcoll, label: str, tables: int, fn, *args):
    """GroupByKey, then FlatMap(fn, *args), on each dedup table's keys (the exact hashes' table 0, band b's
    table 1 + b: key // _SPLITS) in a shuffle of its own (_in_parts); the outputs flattened."""
    return (_in_parts(pcoll, label, tables, lambda key: key // _SPLITS, lambda: beam.FlatMap(fn, *args))
            | f"{label}: all" >> beam.Flatten())


def _in_parts(pcoll, label: str, parts: int, part_of, step) -> list:
    """GroupByKey, then step() (a new PTransform per part), on each part of pcoll's keys (part_of(key)) in
    a shuffle of its own; returns the parts' outputs. Apart, no stage's input grows past one part. That
    matters on a runner that hands each worker its share of a stage's whole input as one bundle, as the
    DirectRunner does: it sends the input in messages of up to 10 MB, five of them queued, so a worker's
    memory during a stage grows with its share of that stage's input."""
    split = pcoll | f"{label}: parts" >> beam.Partition(lambda item, n: part_of(item[0]), parts)
    return [part | f"{label}: group {i}" >> beam.GroupByKey() | f"{label}: {i}" >> step()
            for i, part in enumerate(split)]


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
    files = sorted(_read(results, "files"), key=lambda item: item[0])
    kept = {name: zero_split_counts() for name in cfg["sources"]}
    deleted_dropped = 0
    for bundle in _read(results, "kept"):
        deleted_dropped += bundle["deleted"]
        for source, counts in bundle["splits"].items():
            for field, n in counts.items():
                kept[source][field] += n
    decontam = _read(results, "decontamination")
    fs.rmtree(results)
    return {"cleaner": driver, "files": [report for _, report, _ in files],
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
    for n in range(mixture.copies(seed, source, record["id"], epochs[source])):
        yield f"{source}:{record['id']}:{n}", record


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

"""Cleaning and deduplication of documents before mixing and tokenization.

`normalize_text` makes text comparable and model-ready (one Unicode form, no control characters, tidy
whitespace). `Cleaner` passes documents through filters in a fixed order (empty, too_short,
exact_duplicate, near_duplicate) and counts every drop per source, so a corpus build can say exactly
what it removed. Deduplication is over the whole corpus, across sources, so a guideline copied into a
PubMed abstract (or a replay document) is caught.

Which copy survives does not depend on reading order (the in-process engine reads files in order, a
Beam pipeline in whatever order its workers finish): documents are ranked by (source priority, id,
exact hash); exact duplicates keep the smallest, and a document is dropped as a near-duplicate when a
verified near-duplicate with a smaller rank exists.

Near-duplicates: a MinHash over word shingles (datasketch's permutations, seeded from the run's seed),
LSH buckets per band (the (bands, rows) datasketch chooses for the threshold, weighted for recall), and
every candidate pair sharing a bucket verified: a pair is near-duplicate when its estimated Jaccard
similarity is >= `jaccard_threshold`. So the threshold means what it says, instead of the soft S-curve
of banding alone (which, at 0.8 with 128 permutations, misses a quarter of pairs at 0.86).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import sys
import unicodedata
import zlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

from biomed_jax.data.readers import Document

UNICODE_FORMS = ("NFKC", "NFC", "NFKD", "NFD", "none")
FILTERS = ("empty", "too_short", "exact_duplicate", "near_duplicate")

DEFAULT_OPTIONS: dict[str, Any] = dict(
    unicode_form="NFKC",
    min_chars=0,
    min_words=0,
    exact_dedup=True,
    near_dedup=True,
    jaccard_threshold=0.8,
    num_perm=128,
    shingle_words=5,
)

# Kept although Unicode calls them format characters: ZWNJ and ZWJ change how some scripts and emoji read.
_KEEP_FORMAT = {"\u200c", "\u200d"}
# Line and paragraph separators that are not "\n": each becomes a line break.
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SPACE_RUN = re.compile(r"[^\S\n]+")              # any whitespace except a newline
_SPACE_RUNS = re.compile(" {2,}")
_SPACES_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@functools.cache
def _dropped_chars() -> re.Pattern:
    """A character class of everything `normalize_text` removes: control (Cc) except tab and newline,
    format (Cf) except ZWNJ/ZWJ, lone surrogates (Cs) and U+FFFD replacement characters.

    Built once from the running Python's Unicode database, as code point ranges, so that removing them
    is one regex pass in C rather than a Python loop per character.
    """
    ranges: list[list[int]] = []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if ch in "\t\n" or ch in _KEEP_FORMAT:
            continue
        if cp == 0xFFFD or unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    parts = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                    for a, b in ranges)
    return re.compile(f"[{parts}]+")


def _only_plain_chars(text: str) -> bool:
    """True when the text needs no character-level cleaning: nothing but printable characters, spaces,
    tabs and newlines (str.isprintable is False for every control, format, surrogate, separator and
    unusual space character) and no U+FFFD. Checked in C; most abstracts take this fast path."""
    return "\ufffd" not in text and text.replace("\n", " ").replace("\t", " ").isprintable()


def normalize_text(text: str, unicode_form: str = "NFKC") -> str:
    """Text in one Unicode form with paragraphs kept and everything else invisible removed.

    Line breaks (\\r\\n, \\r, U+2028, ...) become "\\n"; control and format characters, lone surrogates
    and U+FFFD replacement runs (what a bad decode leaves) are dropped, so "caf\\ufffd\\ufffd" becomes
    "caf" rather than splitting the word; runs of spaces, tabs and other spaces become one space; spaces
    at line ends go; three or more newlines become two (one blank line = a paragraph break); the ends
    are stripped. NFKC (the default) also folds compatibility forms: full-width letters, ligatures
    (U+FB01 -> fi), superscript digits, non-breaking spaces.
    """
    if unicode_form not in UNICODE_FORMS:
        raise ValueError(f"unicode_form must be one of {list(UNICODE_FORMS)}, got {unicode_form!r}")
    if not text:
        return ""
    plain = _only_plain_chars(text)
    if not plain:
        text = _dropped_chars().sub("", _LINE_BREAKS.sub("\n", text))
    if unicode_form != "none":
        text = unicodedata.normalize(unicode_form, text)
        plain = _only_plain_chars(text)
        if not plain:  # rare: what normalisation left (or exposed) that is not plain text
            text = _dropped_chars().sub("", _LINE_BREAKS.sub("\n", text))
    if not plain or "\t" in text:
        text = _SPACE_RUN.sub(" ", text)    # every kind of space, in one pass
    elif "  " in text:
        text = _SPACE_RUNS.sub(" ", text)
    if " \n" in text or "\n " in text:
        text = _SPACES_AROUND_NEWLINE.sub("\n", text)
    if "\n\n\n" in text:
        text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def dedup_key(text: str) -> bytes:
    """The exact-dedup hash: case-folded, whitespace-collapsed text, 128-bit BLAKE2b (collisions are
    negligible even for billions of documents, and 16 bytes per kept document keeps the index small)."""
    return hashlib.blake2b(" ".join(text.casefold().split()).encode("utf-8"), digest_size=16).digest()


# Odd 64-bit multipliers, one per position in a shingle: an order-sensitive mix of word hashes.
_POSITION_MULTIPLIERS = np.random.default_rng(20240611).integers(1, 2**63, size=64, dtype=np.uint64) * 2 + 1


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the text's word n-grams (case-folded, whitespace-separated words; expects text
    from normalize_text, whose only spaces are ASCII).

    Each word is hashed once (CRC-32, stable across runs and machines) and each n-gram's hash is an
    order-sensitive combination of its words' hashes, computed for all n-grams at once in numpy: about
    4x faster than hashing every joined n-gram string, which made MinHash the cleaner's bottleneck.
    A document shorter than n words is one shingle of all its words; an empty one has none.
    """
    # Split the UTF-8 bytes: after normalize_text the only whitespace is " " and "\n" (ASCII), and
    # map(zlib.crc32, ...) hashes every word without a Python-level loop.
    words = text.casefold().encode("utf-8").split()
    if not words:
        return np.zeros(0, dtype=np.uint32)
    word_hashes = np.array(list(map(zlib.crc32, words)), dtype=np.uint64)
    n = min(n, len(words))
    count = len(words) - n + 1
    mixed = np.zeros(count, dtype=np.uint64)
    for j in range(n):
        mixed += word_hashes[j:j + count] * _POSITION_MULTIPLIERS[j % len(_POSITION_MULTIPLIERS)]
    return ((mixed >> np.uint64(32)) ^ mixed).astype(np.uint32)


def _validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaning options with defaults filled in; a ValueError naming `clean.<field>` otherwise."""
    if hasattr(options, "to_dict"):
        options = options.to_dict()
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown cleaning option(s) {', '.join('clean.' + k for k in unknown)}; "
                         f"known: {sorted(DEFAULT_OPTIONS)}")
    opts = {**DEFAULT_OPTIONS, **dict(options)}

    def fail(field: str, expected: str) -> None:
        raise ValueError(f"clean.{field} must be {expected}, got {opts[field]!r}")

    if opts["unicode_form"] not in UNICODE_FORMS:
        fail("unicode_form", f"one of {list(UNICODE_FORMS)}")
    for field in ("exact_dedup", "near_dedup"):
        if not isinstance(opts[field], (bool, np.bool_)):
            fail(field, "true or false")
        opts[field] = bool(opts[field])
    for field, low in (("min_chars", 0), ("min_words", 0), ("num_perm", 2), ("shingle_words", 1)):
        value = opts[field]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            fail(field, f"an integer >= {low}")
        opts[field] = int(value)
    threshold = opts["jaccard_threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not 0.0 < float(threshold) < 1.0:
        fail("jaccard_threshold", "a number in (0, 1) (1.0 would be exact dedup: clean.exact_dedup)")
    opts["jaccard_threshold"] = float(threshold)
    return opts


# datasketch picks (bands, rows) minimising weighted false-positive and false-negative areas; every
# candidate is verified, so false positives only cost a comparison and misses are what to avoid.
_LSH_WEIGHTS = (0.1, 0.9)


def _make_lsh(threshold: float, num_perm: int) -> MinHashLSH:
    """datasketch's LSH with its (bands, rows) choice for `threshold`, weighted for recall; where that
    choice degenerates to a single band (datasketch refuses b < 2), the (bands >= 2, rows) whose S-curve
    midpoint (1/bands)^(1/rows) is nearest the threshold."""
    try:
        return MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    except ValueError:
        best = min(((b, r) for b in range(2, num_perm + 1) for r in range(1, num_perm // b + 1)),
                   key=lambda br: (abs((1.0 / br[0]) ** (1.0 / br[1]) - threshold), -br[0] * br[1]))
        return MinHashLSH(threshold=threshold, num_perm=num_perm, params=best)


def _zero_counts() -> dict[str, int]:
    return {"seen": 0, "kept": 0, **{name: 0 for name in FILTERS}}


@dataclasses.dataclass
class Prepared:
    """A normalised document that passed the length filters, with what deduplication compares: `key`
    orders documents for the keeper rule, `exact` is its exact-dedup hash (None when off), `sketch` its
    MinHash values (None when near dedup is off)."""

    doc: Document
    key: tuple
    exact: bytes | None
    sketch: np.ndarray | None
    chars: int                 # of the normalised text (kept after an engine drops the text itself)

    @property
    def name(self) -> str:
        return f"{self.doc.source}/{self.doc.id}"


def band_rows(sketches: np.ndarray, band: int, rows: int) -> np.ndarray:
    """The hash values of LSH band `band`: [..., num_perm] sketches -> [..., rows]. Two documents are
    candidates when their values are equal in any band."""
    return sketches[..., band * rows:(band + 1) * rows]


def band_keys(sketch: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """The LSH bucket of each band of one sketch: the band's number and its `band_rows`."""
    return [bytes([band]) + band_rows(sketch, band, rows).tobytes() for band in range(bands)]


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of MinHash sketches [..., num_perm], row by row: the share of equal
    hash values (a float for two single sketches)."""
    return (a == b).mean(axis=-1)


def near_drops(group: Sequence[tuple[tuple, Any, np.ndarray]], threshold: float):
    """Within one LSH bucket of (key, identity, sketch)s: for every document, its verified
    near-duplicates with a smaller key, as (identity, (neighbour key, neighbour identity)) pairs, plus
    (pairs compared, pairs below the threshold). Each document is compared with every smaller one in the bucket, so the counts do not
    depend on the order the bucket arrives in."""
    members = sorted(group, key=lambda member: member[0])
    found, checked, below = [], 0, 0
    for i in range(1, len(members)):
        key, identity, sketch = members[i]
        for other_key, other_identity, other_sketch in members[:i]:
            checked += 1
            if similarity(sketch, other_sketch) >= threshold:
                found.append((identity, (other_key, other_identity)))
            else:
                below += 1
    return found, checked, below


class Cleaner:
    """Normalisation, the filters and deduplication with a keeper rule that does not depend on the order
    documents are read in, so the in-process engine and a Beam pipeline that sees them in any order keep
    the same ones.

    Keeper rule: documents are ordered by (source priority, id, exact hash); among exact duplicates the
    smallest is kept, and a document is a near-duplicate when a verified near-duplicate (estimated
    Jaccard >= `jaccard_threshold`, a candidate through a shared LSH bucket) with a smaller key exists.
    `priorities` is {source: rank} (the config's source order: PubMed before guidelines before replay);
    unlisted sources rank after listed ones.

    The engine-neutral steps are `prepare` (per document), the exact hash (`dedup_key`), LSH buckets
    (`band_keys`, `band_rows`) and `near_drops` (per bucket). `clean(docs)` runs them in process and
    returns the kept documents in input order; `report()` counts every outcome, overall and per source.
    """

    def __init__(self, options: Mapping[str, Any], seed: int = 0, priorities: Mapping[str, int] | None = None):
        self.options = _validate_options(options)
        self.seed = int(seed)
        self.priorities = dict(priorities or {})
        self._totals = _zero_counts()
        self._per_source: dict[str, dict[str, int]] = {}
        self._chars = {"seen": 0, "kept": 0}
        self._examples: dict[str, list[tuple]] = {name: [] for name in ("exact_duplicate", "near_duplicate")}
        self._candidates = {"checked": 0, "below_threshold": 0}
        self.bands = self.rows = 0
        self._template = None
        if self.options["near_dedup"]:
            lsh = _make_lsh(self.options["jaccard_threshold"], self.options["num_perm"])
            self.bands, self.rows = lsh.b, lsh.r
            # One template: every document's MinHash is a copy of it, sharing its permutation arrays.
            # Its hashfunc is `int`: update_batch gets shingle hashes that are already 32-bit integers.
            self._template = MinHash(num_perm=self.options["num_perm"], seed=self.seed, hashfunc=int)

    # --- per document ---------------------------------------------------------------------------------

    def count(self, source: str, outcome: str, n: int = 1) -> None:
        counts = self._per_source.setdefault(source, _zero_counts())
        counts[outcome] += n
        self._totals[outcome] += n

    def priority(self, source: str) -> int:
        """The source's rank in the keeper rule (unlisted sources after listed ones)."""
        return self.priorities.get(source, len(self.priorities))

    def minhash(self, text: str) -> MinHash:
        """The document's MinHash over word shingles (seeded; identical across runs)."""
        sketch = self._template.copy()
        sketch.update_batch(shingle_hashes(text, self.options["shingle_words"]).tolist())
        return sketch

    def prepare(self, doc: Document) -> Prepared | None:
        """The normalised document with its dedup key and hashes, or None when it is empty or too short
        (counted); every document passed here is counted as seen."""
        source = doc.source
        self.count(source, "seen")
        self._chars["seen"] += len(doc.text)
        opts = self.options
        text = normalize_text(doc.text, opts["unicode_form"])
        if not text:
            self.count(source, "empty")
            return None
        if len(text) < opts["min_chars"] or (opts["min_words"] and len(text.split()) < opts["min_words"]):
            self.count(source, "too_short")
            return None
        title = normalize_text(doc.title, opts["unicode_form"]) if doc.title else doc.title
        exact = dedup_key(text) if opts["exact_dedup"] else None
        sketch = self.minhash(text).hashvalues.astype(np.uint32) if opts["near_dedup"] else None
        key = (self.priority(source), source, str(doc.id), (exact or dedup_key(text)).hex())
        cleaned = Document(id=doc.id, text=text, title=title, source=source, meta=dict(doc.meta))
        return Prepared(cleaned, key, exact, sketch, len(text))

    # --- the decisions, as the engines record them ------------------------------------------------------

    def kept(self, source: str, chars: int) -> None:
        self.count(source, "kept")
        self._chars["kept"] += chars

    def dropped(self, prepared_key: tuple, source: str, doc_id: str, kind: str, duplicate_of: str) -> None:
        self.count(source, kind)
        self._examples[kind].append((prepared_key, {"source": source, "id": doc_id, "duplicate_of": duplicate_of}))
        self._examples[kind] = sorted(self._examples[kind], key=lambda item: item[0])[:5]

    def candidates(self, checked: int, below: int) -> None:
        self._candidates["checked"] += checked
        self._candidates["below_threshold"] += below

    def partial(self) -> dict:
        """This Cleaner's counts as plain JSON values (a Beam bundle's), for `add_partial` elsewhere."""
        return {"sources": self._per_source, "chars": self._chars, "candidates": self._candidates,
                "examples": {kind: [[list(key), example] for key, example in items]
                             for kind, items in self._examples.items()}}

    def add_partial(self, partial: Mapping[str, Any]) -> None:
        """Adds counts made elsewhere (`partial()` of another Cleaner) to this one."""
        for source, counts in partial["sources"].items():
            for outcome, n in counts.items():
                self.count(source, outcome, n)
        for key, n in partial["chars"].items():
            self._chars[key] += n
        self.candidates(partial["candidates"]["checked"], partial["candidates"]["below_threshold"])
        for kind, items in partial["examples"].items():
            merged = self._examples[kind] + [(tuple(key), example) for key, example in items]
            self._examples[kind] = sorted(merged, key=lambda item: item[0])[:5]

    # --- the in-process engine --------------------------------------------------------------------------

    def clean(self, docs: Iterable[Document]) -> list[Document]:
        """Every document through the filters and the keeper rule, in process; the kept documents in
        input order. Holds every surviving document's sketch until the decisions are made."""
        prepared = [p for p in map(self.prepare, docs) if p is not None]
        dropped = self.decide(prepared)
        kept = []
        for i, p in enumerate(prepared):
            if i not in dropped:
                self.kept(p.doc.source, p.chars)
                kept.append(p.doc)
        return kept

    def decide(self, prepared: Sequence[Prepared]) -> set[int]:
        """The positions in `prepared` of the documents the keeper rule drops (recorded in the report)."""
        dropped: set[int] = set()
        survivors = list(range(len(prepared)))
        if self.options["exact_dedup"]:
            groups: dict[bytes, list[int]] = {}
            for i, p in enumerate(prepared):
                groups.setdefault(p.exact, []).append(i)
            survivors = []
            for group in groups.values():
                order = sorted(group, key=lambda i: prepared[i].key)
                survivors.append(order[0])
                for i in order[1:]:
                    dropped.add(i)
                    p = prepared[i]
                    self.dropped(p.key, p.doc.source, p.doc.id, "exact_duplicate", prepared[order[0]].name)
        if self.options["near_dedup"]:
            buckets: dict[bytes, list[tuple]] = {}
            for i in survivors:
                p = prepared[i]
                for bucket in band_keys(p.sketch, self.bands, self.rows):
                    buckets.setdefault(bucket, []).append((p.key, i, p.sketch))
            nearest: dict[int, tuple] = {}
            for group in buckets.values():
                if len(group) < 2:
                    continue
                found, checked, below = near_drops(group, self.options["jaccard_threshold"])
                self.candidates(checked, below)
                for i, neighbour in found:
                    nearest[i] = min(nearest.get(i, neighbour), neighbour)
            for i, (_, neighbour) in nearest.items():
                dropped.add(i)
                p = prepared[i]
                self.dropped(p.key, p.doc.source, p.doc.id, "near_duplicate", prepared[neighbour].name)
        return dropped

    def report(self) -> dict:
        """JSON-serialisable counts: seen = kept + empty + too_short + exact_duplicate + near_duplicate,
        overall ("total") and per source, with characters before/after, the options used and the first
        few drops of each kind (by the keeper rule's order, so every engine reports the same ones)."""
        return {
            "options": dict(self.options),
            "seed": self.seed,
            "lsh": ({"bands": self.bands, "rows": self.rows, "candidates": dict(self._candidates)}
                    if self.options["near_dedup"] else None),
            "filters": list(FILTERS),
            "total": dict(self._totals),
            "sources": {name: dict(counts) for name, counts in sorted(self._per_source.items())},
            "chars": dict(self._chars),
            "examples": {kind: [example for _, example in items] for kind, items in self._examples.items()},
        }

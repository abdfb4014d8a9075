"""Cleaning and deduplication of documents before mixing and tokenization.

`normalize_text` makes text comparable and model-ready (one Unicode form, no control characters, tidy
whitespace). `Cleaner` streams documents through filters in a fixed order (empty, too_short,
exact_duplicate, near_duplicate) and counts every drop per source, so a corpus build can say exactly
what it removed. One Cleaner is meant to see the whole corpus: its dedup index is shared by all sources,
so a guideline copied into a PubMed abstract (or a replay document) is caught across sources; the first
copy seen is kept.

Near-duplicates are found with datasketch: a MinHash over word shingles, queried against a MinHashLSH
index and then inserted. The LSH bands are tuned for recall (few misses above the threshold), and each
candidate is then verified: a document is a near-duplicate when its estimated Jaccard similarity to a
kept document is >= `jaccard_threshold`. So the threshold means what it says, instead of the soft
S-curve of banding alone (which, at 0.8 with 128 permutations, misses a quarter of pairs at 0.86).
MinHash is seeded from the run's seed so the same corpus and seed drop the same documents.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
import zlib
from typing import Any, Mapping

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


class Cleaner:
    """Streams documents through normalisation and the filters, keeping the first of any duplicates.

    `process(doc)` returns the cleaned document (text and title normalised) or None when a filter drops
    it; `report()` counts every outcome, overall and per `doc.source`. Memory grows with the number of
    kept documents: 16 bytes each for exact dedup; for near dedup, the MinHash (4 bytes per permutation),
    its LSH band entries and its name.
    """

    def __init__(self, options: Mapping[str, Any], seed: int = 0):
        self.options = _validate_options(options)
        self.seed = int(seed)
        self._totals = _zero_counts()
        self._per_source: dict[str, dict[str, int]] = {}
        self._chars = {"seen": 0, "kept": 0}
        self._exact: set[bytes] = set()
        self._examples: dict[str, list[dict]] = {name: [] for name in ("exact_duplicate", "near_duplicate")}
        self._first_key: dict[bytes, str] = {}
        self._lsh = None
        self._template = None
        self._sketches = np.zeros((0, 0), dtype=np.uint32)   # row k: hash values of LSH key k
        self._names: list[str] = []                          # name of LSH key k, "source/id"
        self._candidates = {"checked": 0, "below_threshold": 0}
        if self.options["near_dedup"]:
            num_perm = self.options["num_perm"]
            self._lsh = _make_lsh(self.options["jaccard_threshold"], num_perm)
            # One template: every document's MinHash is a copy of it, sharing its permutation arrays.
            # Its hashfunc is `int`: update_batch gets shingle hashes that are already 32-bit integers.
            self._template = MinHash(num_perm=num_perm, seed=self.seed, hashfunc=int)
            self._sketches = np.zeros((1024, num_perm), dtype=np.uint32)

    def _count(self, source: str, outcome: str) -> None:
        counts = self._per_source.setdefault(source, _zero_counts())
        counts[outcome] += 1
        self._totals[outcome] += 1

    def _example(self, kind: str, doc: Document, duplicate_of: str) -> None:
        """Keeps the first few drops of each dedup kind, so a report shows what was matched to what."""
        if len(self._examples[kind]) < 5:
            self._examples[kind].append({"source": doc.source, "id": doc.id, "duplicate_of": duplicate_of})

    def minhash(self, text: str) -> MinHash:
        """The document's MinHash over word shingles (seeded; identical across runs)."""
        sketch = self._template.copy()
        sketch.update_batch(shingle_hashes(text, self.options["shingle_words"]).tolist())
        return sketch

    def _near_duplicate_of(self, sketch: MinHash) -> str | None:
        """The name of the most similar kept document among the LSH candidates, if its estimated
        Jaccard similarity (share of equal hash values, as MinHash.jaccard) reaches the threshold."""
        candidates = self._lsh.query(sketch)
        if not candidates:
            return None
        keys = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
        similarity = (self._sketches[keys] == sketch.hashvalues).mean(axis=1)
        best = int(np.argmax(similarity))
        self._candidates["checked"] += len(keys)
        self._candidates["below_threshold"] += int((similarity < self.options["jaccard_threshold"]).sum())
        if similarity[best] < self.options["jaccard_threshold"]:
            return None
        return self._names[int(keys[best])]

    def process(self, doc: Document) -> Document | None:
        """The cleaned document, or None when it is empty, too short or a duplicate of one already kept."""
        source = doc.source
        counts = self._per_source.setdefault(source, _zero_counts())
        counts["seen"] += 1
        self._totals["seen"] += 1
        self._chars["seen"] += len(doc.text)

        opts = self.options
        text = normalize_text(doc.text, opts["unicode_form"])
        if not text:
            self._count(source, "empty")
            return None
        if len(text) < opts["min_chars"] or (opts["min_words"] and len(text.split()) < opts["min_words"]):
            self._count(source, "too_short")
            return None
        name = f"{source}/{doc.id}"
        key = dedup_key(text) if opts["exact_dedup"] else None
        if key is not None and key in self._exact:
            self._count(source, "exact_duplicate")
            self._example("exact_duplicate", doc, self._first_key.get(key, "?"))
            return None
        sketch = None
        if self._lsh is not None:
            sketch = self.minhash(text)
            duplicate_of = self._near_duplicate_of(sketch)
            if duplicate_of is not None:
                self._count(source, "near_duplicate")
                self._example("near_duplicate", doc, duplicate_of)
                return None
        # Only kept documents enter the indexes, so every drop points at a document that was kept.
        if key is not None:
            self._exact.add(key)
            if len(self._first_key) < 1000:  # names for the report's examples; bounded memory
                self._first_key[key] = name
        if sketch is not None:
            # LSH keys are row numbers (ids may repeat across files, keys must not).
            row = len(self._names)
            if row == len(self._sketches):
                self._sketches = np.concatenate([self._sketches, np.zeros_like(self._sketches)])
            self._sketches[row] = sketch.hashvalues
            self._names.append(name)
            self._lsh.insert(row, sketch, check_duplication=False)

        self._count(source, "kept")
        self._chars["kept"] += len(text)
        title = normalize_text(doc.title, opts["unicode_form"]) if doc.title else doc.title
        return Document(id=doc.id, text=text, title=title, source=doc.source, meta=dict(doc.meta))

    def report(self) -> dict:
        """JSON-serialisable counts: seen = kept + empty + too_short + exact_duplicate + near_duplicate,
        overall ("total") and per source, with characters before/after and the options used."""
        return {
            "options": dict(self.options),
            "seed": self.seed,
            "lsh": ({"bands": self._lsh.b, "rows": self._lsh.r, "candidates": dict(self._candidates)}
                    if self._lsh is not None else None),
            "filters": list(FILTERS),
            "total": dict(self._totals),
            "sources": {name: dict(counts) for name, counts in sorted(self._per_source.items())},
            "chars": dict(self._chars),
            "examples": {kind: list(items) for kind, items in self._examples.items()},
        }

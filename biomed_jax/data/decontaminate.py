"""Benchmark decontamination: which evaluation test questions does a training corpus contain?

MedAlpaca's users asked whether USMLE questions leaked into its training data, and FullyOpenMeditron ships
n-gram decontamination; a corpus build here answers the question with a report (and, with
`action="drop"`, by leaving the documents out). The method is the n-gram overlap test of GPT-3 and its
successors: a document contains a test question when it shares `ngram` (13) consecutive normalised words
with the question's text.

This module is engine-agnostic: it knows neither readers nor Beam. An engine calls, per build,

    section = validate(cfg.decontam)              # ValueError naming decontam.<field>
    if section["benchmarks"]:                     # empty = the stage is off
        index = build_index(section)              # picklable: a Beam side input as is
        report = DecontamReport.for_index(index, section)
        for doc in documents:                     # in a Beam DoFn, per worker
            hits = index.hits(doc.text)
            report.add(doc.source, doc.id, hits)  # a CombineFn: create / add / merge / to_dict
            if hits and section["action"] == "drop": continue
            ...
        write(report.to_dict())                   # the same dict however the work was split

Normalisation (`words`): Unicode NFKC, then lowercase, then every maximal run of Unicode letters and
digits is a word; everything else (punctuation, symbols, whitespace, underscores) only separates words.
So "59-year-old", "59 year old" and "59-Year-Old" are the same three words, curly and straight quotes
do not matter, and a full-width or ligature form matches its plain one.

The text of a test question is its question followed by its options (rendered twice: the option texts
alone, and each preceded by its letter, since leaked copies print "A. text", "(A) text" or "A: text",
which all normalise to "a text"); for PubMedQA and BioASQ, whose options are the answer words
yes/no/maybe themselves, it is the context followed by the question. A rendering of at least `ngram`
words contributes all its `ngram`-word windows; a shorter one contributes its whole word sequence as one
n-gram if it has at least MIN_WORDS (8) words, and nothing otherwise (`questions_unindexed` counts
those): a match on fewer than 8 words is as likely a common phrase ("which of the following is the most
likely") as a leak, and would flag documents by the thousand.
For the same reason an n-gram that more than MAX_QUESTIONS_PER_NGRAM (2) test questions share is not
indexed: it is exam boilerplate, not any one question (see `index_questions`).

N-grams are stored as 64-bit hashes: each word is hashed once with BLAKE2b (8 bytes, stable across
processes and machines, unlike Python's `hash`), and an n-gram's hash is the polynomial
sum(word_hash[i] * P**(n-1-i)) mod 2**64 with the odd constant P below, so a document's hashes for
every window length come out of one vectorised numpy pass. The index keeps only the words of the test
questions (a document window holding any other word cannot match, and is never looked up) and a sorted
array of n-gram hashes with the questions each belongs to (CSR arrays), which keeps it compact,
picklable and fast: `hits` on a 5,000-word document is one regex pass, one dict lookup per word, a
bitmap test per window and a binary search for the few windows that pass it (1.5-3 ms).
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from biomed_jax.data.benchmarks import KINDS, MCQuestion, load_benchmark

DEFAULTS: dict[str, Any] = {
    "benchmarks": "",      # comma-separated names among KINDS (or a tuple); empty = the stage is off
    "data_root": "",       # the folder holding the released benchmark layouts (medqa/, pubmedqa/, ...)
    "ngram": 13,           # consecutive words a document must share with a test question
    "action": "report",    # "report": count and list only; "drop": also leave contaminated documents out
    "max_examples": 5,     # contaminated documents listed per benchmark in the report
}
ACTIONS = ("report", "drop")
MIN_WORDS = 8  # the shortest n-gram ever looked up (see the module docstring); also the least `ngram`
MAX_QUESTIONS_PER_NGRAM = 2  # an n-gram in more test questions than this is boilerplate (index_questions)

# Each benchmark's test questions under data_root: (relative path, split), the paths
# configs/evaluation.py's suites evaluate. MedMCQA's test answers are not public, so its dev split is what is
# evaluated and what must not leak; MMLU is its six medical subjects (the loader's default); USMLE every
# step file, with image questions left out as MedAlpaca's evaluation leaves them out.
TEST_SETS: dict[str, tuple[str, str | None]] = {
    "medqa": ("medqa", "test"),
    "medmcqa": ("medmcqa/dev.json", None),
    "pubmedqa": ("pubmedqa/ori_pqal.json", "test"),
    "mmlu": ("mmlu", "test"),
    "bioasq": ("bioasq", None),
    "usmle": ("usmle", None),
}

_WORD = re.compile(r"[^\W_]+")
# ASCII letters and digits to themselves (capitals lowered), every other byte to a space.
_ASCII_WORD_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
_P = np.uint64(0x9E3779B97F4A7C15)  # odd, so every power of it is invertible mod 2**64
_DIGITS = re.compile(r"(\d+)")


# ---------------------------------------------------------------------------------------------------
# Config


def validate(section: Any) -> dict[str, Any]:
    """The `decontam` config section (a mapping or ConfigDict; None = all defaults) as a plain dict with
    defaults filled in and `benchmarks` as a tuple; a ValueError naming `decontam.<field>` otherwise."""
    if section is not None and not hasattr(section, "items"):
        raise ValueError(f"decontam must be a config section (a mapping of fields), got {section!r}")
    given = dict(section.items()) if section is not None else {}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join('decontam.' + k for k in unknown)}; "
                         f"known fields: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **given}
    names = out["benchmarks"]
    if isinstance(names, str):
        names = names.split(",")
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"decontam.benchmarks must be comma-separated names or a tuple of names, "
                         f"got {out['benchmarks']!r}")
    names = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    bad = [name for name in names if name not in KINDS]
    if bad:
        raise ValueError(f"decontam.benchmarks: unknown benchmark(s) {', '.join(map(repr, bad))}; "
                         f"known: {', '.join(KINDS)}")
    out["benchmarks"] = names
    if not isinstance(out["data_root"], str):
        raise ValueError(f"decontam.data_root must be a path string, got {out['data_root']!r}")
    if names and not out["data_root"]:
        raise ValueError(f"decontam.data_root is empty: set it to the folder holding the benchmark files "
                         f"({', '.join(name + '/' for name in names)}), or empty decontam.benchmarks")
    for field, least in (("ngram", MIN_WORDS), ("max_examples", 0)):
        value = out[field]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"decontam.{field} must be an integer >= {least}, got {value!r}")
        out[field] = int(value)
    if out["action"] not in ACTIONS:
        raise ValueError(f"decontam.action must be one of {', '.join(ACTIONS)}, got {out['action']!r}")
    return out


# ---------------------------------------------------------------------------------------------------
# Words and n-gram hashes


def words(text: str) -> list[str]:
    """The normalised words of `text`: NFKC, lowercase, runs of Unicode letters and digits.

    ASCII text (NFKC leaves it as it is) takes a byte-table path that gives the same words about five
    times faster than the regex, which otherwise is most of the time `hits` takes.
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _word_hash(word: str) -> int:
    """A stable, nonzero 64-bit hash of one word (0 marks a word the index does not know)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little") or 1


def _window_hashes(ids: np.ndarray, lengths: set[int]) -> dict[int, np.ndarray]:
    """{k: hashes of every k-word window of `ids`} for each k in `lengths` that fits.

    h_k[j] = h_{k-1}[j] * P + ids[j+k-1], so one pass over k = 1..max(lengths) yields every length;
    uint64 arithmetic wraps, which is the mod 2**64.
    """
    n = len(ids)
    out = {}
    h = np.zeros(n, dtype=np.uint64)
    for k in range(1, min(max(lengths), n) + 1):
        h = h[:n - k + 1] * _P + ids[k - 1:]
        if k in lengths:
            out[k] = h
    return out


def question_texts(q: MCQuestion) -> list[str]:
    """The renderings of a test question that a leaked copy would contain (see the module docstring)."""
    if q.letters == q.options:  # PubMedQA, BioASQ: the options are the answer words
        return [f"{q.context}\n{q.question}"]
    head = f"{q.context}\n{q.question}" if q.context else q.question
    return ["\n".join([head, *q.options]),
            "\n".join([head, *(f"{letter}. {option}" for letter, option in zip(q.letters, q.options))])]


def _natural(text: str) -> tuple[list, str]:
    """A total sort key that orders the numbers inside ids as numbers ("test:2" before "test:10"); the
    text itself breaks ties ("a01" and "a1"), so no order ever depends on which worker saw what first."""
    return [int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(text))], text


# ---------------------------------------------------------------------------------------------------
# The index


class NgramIndex:
    """The n-grams of benchmark test questions, as sorted 64-bit hashes, each with the questions holding it.

    Build it with `build_index` (from the config) or `index_questions` (from loaded questions). It holds
    numpy arrays, a dict and lists only, so it pickles as a Beam side input; `hits` does not change it.
    Besides the sorted keys it keeps a bitmap of their top bits (about 16 bits per key, so some 6% of
    the bits are set): most document windows are ruled out by one gather from that small table, and
    only the rest are binary-searched among hundreds of thousands of keys, which is what kept `hits`
    at milliseconds rather than tens of them.
    """

    def __init__(self, ngram: int, benchmarks: Sequence[str], question_ids: Sequence[str],
                 question_benchmark: np.ndarray, vocab: dict[str, int], keys: np.ndarray, offsets: np.ndarray,
                 entries: np.ndarray, lengths: Sequence[int], info: dict):
        self.ngram = ngram
        self.benchmarks = tuple(benchmarks)
        self.question_ids = list(question_ids)        # global question number -> its id
        self.question_benchmark = question_benchmark  # global question number -> index into benchmarks
        self.vocab = vocab                            # word -> its 64-bit hash, for test-question words only
        self.keys = keys                              # sorted unique n-gram hashes (uint64)
        self.offsets = offsets                        # questions of keys[i]: entries[offsets[i]:offsets[i+1]]
        self.entries = entries                        # global question numbers (int32)
        self.lengths = frozenset(lengths)             # window lengths looked up: ngram and the short ones used
        self.info = info                              # per benchmark: path, questions, unindexed, ngrams, ...
        bits = max(6, int(np.ceil(np.log2(max(len(keys), 1) * 16))))
        self._shift = np.uint64(64 - bits)
        self._bitmap = np.zeros(2 ** (bits - 3), dtype=np.uint8)
        slots = keys >> self._shift
        np.bitwise_or.at(self._bitmap, slots >> np.uint64(3), np.left_shift(1, slots & np.uint64(7)).astype(np.uint8))

    def __len__(self) -> int:
        return len(self.keys)

    def totals(self) -> dict[str, int]:
        """Test questions per benchmark, indexed or not."""
        return {name: self.info[name]["questions_total"] for name in self.benchmarks}

    def hits(self, text: str) -> dict[str, set[str]]:
        """{benchmark: ids of its test questions that `text` shares an n-gram with}; {} for a clean text."""
        seq = words(text)
        ids = np.fromiter(map(self.vocab.get, seq, itertools.repeat(0)), dtype=np.uint64, count=len(seq))
        if len(ids) < MIN_WORDS or not len(self.keys):
            return {}
        # ids[j:j+k] holds no unknown word (0) <=> cum[j+k] == cum[j]
        cum = np.concatenate(([0], np.cumsum(ids == 0)))
        found = []
        for k, hashes in _window_hashes(ids, self.lengths).items():
            candidates = hashes[cum[k:] == cum[:len(hashes)]]
            slots = candidates >> self._shift
            maybe = (self._bitmap[slots >> np.uint64(3)] >> (slots & np.uint64(7))) & np.uint64(1)
            candidates = candidates[maybe == 1]
            if len(candidates):
                pos = np.minimum(np.searchsorted(self.keys, candidates), len(self.keys) - 1)
                found.append(pos[self.keys[pos] == candidates])
        out: dict[str, set[str]] = {}
        for p in np.unique(np.concatenate(found)) if found else ():
            for question in self.entries[self.offsets[p]:self.offsets[p + 1]]:
                out.setdefault(self.benchmarks[self.question_benchmark[question]], set()).add(
                    self.question_ids[question])
        return out


def index_questions(questions: Mapping[str, Sequence[MCQuestion]], ngram: int = DEFAULTS["ngram"],
                    info: Mapping[str, dict] | None = None) -> NgramIndex:
    """The index of `questions` ({benchmark: its test questions}); `info` adds per-benchmark facts
    (where they were read from) to `index.info`. `build_index` reads the questions from the config.

    An n-gram found in more than MAX_QUESTIONS_PER_NGRAM distinct test questions is left out: in the
    released sets those are exam boilerplate ("which of the following is the most appropriate next step
    in management", vital-sign and lab-value phrasing), shared by up to 74 MedQA questions and by any
    USMLE-style text, so one such match says nothing about which question leaked. Pairs are kept: they
    are mostly genuine duplicates (MMLU questions repeated across subjects, BioASQ questions reusing
    snippets), and dropping them would make those questions undetectable. Per benchmark, `info` counts
    the (n-gram, question) pairs so left out and the questions left with no n-gram at all.
    """
    if isinstance(ngram, bool) or not isinstance(ngram, numbers.Integral) or ngram < MIN_WORDS:
        raise ValueError(f"ngram must be an integer >= {MIN_WORDS}, got {ngram!r}")
    vocab: dict[str, int] = {}
    question_ids: list[str] = []
    question_benchmark: list[int] = []
    all_hashes: list[np.ndarray] = []
    all_owners: list[np.ndarray] = []
    lengths = {ngram}
    for b, qs in enumerate(questions.values()):
        for q in qs:
            number = len(question_ids)
            question_ids.append(q.id)
            question_benchmark.append(b)
            for text in question_texts(q):
                seq = words(text)
                for word in seq:
                    if word not in vocab:
                        vocab[word] = _word_hash(word)
                k = min(ngram, len(seq))
                if k < MIN_WORDS:
                    continue
                lengths.add(k)
                hashes = _window_hashes(np.array([vocab[w] for w in seq], dtype=np.uint64), {k})[k]
                all_hashes.append(hashes)
                all_owners.append(np.full(len(hashes), number, dtype=np.int32))
    hashes = np.concatenate(all_hashes) if all_hashes else np.zeros(0, dtype=np.uint64)
    owners = np.concatenate(all_owners) if all_owners else np.zeros(0, dtype=np.int32)
    order = np.lexsort((owners, hashes))
    hashes, owners = hashes[order], owners[order]
    distinct = np.ones(len(hashes), dtype=bool)  # one entry per (n-gram, question)
    distinct[1:] = (hashes[1:] != hashes[:-1]) | (owners[1:] != owners[:-1])
    hashes, owners = hashes[distinct], owners[distinct]
    _, sharing = np.unique(hashes, return_counts=True)
    shared = np.repeat(sharing > MAX_QUESTIONS_PER_NGRAM, sharing)
    benchmark_of = np.array(question_benchmark, dtype=np.int16)
    indexed = np.zeros(len(question_ids), dtype=bool)
    indexed[owners[~shared]] = True
    details = {}
    for b, (name, qs) in enumerate(questions.items()):
        mine = benchmark_of[owners] == b
        details[name] = {**(info or {}).get(name, {}), "questions_total": len(qs),
                         "questions_unindexed": int(np.sum(~indexed[benchmark_of == b])),
                         "ngrams": int(np.sum(mine & ~shared)), "ngrams_shared_dropped": int(np.sum(mine & shared))}
    hashes, owners = hashes[~shared], owners[~shared]
    keys, starts = np.unique(hashes, return_index=True)
    offsets = np.append(starts, len(hashes)).astype(np.int32)
    return NgramIndex(ngram=int(ngram), benchmarks=tuple(questions), question_ids=question_ids,
                      question_benchmark=benchmark_of, vocab=vocab, keys=keys, offsets=offsets, entries=owners,
                      lengths=sorted(lengths), info=details)


def build_index(section: Any) -> NgramIndex:
    """The index of every configured benchmark's test questions, read from `decontam.data_root` through
    `load_benchmark`. A missing file fails naming decontam.data_root and the path; a benchmark file the
    loader could not read, or one that yields no questions, fails too (an index silently missing a
    benchmark would report a contaminated corpus as clean)."""
    section = validate(section)
    if not section["benchmarks"]:
        raise ValueError("decontam.benchmarks is empty, so the decontamination stage is off; nothing to index")
    root = section["data_root"]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"decontam.data_root {root!r} is not a folder; point it at the folder holding "
                                f"{', '.join(name + '/' for name in section['benchmarks'])}")
    questions, info = {}, {}
    for name in section["benchmarks"]:
        relative, split = TEST_SETS[name]
        path = os.path.join(root, relative)
        try:
            loaded, report = load_benchmark(name, path, split=split)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"decontam.data_root {root!r}: {name} test questions not found ({err}); "
                                    f"expected the released layout at {path!r}") from None
        if report.errors:
            raise ValueError(f"decontam: {name} benchmark file unreadable: {report.errors[0]}")
        if not loaded:
            raise ValueError(f"decontam: no {name} test questions loaded from {path!r} (skipped: {report.skipped}); "
                             f"check the file or remove {name} from decontam.benchmarks")
        questions[name] = loaded
        info[name] = {"path": path, "split": split, "skipped": dict(report.skipped)}
    return index_questions(questions, section["ngram"], info)


# ---------------------------------------------------------------------------------------------------
# The report


class DecontamReport:
    """Which test questions a corpus contains, accumulated document by document and mergeable.

    Everything in it is a sum, a set union or the `max_examples` smallest (source, id) documents, so a
    report split over workers and merged in any order gives the same `to_dict()` as one fed everything;
    that is what a Beam CombineFn needs (create = `for_index`, add_input = `add`, merge = `merge`,
    extract_output = `to_dict`). Its size is bounded by the benchmarks, not the corpus.
    """

    def __init__(self, index_info: Mapping[str, dict], ngram: int, max_examples: int = DEFAULTS["max_examples"],
                 action: str = DEFAULTS["action"]):
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        self.index_info = {name: dict(facts) for name, facts in index_info.items()}
        self.ngram = ngram
        self.max_examples = max_examples
        self.action = action
        self.documents_checked = 0
        self.documents_hit = 0
        self.questions_hit: dict[str, set[str]] = {name: set() for name in self.index_info}
        self.benchmark_documents: dict[str, int] = {name: 0 for name in self.index_info}
        # benchmark -> {(source, id): question ids}, the smallest documents by _example_key only
        self.examples: dict[str, dict[tuple[str, str], frozenset[str]]] = {name: {} for name in self.index_info}

    @classmethod
    def for_index(cls, index: NgramIndex, section: Any = None) -> DecontamReport:
        """An empty report for `index`, with max_examples and action from the `decontam` section."""
        section = validate(section)
        return cls(index.info, index.ngram, section["max_examples"], section["action"])

    @staticmethod
    def _example_key(key: tuple[str, str]) -> tuple[tuple, tuple]:
        return _natural(key[0]), _natural(key[1])

    def _keep_example(self, name: str, key: tuple[str, str], question_ids: frozenset[str]) -> None:
        examples = self.examples[name]
        examples[key] = examples.get(key, frozenset()) | question_ids
        if len(examples) > self.max_examples:
            del examples[max(examples, key=self._example_key)]

    def add(self, source: str, doc_id: str, hits: Mapping[str, set[str]]) -> None:
        """Counts one checked document and, when `hits` (from `NgramIndex.hits`) is not empty, what it hit."""
        self.documents_checked += 1
        if not hits:
            return
        self.documents_hit += 1
        for name, question_ids in hits.items():
            if name not in self.questions_hit:
                raise ValueError(f"hits name benchmark {name!r}, which this report does not cover "
                                 f"({', '.join(self.questions_hit)})")
            self.questions_hit[name].update(question_ids)
            self.benchmark_documents[name] += 1
            self._keep_example(name, (str(source), str(doc_id)), frozenset(question_ids))

    def merge(self, other: DecontamReport) -> DecontamReport:
        """Adds `other`'s counts to this report (in place) and returns it; both must come from one index
        and one configuration."""
        mine = (self.index_info, self.ngram, self.max_examples, self.action)
        theirs = (other.index_info, other.ngram, other.max_examples, other.action)
        if mine != theirs:
            raise ValueError("cannot merge decontamination reports of different indexes or settings")
        self.documents_checked += other.documents_checked
        self.documents_hit += other.documents_hit
        for name in self.questions_hit:
            self.questions_hit[name] |= other.questions_hit[name]
            self.benchmark_documents[name] += other.benchmark_documents[name]
            for key, question_ids in other.examples[name].items():
                self._keep_example(name, key, question_ids)
        return self

    def to_dict(self) -> dict:
        """The JSON-ready report: overall counts, then per benchmark the test questions it has, how many
        and which the corpus contains, how many documents contain any, and the first documents by
        (source, id) with the questions each contains."""
        benchmarks = {}
        for name, facts in self.index_info.items():
            hit = sorted(self.questions_hit[name], key=_natural)
            examples = sorted(self.examples[name].items(), key=lambda item: self._example_key(item[0]))
            benchmarks[name] = {
                **facts,
                "questions_hit": len(hit),
                "question_ids_hit": hit,
                "documents_hit": self.benchmark_documents[name],
                "examples": [{"source": source, "id": doc_id, "question_ids": sorted(ids, key=_natural)}
                             for (source, doc_id), ids in examples],
            }
        return {
            "ngram": self.ngram,
            "action": self.action,
            "documents_checked": self.documents_checked,
            "documents_hit": self.documents_hit,
            "documents_dropped": self.documents_hit if self.action == "drop" else 0,
            "benchmarks": benchmarks,
        }

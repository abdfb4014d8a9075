"""The domain tokenizer: a byte-level BPE trained on the cleaned corpus (as BioMedLM did), or any HF one.

BioMedLM showed that a tokenizer trained on PubMed splits biomedical words into far fewer pieces than
GPT-2's (more text per context window, whole-word units for rare terms); `fertility_report` measures
exactly that: tokens per whitespace word on held-out text, and how a list of biomedical terms splits.

Byte-level BPE (GPT-2 style) covers every string: any Unicode text encodes and decodes back byte for
byte, with no unknown token. `build_or_load` is the one entry point the experiments use: it trains
(or reuses, or loads the configured) tokenizer and writes tokenizer.json and fertility.json.
"""

from __future__ import annotations

import collections
import hashlib
import os
import time
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from absl import logging
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from biomed_jax import files
from biomed_jax.run_dir import TOKENIZER_FILE, differing_keys, read_json, write_json

EOS_TOKEN = "<|endoftext|>"
FERTILITY_FILE = "fertility.json"
TRAINING_FILE = "tokenizer_training.json"  # the settings a trained tokenizer.json came from

# Real biomedical terms, long and domain-specific: a general-domain tokenizer splits them into many
# pieces, a domain one into few. Used in every fertility report (plus the corpus's own terms.txt).
BIOMEDICAL_TERMS = (
    "acetylcholinesterase", "immunohistochemistry", "thrombocytopenia", "hepatocellular",
    "glomerulonephritis", "pharmacokinetics", "cardiomyopathy", "angiotensin", "erythropoietin",
    "methotrexate", "pneumothorax", "bronchiectasis", "hyperlipidemia", "osteoarthritis",
    "immunoglobulin", "electrocardiogram", "thrombosis", "encephalopathy", "apoptosis",
    "metformin", "lymphadenopathy", "tachycardia", "adenocarcinoma", "myelodysplastic",
)

TOKENIZER_DEFAULTS: dict[str, Any] = dict(
    path="", vocab_size=28896, min_frequency=2, eos_token=EOS_TOKEN, max_train_docs=0, held_out_docs=2000,
    terms_file="",
)

_HOW_TO_GET = ("train one with `python -m experiments.train_tokenizer --config=configs/data.py:<preset> "
               "--workdir=DIR` (writes DIR/tokenizer.json), or download a model's tokenizer.json from the "
               "Hugging Face Hub")


# ---------------------------------------------------------------------------------------------------
# Training and loading


def byte_level_bpe(eos_token: str = EOS_TOKEN) -> Tokenizer:
    """An empty GPT-2-style tokenizer: bytes mapped to printable characters, the GPT-2 split regex
    (no prefix space, so decode(encode(text)) == text), no normaliser (the corpus is normalised already;
    a normaliser here would break byte-exact round trips)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    """Lists of texts: train_from_iterator takes batches, which crosses the Python/Rust boundary less."""
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2, eos_token: str = EOS_TOKEN,
              show_progress: bool = False) -> Tokenizer:
    """Trains a byte-level BPE of `vocab_size` tokens (256 byte symbols + `eos_token` + merges).

    The vocabulary is exactly `vocab_size` when the text has enough pairs seen `min_frequency` times
    to make `vocab_size - 257` merges; on a smaller corpus merging stops early and the vocabulary is
    smaller (logged as a warning). Downstream code must use `tokenizer.get_vocab_size()`, never the
    requested size. `eos_token` is a special token: it is never split and never made by merges.
    """
    if vocab_size < 257:
        raise ValueError(f"tokenizer.vocab_size must be >= 257 (256 byte symbols + the end-of-text token), "
                         f"got {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"tokenizer.min_frequency must be >= 1, got {min_frequency}")
    if not eos_token:
        raise ValueError("tokenizer.eos_token must be a non-empty string")
    counter = {"docs": 0, "chars": 0}

    def counted(batches: Iterator[list[str]]) -> Iterator[list[str]]:
        for batch in batches:
            counter["docs"] += len(batch)
            counter["chars"] += sum(len(text) for text in batch)
            yield batch

    tokenizer = byte_level_bpe(eos_token)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[eos_token],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=show_progress)
    tokenizer.train_from_iterator(counted(_batches(texts)), trainer=trainer)
    if counter["chars"] == 0:
        raise ValueError("no training text for the tokenizer: every document is empty or the corpus has "
                         "no training documents (check the sources, clean.min_chars/min_words and "
                         "split.validation_fraction)")
    actual = tokenizer.get_vocab_size()
    if actual < vocab_size:
        logging.warning("tokenizer: asked for %d tokens but the corpus (%d documents, %d characters) only "
                        "supports %d with min_frequency=%d; using %d", vocab_size, counter["docs"],
                        counter["chars"], actual, min_frequency, actual)
    return tokenizer


def load_tokenizer(path: str) -> Tokenizer:
    """Any HF tokenizer: a tokenizer.json file, or a folder holding one (or, failing that, GPT-2-style
    vocab.json + merges.txt, read as a byte-level BPE)."""
    if files.is_remote(path):  # an object store: the file itself, or a folder holding tokenizer.json
        file = path if path.endswith(".json") else files.join(path, TOKENIZER_FILE)
        if not files.exists(file):
            raise FileNotFoundError(f"tokenizer file {file!r} not found; {_HOW_TO_GET}")
        return _parse(file, lambda: Tokenizer.from_str(files.read_text(file)))
    file = path
    if os.path.isdir(path):
        file = os.path.join(path, TOKENIZER_FILE)
        vocab, merges = os.path.join(path, "vocab.json"), os.path.join(path, "merges.txt")
        if not os.path.exists(file) and os.path.exists(vocab) and os.path.exists(merges):
            return _load_vocab_merges(vocab, merges)
    if not os.path.exists(file):
        raise FileNotFoundError(f"tokenizer file {file!r} not found; {_HOW_TO_GET}")
    return _parse(file, lambda: Tokenizer.from_file(file))


def _parse(file: str, load) -> Tokenizer:
    try:
        return load()
    except Exception as err:  # tokenizers raises a plain Exception with the serde error
        raise ValueError(f"{file!r} is not a readable Hugging Face tokenizer.json: {err}") from err


def _load_vocab_merges(vocab: str, merges: str) -> Tokenizer:
    """A GPT-2-style tokenizer from its two files; <|endoftext|> (if in the vocab) kept whole."""
    try:
        tokenizer = byte_level_bpe()
        tokenizer.model = models.BPE.from_file(vocab, merges)
    except Exception as err:
        raise ValueError(f"{vocab!r} / {merges!r} are not a readable BPE vocab and merges: {err}") from err
    if tokenizer.token_to_id(EOS_TOKEN) is not None:
        tokenizer.add_special_tokens([EOS_TOKEN])
    return tokenizer


def eos_token_id(tokenizer: Tokenizer, eos_token: str = EOS_TOKEN, path: str | None = None) -> int:
    """The id of the end-of-text token that separates documents; an error naming the token if absent."""
    token_id = tokenizer.token_to_id(eos_token)
    if token_id is None:
        where = f" {path!r}" if path else ""
        raise ValueError(f"the end-of-text token {eos_token!r} is not in the tokenizer{where}; set "
                         f"tokenizer.eos_token to the tokenizer's own (e.g. '</s>' for Llama, "
                         f"'<|endoftext|>' for GPT-2/BioMedLM)")
    return token_id


def save_tokenizer(tokenizer: Tokenizer, path: str) -> str:
    """Writes tokenizer.json atomically: a crash never leaves a half-written file that looks finished."""
    return files.write_text(path, tokenizer.to_str(pretty=True))


# ---------------------------------------------------------------------------------------------------
# Fertility


def term_pieces(tokenizer: Tokenizer, term: str) -> list[str]:
    """How `term` splits mid-sentence (after a space, as in running text): each token decoded alone,
    so the first piece carries the space (" acetyl", "chol", ...)."""
    ids = tokenizer.encode(" " + term, add_special_tokens=False).ids
    return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]


def fertility_report(tokenizer: Tokenizer, held_out_texts: Iterable[str], terms: Sequence[str]) -> dict:
    """How compactly the tokenizer encodes held-out text and biomedical terms.

    tokens_per_word = all tokens / all whitespace-separated words (the usual "fertility"; lower is
    better), chars_per_token = characters / tokens, single_token_word_fraction = share of word
    occurrences that are one token when they follow a space (as most words do in running text).
    Each term gets its pieces and their count. Ratios are None when there is no held-out text.
    """
    texts = [text for text in held_out_texts if text]
    docs, words, chars, tokens = len(texts), 0, 0, 0
    word_counts: collections.Counter = collections.Counter()
    for start in range(0, len(texts), 256):
        batch = texts[start:start + 256]
        for text, encoding in zip(batch, tokenizer.encode_batch(batch, add_special_tokens=False)):
            split = text.split()
            words += len(split)
            chars += len(text)
            tokens += len(encoding.ids)
            word_counts.update(split)
    single = 0
    distinct = list(word_counts)
    for start in range(0, len(distinct), 4096):
        batch = distinct[start:start + 4096]
        encodings = tokenizer.encode_batch([" " + word for word in batch], add_special_tokens=False)
        single += sum(word_counts[word] for word, enc in zip(batch, encodings) if len(enc.ids) == 1)

    term_rows = []
    for term in dict.fromkeys(t.strip() for t in terms if t.strip()):
        pieces = term_pieces(tokenizer, term)
        term_rows.append({"term": term, "tokens": len(pieces), "pieces": pieces})

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    summary = {
        "vocab_size": tokenizer.get_vocab_size(),
        "tokens_per_word": ratio(tokens, words),
        "chars_per_token": ratio(chars, tokens),
        "single_token_word_fraction": ratio(single, words),
        "terms": len(term_rows),
        "mean_tokens_per_term": ratio(sum(r["tokens"] for r in term_rows), len(term_rows)),
        "single_token_terms": sum(r["tokens"] == 1 for r in term_rows),
    }
    return {
        "summary": summary,
        "held_out": {"docs": docs, "words": words, "chars": chars, "tokens": tokens, "single_token_words": single},
        "terms": term_rows,
    }


def read_terms(path: str) -> list[str]:
    """Terms from a text file, one per line (blank lines and # comments skipped)."""
    if not files.exists(path):
        raise FileNotFoundError(f"terms file {path!r} not found (tokenizer.terms_file): one term per line")
    with files.open_text(path) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


# ---------------------------------------------------------------------------------------------------
# The experiments' entry point


def tokenizer_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The `tokenizer` section of a data config, defaults filled in and checked (errors name the field)."""
    section = cfg.get("tokenizer")
    if section is None:
        raise ValueError("data config has no `tokenizer` section (see configs/data.py)")
    section = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    unknown = sorted(set(section) - set(TOKENIZER_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown tokenizer option(s) {', '.join('tokenizer.' + k for k in unknown)}; "
                         f"known: {sorted(TOKENIZER_DEFAULTS)}")
    opts = {**TOKENIZER_DEFAULTS, **section}
    for field, low in (("vocab_size", 257), ("min_frequency", 1), ("max_train_docs", 0), ("held_out_docs", 0)):
        value = opts[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"tokenizer.{field} must be an integer >= {low}, got {value!r}")
    for field in ("path", "eos_token", "terms_file"):
        if not isinstance(opts[field], str):
            raise ValueError(f"tokenizer.{field} must be a string, got {opts[field]!r}")
    if not opts["eos_token"]:
        raise ValueError("tokenizer.eos_token must be a non-empty string")
    if opts["path"] and not os.path.exists(opts["path"]):
        raise FileNotFoundError(f"tokenizer.path={opts['path']!r} does not exist; point it at a tokenizer.json "
                                f"(or a folder holding one), or leave it empty to train one")
    if opts["terms_file"] and not os.path.exists(opts["terms_file"]):
        raise FileNotFoundError(f"tokenizer.terms_file={opts['terms_file']!r} does not exist; one term per line")
    return opts


def report_terms(opts: Mapping[str, Any], manual_dir: str | None) -> list[str]:
    """The built-in biomedical terms (or tokenizer.terms_file's), plus the corpus's own terms.txt."""
    terms = read_terms(opts["terms_file"]) if opts.get("terms_file") else list(BIOMEDICAL_TERMS)
    if manual_dir and files.exists(files.join(manual_dir, "terms.txt")):
        terms += read_terms(files.join(manual_dir, "terms.txt"))
    return list(dict.fromkeys(terms))


def sample_rank(source: str, doc_id: str) -> int:
    """A document's place in every deterministic sample: 64 bits of sha256("source:id")."""
    return int.from_bytes(hashlib.sha256(f"{source}:{doc_id}".encode()).digest()[:8], "big")


class DocumentSample:
    """The `limit` documents of `split` with the smallest `sample_rank` (all of them for limit 0): the
    same set whatever order the corpus's files hold them in, so the in-process and the Beam engine train
    the same tokenizer (BPE training counts, so the order the sample is read in does not matter either).
    Iterating reads the corpus twice: the ranks, then the documents under the cut."""

    def __init__(self, corpus: Any, split: str, limit: int):
        self.corpus, self.split, self.limit = corpus, split, int(limit)
        ranks = np.fromiter((sample_rank(d.source, d.id) for d in corpus.iter_documents(split)), dtype=np.uint64)
        self.total = len(ranks)
        self.cut = None
        if self.limit and self.total > self.limit:
            self.cut = int(np.partition(ranks, self.limit - 1)[self.limit - 1])

    def __iter__(self) -> Iterator[Any]:
        for doc in self.corpus.iter_documents(self.split):
            if self.cut is None or sample_rank(doc.source, doc.id) <= self.cut:
                yield doc

    def describe(self) -> dict:
        chosen = self.total if self.cut is None else min(self.limit, self.total)
        return {"split": self.split, "documents": chosen, "of": self.total,
                "rule": "the documents with the smallest sha256(source:id), 64 bits" if self.cut is not None
                else "every document"}


def sample_documents(corpus: Any, split: str, limit: int) -> DocumentSample:
    return DocumentSample(corpus, split, limit)


def _training_settings(opts: Mapping[str, Any], corpus: Any) -> dict:
    """What a trained tokenizer.json depends on, as plain JSON values; compared on reuse so a stale file is
    never used. The corpus is recorded by the settings it was cleaned with (CleanCorpus.settings)."""
    return {key: opts[key] for key in ("vocab_size", "min_frequency", "eos_token", "max_train_docs")} | {
        "corpus": getattr(corpus, "settings", None)}


def _setting_name(key: str) -> str:
    if key == "corpus":
        return "the cleaned corpus"
    if key.startswith("corpus."):
        return f"the cleaned corpus's {key[len('corpus.'):]}"
    return f"tokenizer.{key}"


def build_or_load(cfg: Mapping[str, Any], corpus: Any, out_dir: str, overwrite: bool = False,
                  show_progress: bool = False) -> tuple[Tokenizer, str, dict]:
    """The corpus's tokenizer and its fertility report: (tokenizer, tokenizer.json path, report).

    - `tokenizer.path` set: loads that tokenizer (nothing trained, nothing copied);
    - else OUT_DIR/tokenizer.json exists: reuses it, provided it was trained with the same settings on
      the same cleaned corpus (a FileExistsError otherwise; pass overwrite=True to retrain);
    - else trains on a deterministic sample of the corpus's train split (`sample_documents`: the
      tokenizer.max_train_docs documents with the smallest hash of source:id; 0 = all)
      and writes OUT_DIR/tokenizer.json atomically.
    Then always writes OUT_DIR/fertility.json from tokenizer.held_out_docs validation documents, sampled
    the same way; the training record (in the report's tokenizer.training) says which sample it used.
    `corpus` is a `biomed_jax.data.corpus.CleanCorpus` (anything with iter_documents(split) and report).
    """
    opts = tokenizer_options(cfg)
    out_path = files.join(out_dir, TOKENIZER_FILE)
    training_path = files.join(out_dir, TRAINING_FILE)
    settings = _training_settings(opts, corpus)
    training: dict[str, Any]
    if opts["path"]:
        path = opts["path"]
        tokenizer = load_tokenizer(path)
        path = os.path.join(path, TOKENIZER_FILE) if os.path.isdir(path) and os.path.exists(
            os.path.join(path, TOKENIZER_FILE)) else path
        training = {"status": "loaded", "path": os.path.abspath(path)}
    elif files.exists(out_path) and not overwrite:
        # Not run_dir.ensure_same_settings: the settings are recorded only once a tokenizer is trained (in
        # TRAINING_FILE, with what training produced), and `overwrite` retrains under new ones.
        path = out_path
        if not files.exists(training_path):
            raise FileExistsError(
                f"{out_path} exists but {training_path} (how it was trained) does not; rerun with --overwrite "
                f"(overwrite=True) to retrain, use a new workdir, or set tokenizer.path to use that file as is")
        previous = read_json(training_path, "tokenizer training record")
        differ = differing_keys(previous.get("settings") or {}, settings)
        if differ:
            raise FileExistsError(
                f"{out_path} was trained with different settings ({', '.join(map(_setting_name, differ))}); "
                f"rerun with --overwrite (overwrite=True) to retrain, or use a new workdir")
        tokenizer = load_tokenizer(path)
        training = {**previous, "status": "reused"}
        logging.info("tokenizer: reusing %s (trained earlier; --overwrite retrains)", out_path)
    else:
        path = out_path
        sample = sample_documents(corpus, "train", opts["max_train_docs"])
        start = time.perf_counter()
        tokenizer = train_bpe((doc.text for doc in sample), opts["vocab_size"], opts["min_frequency"],
                              opts["eos_token"], show_progress=show_progress)
        seconds = time.perf_counter() - start
        save_tokenizer(tokenizer, out_path)
        training = {"status": "trained", "settings": settings, "requested_vocab_size": opts["vocab_size"],
                    "vocab_size": tokenizer.get_vocab_size(), "seconds": round(seconds, 2),
                    "sample": sample.describe()}
        write_json(training_path, training)

    eos_id = eos_token_id(tokenizer, opts["eos_token"], path)
    held_out = [doc.text for doc in sample_documents(corpus, "validation", opts["held_out_docs"])] \
        if opts["held_out_docs"] else []
    if not held_out:
        logging.warning("tokenizer: no validation documents for the fertility report "
                        "(split.validation_fraction or tokenizer.held_out_docs is 0?)")
    manual_dir = (getattr(corpus, "report", None) or {}).get("manual_dir") or cfg.get("manual_dir")
    report = fertility_report(tokenizer, held_out, report_terms(opts, manual_dir))
    report["tokenizer"] = {"path": files.absolute(path), "vocab_size": tokenizer.get_vocab_size(),
                           "eos_token": opts["eos_token"], "eos_id": eos_id, "training": training}
    write_json(files.join(out_dir, FERTILITY_FILE), report)
    return tokenizer, path, report

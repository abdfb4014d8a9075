"""Data preparation: raw sources -> clean + dedup -> mixture -> BPE tokenizer -> TFDS token dataset.

    python -m experiments.prepare_data --config=configs/data.py:<preset> --data_dir=DIR
    python -m experiments.train_tokenizer --config=configs/data.py:<preset> --workdir=DIR

Presets:
  synthetic   the embedded synthetic biomedical world (generated, no download): PubMed XML abstracts,
              guideline JSONL and 1% general replay; a small tokenizer for the tiny models.
  quickstart  synthetic with a smaller world (QUICKSTART_WORLD: fewer entities, 16 abstracts per fact):
              the corpus `make quickstart` pretrains on and the fine-tuning synthetic presets ask about.
  pubmed      BioMedLM: PubMed abstracts (NLM baseline/update XML) + PMC OA full text (JATS),
              28,896-token byte-level BPE. Point --config.manual_dir at the downloaded files.
  gap_replay  MEDITRON's GAP-Replay mixture: clinical guidelines x2, PubMed abstracts, PMC papers and
              1% general-domain replay. Point --config.manual_dir at the files.

Source paths are comma-separated globs, relative to `manual_dir` unless absolute. Each source is repeated
`epochs` times (a fractional part samples that share of documents, deterministically from the seed), or,
when `fraction` > 0, sized to make up that fraction of the mixture's characters (the 1% replay).
"""

from __future__ import annotations

import ml_collections

from biomed_jax.synthetic.defaults import QUICKSTART_WORLD, WORLD_DEFAULTS

PRESETS = ("synthetic", "quickstart", "pubmed", "gap_replay")
# What the generated world (synthetic, quickstart) sets differently from the real corpora.
_WORLD_SIZED = dict(min_chars=100, min_words=10, vocab_size=4096, max_train_docs=0, held_out_docs=200,
                    validation_fraction=0.02, num_workers=1)
_CORPUS_SIZED = dict(min_chars=200, min_words=20, vocab_size=28896, max_train_docs=2_000_000, held_out_docs=2000,
                     validation_fraction=0.005, num_workers=8)


def _source(kind: str, paths: str, epochs: float = 1.0, fraction: float = 0.0) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(kind=kind, paths=paths, epochs=epochs, fraction=fraction))


def get_config(preset: str = "synthetic") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/data.py; choose one of {list(PRESETS)}")
    cfg = ml_collections.ConfigDict()
    cfg.name = preset  # the TFDS dataset's config name: DATA_DIR/biomed_corpus/<name>/<version>
    cfg.seed = 0
    # local: every stage in this process (laptop, quickstart); beam: clean + dedup + tokenize + write as
    # Apache Beam pipelines, run with prepare_data's --beam_pipeline_options (DirectRunner, Dataflow,
    # Flink, Spark). Both keep the same documents and write the same tokens.
    cfg.engine = "local"
    # Where relative source paths point. synthetic: empty = generate the world under the work directory.
    # A bucket works (gs://, s3://: Beam's filesystems, see biomed_jax/files.py).
    cfg.manual_dir = ""
    # The stages' work files (clean corpus, tokenizer, reports); empty = DATA_DIR/biomed_work/<name>. May be
    # a bucket, which every Beam worker sees; the dataset itself (--data_dir) must be a local or mounted
    # folder: array_record writes local paths only.
    cfg.work_dir = ""
    synthetic = preset in ("synthetic", "quickstart")
    size = _WORLD_SIZED if synthetic else _CORPUS_SIZED
    cfg.generate_world = synthetic
    if synthetic:
        world = dict(WORLD_DEFAULTS, **(QUICKSTART_WORLD if preset == "quickstart" else {}))
        cfg.world = ml_collections.ConfigDict(world)

    if synthetic:
        cfg.sources = ml_collections.ConfigDict(dict(
            abstracts=_source("pubmed_xml", "pubmed/*.xml.gz"),
            guidelines=_source("jsonl", "guidelines/*.jsonl", epochs=2.0),
            replay=_source("jsonl", "replay/*.jsonl", fraction=0.01),
        ))
    elif preset == "pubmed":
        cfg.sources = ml_collections.ConfigDict(dict(
            abstracts=_source("pubmed_xml", "pubmed/*.xml.gz,pubmed/*.xml"),
            papers=_source("pmc_jats", "pmc/**/*.nxml,pmc/**/*.tar.gz"),   # JATS files or OA bulk packages
        ))
    else:
        cfg.sources = ml_collections.ConfigDict(dict(
            guidelines=_source("jsonl", "guidelines/*.jsonl", epochs=2.0),
            abstracts=_source("pubmed_xml", "pubmed/*.xml.gz,pubmed/*.xml"),
            papers=_source("pmc_jats", "pmc/**/*.nxml,pmc/**/*.tar.gz"),   # JATS files or OA bulk packages
            replay=_source("jsonl", "replay/*.jsonl", fraction=0.01),
        ))

    # Cleaning and dedup (biomed_jax/data/clean.py); every filter is counted in clean_report.json.
    cfg.clean = ml_collections.ConfigDict(dict(
        unicode_form="NFKC",        # NFKC | NFC | none
        min_chars=size["min_chars"],
        min_words=size["min_words"],
        exact_dedup=True,           # drop documents whose normalised text hashes the same
        near_dedup=True,            # MinHash LSH (datasketch)
        jaccard_threshold=0.8,      # near-duplicate above this estimated Jaccard similarity
        num_perm=128,               # MinHash permutations
        shingle_words=5,            # word n-gram shingles
    ))

    # Benchmark decontamination (biomed_jax/data/decontaminate.py): training documents sharing `ngram`
    # consecutive normalised words with a test question of `benchmarks` (medqa, medmcqa, pubmedqa, mmlu,
    # bioasq, usmle: their released files under `data_root`; empty = manual_dir, where the synthetic world
    # writes its own) are reported in clean/decontamination.json, and left out with action=drop.
    cfg.decontam = ml_collections.ConfigDict(dict(
        benchmarks="medqa,pubmedqa" if preset == "synthetic" else "",   # empty = the stage is off
        data_root="", ngram=13, action="report", max_examples=5))

    # Byte-level BPE (HF tokenizers). path: an existing tokenizer.json to use instead of training one.
    cfg.tokenizer = ml_collections.ConfigDict(dict(
        path="",
        vocab_size=size["vocab_size"],  # BioMedLM: 28,896
        min_frequency=2,
        eos_token="<|endoftext|>",
        max_train_docs=size["max_train_docs"],  # 0 = all training documents
        held_out_docs=size["held_out_docs"],    # validation docs for the fertility report
        terms_file="",              # terms whose splits the fertility report shows, one a line ("" = built-in list);
                                    # the world's/manual_dir's terms.txt is always added when present
    ))

    # The TFDS dataset: documents split by a stable hash of their id.
    cfg.split = ml_collections.ConfigDict(dict(validation_fraction=size["validation_fraction"]))
    cfg.build = ml_collections.ConfigDict(dict(
        # Tokenizer processes. 1 = in-process, where the tokenizer's own threads already use every
        # core (fastest on a laptop); more pays off when the corpus is large and the host has many cores.
        num_workers=size["num_workers"],
        max_shard_mb=256,           # array_record shard size
    ))
    return cfg

"""A small prepared token dataset (clean -> BPE -> TFDS) and tiny pretraining configs over it, shared by
the data pipeline and multi-process tests."""

from __future__ import annotations

import gzip
import json
import os

import ml_collections
import numpy as np

from biomed_jax.data import token_dataset
from biomed_jax.data.corpus import clean_corpus
from biomed_jax.data.tokenizer import train_bpe
from configs.data import get_config as data_config
from helpers import tiny_config

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "si", "tu") for b in ("ba", "de", "fi", "go", "hu")]


def random_text(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(rng.choice(WORDS, n_words))


def write_corpus(root: str, n_papers: int = 120, n_notes: int = 40, seed: int = 0) -> None:
    """Two JSONL sources with documents of 20-150 words, plus one exact duplicate and a PubMed file."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "papers"))
    os.makedirs(os.path.join(root, "notes"))
    os.makedirs(os.path.join(root, "pubmed"))
    papers = [{"id": f"p{i}", "text": random_text(rng, int(rng.integers(20, 150)))} for i in range(n_papers)]
    papers.append({"id": "p-dup", "text": papers[0]["text"].upper()})  # same text up to case
    with open(os.path.join(root, "papers", "a.jsonl"), "w") as f:
        f.writelines(json.dumps(p) + "\n" for p in papers)
    with open(os.path.join(root, "notes", "b.jsonl"), "w") as f:
        f.writelines(json.dumps({"id": f"n{i}", "text": random_text(rng, int(rng.integers(20, 150)))}) + "\n"
                     for i in range(n_notes))
    articles = "".join(
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>T{pmid}</ArticleTitle>"
        f"<Abstract><AbstractText>{random_text(rng, 60)}</AbstractText></Abstract></Article></MedlineCitation>"
        f"</PubmedArticle>" for pmid in (101, 102, 103))
    deletion = "<DeleteCitation><PMID>102</PMID></DeleteCitation>"
    with gzip.open(os.path.join(root, "pubmed", "x.xml.gz"), "wt") as f:
        f.write(f'<?xml version="1.0"?><PubmedArticleSet>{articles}{deletion}</PubmedArticleSet>')


def corpus_config(manual_dir: str, **sources) -> ml_collections.ConfigDict:
    cfg = data_config("pubmed")
    cfg.name = "unit"
    cfg.manual_dir = manual_dir
    cfg.sources = ml_collections.ConfigDict(sources or dict(
        papers=dict(kind="jsonl", paths="papers/*.jsonl", epochs=2.0, fraction=0.0),
        notes=dict(kind="jsonl", paths="notes/*.jsonl", epochs=1.0, fraction=0.1),
        abstracts=dict(kind="pubmed_xml", paths="pubmed/*.xml.gz", epochs=1.0, fraction=0.0),
    ))
    cfg.clean.min_chars = 20
    cfg.clean.min_words = 5
    cfg.split.validation_fraction = 0.15
    cfg.build.num_workers = 1
    return cfg


def build_dataset(cfg, corpus, tokenizer, tokenizer_path, data_dir):
    builder = token_dataset.BiomedCorpus(
        data_cfg=cfg, corpus=corpus, tokenizer_path=tokenizer_path,
        eos_id=tokenizer.token_to_id("<|endoftext|>"), vocab_size=tokenizer.get_vocab_size(),
        num_workers=cfg.build.num_workers, data_dir=data_dir)
    builder.download_and_prepare(download_config=token_dataset.download_config(cfg.manual_dir, 64))


def prepare_dataset(root: str):
    """Writes the corpus under root and builds it: (cfg, corpus, tokenizer, data_dir)."""
    write_corpus(os.path.join(root, "manual"))
    cfg = corpus_config(os.path.join(root, "manual"))
    corpus = clean_corpus(cfg, os.path.join(root, "work"))
    tokenizer = train_bpe((d.text for d in corpus.iter_documents("train")), vocab_size=400)
    tokenizer_path = os.path.join(root, "tokenizer.json")
    tokenizer.save(tokenizer_path)
    data_dir = os.path.join(root, "out")
    build_dataset(cfg, corpus, tokenizer, tokenizer_path, data_dir)
    return cfg, corpus, tokenizer, data_dir


def read_losses(workdir: str) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def pretrain_config(data_dir: str, steps: int, **train):
    cfg = tiny_config(train=dict(steps=steps, batch_size=8, seq_len=32, log_every=1, eval_every=100,
                                 eval_batches=0, **train),
                      checkpoint=dict(every_steps=3, async_save=False),
                      logging=dict(tensorboard=False, progress_bar="off"))
    cfg.optim.warmup_steps = 1
    cfg.optim.schedule = "constant"  # the same learning rates whether a run is asked for 3 or 6 steps
    cfg.data.dir = data_dir
    return cfg

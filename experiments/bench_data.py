"""Data pipeline throughput: read -> clean -> tokenize -> write, and loader batches/s vs training.

    python -m experiments.bench_data --workdir=/tmp/bench_data [--config=configs/data.py:synthetic]

Stages are timed separately on a fresh workdir: the synthetic world (if the preset makes one), the
clean stage (read + normalise + exact/MinHash dedup), tokenizer training, and the TFDS build (mix +
tokenize in data.build.num_workers processes + write array_record). Then the grain loader is timed
for the tiny pretraining shape (batch 16 x 128) and compared with the tiny model's train step time
on this machine (the loader must be at least 10x faster than training).
"""

from __future__ import annotations

import os
import shutil
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from biomed_jax import sharding as shd
from biomed_jax.data import token_dataset
from biomed_jax.data.corpus import clean_corpus, resolve_manual_dir
from biomed_jax.data.loader import TokenBatches
from biomed_jax.data.tokenizer import build_or_load
from biomed_jax.logs import quiet_library_logs
from biomed_jax.run_dir import write_json
from biomed_jax.tasks import pretraining
from configs.pretrain import get_config as pretrain_config

_CONFIG = config_flags.DEFINE_config_file("config", "configs/data.py:synthetic", "Data config and preset.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Scratch folder (emptied first).")
_LOADER_BATCHES = flags.DEFINE_integer("loader_batches", 300, "Batches timed for the loader.")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv):
    del argv
    quiet_library_logs()
    cfg, root = _CONFIG.value, _WORKDIR.value
    shutil.rmtree(root, ignore_errors=True)
    work = os.path.join(root, "work")
    rows = []
    if cfg.get("generate_world"):
        _, seconds = _timed(lambda: resolve_manual_dir(cfg, work))
        rows.append(("synthetic world", seconds, None, None))
    corpus, seconds = _timed(lambda: clean_corpus(cfg, work))
    filters = corpus.report["filters"]["total"]
    chars = sum(c["chars_train"] + c["chars_validation"] for c in corpus.report["sources"].values())
    rows.append(("read + clean + dedup", seconds, filters["seen"] / seconds, None))
    (tokenizer, tokenizer_path, _), seconds = _timed(lambda: build_or_load(cfg, corpus, os.path.join(work, "tok")))
    rows.append((f"train tokenizer (vocab {tokenizer.get_vocab_size()})", seconds, None, None))
    data_dir = os.path.join(root, "data")

    dataset, seconds = _timed(
        lambda: token_dataset.build_token_dataset(cfg, corpus, tokenizer, tokenizer_path, data_dir))
    counts = dataset.metadata["counts"]
    n_docs = sum(c["documents"] for split in counts.values() for c in split.values())
    n_tokens = sum(c["tokens"] for split in counts.values() for c in split.values())
    rows.append((f"mix + tokenize ({cfg.build.num_workers} procs) + write", seconds, n_docs / seconds,
                 n_tokens / seconds))

    print(f"corpus: {filters['seen']} documents read, {filters['kept']} kept, {chars / 1e6:.1f}M characters; "
          f"dataset: {n_docs} documents, {n_tokens} tokens")
    print(f"{'stage':45s} {'seconds':>8s} {'docs/s':>10s} {'tokens/s':>12s}")
    for name, seconds, docs, tokens in rows:
        print(f"{name:45s} {seconds:8.2f} {docs or float('nan'):10.0f} {tokens or float('nan'):12.0f}")

    # Loader vs the tiny model's train step, same batch shape.
    train_cfg = pretrain_config("tiny")
    batch, seq = train_cfg.train.batch_size, train_cfg.train.seq_len
    loader = TokenBatches(dataset, "train", seq_len=seq, global_batch_size=batch, seed=0, prefetch=0)
    next(loader)
    _, seconds = _timed(lambda: [next(loader) for _ in range(_LOADER_BATCHES.value)])
    loader.close()
    loader_rate = _LOADER_BATCHES.value / seconds

    train_cfg.model.vocab_size = dataset.vocab_size
    trainer = pretraining.build_trainer(train_cfg, workdir="", devices=jax.devices()[:1])
    state = trainer.initial_state()
    loader = TokenBatches(dataset, "train", seq_len=seq, global_batch_size=batch, seed=0, prefetch=0)
    batches = [shd.global_batch_from_local(next(loader), trainer.mesh) for _ in range(21)]
    loader.close()
    state, metrics = trainer.train_step(state, {}, batches[0])
    jax.block_until_ready(metrics)

    def train():
        nonlocal state
        for b in batches[1:]:
            state, m = trainer.train_step(state, {}, b)
        jax.block_until_ready(m)

    _, seconds = _timed(train)
    train_rate = 20 / seconds
    print(f"loader (batch {batch} x {seq}): {loader_rate:.0f} batches/s; tiny train step: {train_rate:.1f} steps/s; "
          f"loader / training = {loader_rate / train_rate:.1f}x")
    write_json(os.path.join(root, "bench_data.json"),
               {"stages": rows, "loader_batches_per_s": loader_rate, "train_steps_per_s": train_rate})


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir"])
    app.run(main)

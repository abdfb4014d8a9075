"""Data pipeline throughput: read -> clean -> tokenize -> write, and loader batches/s vs training; and, with
--scale_docs, the clean stage at corpus scale on both engines.

    python -m benchmarks.bench_data --workdir=/tmp/bench_data [--config=configs/data.py:synthetic]
    python -m benchmarks.bench_data --workdir=/tmp/bench_scale --scale_docs=100000,1000000 \
        [--engines=local,beam:1,beam:2]

--scale_docs generates PubMed-sized documents on the fly (never kept), with exact copies (1%) and
near-duplicates (2%: two words of ~150 changed, Jaccard ~0.87 over 5-word shingles, above the 0.8
threshold) planted, and runs the clean stage (read + normalise + exact and MinHash dedup) with each
engine: the in-process one, and Beam's DirectRunner with 1 and 2 worker processes. It reports documents/s
(per worker), peak resident memory of the driver and of each worker process, and the recall and precision
of the planted near-duplicates.

Stages are timed separately on a fresh workdir: the synthetic world (if the preset makes one), the
clean stage (read + normalise + exact/MinHash dedup), tokenizer training, and the TFDS build (mix +
tokenize in data.build.num_workers processes + write array_record). Then the grain loader is timed
for the tiny pretraining shape (batch 16 x 128) and compared with the tiny model's train step time
on this machine (the loader must be at least 10x faster than training).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import jax
from absl import flags

from biomed_jax import cli, sharding as shd
from biomed_jax.data import token_dataset
from biomed_jax.data.corpus import clean_corpus, resolve_manual_dir
from biomed_jax.data.loader import TokenBatches
from biomed_jax.data.tokenizer import build_or_load
from biomed_jax.logs import quiet_library_logs
from biomed_jax.run_dir import write_json
from biomed_jax.tasks import pretraining
from configs.pretrain import get_config as pretrain_config

_CONFIG = cli.define_config_file("config", "configs/data.py:synthetic", "Data config and preset.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Scratch folder (emptied first).")
_LOADER_BATCHES = flags.DEFINE_integer("loader_batches", 300, "Batches timed for the loader.")
_SCALE = flags.DEFINE_list("scale_docs", [], "Corpus sizes for the scale benchmark of the clean stage.")
_ENGINES = flags.DEFINE_list("engines", ["local", "beam:1", "beam:2"], "local, or beam:<worker processes>.")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv):
    del argv
    quiet_library_logs()
    if _SCALE.value:
        return scale(_WORKDIR.value, [int(n) for n in _SCALE.value], _ENGINES.value)
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



# --- the clean stage at scale ------------------------------------------------------------------------


def _generate(folder: str, n_docs: int, seed: int = 0, shard: int = 10_000) -> tuple[set, set]:
    """JSON-lines shards of n_docs PubMed-sized documents (Zipf-distributed invented words); returns
    (ids of planted near-duplicates, ids of planted exact copies). A planted copy's id sorts after its
    original's, so the keeper rule keeps the original."""
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    cumulative = np.cumsum(weights / weights.sum())   # drawn by search: rng.choice(p=) rebuilds it per call
    near, exact = set(), set()
    os.makedirs(folder, exist_ok=True)
    written, part = 0, 0
    while written < n_docs:
        with open(os.path.join(folder, f"part-{part:05d}.jsonl"), "w") as out:
            for _ in range(min(shard, n_docs - written)):
                words = vocab[np.minimum(np.searchsorted(cumulative, rng.random(int(rng.integers(120, 200)))),
                                         len(vocab) - 1)]
                doc_id = f"d{written:08d}"
                out.write(json.dumps({"id": doc_id, "text": " ".join(words)}) + "\n")
                written += 1
                roll = rng.random()
                if roll < 0.02 and written < n_docs:
                    changed = words.copy()
                    changed[rng.choice(len(words), size=2, replace=False)] = "zzchanged"
                    near.add(f"n{doc_id[1:]}")
                    out.write(json.dumps({"id": f"n{doc_id[1:]}", "text": " ".join(changed)}) + "\n")
                    written += 1
                elif roll < 0.03 and written < n_docs:
                    exact.add(f"x{doc_id[1:]}")
                    out.write(json.dumps({"id": f"x{doc_id[1:]}", "text": " ".join(words).upper()}) + "\n")
                    written += 1
        part += 1
    return near, exact


class _PeakMemory:
    """Samples the resident memory of this process and its children (Beam's workers) every 0.2 s."""

    def __init__(self):
        import threading

        import psutil

        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._me = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            for proc in [self._me, *self._me.children(recursive=True)]:
                try:
                    self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), proc.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def driver_and_workers(self) -> tuple[int, int]:
        driver = self.peaks.get(self._me.pid, 0)
        workers = [rss for pid, rss in self.peaks.items() if pid != self._me.pid]
        return driver, max(workers, default=0)


def scale(root: str, sizes: list[int], engines: list[str]) -> None:
    """The clean stage on generated corpora of `sizes` documents with each of `engines`: a table of
    documents/s, peak memory and near-duplicate recall and precision (also written as scale.json)."""
    from configs.data import get_config

    rows = []
    for n_docs in sizes:
        manual = os.path.join(root, f"corpus_{n_docs}")
        shutil.rmtree(manual, ignore_errors=True)
        near, exact = _generate(os.path.join(manual, "abstracts"), n_docs)
        for engine in engines:
            cfg = get_config("pubmed")
            cfg.manual_dir = manual
            cfg.sources = dict(abstracts=dict(kind="jsonl", paths="abstracts/*.jsonl", epochs=1.0, fraction=0.0))
            cfg.clean.update(dict(min_chars=100, min_words=20))
            workers = 1
            options = ""
            if engine.startswith("beam"):
                workers = int(engine.split(":")[1]) if ":" in engine else 1
                cfg.engine = "beam"
                options = (f"runner=DirectRunner,direct_num_workers={workers},direct_running_mode=multi_processing"
                           if workers > 1 else "runner=DirectRunner,direct_running_mode=in_memory")
            work = os.path.join(root, f"work_{n_docs}_{engine.replace(':', '')}")
            shutil.rmtree(work, ignore_errors=True)
            with _PeakMemory() as memory:
                corpus, seconds = _timed(lambda: clean_corpus(cfg, work, beam_options=options))
            kept = {d.id for d in corpus.iter_documents()}
            report = corpus.report["filters"]["total"]
            dropped_near = {i for i in near if i not in kept}
            recall = len(dropped_near) / max(len(near), 1)
            precision = len(dropped_near) / max(report["near_duplicate"], 1)
            driver, worker = memory.driver_and_workers()
            rows.append(dict(documents=n_docs, engine=engine, workers=workers, seconds=round(seconds, 1),
                             docs_per_s=round(n_docs / seconds), docs_per_s_per_worker=round(n_docs / seconds / workers),
                             driver_peak_gib=round(driver / 2**30, 3), worker_peak_gib=round(worker / 2**30, 3),
                             near_planted=len(near), near_recall=round(recall, 4), near_precision=round(precision, 4),
                             exact_planted=len(exact), exact_dropped=report["exact_duplicate"]))
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(manual, ignore_errors=True)
    print("| documents | engine | s | docs/s | docs/s per worker | driver peak GiB | worker peak GiB | near recall | near precision |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['documents']:,} | {r['engine']} | {r['seconds']} | {r['docs_per_s']:,} | "
              f"{r['docs_per_s_per_worker']:,} | {r['driver_peak_gib']} | {r['worker_peak_gib']} | "
              f"{r['near_recall']} | {r['near_precision']} |")
    write_json(os.path.join(root, "scale.json"), rows)


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir"])
    cli.run(main)

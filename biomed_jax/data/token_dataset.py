"""The TFDS token dataset: cleaned documents, mixed and tokenized, in array_record shards.

    DATA_DIR/biomed_corpus/<config name>/1.0.0/
        biomed_corpus-{train,validation}.array_record-*   {tokens: int32[n], id, source} per document
        dataset_info.json, metadata.json                   counts per source and split, tokenizer, mixture
        tokenizer.json, clean_report.json                  what produced the tokens

TFDS builds into an `incomplete.*` folder and renames it when every split is written, so an
interrupted build never looks complete. No TensorFlow is needed to build or read it. Documents are
stored without EOS; the loader inserts EOS between documents when it packs them.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds

from biomed_jax import files
from biomed_jax.data import mixture
from biomed_jax.data.corpus import CleanCorpus
from biomed_jax.data.tokenizer import eos_token_id, load_tokenizer
from biomed_jax.run_dir import read_json, write_json

DATASET = "biomed_corpus"
VERSION = "1.0.0"
_CHUNK = 256  # documents per tokenizer task


class BiomedCorpus(tfds.core.GeneratorBasedBuilder):
    """Token-id documents from the configured sources (see configs/data.py)."""

    VERSION = tfds.core.Version(VERSION)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the raw files (PubMed XML, PMC .nxml, JSONL, text) in a folder and pass it as "
        "--config.manual_dir; `python -m experiments.prepare_data` runs this builder.")

    def __init__(self, *, data_cfg: Mapping[str, Any], corpus: CleanCorpus, tokenizer_path: str,
                 eos_id: int, vocab_size: int, num_workers: int = 1, counts_dir: str = "", **kwargs):
        self._data_cfg = data_cfg
        self._corpus = corpus
        self._tokenizer_path = tokenizer_path
        self._eos_id, self._vocab_size = eos_id, vocab_size
        self._num_workers = num_workers
        self._counts_dir = counts_dir   # set: the splits are Beam transforms that write their counts here
        config = tfds.core.BuilderConfig(name=data_cfg["name"], description="biomed_jax data config "
                                         f"{data_cfg['name']!r}")
        super().__init__(config=config, file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Token ids of cleaned, deduplicated and mixed biomedical documents.",
            features=tfds.features.FeaturesDict({
                "tokens": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "id": tfds.features.Text(),
                "source": tfds.features.Text(),
            }),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the sources were read by the clean stage; see biomed_jax/data/corpus.py
        chars = {name: counts["chars_train"] for name, counts in self._corpus.report["sources"].items()}
        epochs = mixture.resolve_epochs(self._data_cfg["sources"], chars)
        # self.data_dir is TFDS's temporary folder here: these files appear together with the shards.
        files.copy(self._tokenizer_path, os.path.join(self.data_dir, "tokenizer.json"))
        write_json(os.path.join(self.data_dir, "clean_report.json"), self._corpus.report)
        self.info.metadata.update({
            "tokenizer": {"vocab_size": self._vocab_size, "eos_id": self._eos_id, "file": "tokenizer.json"},
            "mixture": mixture.describe(epochs, chars),
            "data_config": _plain(self._data_cfg),
            "counts": {},
        })
        # Validation is the held-out documents once each: no repeats, fractional sources sampled.
        split_epochs = {"train": epochs, "validation": {k: min(v, 1.0) for k, v in epochs.items()}}
        if self._counts_dir:
            paths = [path for source in self._corpus.sources for path in self._corpus.paths(source)]
            from biomed_jax.data.beam_engine import dataset_examples

            return {split: dataset_examples(paths, split, e, int(self._data_cfg["seed"]), self._tokenizer_path,
                                            files.join(self._counts_dir, f"{split}.json"))
                    for split, e in split_epochs.items()}
        return {split: self._generate_examples(split, e) for split, e in split_epochs.items()}

    def _generate_examples(self, split: str, epochs: Mapping[str, float]) -> Iterator[tuple[str, dict]]:
        """The in-process engine: documents mixed and tokenized in `num_workers` processes, keyed for TFDS's
        deterministic shuffle; the counts go straight into the dataset's metadata."""
        counts = {name: {"documents": 0, "tokens": 0} for name in self._corpus.sources}
        self.info.metadata["counts"][split] = counts
        seed = int(self._data_cfg["seed"])

        def mixed_chunks():
            chunk = []
            for doc in self._corpus.iter_documents(split):
                for copy in range(mixture.copies(seed, doc.source, doc.id, epochs[doc.source])):
                    chunk.append((f"{doc.source}:{doc.id}:{copy}", doc.id, doc.source, doc.text))
                    if len(chunk) == _CHUNK:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk

        tokenize = self._tokenizers()
        try:
            for chunk, ids in tokenize(mixed_chunks()):
                for (key, doc_id, source, _), tokens in zip(chunk, ids):
                    if not tokens:
                        continue
                    counts[source]["documents"] += 1
                    counts[source]["tokens"] += len(tokens)
                    yield key, {"tokens": np.asarray(tokens, np.int32), "id": doc_id, "source": source}
        except BaseException:
            tokenize.close()
            raise
        if split == "validation":  # the last split: the worker processes are no longer needed
            tokenize.close()

    def _tokenizers(self) -> "_Tokenizers":
        """One pool of tokenizer processes shared by both splits (starting one costs seconds)."""
        if getattr(self, "_pool", None) is None or self._pool.closed:
            self._pool = _Tokenizers(self._tokenizer_path, self._num_workers)
        return self._pool


class _Tokenizers:
    """Encodes chunks of documents in `num_workers` processes (in-process when 1), in order."""

    def __init__(self, tokenizer_path: str, num_workers: int):
        self._pool = None
        self.closed = False
        if num_workers > 1:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            self._pool = context.Pool(num_workers, initializer=_init_worker, initargs=(tokenizer_path, False))
            self._in_flight = 4 * num_workers
        else:
            _init_worker(tokenizer_path, True)

    def __call__(self, chunks):
        if self._pool is None:
            for chunk in chunks:
                yield chunk, _encode(chunk)
            return
        pending = []
        for chunk in chunks:  # keep a bounded number of chunks in flight, in order
            pending.append((chunk, self._pool.apply_async(_encode, (chunk,))))
            if len(pending) >= self._in_flight:
                chunk0, result = pending.pop(0)
                yield chunk0, result.get()
        for chunk0, result in pending:
            yield chunk0, result.get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        self.closed = True


_WORKER_TOKENIZER = None


def _init_worker(path: str, threads: bool) -> None:
    """Loads the tokenizer; its Rust threads are left on only when tokenizing in-process."""
    global _WORKER_TOKENIZER
    if not threads:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER_TOKENIZER = load_tokenizer(path)


def _encode(chunk: list[tuple]) -> list[list[int]]:
    texts = [text for *_, text in chunk]
    return [encoding.ids for encoding in _WORKER_TOKENIZER.encode_batch(texts, add_special_tokens=False)]


def build_token_dataset(cfg: Mapping[str, Any], corpus: CleanCorpus, tokenizer, tokenizer_path: str,
                        data_dir: str, beam_options: str = "") -> "TokenDataset":
    """Runs the builder for data config `cfg` over a clean corpus and a tokenizer; returns the dataset.
    With `engine` beam, TFDS runs the split transforms as a Beam pipeline with `beam_options`."""
    beam = cfg.get("engine", "local") == "beam"
    counts_dir = files.join(files.dirname(corpus.directory), "dataset_counts") if beam else ""
    builder = BiomedCorpus(
        data_cfg=cfg, corpus=corpus, tokenizer_path=tokenizer_path,
        eos_id=eos_token_id(tokenizer, cfg["tokenizer"]["eos_token"]), vocab_size=tokenizer.get_vocab_size(),
        num_workers=cfg["build"]["num_workers"], counts_dir=counts_dir, data_dir=data_dir)
    builder.download_and_prepare(download_config=download_config(
        corpus.report["manual_dir"], cfg["build"]["max_shard_mb"], beam_options if beam else None))
    if beam:
        _add_counts(dataset_dir(data_dir, cfg["name"]), counts_dir)
    return TokenDataset(data_dir, cfg["name"])


def _add_counts(path: str, counts_dir: str) -> None:
    """Puts the Beam build's per-source counts into the finished dataset's metadata.json."""
    metadata_path = os.path.join(path, "metadata.json")
    metadata = read_json(metadata_path, "dataset metadata")
    metadata["counts"] = {split: read_json(files.join(counts_dir, f"{split}.json"), f"{split} counts")
                          for split in ("train", "validation")}
    write_json(metadata_path, metadata)
    files.rmtree(counts_dir)


def download_config(manual_dir: str, max_shard_mb: int, beam_options: str | None = None) -> tfds.download.DownloadConfig:
    """How prepare_data runs the builder: no statistics pass, shards of at most `max_shard_mb`, and, for
    the Beam engine, the pipeline options."""
    options = None
    if beam_options is not None:
        from biomed_jax.data.beam_engine import pipeline_options

        options = pipeline_options(beam_options or "runner=DirectRunner")
    return tfds.download.DownloadConfig(
        manual_dir=None if files.is_remote(manual_dir) else manual_dir,   # the builder never reads it
        compute_stats=tfds.download.ComputeStatsMode.SKIP,
        max_shard_size=int(max_shard_mb) * 2**20, beam_options=options)


def dataset_dir(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, DATASET, name, VERSION)


def find_dataset(data_dir: str, name: str = "") -> str:
    """The folder of a finished dataset under DATA_DIR; `name` may be empty when there is only one."""
    root = os.path.join(data_dir, DATASET)
    if not name:
        names = sorted(n for n in (os.listdir(root) if os.path.isdir(root) else [])
                       if os.path.exists(os.path.join(dataset_dir(data_dir, n), "dataset_info.json")))
        if len(names) != 1:
            raise FileNotFoundError(
                f"{'no' if not names else 'several'} prepared datasets in {root} ({names}); "
                f"{'run python -m experiments.prepare_data --data_dir=' + data_dir if not names else 'set data.name'}")
        name = names[0]
    path = dataset_dir(data_dir, name)
    if not os.path.exists(os.path.join(path, "dataset_info.json")):
        raise FileNotFoundError(
            f"no finished dataset {name!r} in {data_dir} (expected {path}/dataset_info.json); run "
            f"python -m experiments.prepare_data --config=configs/data.py:{name} --data_dir={data_dir}")
    return path


class TokenDataset:
    """A prepared dataset opened for reading: per-split random-access sources and its metadata."""

    def __init__(self, data_dir: str, name: str = ""):
        self.path = find_dataset(data_dir, name)
        self._builder = tfds.builder_from_directory(self.path)
        self.metadata = dict(self._builder.info.metadata)
        self.vocab_size = int(self.metadata["tokenizer"]["vocab_size"])
        self.eos_id = int(self.metadata["tokenizer"]["eos_id"])
        self.tokenizer_path = os.path.join(self.path, "tokenizer.json")

    def source(self, split: str):
        """A random-access source of {tokens, id, source} records (tfds ArrayRecordDataSource)."""
        if split not in self._builder.info.splits:
            raise ValueError(f"dataset {self.path} has no split {split!r}; it has {list(self._builder.info.splits)}")
        return self._builder.as_data_source(split=split)

    def num_documents(self, split: str) -> int:
        return self._builder.info.splits[split].num_examples


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value

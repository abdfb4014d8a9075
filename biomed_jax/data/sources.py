"""Batch sources for training and evaluation, chosen by `config.data.kind`.

A batch source is an iterator of this process's share of each global batch: a dict of numpy
arrays `inputs`, `targets`, `loss_mask` (and optionally `positions`, `segment_ids`), each of shape
(global_batch / process_count, seq_len), with `get_state()` / `set_state()` returning and taking a
JSON-serialisable dict so the train loop can checkpoint and resume the stream exactly.

Kinds: 'tfds', a dataset prepared by experiments.prepare_data (data.dir, data.name), through the
grain loader; 'synthetic', a generated Markov-chain token stream needing no files; 'auto' (the
default) = 'tfds' when data.dir is set, else 'synthetic'.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

import jax
import numpy as np

from biomed_jax.data.synthetic_tokens import SyntheticTokenBatches

KINDS = ("auto", "tfds", "synthetic")


class BatchSource(Protocol):
    def __next__(self) -> dict[str, np.ndarray]: ...
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...


def resolve_kind(data_cfg: Mapping[str, Any]) -> str:
    kind = data_cfg["kind"]
    if kind not in KINDS:
        raise ValueError(f"data.kind must be one of {list(KINDS)}, got {kind!r}")
    if kind == "auto":
        return "tfds" if data_cfg.get("dir") else "synthetic"
    if kind == "tfds" and not data_cfg.get("dir"):
        raise ValueError("data.kind='tfds' needs data.dir: the --data_dir given to experiments.prepare_data")
    return kind


def open_token_dataset(data_cfg: Mapping[str, Any]):
    """The prepared TokenDataset named by data.dir / data.name."""
    from biomed_jax.data.token_dataset import TokenDataset

    return TokenDataset(data_cfg["dir"], data_cfg.get("name", ""))


def build_batch_source(data_cfg: Mapping[str, Any], split: str, *, vocab_size: int, seq_len: int,
                       global_batch_size: int, seed: int) -> BatchSource:
    """The batch source for `split` ('train' or 'validation') described by the `data` config."""
    kind = resolve_kind(data_cfg)
    if kind == "tfds":
        from biomed_jax.data.loader import TokenBatches

        dataset = open_token_dataset(data_cfg)
        if dataset.vocab_size > vocab_size:
            raise ValueError(f"the dataset's tokenizer has {dataset.vocab_size} tokens but model.vocab_size is "
                             f"{vocab_size}; set --config.model.vocab_size={dataset.vocab_size}")
        return TokenBatches(dataset, split, seq_len=seq_len, global_batch_size=global_batch_size, seed=seed,
                            process_index=jax.process_index(), process_count=jax.process_count(),
                            prefetch=int(data_cfg.get("prefetch", 2)))
    return SyntheticTokenBatches(
        vocab_size=vocab_size, seq_len=seq_len, global_batch_size=global_batch_size, seed=seed,
        split=split, branching=data_cfg["branching"], mean_doc_len=data_cfg["mean_doc_len"],
        process_index=jax.process_index(), process_count=jax.process_count())

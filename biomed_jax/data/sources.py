"""Batch sources for training and evaluation, chosen by `config.data.kind`.

A batch source is an iterator of this process's share of each global batch: a dict of numpy
arrays `inputs`, `targets`, `loss_mask` (and optionally `positions`, `segment_ids`), each of shape
(global_batch / process_count, seq_len), with `get_state()` / `set_state()` returning and taking a
JSON-serialisable dict so the train loop can checkpoint and resume the stream exactly.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

import jax
import numpy as np

from biomed_jax.data.synthetic_tokens import SyntheticTokenBatches

KINDS = ("synthetic",)


class BatchSource(Protocol):
    def __next__(self) -> dict[str, np.ndarray]: ...
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...


def build_batch_source(data_cfg: Mapping[str, Any], split: str, *, vocab_size: int, seq_len: int,
                       global_batch_size: int, seed: int) -> BatchSource:
    """The batch source for `split` ('train' or 'validation') described by the `data` config."""
    kind = data_cfg["kind"]
    if kind == "synthetic":
        return SyntheticTokenBatches(
            vocab_size=vocab_size, seq_len=seq_len, global_batch_size=global_batch_size, seed=seed,
            split=split, branching=data_cfg["branching"], mean_doc_len=data_cfg["mean_doc_len"],
            process_index=jax.process_index(), process_count=jax.process_count())
    raise ValueError(f"data.kind must be one of {list(KINDS)}, got {kind!r}")

"""Generated token batches with learnable structure, for smoke runs and tests without any corpus.

Tokens follow a fixed random Markov chain in which every token has `branching` possible successors,
so a model can bring its loss from log(vocab) down to at most log(branching). Rows are packed with
documents of random length (segment ids, per-document positions, no target across a boundary).

Every global row of every batch is a pure function of (seed, split, step, row): the stream does not
depend on the number of processes, and resuming only needs the step counter.
"""

from __future__ import annotations

import numpy as np

SPLITS = {"train": 0, "validation": 1}


class SyntheticTokenBatches:
    """An iterator of local batches: dicts of (local_batch, seq_len) numpy arrays."""

    def __init__(self, vocab_size: int, seq_len: int, global_batch_size: int, seed: int,
                 split: str = "train", branching: int = 4, mean_doc_len: int = 0,
                 process_index: int = 0, process_count: int = 1):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if vocab_size < 2 or not 1 <= branching <= vocab_size - 1:
            raise ValueError(f"data.branching must be in [1, vocab_size-1={vocab_size - 1}], got {branching}")
        if global_batch_size % process_count:
            raise ValueError(
                f"train.batch_size ({global_batch_size}) must be divisible by the process count ({process_count})")
        self.vocab_size, self.seq_len, self.seed = vocab_size, seq_len, seed
        self.split_id = SPLITS[split]
        self.mean_doc_len = mean_doc_len
        local = global_batch_size // process_count
        self.rows = np.arange(process_index * local, (process_index + 1) * local)
        # Token 0 is never produced (left for padding); the chain lives on 1..vocab-1.
        table_rng = np.random.default_rng([seed, 7919])
        self.successors = table_rng.integers(1, vocab_size, size=(vocab_size, branching))
        self.step = 0

    def get_state(self) -> dict:
        return {"step": self.step}

    def set_state(self, state: dict) -> None:
        self.step = int(state["step"])

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.batch_at(self.step)
        self.step += 1
        return batch

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        length = self.seq_len + 1
        n = len(self.rows)
        choices = np.empty((n, length), np.int64)
        starts = np.empty((n, length), bool)
        first = np.empty((n, length), np.int64)
        for i, row in enumerate(self.rows):
            rng = np.random.default_rng([self.seed, self.split_id, step, int(row)])
            choices[i] = rng.integers(0, self.successors.shape[1], length)
            first[i] = rng.integers(1, self.vocab_size, length)
            starts[i] = (rng.random(length) < 1.0 / self.mean_doc_len) if self.mean_doc_len else False
        starts[:, 0] = True
        tokens = np.empty((n, length), np.int64)
        tokens[:, 0] = first[:, 0]
        for t in range(1, length):
            following = self.successors[tokens[:, t - 1], choices[:, t]]
            tokens[:, t] = np.where(starts[:, t], first[:, t], following)
        segment_ids = np.cumsum(starts, axis=1)
        doc_start_index = np.maximum.accumulate(np.where(starts, np.arange(length), 0), axis=1)
        positions = np.arange(length) - doc_start_index
        same_doc = segment_ids[:, :-1] == segment_ids[:, 1:]
        return {
            "inputs": tokens[:, :-1].astype(np.int32),
            "targets": tokens[:, 1:].astype(np.int32),
            "loss_mask": same_doc.astype(np.float32),
            "positions": positions[:, :-1].astype(np.int32),
            "segment_ids": segment_ids[:, :-1].astype(np.int32),
        }

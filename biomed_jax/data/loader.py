"""The grain pipeline from a prepared token dataset to packed training batches.

Row r of every global batch is its own stream: the documents at positions r, r+B, r+2B, ... of a
seeded global shuffle (reshuffled each epoch), each followed by EOS, concatenated and cut into
seq_len+1 windows (grain's concat-then-split packing, which also yields segment ids and positions).
A process reads only its own rows (jax.process_index), so a global batch is the same whatever the
number of processes, and the iterator state (saved in every checkpoint) resumes exactly.
"""

from __future__ import annotations

import grain
import grain.experimental as gx
import numpy as np

from biomed_jax.data.token_dataset import TokenDataset


class TokenBatches:
    """An iterator of this process's share of each global batch (a BatchSource, see sources.py)."""

    def __init__(self, dataset: TokenDataset, split: str, *, seq_len: int, global_batch_size: int,
                 seed: int, process_index: int = 0, process_count: int = 1, prefetch: int = 2):
        if global_batch_size % process_count:
            raise ValueError(f"train.batch_size ({global_batch_size}) must be divisible by the process "
                             f"count ({process_count})")
        n_docs = dataset.num_documents(split)
        if n_docs == 0:
            raise ValueError(f"split {split!r} of {dataset.path} has no documents; prepare more data or "
                             f"raise split.validation_fraction")
        eos = np.asarray([dataset.eos_id], np.int32)
        documents = grain.MapDataset.source(dataset.source(split)).shuffle(seed=seed).repeat()
        local = global_batch_size // process_count
        rows = []
        for row in range(process_index * local, (process_index + 1) * local):
            stream = documents[row::global_batch_size].map(
                lambda record: {"tokens": np.concatenate([record["tokens"], eos])})
            # Synchronous reads per row: one thread pool per row would cost more than the reads.
            reads = stream.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
            rows.append(gx.ConcatThenSplitIterDataset(reads,
                                                      length_struct={"tokens": seq_len + 1}))
        batches = gx.ZipIterDataset(rows).map(_training_batch)
        if prefetch > 0:
            batches = gx.ThreadPrefetchIterDataset(batches, prefetch_buffer_size=prefetch)
        self._iterator = iter(batches)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._iterator)

    def get_state(self) -> dict:
        return self._iterator.get_state()

    def set_state(self, state: dict) -> None:
        self._iterator.set_state(state)

    def close(self) -> None:
        """Stops the prefetch thread (also done at exit, but quietly only if done here)."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


def _training_batch(windows: tuple[dict, ...]) -> dict[str, np.ndarray]:
    """Packed windows of seq_len+1 -> inputs/targets shifted by one, with segment ids and positions.

    A target in another document than its input (the first token after a boundary) is masked out.
    """
    tokens = np.stack([w["tokens"] for w in windows])
    segments = np.stack([w["tokens_segment_ids"] for w in windows]).astype(np.int32)
    positions = np.stack([w["tokens_positions"] for w in windows]).astype(np.int32)
    same_document = (segments[:, 1:] == segments[:, :-1]) & (segments[:, 1:] > 0)
    return {
        "inputs": tokens[:, :-1].astype(np.int32),
        "targets": tokens[:, 1:].astype(np.int32),
        "loss_mask": same_document.astype(np.float32),
        "positions": positions[:, :-1],
        "segment_ids": segments[:, :-1],
    }

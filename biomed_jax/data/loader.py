"""The grain pipeline from a prepared token dataset to packed training batches.

Row r of every global batch is its own stream: the documents at positions r, r+B, r+2B, ... of a
seeded global shuffle (reshuffled each epoch), each followed by EOS, concatenated and cut into
seq_len+1 windows (grain's concat-then-split packing, which also yields segment ids and positions).
A process reads only its own rows (jax.process_index), so a global batch is the same whatever the
number of processes. The iterator state saved in checkpoints holds every global row's position
(gathered from all processes), so a run resumes exactly under any process count.
"""

from __future__ import annotations

import json

import grain
import grain.experimental as gx
import numpy as np
from jax.experimental import multihost_utils

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
        self._global_batch_size, self._process_count = global_batch_size, process_count
        self._rows = slice(process_index * local, (process_index + 1) * local)
        rows = []
        for row in range(self._rows.start, self._rows.stop):
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
        """{"rows": the position of every global row}. With several processes all must call it together."""
        rows = self._iterator.get_state()["parents"]
        if self._process_count > 1:
            rows = [row for process_rows in _allgather_json(rows) for row in process_rows]
        return {"rows": rows}

    def set_state(self, state: dict) -> None:
        rows = state["rows"] if "rows" in state else state["parents"]  # "parents": checkpoints from older versions
        if len(rows) != self._global_batch_size:
            raise ValueError(f"the saved data state has {len(rows)} rows but train.batch_size is "
                             f"{self._global_batch_size}; resume with the batch size the run was started with")
        self._iterator.set_state({"parents": [_row_state_from_json(row) for row in rows[self._rows]]})

    def close(self) -> None:
        """Stops the prefetch thread (also done at exit, but quietly only if done here)."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


def _row_state_from_json(row: dict) -> dict:
    """A row's packing state as grain wrote it, from its JSON copy in a checkpoint.

    grain's ConcatThenSplitIterDataset marks "no remainder" with the tuple (-1, -1) and tests it with ==;
    JSON turns it into the list [-1, -1], which grain then read as a real slice and dropped a window's
    worth of tokens. Every row's remainder is empty after the first batch (and whenever a window ends on a
    document boundary), so a run resumed from step 1 read different data from step 2 on.
    """
    slices = row.get("remainder_slices")
    if not isinstance(slices, dict):
        return row
    return dict(row, remainder_slices={key: tuple(value) for key, value in slices.items()})


def _allgather_json(value) -> list:
    """[value of process 0, value of process 1, ...] for a JSON-serialisable value (a collective)."""
    data = np.frombuffer(json.dumps(value).encode(), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([data.size]))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[:data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(bytes(row[:n]).decode()) for row, n in zip(gathered, lengths)]


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

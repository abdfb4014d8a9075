"""What the fine-tuning tasks share: their examples as fixed-shape numpy arrays, served as epochs of
global batches of which each process reads only its rows, with a position the trainer checkpoints.

A task's arrays are a dict {name: array of n examples x ...}. Training takes full global batches in a
seeded order that differs per epoch (the remainder of an epoch is dropped); evaluation takes every
example once, the last batch padded with weight-0 rows so every batch has one compiled shape.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import jax
import numpy as np


def n_examples(arrays: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(arrays.values())))


def local_rows(global_batch_size: int) -> slice:
    """The rows of a global batch this process reads (the batch is split over processes in order)."""
    count, index = jax.process_count(), jax.process_index()
    if global_batch_size % count:
        raise ValueError(f"the global batch of {global_batch_size} rows must be divisible by the process count "
                         f"({count})")
    local = global_batch_size // count
    return slice(index * local, (index + 1) * local)


class ArrayBatches:
    """Epochs of this process's rows of each global training batch of `arrays`; `get_state()` is
    {"epoch", "batch"}, the next batch to read, so a run resumes exactly in the middle of an epoch.

    Every epoch is a permutation drawn from (seed, epoch) alone, so the order never depends on where a
    run was interrupted or on the number of processes."""

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch_size: int, seed: int):
        self.arrays = dict(arrays)
        self.n = n_examples(arrays)
        if self.n < global_batch_size:
            raise ValueError(f"the train split has {self.n} examples, fewer than train.batch_size="
                             f"{global_batch_size}; lower train.batch_size")
        self.batch_size, self.seed = global_batch_size, seed
        self.steps_per_epoch = self.n // global_batch_size
        self.rows = local_rows(global_batch_size)
        self.epoch, self.batch = 0, 0
        self._order = None

    def _epoch_order(self) -> np.ndarray:
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, np.random.default_rng([self.seed, self.epoch]).permutation(self.n))
        return self._order[1]

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.batch == self.steps_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        start = self.batch * self.batch_size
        index = self._epoch_order()[start:start + self.batch_size][self.rows]
        self.batch += 1
        return {k: v[index] for k, v in self.arrays.items()}

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def set_state(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


def eval_batches(arrays: Mapping[str, np.ndarray], global_batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of global batches covering every example once, in order; each batch has a
    "weight" column (1 for real rows, 0 for the padding of the last batch, copies of row 0)."""
    n = n_examples(arrays)
    rows = local_rows(global_batch_size)
    for start in range(0, n, global_batch_size):
        index = np.arange(start, min(start + global_batch_size, n))
        weight = np.ones(global_batch_size, np.float32)
        if len(index) < global_batch_size:
            weight[len(index):] = 0.0
            index = np.concatenate([index, np.zeros(global_batch_size - len(index), index.dtype)])
        batch = {k: v[index[rows]] for k, v in arrays.items()}
        batch["weight"] = weight[rows]
        yield batch


def with_weight(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Training arrays with a weight-1 column, so train and eval batches share one layout and one loss."""
    return {**arrays, "weight": np.ones((n_examples(arrays),), np.float32)}


def evaluate_splits(evaluator, arrays: Mapping[str, Mapping[str, np.ndarray]], batch_size: int,
                    names: tuple[str, ...] = ("dev", "test")) -> dict[str, float]:
    """{split_loss, split_accuracy, split_n} for each of `names` present, from the task's own loss over
    every example (a classifier task's loss sums "accuracy" as correct answers)."""
    out: dict[str, float] = {}
    for name in names:
        if name in arrays:
            sums = evaluator.sums(eval_batches(arrays[name], batch_size))
            weight = max(sums["weight"], 1.0)
            out.update({f"{name}_loss": sums["loss_sum"] / weight, f"{name}_accuracy": sums["accuracy"] / weight,
                        f"{name}_n": int(sums["weight"])})
    return out

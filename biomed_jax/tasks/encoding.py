"""Helpers every task's encoder uses: the encode report, left truncation, option-axis width."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from biomed_jax.data.benchmarks import MCQuestion


@dataclasses.dataclass
class EncodeReport:
    """How many examples were encoded, and what was cut or skipped (and why)."""

    examples: int = 0
    truncated: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def left_fit(ids: list[int], max_len: int, report: EncodeReport) -> list[int]:
    """The last max_len ids (the end of a text, where the option or question is), counting a cut."""
    if len(ids) > max_len:
        report.truncated += 1
        return ids[len(ids) - max_len:]
    return ids


def check_nonempty(examples: Sequence[Any], what: str) -> None:
    if not examples:
        raise ValueError(f"{what} is empty: no examples to fine-tune or evaluate on (check the data path and split)")


def option_width(questions: Sequence[MCQuestion], n_options: int | None, what: str) -> int:
    """K, the options axis: `n_options`, which must cover the question with the most options."""
    width = max(len(q.options) for q in questions)
    if n_options is not None:
        if n_options < width:
            raise ValueError(f"{what} has a question with {width} options, more than n_options={n_options}")
        width = n_options
    return width


def encode_splits(splits: Mapping[str, Sequence[MCQuestion]], encode: Callable, task_name: str) -> tuple[dict, dict]:
    """({split: arrays}, {split: report dict}) for every non-empty split; `encode(questions, what)` returns
    (arrays, EncodeReport), `what` naming the split in its errors."""
    arrays, reports = {}, {}
    for name, questions in splits.items():
        if questions:
            arrays[name], report = encode(questions, f"{task_name} {name}")
            reports[name] = report.to_dict()
    return arrays, reports

"""Sequence classification (BioMedLM's PubMedQA yes/no/maybe and BioASQ yes/no): a linear head on the
decoder's last real token maps the (context, question) text to one logit per class, trained with
cross-entropy. The class of a question is its right option's text among the task's `classes`."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
import optax

from biomed_jax.adapt.heads import class_scores
from biomed_jax.data.benchmarks import MCQuestion, render
from biomed_jax.tasks.base import ArrayBatches, evaluate_splits, n_examples, with_weight
from biomed_jax.tasks.encoding import EncodeReport, check_nonempty, encode_splits, left_fit


def encode_classes(questions: Sequence[MCQuestion], tokenizer, template: str, max_len: int,
                   classes: Sequence[str], what: str = "split") -> tuple[dict, EncodeReport]:
    """{tokens (n, max_len), lengths (n,), labels (n,)}; the label is the index of the right option's text
    in `classes` (e.g. yes/no/maybe)."""
    check_nonempty(questions, what)
    report = EncodeReport()
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    tokens = np.zeros((len(questions), max_len), np.int32)
    lengths, labels = np.zeros((len(questions),), np.int32), np.zeros((len(questions),), np.int32)
    for row, q in enumerate(questions):
        label = lookup.get(q.answer_text.strip().lower())
        if label is None:
            raise ValueError(f"{what}: question {q.id} has answer {q.answer_text!r}, not one of the classes "
                             f"{list(classes)}; set the task's `classes`")
        ids = left_fit(tokenizer.encode(render(template, q)).ids, max_len, report)
        tokens[row, :len(ids)] = ids
        lengths[row], labels[row] = len(ids), label
        report.examples += 1
    return dict(tokens=tokens, lengths=lengths, labels=labels), report


class SequenceClassification:
    """n-class classification of a text by a head on its last token; best epoch by dev accuracy."""

    selection = ("dev_accuracy", "max")
    lm_head = False

    def __init__(self, splits: dict[str, list[MCQuestion]], arrays: dict[str, dict], reports: dict, n_classes: int,
                 batch_size: int, eval_batch_size: int):
        self.splits, self.arrays, self.reports = splits, arrays, reports
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.n_outputs = n_classes
        self.chance = 1.0 / n_classes
        self.steps_per_epoch = n_examples(arrays["train"]) // batch_size
        self.tokens_per_example = arrays["train"]["tokens"].shape[1]

    @classmethod
    def build(cls, splits: dict[str, list[MCQuestion]], tokenizer, template: str, max_len: int,
              classes: Sequence[str], batch_size: int, eval_batch_size: int, task_name: str = "task"):
        if len(classes) < 2:
            raise ValueError(f"task.classes must name at least two classes, got {list(classes)}")
        arrays, reports = encode_splits(
            splits, lambda qs, what: encode_classes(qs, tokenizer, template, max_len, classes, what), task_name)
        return cls(splits, arrays, reports, len(classes), batch_size, eval_batch_size)

    def train_source(self, seed: int) -> ArrayBatches:
        return ArrayBatches(with_weight(self.arrays["train"]), self.batch_size, seed)

    def example_inputs(self) -> tuple:
        return (jnp.asarray(self.arrays["train"]["tokens"][:1]), jnp.asarray(self.arrays["train"]["lengths"][:1]))

    def weight(self, batch):
        return jnp.sum(batch["weight"])

    def loss(self, model, batch):
        scores = class_scores(model, batch["tokens"], batch["lengths"])
        weight = batch["weight"].astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(scores, batch["labels"])
        correct = (jnp.argmax(scores, axis=-1) == batch["labels"]).astype(jnp.float32)
        return jnp.sum(losses * weight), {"accuracy": jnp.sum(correct * weight)}

    def evaluate(self, evaluator) -> dict[str, float]:
        return evaluate_splits(evaluator, self.arrays, self.eval_batch_size)

"""Multiple choice (BioMedLM's fine-tuning on MedQA, MedMCQA, MMLU): a softmax over a question's options,
trained with cross-entropy. Two ways to score an option:

- `last_token` (BioMedLM's): each (question, option) text is run through the decoder and a linear head
  on the hidden state of its last real token gives the option's score (adapt/heads.py).
- `option_loglik`: no new parameters; an option's score is its log-likelihood through the LM head after
  the text before {option} in the template (tasks/loglik.py). Small models keep their knowledge in
  next-token predictions, where this head reaches it. Dev and test accuracy come from the evaluation
  harness's scorer.

Texts longer than `max_len` lose tokens from the left, so the option at the end survives; the count is
reported.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np
import optax

from biomed_jax.adapt.heads import option_scores as classifier_option_scores
from biomed_jax.data.benchmarks import MCQuestion, render
from biomed_jax.tasks import loglik
from biomed_jax.tasks.base import ArrayBatches, evaluate_splits, n_examples, with_weight
from biomed_jax.tasks.encoding import EncodeReport, check_nonempty, encode_splits, left_fit, option_width


def encode_choices(questions: Sequence[MCQuestion], tokenizer, template: str, max_len: int,
                   n_options: int | None = None, what: str = "split") -> tuple[dict, EncodeReport]:
    """{tokens (n, K, max_len), lengths (n, K), option_mask (n, K), labels (n,)} for the last_token head.

    Each option is `template` rendered with the question's fields plus {option}. K is `n_options` (at
    least the most options any question has) so train and dev batches share one shape.
    """
    check_nonempty(questions, what)
    width = option_width(questions, n_options, what)
    report = EncodeReport()
    n = len(questions)
    tokens = np.zeros((n, width, max_len), np.int32)
    lengths = np.ones((n, width), np.int32)
    mask = np.zeros((n, width), bool)
    labels = np.zeros((n,), np.int32)
    for row, q in enumerate(questions):
        for col, option in enumerate(q.options):
            ids = left_fit(tokenizer.encode(render(template, q, option=option)).ids, max_len, report)
            tokens[row, col, :len(ids)] = ids
            lengths[row, col] = len(ids)
            mask[row, col] = True
        labels[row] = q.answer
        report.examples += 1
    return dict(tokens=tokens, lengths=lengths, option_mask=mask, labels=labels), report


def option_requests(questions: Sequence[MCQuestion], tokenizer, template: str) -> list[list[loglik.Request]]:
    """Each question's (prompt, option continuation) pairs: the prompt is the template's text before
    {option} (a space just before {option} moves to the continuation), the continuation the option
    plus whatever follows {option}."""
    if template.count("{option}") != 1:
        raise ValueError(f"an option_loglik template needs exactly one {{option}}, got {template!r}")
    prefix, suffix = template.split("{option}")
    space = " " if prefix.endswith(" ") else ""
    return [loglik.requests(tokenizer, render(prefix.rstrip(" "), q),
                            [space + option + render(suffix, q) for option in q.options]) for q in questions]


def encode_option_continuations(questions: Sequence[MCQuestion], tokenizer, template: str, max_len: int,
                                n_options: int | None = None, what: str = "split") -> tuple[dict, EncodeReport]:
    """{inputs, targets, response_mask (n, K, max_len), option_mask (n, K), labels (n,)} for training the
    option_loglik head (tasks/loglik.py)."""
    check_nonempty(questions, what)
    width = option_width(questions, n_options, what)
    arrays, truncated = loglik.continuation_arrays(option_requests(questions, tokenizer, template),
                                                   [q.answer for q in questions], max_len, width)
    return arrays, EncodeReport(examples=len(questions), truncated=truncated)


def _choice_loss(scores, batch):
    weight = batch["weight"].astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(scores, batch["labels"])
    correct = (jnp.argmax(scores, axis=-1) == batch["labels"]).astype(jnp.float32)
    return jnp.sum(losses * weight), {"accuracy": jnp.sum(correct * weight)}


class ChoiceTask:
    """What both multiple-choice heads share: examples as arrays, epochs, chance, best-by-dev accuracy."""

    selection = ("dev_accuracy", "max")
    lm_head = False          # whether the model is the decoder alone (scored through its LM head)

    def __init__(self, splits: dict[str, list[MCQuestion]], arrays: dict[str, dict], reports: dict,
                 batch_size: int, eval_batch_size: int):
        self.splits, self.arrays, self.reports = splits, arrays, reports
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_epoch = n_examples(arrays["train"]) // batch_size
        self.n_outputs = 1
        self.chance = float(np.mean([1.0 / len(q.options) for q in splits["dev"]])) if splits.get("dev") else 0.0
        tokens = arrays["train"]["tokens" if "tokens" in arrays["train"] else "inputs"]
        self.tokens_per_example = int(np.prod(tokens.shape[1:]))   # every option's row is run

    def train_source(self, seed: int) -> ArrayBatches:
        return ArrayBatches(with_weight(self.arrays["train"]), self.batch_size, seed)

    def weight(self, batch):
        return jnp.sum(batch["weight"])

    def example_inputs(self) -> tuple:
        """Inputs of the right shapes for qwix to trace the model once."""
        tokens = jnp.asarray(self.arrays["train"]["tokens"][:1])
        return (tokens, jnp.asarray(self.arrays["train"]["lengths"][:1]))


class MultipleChoiceClassifier(ChoiceTask):
    """BioMedLM's head: a linear score on each (question, option) text's last real token."""

    @classmethod
    def build(cls, splits, tokenizer, template: str, max_len: int, batch_size: int, eval_batch_size: int,
              task_name: str = "task"):
        width = max(len(q.options) for qs in splits.values() for q in qs)
        arrays, reports = encode_splits(
            splits, lambda qs, what: encode_choices(qs, tokenizer, template, max_len, width, what), task_name)
        return cls(splits, arrays, reports, batch_size, eval_batch_size)

    def loss(self, model, batch):
        return _choice_loss(classifier_option_scores(model, batch["tokens"], batch["lengths"],
                                                     batch["option_mask"]), batch)

    def evaluate(self, evaluator) -> dict[str, float]:
        return evaluate_splits(evaluator, self.arrays, self.eval_batch_size)


class MultipleChoiceLoglik(ChoiceTask):
    """No head: options scored by their log-likelihood; dev/test accuracy through the harness's scorer."""

    lm_head = True

    def __init__(self, *args, evaluation: loglik.LoglikEvaluation, **kwargs):
        super().__init__(*args, **kwargs)
        self.evaluation = evaluation

    @classmethod
    def build(cls, splits, tokenizer, template: str, max_len: int, batch_size: int, eval_batch_size: int,
              plain_cfg: Any, task_name: str = "task"):
        width = max(len(q.options) for qs in splits.values() for q in qs)
        arrays, reports = encode_splits(
            splits, lambda qs, what: encode_option_continuations(qs, tokenizer, template, max_len, width, what),
            task_name)
        evaluation = loglik.LoglikEvaluation(
            {name: option_requests(qs, tokenizer, template) for name, qs in splits.items() if qs and name != "train"},
            {name: [q.answer for q in qs] for name, qs in splits.items()}, plain_cfg, max_len, eval_batch_size)
        return cls(splits, arrays, reports, batch_size, eval_batch_size, evaluation=evaluation)

    def example_inputs(self) -> tuple:
        return (jnp.asarray(self.arrays["train"]["inputs"][:1, 0]),)

    def loss(self, model, batch):
        return _choice_loss(loglik.option_scores(model, batch), batch)

    def evaluate(self, evaluator) -> dict[str, float]:
        return self.evaluation(evaluator)

"""Option log-likelihood, in one place: an option's score is the summed log-probability of its
continuation text after the question's prompt.

Three users, one definition:
- the evaluation harness's `loglik` method and lm-eval's loglikelihood requests score (context ids,
  continuation ids) pairs with `LoglikScorer` (biomed_jax/evaluation/scoring.py);
- fine-tuning's dev and test accuracy for the MCQ `option_loglik` head and for instruction tuning build
  their pairs with `requests` and score them with that same scorer (`accuracy`), so a fine-tuning run's
  dev accuracy is what `experiments.evaluate` reports on its best/ for the same prompts;
- the `option_loglik` head's training loss needs gradients, so it reads the same pairs laid out as rows
  (`continuation_arrays`, truncated exactly as the scorer truncates) and sums the scorer's own per-token
  formula, `scoring.target_logprobs`, under the continuation mask (`option_scores`).

A pair's context is encoded with the tokenizer's special tokens (a BOS where the tokenizer adds one),
its continuation without; a prompt too long for `max_len` loses tokens from its left.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from biomed_jax.evaluation.scoring import LoglikScorer, target_logprobs

Request = tuple[list[int], list[int]]


def requests(tokenizer, prompt: str, continuations: Sequence[str]) -> list[Request]:
    """(context ids, continuation ids) for each continuation of one prompt."""
    context = tokenizer.encode(prompt).ids
    return [(list(context), tokenizer.encode(text, add_special_tokens=False).ids) for text in continuations]


def fit(context: Sequence[int], continuation: Sequence[int], max_len: int) -> tuple[list[int], int]:
    """context + continuation with the context cut from the left so the model reads at most max_len
    tokens (all but the last); returns (ids, tokens cut). The scorer applies the same rule."""
    keep = max_len + 1 - len(continuation)
    if keep < 1:
        raise ValueError(f"a continuation of {len(continuation)} tokens leaves no room for its context in "
                         f"max_len={max_len}; raise max_len")
    cut = max(0, len(context) - keep)
    return list(context[cut:]) + list(continuation), cut


def continuation_arrays(per_question: Sequence[Sequence[Request]], answers: Sequence[int], max_len: int,
                        width: int) -> tuple[dict[str, np.ndarray], int]:
    """Rows for training on option log-likelihoods: {inputs, targets, response_mask (n, width, max_len),
    option_mask (n, width), labels (n,)} and the number of contexts cut. Questions with fewer than
    `width` options have masked-out padding options."""
    n = len(per_question)
    arrays = dict(inputs=np.zeros((n, width, max_len), np.int32), targets=np.zeros((n, width, max_len), np.int32),
                  response_mask=np.zeros((n, width, max_len), bool), option_mask=np.zeros((n, width), bool),
                  labels=np.asarray(answers, np.int32))
    truncated = 0
    for row, pairs in enumerate(per_question):
        for col, (context, continuation) in enumerate(pairs):
            ids, cut = fit(context, continuation, max_len)
            truncated += cut > 0
            length = len(ids) - 1
            arrays["inputs"][row, col, :length] = ids[:-1]
            arrays["targets"][row, col, :length] = ids[1:]
            arrays["response_mask"][row, col, length - len(continuation):length] = True
            arrays["option_mask"][row, col] = True
    return arrays, truncated


def option_scores(model, batch) -> jax.Array:
    """(n, width) summed continuation log-probs of `continuation_arrays` rows, padding options at the
    float32 minimum. Through the model's __call__, which qwix rewrites for LoRA (hidden states alone
    would skip the adapters)."""
    shape = batch["inputs"].shape
    logits = model(batch["inputs"].reshape(-1, shape[-1]))
    logprobs = target_logprobs(logits, batch["targets"].reshape(-1, shape[-1])).reshape(shape)
    scores = jnp.sum(jnp.where(batch["response_mask"], logprobs, 0.0), axis=-1)
    return jnp.where(batch["option_mask"], scores, jnp.finfo(jnp.float32).min)


def accuracy(scorer, per_question: Sequence[Sequence[Request]], answers: Sequence[int]) -> dict:
    """{"accuracy", "n", "predictions"}: each question's prediction is its highest-scoring option (the
    first of equal scores), scored by `scorer` (a LoglikScorer) as the evaluation harness scores them."""
    flat = [pair for pairs in per_question for pair in pairs]
    scores = [logprob for logprob, _, _ in scorer.score(flat)]
    predictions, start = [], 0
    for pairs in per_question:
        predictions.append(int(np.argmax(scores[start:start + len(pairs)])))
        start += len(pairs)
    correct = sum(p == a for p, a in zip(predictions, answers))
    return {"accuracy": correct / max(len(answers), 1), "n": len(answers), "predictions": predictions}


class LoglikEvaluation:
    """Dev/test accuracy of a fine-tuning run by option log-likelihood: `requests` {split: pairs per
    question}, scored by one LoglikScorer over the current plain parameters (built at the first
    evaluation, its compiled programs kept, given new parameters at each later one)."""

    def __init__(self, requests: dict[str, list], answers: dict[str, list[int]], plain_cfg, max_len: int,
                 batch_size: int):
        self.requests, self.answers = requests, answers
        self.plain_cfg, self.max_len, self.batch_size = plain_cfg, max_len, batch_size
        self._scorer = None

    def __call__(self, evaluator) -> dict[str, float]:
        params = evaluator.plain_params()
        if self._scorer is None:
            self._scorer = LoglikScorer(self.plain_cfg, params, mesh=evaluator.mesh, batch_size=self.batch_size,
                                        max_len=self.max_len)
        else:
            self._scorer.set_params(params)
        out: dict[str, float] = {}
        for name, pairs in self.requests.items():
            result = accuracy(self._scorer, pairs, self.answers[name])
            out.update({f"{name}_accuracy": result["accuracy"], f"{name}_n": result["n"]})
        return out

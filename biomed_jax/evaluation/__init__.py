"""Evaluation: log-likelihood scoring of token requests and the lm-evaluation-harness adapter.

`scoring.LoglikScorer` is the engine; `lm_eval_adapter` (imported on demand: it needs lm-eval)
registers it with lm-evaluation-harness as the `biomed_jax` model.
"""

from biomed_jax.evaluation.scoring import LoglikScorer, bucket_length, load_scorer, rolling_windows

__all__ = ["LoglikScorer", "bucket_length", "load_scorer", "rolling_windows"]

"""Classifier heads over the decoder (BioMedLM's fine-tuning): a linear layer on the last real token.

The decoder is causal, so a right-padded sequence's hidden state at its last non-pad token has seen the
whole text and none of the padding. The multiple-choice scorer encodes every (question, option) pair and
maps that state to one score per option; a softmax over the options is trained with cross-entropy. The
sequence classifier maps it to n class logits (PubMedQA yes/no/maybe, BioASQ yes/no).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from biomed_jax.models.decoder import Decoder
from biomed_jax.models.layers import normal, partitioned

class Classifier(nnx.Module):
    """A Decoder plus `head`: final hidden state of the last non-pad token -> n_outputs fp32 scores."""

    def __init__(self, decoder: Decoder, n_outputs: int, *, rngs: nnx.Rngs):
        if n_outputs < 1:
            raise ValueError(f"a classifier needs n_outputs >= 1, got {n_outputs}")
        self.decoder = decoder
        d = decoder.cfg.d_model
        self.head = nnx.Linear(d, n_outputs, dtype=jnp.float32, param_dtype=jnp.float32,
                               kernel_init=partitioned(normal(decoder.cfg.init_std), "embed", None),
                               bias_init=partitioned(nnx.initializers.zeros, None), rngs=rngs)

    def __call__(self, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
        """tokens (..., seq) right-padded, lengths (...) >= 1 -> scores (..., n_outputs) in float32."""
        lead, seq = tokens.shape[:-1], tokens.shape[-1]
        flat = tokens.reshape(-1, seq)
        hidden = self.decoder.hidden_states(flat)
        last = jnp.clip(lengths.reshape(-1) - 1, 0, seq - 1)
        pooled = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        return self.head(pooled.astype(jnp.float32)).reshape(*lead, -1)


def option_scores(model: Classifier, tokens: jax.Array, lengths: jax.Array, option_mask: jax.Array) -> jax.Array:
    """MCQ: tokens (batch, n_options, seq) -> (batch, n_options) scores, padded options at -inf-like."""
    scores = model(tokens, lengths)[..., 0]
    return jnp.where(option_mask, scores, jnp.finfo(jnp.float32).min)


def class_scores(model: Classifier, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
    """Sequence classification: tokens (batch, seq) -> (batch, n_classes)."""
    return model(tokens, lengths)

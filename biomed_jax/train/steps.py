"""Jitted train and eval steps: sharded in and out, the state donated, microbatches accumulated.

A batch is a dict of (global_batch, seq) arrays: `inputs`, `targets`, `loss_mask` and optionally
`positions` and `segment_ids` (packed documents). The loss is the token-weighted mean of the fp32
cross-entropy over every unmasked target in the global batch, whatever the microbatching.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from biomed_jax import sharding as shd
from biomed_jax.train.state import TrainState

Batch = Mapping[str, jax.Array]


def token_loss_sum(graphdef, params, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(sum of masked token cross-entropies, number of unmasked tokens), both fp32."""
    model = nnx.merge(graphdef, params)
    logits = model(batch["inputs"], batch.get("positions"), batch.get("segment_ids"))
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    weights = batch["loss_mask"].astype(jnp.float32)
    return jnp.sum(losses * weights), jnp.sum(weights)


def _split_microbatches(batch: Batch, n: int) -> Batch:
    """(B, ...) -> (n, B/n, ...) taking every n-th row, so each microbatch stays spread over
    all batch shards (a contiguous split would put each microbatch on a subset of devices)."""

    def split(x):
        x = x.reshape((x.shape[0] // n, n) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return {k: split(v) for k, v in batch.items()}


def make_train_step(graphdef, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    mesh: Mesh, rules: Mapping[str, Any], state_shardings: TrainState,
                    n_microbatches: int = 1) -> Callable:
    """jit(step)(state, batch) -> (state, metrics), with in/out shardings and the state donated."""

    def grads_and_loss(params, batch, denom):
        """Gradients of the loss mean (the loss sum over the batch's `denom` tokens) and the loss sum.

        Differentiating loss_sum / denom scales the backward pass's first cotangent, not every gradient
        afterwards (one pass over all parameters fewer)."""

        def mean_loss(p, b):
            loss_sum, _ = token_loss_sum(graphdef, p, b)
            return loss_sum / denom, loss_sum

        grad_fn = jax.value_and_grad(mean_loss, has_aux=True)
        if n_microbatches == 1:
            (_, loss_sum), grads = grad_fn(params, batch)
            return grads, loss_sum

        def accumulate(carry, micro):
            grad_acc, loss_acc = carry
            micro = {k: shd.constrain(v, ("activation_batch",) + (None,) * (v.ndim - 1))
                     for k, v in micro.items()}
            (_, loss_sum), grads = grad_fn(params, micro)
            grad_acc = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), grad_acc, grads)
            return (grad_acc, loss_acc + loss_sum), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        (grads, loss_sum), _ = jax.lax.scan(
            accumulate, (zeros, jnp.zeros((), jnp.float32)), _split_microbatches(batch, n_microbatches))
        return grads, loss_sum

    def train_step(state: TrainState, batch: Batch):
        with shd.activation_sharding(mesh, rules):
            n_tokens = jnp.sum(batch["loss_mask"].astype(jnp.float32))
            denom = jnp.maximum(n_tokens, 1.0)
            grads, loss_sum = grads_and_loss(state.params, batch, denom)
            grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
            grads = jax.lax.with_sharding_constraint(grads, state_shardings.params)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss_sum / denom,
            "grad_norm": optax.tree.norm(grads),
            "lr": schedule(state.step),
            "tokens": n_tokens,
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return jax.jit(
        train_step,
        in_shardings=(state_shardings, shd.batch_sharding(mesh)),  # a prefix: every batch array
        out_shardings=(state_shardings, shd.replicated(mesh)),
        donate_argnums=0,
    )


def make_eval_step(graphdef, mesh: Mesh, rules: Mapping[str, Any], param_shardings: Any) -> Callable:
    """jit(step)(params, batch) -> (loss_sum, n_tokens) for exact corpus-level validation loss."""

    def eval_step(params, batch):
        with shd.activation_sharding(mesh, rules):
            return token_loss_sum(graphdef, params, batch)

    return jax.jit(eval_step, in_shardings=(param_shardings, shd.batch_sharding(mesh)),
                   out_shardings=shd.replicated(mesh))

"""The jitted train and eval steps of every run: sharded in and out, the state donated, microbatches
accumulated. What is trained is a task's loss (biomed_jax/tasks); the step does not know which task.

A task's loss is `loss(model, batch) -> (loss_sum, sums)`: the summed loss of the batch and a dict of
summed metrics (correct answers, say), both float32, and `weight(batch)` is what the sums are divided by
(unmasked target tokens for language modelling, real examples for a classifier). The train step's loss
is the weight-weighted mean over the whole global batch, whatever the microbatching:

    loss = sum_m loss_sum_m / W,   W = sum_m weight_m  (computed from the batch before the forward)

and its gradient is sum_m grad(loss_sum_m / W), accumulated in float32 over `n_microbatches` slices of
the batch. Differentiating loss_sum / W scales the backward pass's first cotangent instead of dividing
every gradient afterwards (one pass over the parameters fewer). Only `state.params`, the trainable part,
is differentiated and has optimizer state; `frozen` (a LoRA run's base weights, quantized or not) is an
argument of the step, never donated, never differentiated, and `state.rngs` (LoRA dropout's RNG counters)
advances with every forward pass.
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
# loss(model, batch) -> (summed loss, {name: summed metric}); weight(batch) -> the mean's denominator.
LossFn = Callable[[nnx.Module, Batch], tuple[jax.Array, dict[str, jax.Array]]]
WeightFn = Callable[[Batch], jax.Array]


def merge_model(graphdef, params, rngs, frozen) -> nnx.Module:
    """The module from its split parts; empty parts (a pretraining run has no rngs and no frozen base)
    are left out, so a plain model merges from its params alone."""
    parts = [part for part in (rngs, frozen) if part]
    return nnx.merge(graphdef, params, *parts)


def _split_microbatches(batch: Batch, n: int) -> Batch:
    """(B, ...) -> (n, B/n, ...) taking every n-th row, so each microbatch stays spread over
    all batch shards (a contiguous split would put each microbatch on a subset of devices)."""

    def split(x):
        x = x.reshape((x.shape[0] // n, n) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return {k: split(v) for k, v in batch.items()}


def make_train_step(graphdef, loss: LossFn, weight: WeightFn, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, mesh: Mesh, rules: Mapping[str, Any], state_shardings: TrainState,
                    frozen_shardings: Any = None, n_microbatches: int = 1) -> Callable:
    """jit(step)(state, frozen, batch) -> (state, metrics), with in/out shardings and the state donated.

    metrics: loss (the weighted mean), grad_norm, lr, weight (the global batch's denominator) and each of
    the task's sums divided by the weight (accuracy, say)."""

    def grads_and_sums(params, rngs, frozen, batch, denom):
        def mean_loss(p, r, b):
            model = merge_model(graphdef, p, r, frozen)
            loss_sum, sums = loss(model, b)
            r = nnx.state(model, nnx.RngState) if r else r
            return loss_sum / denom, (loss_sum, sums, r)

        grad_fn = jax.value_and_grad(mean_loss, has_aux=True)
        if n_microbatches == 1:
            (_, (loss_sum, sums, rngs)), grads = grad_fn(params, rngs, batch)
            return grads, loss_sum, sums, rngs

        def accumulate(carry, micro):
            grad_acc, loss_acc, sums_acc, r = carry
            micro = {k: shd.constrain(v, ("activation_batch",) + (None,) * (v.ndim - 1))
                     for k, v in micro.items()}
            (_, (loss_sum, sums, r)), grads = grad_fn(params, r, micro)
            grad_acc = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), grad_acc, grads)
            sums_acc = jax.tree.map(jnp.add, sums_acc, sums)
            return (grad_acc, loss_acc + loss_sum, sums_acc, r), None

        micro = _split_microbatches(batch, n_microbatches)
        first = jax.tree.map(lambda x: x[0], micro)
        zero_sums = jax.tree.map(jnp.zeros_like,
                                 jax.eval_shape(lambda: loss(merge_model(graphdef, params, rngs, frozen), first)[1]))
        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        (grads, loss_sum, sums, rngs), _ = jax.lax.scan(
            accumulate, (zeros, jnp.zeros((), jnp.float32), zero_sums, rngs), micro)
        return grads, loss_sum, sums, rngs

    def train_step(state: TrainState, frozen, batch: Batch):
        with shd.activation_sharding(mesh, rules):
            total_weight = weight(batch).astype(jnp.float32)
            denom = jnp.maximum(total_weight, 1.0)
            grads, loss_sum, sums, rngs = grads_and_sums(state.params, state.rngs, frozen, batch, denom)
            grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
            grads = jax.lax.with_sharding_constraint(grads, state_shardings.params)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss_sum / denom,
            "grad_norm": optax.tree.norm(grads),
            "lr": schedule(state.step),
            "weight": total_weight,
            **{name: value / denom for name, value in sums.items()},
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state, rngs=rngs), metrics

    return jax.jit(
        train_step,
        # P(batch axes) on every batch array: the leading axis split, the rest replicated, at any rank.
        in_shardings=(state_shardings, frozen_shardings, shd.batch_sharding(mesh, 1)),
        out_shardings=(state_shardings, shd.replicated(mesh)),
        donate_argnums=0,
    )


def make_eval_step(graphdef, loss: LossFn, weight: WeightFn, mesh: Mesh, rules: Mapping[str, Any],
                   param_shardings: Any, rngs_shardings: Any = None, frozen_shardings: Any = None) -> Callable:
    """jit(step)(params, rngs, frozen, batch) -> {"loss_sum", "weight", **sums}, replicated: exact
    corpus-level metrics are sums over batches divided once at the end."""

    def eval_step(params, rngs, frozen, batch):
        with shd.activation_sharding(mesh, rules):
            loss_sum, sums = loss(merge_model(graphdef, params, rngs, frozen), batch)
            return {"loss_sum": loss_sum, "weight": weight(batch).astype(jnp.float32), **sums}

    return jax.jit(eval_step, in_shardings=(param_shardings, rngs_shardings, frozen_shardings,
                                            shd.batch_sharding(mesh, 1)),
                   out_shardings=shd.replicated(mesh))

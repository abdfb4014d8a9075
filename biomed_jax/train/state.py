"""The train state (step, trainable params, optimizer state, RNG state), created directly in its sharded
layout.

Params are a plain nested dict of arrays (nnx.merge(graphdef, params) rebuilds the model inside
jit), which keeps optax, orbax and the sharding rules working on ordinary pytrees. `rngs` is the
model's nnx RNG state where it draws random numbers while training (LoRA dropout), else empty.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding

from biomed_jax import sharding as shd
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params, init_params


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    rngs: Any = struct.field(default_factory=dict)


def param_shardings(cfg: ModelConfig, mesh: Mesh, rules: Mapping[str, Any]) -> dict:
    _, abstract = graphdef_and_abstract_params(cfg)
    return shd.param_shardings(abstract, mesh, rules)


def state_shardings(cfg: ModelConfig, tx: optax.GradientTransformation, mesh: Mesh,
                    rules: Mapping[str, Any]) -> TrainState:
    """Shardings for every leaf of the TrainState: optimizer moments follow their parameter."""
    p_shardings = param_shardings(cfg, mesh, rules)
    abstract = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    return TrainState(step=shd.replicated(mesh), params=p_shardings,
                      opt_state=opt_state_shardings(tx, abstract, p_shardings, mesh))


def opt_state_shardings(tx: optax.GradientTransformation, abstract_params: Any, p_shardings: Any, mesh: Mesh) -> Any:
    """Shardings of tx's state: each moment follows its parameter, counters are replicated."""
    return optax.tree_map_params(
        tx, lambda _, sharding: sharding, jax.eval_shape(tx.init, abstract_params), p_shardings,
        transform_non_params=lambda _: shd.replicated(mesh), is_leaf=lambda x: isinstance(x, NamedSharding))


def create_train_state(cfg: ModelConfig, tx: optax.GradientTransformation, rng: jax.Array,
                       shardings: TrainState) -> TrainState:
    """Initialises params and optimizer state already sharded: nothing is materialised whole."""

    def init(rng):
        params = init_params(cfg, rng)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    return jax.jit(init, out_shardings=shardings)(rng)


def train_state_from_params(params: Any, tx: optax.GradientTransformation, shardings: TrainState) -> TrainState:
    """A step-0 TrainState around existing params (continued pretraining, fine-tuning), sharded."""

    def init(params):
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    return jax.jit(init, out_shardings=shardings)(params)


def abstract_train_state(cfg: ModelConfig, tx: optax.GradientTransformation,
                         shardings: TrainState) -> TrainState:
    """ShapeDtypeStructs with shardings, the target for restoring a checkpoint in place."""
    shapes = jax.eval_shape(
        lambda: TrainState(step=jnp.zeros((), jnp.int32),
                           params=(p := init_params(cfg, jax.random.key(0))), opt_state=tx.init(p)))
    return jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)

"""The train state (step, params, optimizer state), created directly in its sharded layout.

Params are a plain nested dict of arrays (nnx.merge(graphdef, params) rebuilds the model inside
jit), which keeps optax, orbax and the sharding rules working on ordinary pytrees.
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


def param_shardings(cfg: ModelConfig, mesh: Mesh, rules: Mapping[str, Any]) -> dict:
    _, abstract = graphdef_and_abstract_params(cfg)
    return shd.param_shardings(abstract, mesh, rules)


def state_shardings(cfg: ModelConfig, tx: optax.GradientTransformation, mesh: Mesh,
                    rules: Mapping[str, Any]) -> TrainState:
    """Shardings for every leaf of the TrainState: optimizer moments follow their parameter."""
    p_shardings = param_shardings(cfg, mesh, rules)
    abstract_opt = jax.eval_shape(tx.init, jax.eval_shape(lambda: init_params(cfg, jax.random.key(0))))
    replicated = shd.replicated(mesh)
    opt_shardings = optax.tree_map_params(
        tx, lambda _, sharding: sharding, abstract_opt, p_shardings,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, NamedSharding))
    return TrainState(step=replicated, params=p_shardings, opt_state=opt_shardings)


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

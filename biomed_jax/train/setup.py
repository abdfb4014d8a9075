"""The pretraining step as a run config describes it: one builder for the training loop, the
compile check (train/aot.py) and the training benchmark, so all three measure the same program."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections
import optax
from jax.sharding import Mesh

from biomed_jax import optim
from biomed_jax import sharding as shd
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params
from biomed_jax.train.run_config import validate_pretrain_config
from biomed_jax.train.state import TrainState, state_shardings
from biomed_jax.train.steps import make_train_step


@dataclasses.dataclass
class TrainSetup:
    model_cfg: ModelConfig
    mesh: Mesh
    rules: dict[str, Any]
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    shardings: TrainState   # of every leaf of the train state
    graphdef: Any
    train_step: Callable    # jit(state, global batch) -> (state, metrics); the state is donated


def train_setup(cfg: ml_collections.ConfigDict, devices: list | None = None) -> TrainSetup:
    """Validates `cfg` (ValueError naming the field) and builds its mesh, optimizer, shardings and step.

    `devices` defaults to all of jax.devices().
    """
    devices = list(jax.devices() if devices is None else devices)
    model_cfg = validate_pretrain_config(cfg, len(devices))
    mesh = shd.make_mesh(cfg.mesh, devices)
    rules = shd.rules_dict()
    tx, schedule = optim.from_config(cfg.optim, cfg.train.steps)
    shardings = state_shardings(model_cfg, tx, mesh, rules)
    graphdef, _ = graphdef_and_abstract_params(model_cfg)
    train_step = make_train_step(graphdef, tx, schedule, mesh, rules, shardings, cfg.train.microbatches)
    return TrainSetup(model_cfg, mesh, rules, tx, schedule, shardings, graphdef, train_step)

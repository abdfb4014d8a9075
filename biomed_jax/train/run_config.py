"""Checks a whole run config before anything is traced, naming the field that is wrong."""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
from absl import logging

from biomed_jax import sharding as shd
from biomed_jax.models.config import ModelConfig


def _positive_int(cfg: ml_collections.ConfigDict, field: str, allow_zero: bool = False) -> int:
    section, name = field.split(".")
    value = cfg[section][name]
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f"{field} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    return value


def validate_pretrain_config(cfg: ml_collections.ConfigDict, n_devices: int) -> ModelConfig:
    """Returns the ModelConfig if the run config is consistent, else raises ValueError naming the field."""
    model = ModelConfig.from_dict(cfg.model)
    mesh_shape = shd.resolve_mesh_shape(cfg.mesh, n_devices)
    for field in ("train.steps", "train.batch_size", "train.seq_len", "train.microbatches",
                  "train.log_every", "train.eval_every"):
        _positive_int(cfg, field)
    _positive_int(cfg, "train.eval_batches", allow_zero=True)
    train = cfg.train
    if train.seq_len > model.max_seq_len:
        raise ValueError(
            f"train.seq_len ({train.seq_len}) is longer than model.max_seq_len ({model.max_seq_len})")
    if train.batch_size % train.microbatches:
        raise ValueError(
            f"train.batch_size ({train.batch_size}) must be divisible by train.microbatches ({train.microbatches})")
    batch_shards = mesh_shape[0] * mesh_shape[1]  # data * fsdp
    micro = train.batch_size // train.microbatches
    if micro % batch_shards:
        raise ValueError(
            f"each microbatch (train.batch_size / train.microbatches = {micro}) must be divisible by "
            f"mesh.data * mesh.fsdp = {batch_shards}")
    return model


def write_config_json(cfg: ml_collections.ConfigDict, workdir: str, model: ModelConfig) -> str:
    """Writes the config to WORKDIR/config.json (atomically), with what `model`'s `auto` fields resolve to
    on this backend under "resolved" (also logged)."""
    os.makedirs(workdir, exist_ok=True)
    resolved = model.resolved()
    logging.info("model runs with %s", ", ".join(f"{k} {v}" for k, v in resolved.items()))
    path = os.path.join(workdir, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({**cfg.to_dict(), "resolved": resolved}, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    return str(value)

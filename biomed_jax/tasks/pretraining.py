"""Pretraining and continued pretraining: next-token cross-entropy over packed token batches.

    run(cfg, workdir)      configs/pretrain.py; experiments.pretrain is its command line

The batches come from a prepared TFDS token dataset through the grain loader, or from the synthetic
Markov-chain stream (biomed_jax/data/sources.py); each process reads only its rows. `train.init_from`
starts from another run's parameters (continued pretraining, MEDITRON's recipe); the model's
architecture then comes from that checkpoint. Evaluation is the validation loss over `eval_batches`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from biomed_jax import optim, run_dir
from biomed_jax import sharding as shd
from biomed_jax.data.sources import build_batch_source, open_token_dataset, resolve_kind
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params, init_params, stack_layers, unstack_layers
from biomed_jax.models.info import model_info
from biomed_jax.train import trainer as trainer_lib
from biomed_jax.train.run_config import validate_pretrain_config, write_config_json
from biomed_jax.train.state import TrainState, state_shardings


def token_loss(model, batch):
    """(sum of the masked next-token cross-entropies, {}), float32."""
    logits = model(batch["inputs"], batch.get("positions"), batch.get("segment_ids"))
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    return jnp.sum(losses * batch["loss_mask"].astype(jnp.float32)), {}


def token_weight(batch):
    """Unmasked target tokens: the loss is their mean."""
    return jnp.sum(batch["loss_mask"].astype(jnp.float32))


class Pretraining:
    """Language modelling on a token stream; no epochs, no best-by-dev (the last step is the model)."""

    steps_per_epoch = None
    selection = None
    loss = staticmethod(token_loss)
    weight = staticmethod(token_weight)

    def __init__(self, cfg: ml_collections.ConfigDict, vocab_size: int):
        self.cfg = cfg
        self.tokens_per_example = cfg.train.seq_len
        self._source_args = dict(vocab_size=vocab_size, seq_len=cfg.train.seq_len,
                                 global_batch_size=cfg.train.batch_size)

    def train_source(self, seed: int):
        return build_batch_source(self.cfg.data, "train", seed=seed, **self._source_args)

    def evaluate(self, evaluator) -> dict[str, float]:
        """Validation loss (and perplexity) over the first `eval_batches` validation batches."""
        n = self.cfg.train.eval_batches
        if n == 0:
            return {}
        source = build_batch_source(self.cfg.data, "validation", seed=self.cfg.seed, **self._source_args)
        try:
            sums = evaluator.sums(next(source) for _ in range(n))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        val_loss = sums["loss_sum"] / max(sums["weight"], 1.0)
        return {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0))}


@dataclasses.dataclass
class TrainSetup:
    """What a pretraining config resolves to before anything is allocated."""

    model_cfg: ModelConfig
    mesh: Mesh
    rules: dict[str, Any]
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    shardings: TrainState    # of every leaf of the train state
    graphdef: Any
    abstract_params: Any     # ShapeDtypeStructs carrying their shardings


def setup(cfg: ml_collections.ConfigDict, devices: list | None = None) -> TrainSetup:
    """Validates `cfg` (ValueError naming the field) and builds its mesh, optimizer and shardings.

    `devices` defaults to all of jax.devices().
    """
    devices = list(jax.devices() if devices is None else devices)
    model_cfg = validate_pretrain_config(cfg, len(devices))
    mesh = shd.make_mesh(cfg.mesh, devices)
    rules = shd.rules_dict()
    tx, schedule = optim.from_config(cfg.optim, cfg.train.steps)
    shardings = state_shardings(model_cfg, tx, mesh, rules)
    graphdef, _ = graphdef_and_abstract_params(model_cfg)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            jax.eval_shape(lambda: init_params(model_cfg, jax.random.key(0))), shardings.params)
    return TrainSetup(model_cfg, mesh, rules, tx, schedule, shardings, graphdef, abstract)


def build_trainer(cfg: ml_collections.ConfigDict, workdir: str, devices: list | None = None,
                  init_dir: str = "") -> trainer_lib.Trainer:
    """The Trainer of a pretraining config, nothing allocated yet: `run` trains with it, the compile check
    (train/aot.py) and the training benchmark compile its step, so all three use the same program."""
    built = setup(cfg, devices)
    model_cfg, mesh, rules = built.model_cfg, built.mesh, built.rules

    def init():
        if init_dir:
            logging.info("initialised from %s (continued pretraining)", init_dir)
            return _params_from_run(init_dir, model_cfg, mesh, rules, built.shardings.params)
        return jax.jit(init_params, static_argnums=0, out_shardings=built.shardings.params)(
            model_cfg, jax.random.key(cfg.seed))

    model = trainer_lib.ModelParts(graphdef=built.graphdef, abstract_params=built.abstract_params, init=init)
    return trainer_lib.Trainer(
        workdir, task=Pretraining(cfg, model_cfg.vocab_size), model=model, tx=built.tx, schedule=built.schedule,
        mesh=mesh, rules=rules, train=cfg.train, checkpoint=cfg.checkpoint, logging_cfg=cfg.logging,
        meta={"model": model_cfg.to_dict(), "preset": cfg.get("preset")}, seed=cfg.seed,
        flops_per_token=model_info(model_cfg, cfg.train.seq_len)["flops_per_token"])


def run(cfg: ml_collections.ConfigDict, workdir: str) -> trainer_lib.RunSummary:
    """Trains (or resumes training) the model of `cfg`, writing everything under `workdir`."""
    trainer_lib.connect(cfg.distributed)
    init_dir = _adopt_init_checkpoint(cfg)
    _cover_dataset_vocab(cfg, from_checkpoint=bool(init_dir))
    trainer = build_trainer(cfg, workdir, init_dir=init_dir)
    if jax.process_index() == 0:
        write_config_json(cfg, workdir, ModelConfig.from_dict(trainer.meta["model"]))
        _copy_dataset_tokenizer(cfg, workdir)
    return trainer.run()


def _adopt_init_checkpoint(cfg: ml_collections.ConfigDict) -> str:
    """With train.init_from, the model's architecture comes from that run (numerics from config).

    Returns the run directory to initialise from ('' when training from scratch).
    """
    init_from = cfg.train.get("init_from", "")
    if not init_from:
        return ""
    run_dir.require_run(init_from, "train.init_from")
    _, meta = run_dir.read_meta(init_from)
    for key, value in meta["model"].items():
        if key not in trainer_lib.RUNTIME_ONLY_FIELDS + ("scan_layers",) and cfg.model[key] != value:
            logging.info("model.%s = %r from %s (config had %r)", key, value, init_from, cfg.model[key])
            cfg.model[key] = value
    return init_from


def _params_from_run(path: str, model_cfg, mesh, rules, shardings):
    """The params of `path`'s latest checkpoint in this run's layout (stacked or not) and dtype."""
    run = run_dir.load_run(path, mesh=mesh, rules=rules, with_tokenizer=False)
    params = run.params
    if run.model_cfg.scan_layers != model_cfg.scan_layers:
        params = stack_layers(params) if model_cfg.scan_layers else unstack_layers(params)
    abstract = jax.eval_shape(lambda: init_params(model_cfg, jax.random.key(0)))
    return jax.tree.map(lambda p, a, s: jax.device_put(p.astype(a.dtype), s), params, abstract, shardings)


def _cover_dataset_vocab(cfg: ml_collections.ConfigDict, from_checkpoint: bool) -> None:
    """Raises model.vocab_size to the prepared dataset's tokenizer size when it is smaller.

    A preset's vocabulary (e.g. the tiny model's 256) cannot embed a trained tokenizer's ids; the
    resolved value is what config.json and the checkpoints record. A checkpoint's vocabulary is fixed.
    """
    if resolve_kind(cfg.data) != "tfds":
        return
    vocab = open_token_dataset(cfg.data).vocab_size
    if cfg.model.vocab_size < vocab and from_checkpoint:
        raise ValueError(
            f"the dataset's tokenizer has {vocab} tokens but the train.init_from model embeds only "
            f"{cfg.model.vocab_size}; prepare the data with the checkpoint's tokenizer "
            "(--config.tokenizer.path=<init_from>/tokenizer.json in experiments.prepare_data)")
    if cfg.model.vocab_size < vocab:
        logging.info("model.vocab_size raised from %d to %d, the size of the dataset's tokenizer",
                     cfg.model.vocab_size, vocab)
        cfg.model.vocab_size = vocab


def _copy_dataset_tokenizer(cfg: ml_collections.ConfigDict, workdir: str) -> None:
    """Puts the dataset's tokenizer.json beside the checkpoints: generation, evaluation and export find it."""
    if resolve_kind(cfg.data) == "tfds" and not os.path.exists(os.path.join(workdir, run_dir.TOKENIZER_FILE)):
        shutil.copy(open_token_dataset(cfg.data).tokenizer_path, os.path.join(workdir, run_dir.TOKENIZER_FILE))


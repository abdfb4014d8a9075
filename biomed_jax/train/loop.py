"""The pretraining loop: sharded state, batches, logging, validation, checkpoints, resumption.

Host and device overlap: step s+1 is dispatched before the host reads step s's metrics, so the
device never waits for logging. A state is only checkpointed after its loss and gradient norm were
checked finite; a non-finite value stops the run naming the step, keeping the last good checkpoint.
SIGTERM / SIGINT finish the current step, save, and exit; rerunning the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from biomed_jax import sharding as shd
from biomed_jax.data.sources import build_batch_source, open_token_dataset, resolve_kind
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import stack_layers, unstack_layers
from biomed_jax.models.info import model_info
from biomed_jax.train.checkpoint import RunCheckpoints, load_params
from biomed_jax.train.metrics import MetricsLogger, mfu, peak_flops_per_device
from biomed_jax.train.run_config import write_config_json
from biomed_jax.train.setup import train_setup
from biomed_jax.train.state import abstract_train_state, create_train_state, train_state_from_params
from biomed_jax.train.steps import make_eval_step

# Fields that change only how the model runs, not its parameters: free to change on resume.
RUNTIME_ONLY_FIELDS = ("dtype", "attention", "remat")


class NonFiniteLossError(FloatingPointError):
    pass


@dataclasses.dataclass
class RunSummary:
    step: int
    last_loss: float | None
    interrupted_by: str | None = None
    val_loss: float | None = None


class StopSignals:
    """Turns SIGTERM/SIGINT into a request to save and stop at the next step boundary.

    A second signal gets the default behaviour (Ctrl-C twice kills at once).
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        self.received = signum
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def requested(self) -> bool:
        """Whether any process got a signal (all processes must agree to save the same step)."""
        flag = self.received is not None
        if jax.process_count() > 1:
            flag = bool(np.any(multihost_utils.process_allgather(np.array(flag))))
        return flag


def _check_resumable(meta: dict, model_cfg: ModelConfig, ckpt_dir: str) -> None:
    saved = meta.get("model", {})
    current = model_cfg.to_dict()
    diffs = [f"model.{k}: checkpoint {saved.get(k)!r} vs config {current[k]!r}"
             for k in current if k not in RUNTIME_ONLY_FIELDS and saved.get(k) != current[k]]
    if diffs:
        raise ValueError(
            f"the checkpoint in {ckpt_dir} was written for a different model ({'; '.join(diffs)}); "
            "use a new --workdir, or set the config back to match")


def _progress_bar(mode: str, total: int, initial: int):
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"logging.progress_bar must be auto, on or off, got {mode!r}")
    disable = mode == "off" or (mode == "auto" and not sys.stderr.isatty()) or jax.process_index() != 0
    return tqdm(total=total, initial=initial, disable=disable, unit="step", dynamic_ncols=True)


def pretrain(cfg: ml_collections.ConfigDict, workdir: str) -> RunSummary:
    """Trains (or resumes training) the model of `cfg`, writing everything under `workdir`."""
    init_dir = _adopt_init_checkpoint(cfg)
    _cover_dataset_vocab(cfg, from_checkpoint=bool(init_dir))
    setup = train_setup(cfg)
    model_cfg, mesh, rules, tx, shardings = setup.model_cfg, setup.mesh, setup.rules, setup.tx, setup.shardings
    if jax.process_index() == 0:
        write_config_json(cfg, workdir)
        _copy_dataset_tokenizer(cfg, workdir)
    train_cfg = cfg.train
    ckpt_dir = os.path.join(workdir, "checkpoints")
    checkpoints = RunCheckpoints(ckpt_dir, keep=cfg.checkpoint.keep, every_steps=cfg.checkpoint.every_steps,
                                 async_save=cfg.checkpoint.async_save)
    source_args = dict(vocab_size=model_cfg.vocab_size, seq_len=train_cfg.seq_len,
                       global_batch_size=train_cfg.batch_size, seed=cfg.seed)
    train_source = build_batch_source(cfg.data, "train", **source_args)

    latest = checkpoints.latest_step()
    if latest is not None:
        _check_resumable(checkpoints.read_meta(latest), model_cfg, ckpt_dir)
        state, data_state = checkpoints.restore(latest, abstract_train_state(model_cfg, tx, shardings))
        train_source.set_state(data_state["train"])
        logging.info("resumed from %s at step %d", ckpt_dir, latest)
    elif init_dir:
        state = _state_from_checkpoint(init_dir, model_cfg, tx, mesh, rules, shardings)
        logging.info("initialised from %s (continued pretraining)", init_dir)
    else:
        state = create_train_state(model_cfg, tx, jax.random.key(cfg.seed), shardings)
    start = int(state.step)
    metrics_log = MetricsLogger(workdir, resume_step=start, tensorboard=cfg.logging.tensorboard)
    if start >= train_cfg.steps:
        logging.info("already trained to step %d (train.steps=%d): nothing to do", start, train_cfg.steps)
        checkpoints.close()
        metrics_log.close()
        _close(train_source)
        return RunSummary(step=start, last_loss=None)

    train_step = setup.train_step
    eval_step = make_eval_step(setup.graphdef, mesh, rules, shardings.params)
    flops_per_token = model_info(model_cfg, train_cfg.seq_len)["flops_per_token"]
    peak = peak_flops_per_device()
    meta = {"model": model_cfg.to_dict(), "preset": cfg.get("preset")}

    def validation_loss(params) -> float | None:
        if train_cfg.eval_batches == 0:
            return None
        source = build_batch_source(cfg.data, "validation", **source_args)
        loss_sum = n_tokens = 0.0
        for _ in range(train_cfg.eval_batches):
            batch_loss, batch_tokens = eval_step(params, shd.global_batch_from_local(next(source), mesh))
            loss_sum += float(batch_loss)
            n_tokens += float(batch_tokens)
        _close(source)
        return loss_sum / max(n_tokens, 1.0)

    # Metrics averaged over the steps since the last log line; `paused` is time spent saving and
    # evaluating, kept out of step time and throughput.
    window = {"loss": 0.0, "grad_norm": 0.0, "tokens": 0.0, "steps": 0, "start": None, "paused": 0.0}
    summary = RunSummary(step=start, last_loss=None)
    bar = _progress_bar(cfg.logging.progress_bar, train_cfg.steps, start)

    def consume(step: int, metrics: dict) -> None:
        """Reads one step's metrics (blocking on it), checks them and logs every log_every steps."""
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not (math.isfinite(values["loss"]) and math.isfinite(values["grad_norm"])):
            checkpoints.wait()
            raise NonFiniteLossError(
                f"non-finite loss ({values['loss']}) or grad norm ({values['grad_norm']}) at step {step}; "
                f"stopping. The last good checkpoint is step {checkpoints.latest_step()} in {ckpt_dir}; "
                "lower optim.learning_rate or raise optim.warmup_steps before resuming")
        summary.step, summary.last_loss = step, values["loss"]
        bar.update(1)
        bar.set_postfix(loss=f"{values['loss']:.4f}")
        for key in ("loss", "grad_norm", "tokens"):
            window[key] += values[key]
        window["steps"] += 1
        if step == start + 1 or step % train_cfg.log_every == 0 or step == train_cfg.steps:
            now = time.perf_counter()
            elapsed = now - window["start"] - window["paused"]
            tokens_per_sec = train_cfg.batch_size * train_cfg.seq_len * window["steps"] / elapsed
            metrics_log.write(step, {
                "loss": window["loss"] / window["steps"],
                "lr": values["lr"],
                "grad_norm": window["grad_norm"] / window["steps"],
                "tokens_per_sec": tokens_per_sec,
                "step_time_s": elapsed / window["steps"],
                "mfu": mfu(flops_per_token, tokens_per_sec, jax.device_count(), peak),
            })
            window.update(loss=0.0, grad_norm=0.0, tokens=0.0, steps=0, start=now, paused=0.0)

    pending: tuple[int, dict] | None = None
    with StopSignals() as stop, contextlib.closing(bar):
        try:
            for step in range(start + 1, train_cfg.steps + 1):
                batch = shd.global_batch_from_local(next(train_source), mesh)
                t0 = time.perf_counter()
                state, metrics = train_step(state, batch)
                if window["start"] is None:  # the first call compiles: keep it out of throughput
                    metrics_log.write(step, {"compile_time_s": time.perf_counter() - t0})
                    window["start"] = time.perf_counter()
                if pending is not None:
                    consume(*pending)
                pending = (step, metrics)
                stopping = stop.requested()
                due_eval = step % train_cfg.eval_every == 0 or step == train_cfg.steps
                due_save = step % cfg.checkpoint.every_steps == 0 or step == train_cfg.steps
                if stopping or due_eval or due_save:
                    consume(*pending)  # never save or evaluate a state whose loss was not checked
                    pending = None
                    pause_start = time.perf_counter()
                    checkpoints.save(step, state, {"train": train_source.get_state()}, meta,
                                     force=stopping or step == train_cfg.steps)
                    if due_eval and not stopping:
                        summary.val_loss = validation_loss(state.params)
                        if summary.val_loss is not None:
                            metrics_log.write(step, {"val_loss": summary.val_loss,
                                                     "val_ppl": math.exp(min(summary.val_loss, 50.0))})
                    window["paused"] += time.perf_counter() - pause_start
                if stopping:
                    summary.interrupted_by = signal.Signals(stop.received or signal.SIGTERM).name
                    logging.warning("%s received: saved step %d to %s; rerun the same command to resume",
                                    summary.interrupted_by, step, ckpt_dir)
                    break
            if pending is not None:
                consume(*pending)
        finally:
            checkpoints.close()
            metrics_log.close()
            _close(train_source)
    return summary


def _adopt_init_checkpoint(cfg: ml_collections.ConfigDict) -> str:
    """With train.init_from, the model's architecture comes from that checkpoint (numerics from config).

    Returns the checkpoints directory to initialise from ('' when training from scratch).
    """
    init_from = cfg.train.get("init_from", "")
    if not init_from:
        return ""
    ckpt_dir = init_from if os.path.basename(os.path.normpath(init_from)) == "checkpoints" else \
        os.path.join(init_from, "checkpoints")
    if not os.path.isdir(ckpt_dir):
        raise FileNotFoundError(f"train.init_from={init_from!r}: no checkpoints folder at {ckpt_dir} "
                                "(give a run directory, e.g. one written by experiments.convert)")
    checkpoints = RunCheckpoints(ckpt_dir)
    try:
        step = checkpoints.latest_step()
        if step is None:
            raise FileNotFoundError(f"train.init_from: no finished checkpoint in {ckpt_dir}")
        saved = checkpoints.read_meta(step)["model"]
    finally:
        checkpoints.close()
    for key, value in saved.items():
        if key not in RUNTIME_ONLY_FIELDS + ("scan_layers",) and cfg.model[key] != value:
            logging.info("model.%s = %r from %s (config had %r)", key, value, ckpt_dir, cfg.model[key])
            cfg.model[key] = value
    return ckpt_dir


def _state_from_checkpoint(ckpt_dir: str, model_cfg: ModelConfig, tx, mesh, rules, shardings):
    """Step-0 train state around the params of ckpt_dir's latest checkpoint, in this run's layout."""
    saved_cfg, params, _ = load_params(ckpt_dir, mesh=mesh, rules=rules)
    if saved_cfg.scan_layers != model_cfg.scan_layers:
        params = stack_layers(params) if model_cfg.scan_layers else unstack_layers(params)
    params = jax.tree.map(lambda p, s: jax.device_put(p.astype(s.dtype), s.sharding), params,
                          abstract_train_state(model_cfg, tx, shardings).params)
    return train_state_from_params(params, tx, shardings)


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
    if resolve_kind(cfg.data) == "tfds" and not os.path.exists(os.path.join(workdir, "tokenizer.json")):
        shutil.copy(open_token_dataset(cfg.data).tokenizer_path, os.path.join(workdir, "tokenizer.json"))


def _close(source) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()

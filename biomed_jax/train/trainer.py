"""The one trainer: pretraining and every fine-tuning run go through `Trainer.run`.

A task (biomed_jax/tasks) hands the trainer its batches and its loss; the trainer owns everything else:

- the jitted step (biomed_jax/train/steps.py): sharded in and out, the state donated, only the
  trainable part differentiated and given optimizer state, gradients accumulated over
  `microbatches` slices of each global batch;
- the learning-rate schedule (in the optimizer), logging (metrics.jsonl, TensorBoard, a progress bar,
  tokens/s, MFU on accelerators);
- evaluation every `eval_every` steps, at every epoch end and at the end, and best-by-dev selection
  (the task names the metric; a new best is handed to `on_best`, which writes best/);
- asynchronous orbax checkpoints every `checkpoint.every_steps` steps and at the end, holding the train
  state, the data position and the evaluations so far, so a rerun resumes exactly where the last
  checkpoint left off, in the middle of an epoch too;
- SIGTERM / SIGINT: finish the current step, save, exit (rerunning the same command resumes);
- a non-finite loss or gradient norm stops the run naming the step; a state is checkpointed only after
  its loss was checked, so the last checkpoint is always a good one.

Host and device overlap: step s+1 is dispatched before the host reads step s's metrics. With several
processes (jax.distributed, see `connect`) every process runs this same loop; each reads only its rows
of every global batch, and only process 0 writes logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from tqdm import tqdm

from biomed_jax import distributed
from biomed_jax import sharding as shd
from biomed_jax.train.checkpoint import RunCheckpoints
from biomed_jax.train.metrics import MetricsLogger, mfu, peak_flops_per_device
from biomed_jax.train.state import TrainState, opt_state_shardings
from biomed_jax.train.steps import make_eval_step, make_train_step

# Model config fields that change only how the model runs, not its parameters: free to change on resume.
RUNTIME_ONLY_FIELDS = ("dtype", "kernels", "attention", "splash_block", "remat")


def connect(distributed_cfg: Mapping[str, Any] | None) -> None:
    """Joins the other processes of a multi-host run (biomed_jax/distributed.py); call first thing,
    before anything touches a JAX backend."""
    distributed.initialize(distributed_cfg)


class NonFiniteLossError(FloatingPointError):
    pass


class BatchSource(Protocol):
    """This process's rows of each global batch, with a JSON-serialisable position to resume from."""

    def __next__(self) -> dict[str, np.ndarray]: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...


class Task(Protocol):
    """What the trainer trains (biomed_jax/tasks/*): see biomed_jax/train/steps.py for loss and weight."""

    steps_per_epoch: int | None      # None: a stream without epochs (pretraining)
    tokens_per_example: int          # positions the model reads per example (throughput, MFU)
    selection: tuple[str, str] | None   # (metric, "max" | "min") picking the best evaluation, or None

    def loss(self, model, batch) -> tuple[jax.Array, dict[str, jax.Array]]: ...
    def weight(self, batch) -> jax.Array: ...
    def train_source(self, seed: int) -> BatchSource: ...
    def evaluate(self, evaluator: "Evaluator") -> dict[str, float]: ...


@dataclasses.dataclass
class ModelParts:
    """The model split for training: `graphdef` + trainable `params` + `rngs` + `frozen`.

    `abstract_params` are the trainable params as ShapeDtypeStructs carrying their shardings; `init()`
    makes the real ones (sharded as those) and is called only when there is no checkpoint to resume, so
    a resumed run never holds two copies. `rngs` and `frozen` (nnx States) are already placed; both are
    empty for pretraining. `plain_params(params, rngs, frozen)` gives the decoder's parameters with any
    adapters merged, what best/ saves and what log-likelihood evaluation scores."""

    graphdef: Any
    abstract_params: Any
    init: Callable[[], Any]
    rngs: Any = dataclasses.field(default_factory=dict)
    frozen: Any = dataclasses.field(default_factory=dict)
    plain_params: Callable[[Any, Any, Any], Any] | None = None


@dataclasses.dataclass
class RunSummary:
    step: int
    last_loss: float | None = None
    interrupted_by: str | None = None
    evaluations: list = dataclasses.field(default_factory=list)
    best: dict | None = None


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


def progress_bar(mode: str, total: int, initial: int, desc: str = "train"):
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"logging.progress_bar must be auto, on or off, got {mode!r}")
    disable = mode == "off" or (mode == "auto" and not sys.stderr.isatty()) or jax.process_index() != 0
    return tqdm(total=total, initial=initial, disable=disable, unit="step", dynamic_ncols=True, desc=desc)


def check_resumable(saved_meta: Mapping[str, Any], model_cfg: Mapping[str, Any], ckpt_dir: str) -> None:
    """Refuses to resume a checkpoint written for another model (runtime-only fields may change)."""
    saved = saved_meta.get("model", {})
    diffs = [f"model.{k}: checkpoint {saved.get(k)!r} vs config {model_cfg[k]!r}"
             for k in model_cfg if k not in RUNTIME_ONLY_FIELDS and saved.get(k) != model_cfg[k]]
    if diffs:
        raise ValueError(
            f"the checkpoint in {ckpt_dir} was written for a different model ({'; '.join(diffs)}); "
            "use a new --workdir, or set the config back to match")


class Evaluator:
    """What a task's `evaluate` may use: the mesh, the current parameters (trainable, merged into plain
    decoder params on request) and a jitted pass of the task's own loss over batches."""

    def __init__(self, trainer: "Trainer", state: TrainState):
        self._trainer, self._state = trainer, state
        self.mesh = trainer.mesh
        self.params = state.params       # the trainable part (adapters and head for LoRA methods)

    def sums(self, local_batches: Iterator[Mapping[str, np.ndarray]]) -> dict[str, float]:
        """The task's loss_sum, weight and metric sums over batches (each this process's rows of a global
        batch; padding rows carry weight 0), summed on the host in float64."""
        totals: dict[str, float] = {}
        for batch in local_batches:
            out = self._trainer.eval_step(self._state.params, self._state.rngs, self._trainer.model.frozen,
                                          shd.global_batch_from_local(batch, self.mesh))
            for name, value in jax.device_get(out).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        return totals

    def plain_params(self) -> Any:
        """The decoder's parameters with adapters merged (what best/ holds)."""
        model = self._trainer.model
        if model.plain_params is None:
            return self._state.params
        return model.plain_params(self._state.params, self._state.rngs, model.frozen)


class Trainer:
    """Trains `task` on `model`; see the module docstring. `train` is the config's train section
    (steps, batch_size, microbatches, log_every, eval_every), `checkpoint` and `logging` its sections;
    `meta` is saved with every checkpoint (meta["model"] guards resumption); `on_best(evaluator, record)`
    is called with each evaluation that beats the previous best by the task's selection metric."""

    def __init__(self, workdir: str, *, task: Task, model: ModelParts, tx: optax.GradientTransformation,
                 schedule: optax.Schedule, mesh: Mesh, rules: Mapping[str, Any], train: Mapping[str, Any],
                 checkpoint: Mapping[str, Any], logging_cfg: Mapping[str, Any], meta: Mapping[str, Any],
                 seed: int, flops_per_token: float | None = None,
                 on_best: Callable[[Evaluator, dict], None] | None = None):
        self.workdir, self.task, self.model, self.tx, self.schedule = workdir, task, model, tx, schedule
        self.mesh, self.rules, self.meta, self.seed, self.on_best = mesh, rules, dict(meta), seed, on_best
        self.steps, self.batch_size = int(train["steps"]), int(train["batch_size"])
        self.microbatches, self.log_every = int(train.get("microbatches", 1)), int(train["log_every"])
        self.eval_every = int(train.get("eval_every", 0))
        self.checkpoint_cfg, self.logging_cfg = checkpoint, logging_cfg
        self.flops_per_token = flops_per_token
        p_shardings = jax.tree.map(lambda x: x.sharding, model.abstract_params)
        self.shardings = TrainState(step=shd.replicated(mesh), params=p_shardings,
                                    opt_state=opt_state_shardings(tx, model.abstract_params, p_shardings, mesh),
                                    rngs=jax.tree.map(lambda x: x.sharding, model.rngs))
        frozen_shardings = jax.tree.map(lambda x: x.sharding, model.frozen)
        self.train_step = make_train_step(model.graphdef, task.loss, task.weight, tx, schedule, mesh, rules,
                                          self.shardings, frozen_shardings, self.microbatches)
        self.eval_step = make_eval_step(model.graphdef, task.loss, task.weight, mesh, rules, p_shardings,
                                        self.shardings.rngs, frozen_shardings)

    # --- state ---------------------------------------------------------------------------------------

    def abstract_state(self) -> TrainState:
        """The train state as ShapeDtypeStructs with shardings (restore target, compile check)."""
        params = self.model.abstract_params
        shapes = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=params,
                            opt_state=jax.eval_shape(self.tx.init, params), rngs=self.model.rngs)
        return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes,
                            self.shardings)

    def initial_state(self) -> TrainState:
        """A step-0 state: `model.init()`'s params and fresh optimizer state, sharded."""
        def init(params):
            return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params),
                              rngs=self.model.rngs)

        return jax.jit(init, out_shardings=self.shardings)(self.model.init())

    # --- the run -------------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Trains to `steps` from the latest checkpoint (or from `model.init()`), then returns the summary.
        From the start a SIGTERM / SIGINT is held until the next step boundary: the state is saved there."""
        checkpoints = RunCheckpoints(f"{self.workdir}/checkpoints", keep=self.checkpoint_cfg["keep"],
                                     every_steps=self.checkpoint_cfg["every_steps"],
                                     async_save=self.checkpoint_cfg["async_save"])
        with StopSignals() as stop, contextlib.ExitStack() as cleanup:
            cleanup.callback(checkpoints.close)
            source = self.task.train_source(self.seed)
            if hasattr(source, "close"):
                cleanup.callback(source.close)
            state, summary = self._restore(checkpoints, source)
            metrics_log = MetricsLogger(self.workdir, resume_step=summary.step,
                                        tensorboard=self.logging_cfg.get("tensorboard", False))
            cleanup.callback(metrics_log.close)
            if summary.step >= self.steps:
                logging.info("already trained to step %d (of %d): nothing to do", summary.step, self.steps)
                return summary
            return self._loop(state, source, checkpoints, metrics_log, summary, stop)

    def _restore(self, checkpoints: RunCheckpoints, source: BatchSource) -> tuple[TrainState, RunSummary]:
        """The latest checkpoint's state, data position and evaluations; a fresh state where there is none."""
        summary = RunSummary(step=0)
        latest = checkpoints.latest_step()
        if latest is None:
            return self.initial_state(), summary
        check_resumable(checkpoints.read_meta(latest), self.meta.get("model", {}), checkpoints.directory)
        state, data_state = checkpoints.restore(latest, self.abstract_state())
        source.set_state(data_state["train"])
        summary.step = latest
        summary.evaluations = list(data_state.get("evaluations", []))
        summary.best = self._best_of(summary.evaluations)
        logging.info("resumed from %s at step %d", checkpoints.directory, latest)
        return state, summary

    def _best_of(self, evaluations: list[dict]) -> dict | None:
        if not self.task.selection:
            return None
        metric, mode = self.task.selection
        scored = [e for e in evaluations if e.get(metric) is not None]
        pick = max if mode == "max" else min
        return pick(scored, key=lambda e: e[metric], default=None)  # the first of equals wins

    def _is_better(self, record: dict, best: dict | None) -> bool:
        metric, mode = self.task.selection
        if record.get(metric) is None:
            return False
        if best is None:
            return True
        return record[metric] > best[metric] if mode == "max" else record[metric] < best[metric]

    def _evaluate(self, state: TrainState, step: int, summary: RunSummary, metrics_log: MetricsLogger) -> None:
        evaluator = Evaluator(self, state)
        record = {"step": step, **self._epoch_fields(step), **self.task.evaluate(evaluator)}
        summary.evaluations.append(record)
        metrics_log.write(step, {k: v for k, v in record.items() if k != "step"})
        logging.info("evaluation at step %d: %s", step, record)
        if self.task.selection and self._is_better(record, summary.best):
            summary.best = record
            if self.on_best is not None:
                self.on_best(evaluator, record)

    def _epoch_fields(self, step: int) -> dict:
        per_epoch = self.task.steps_per_epoch
        return {"epoch": round(step / per_epoch, 4)} if per_epoch else {}

    def _loop(self, state, source, checkpoints, metrics_log, summary, stop: StopSignals) -> RunSummary:
        start, steps, per_epoch = summary.step, self.steps, self.task.steps_per_epoch
        peak = peak_flops_per_device()
        tokens_per_step = self.batch_size * self.task.tokens_per_example
        # Metrics averaged over the steps since the last log line; `paused` is time spent saving and
        # evaluating, kept out of step time and throughput.
        window = {"sums": {}, "steps": 0, "start": None, "paused": 0.0}
        bar = progress_bar(self.logging_cfg.get("progress_bar", "auto"), steps, start)

        def consume(step: int, metrics: dict) -> None:
            """Reads one step's metrics (blocking on it), checks them and logs every log_every steps."""
            values = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not (math.isfinite(values["loss"]) and math.isfinite(values["grad_norm"])):
                checkpoints.wait()
                raise NonFiniteLossError(
                    f"non-finite loss ({values['loss']}) or grad norm ({values['grad_norm']}) at step {step}; "
                    f"stopping. The last good checkpoint is step {checkpoints.latest_step()} in "
                    f"{checkpoints.directory}; lower optim.learning_rate or raise optim.warmup_steps before resuming")
            summary.step, summary.last_loss = step, values["loss"]
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.4f}")
            for key, value in values.items():
                window["sums"][key] = window["sums"].get(key, 0.0) + value
            window["steps"] += 1
            if step == start + 1 or step % self.log_every == 0 or step == steps:
                now = time.perf_counter()
                n = window["steps"]
                elapsed = now - window["start"] - window["paused"]
                tokens_per_sec = tokens_per_step * n / elapsed
                means = {k: v / n for k, v in window["sums"].items() if k not in ("lr", "weight")}
                metrics_log.write(step, {
                    **means, "lr": values["lr"], "tokens_per_sec": tokens_per_sec, "step_time_s": elapsed / n,
                    "mfu": mfu(self.flops_per_token, tokens_per_sec, jax.device_count(), peak)
                    if self.flops_per_token else None,
                    **self._epoch_fields(step)})
                window.update(sums={}, steps=0, start=now, paused=0.0)

        pending: tuple[int, dict] | None = None
        with contextlib.closing(bar):
            for step in range(start + 1, steps + 1):
                batch = shd.global_batch_from_local(next(source), self.mesh)
                t0 = time.perf_counter()
                state, metrics = self.train_step(state, self.model.frozen, batch)
                if window["start"] is None:  # the first call compiles: keep it out of throughput
                    metrics_log.write(step, {"compile_time_s": time.perf_counter() - t0})
                    window["start"] = time.perf_counter()
                if pending is not None:
                    consume(*pending)
                pending = (step, metrics)
                stopping = stop.requested()
                epoch_end = bool(per_epoch) and step % per_epoch == 0
                due_eval = (self.eval_every and step % self.eval_every == 0) or epoch_end or step == steps
                due_save = step % self.checkpoint_cfg["every_steps"] == 0 or step == steps
                if stopping or due_eval or due_save:
                    consume(*pending)  # never save or evaluate a state whose loss was not checked
                    pending = None
                    pause_start = time.perf_counter()
                    if due_eval and not stopping:
                        self._evaluate(state, step, summary, metrics_log)
                    checkpoints.save(step, state, {"train": source.get_state(), "evaluations": summary.evaluations},
                                     self.meta, force=stopping or step == steps)
                    window["paused"] += time.perf_counter() - pause_start
                if stopping:
                    summary.interrupted_by = signal.Signals(stop.received or signal.SIGTERM).name
                    logging.warning("%s received: saved step %d to %s; rerun the same command to resume",
                                    summary.interrupted_by, step, checkpoints.directory)
                    break
            if pending is not None:
                consume(*pending)
        return summary

"""Fine-tuning runs: the multiple-choice and sequence classifiers, and instruction tuning (SFT), each by
full fine-tuning, LoRA or LoRA over an int8/nf4 frozen base.

    run(cfg, workdir, kind)   kind: mcq | seqcls | sft

A run starts from `init_checkpoint` (any biomed_jax run directory: pretrained here, converted from
Hugging Face, or fine-tuned) or, for the random-init baseline, from a fresh model of `model` preset. Each
epoch ends with dev (and test) accuracy; WORKDIR gets
  metrics.jsonl          train loss every log_every steps, dev/test metrics every epoch
  checkpoints/<step>/    the latest trainable state (resume after an interruption)
  best/                  the best epoch by dev accuracy as a plain checkpoint (adapters merged):
                         experiments.evaluate / generate / convert read it like any run directory
  adapter/               LoRA methods: only the adapters (and head) of the best epoch, with the base's path
  results.json           dev and test accuracy at the best epoch, chance level, trainable parameters
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from biomed_jax import optim
from biomed_jax import sharding as shd
from biomed_jax.adapt import data as adapt_data
from biomed_jax.adapt.heads import Classifier, class_scores, option_scores
from biomed_jax.adapt.lora import LoraSettings, apply_lora, check_method, merge_lora, trainable_filter
from biomed_jax.data.benchmarks import load_benchmark, sample_questions
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import abstract_model, init_params, unstack_layers
from biomed_jax.train.checkpoint import RunCheckpoints, load_params
from biomed_jax.train.metrics import MetricsLogger
from biomed_jax.train.run_config import write_config_json

KINDS = ("mcq", "seqcls", "sft")
HEADS = ("last_token", "option_loglik")
# Runs whose model is the decoder alone (scored through its LM head), not a Classifier.
LM_KINDS = ("sft", "mcq_loglik")
_TOKENIZER_FILE = "tokenizer.json"


# --- config and inputs --------------------------------------------------------------------------------


def validate(cfg: ml_collections.ConfigDict, kind: str, n_devices: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"fine-tuning kind must be one of {list(KINDS)}, got {kind!r}")
    check_method(cfg.method)
    if cfg.get("head", "last_token") not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}, got {cfg.head!r}")
    for field in ("epochs", "batch_size"):
        if int(cfg.train[field]) < 1:
            raise ValueError(f"train.{field} must be >= 1, got {cfg.train[field]}")
    if cfg.max_len < 8:
        raise ValueError(f"max_len must be >= 8, got {cfg.max_len}")
    batch_shards = n_devices // (shd.resolve_mesh_shape(cfg.mesh, n_devices)[2])  # data x fsdp
    for field in ("batch_size", "eval_batch_size"):
        size = cfg.train[field]
        if size % batch_shards:
            raise ValueError(f"train.{field}={size} must be divisible by the mesh's data x fsdp = {batch_shards}")


def _resolve(path: str, root: str) -> str:
    return path if not path or os.path.isabs(path) or not root else os.path.join(root, path)


def data_root(cfg: ml_collections.ConfigDict, workdir: str) -> str:
    """`data_root`, or for the synthetic presets the embedded world generated into WORKDIR/world."""
    if cfg.data_root:
        if not os.path.isdir(cfg.data_root):
            raise FileNotFoundError(f"data_root {cfg.data_root!r} does not exist")
        return cfg.data_root
    if not cfg.get("world"):
        raise ValueError("data_root is empty: pass --config.data_root=FOLDER holding the benchmark files")
    from biomed_jax.data.synthetic_world import generate_world

    root = os.path.join(workdir, "world")
    generate_world(root, dict(cfg.world))
    return root


def load_split(task: Mapping[str, Any], root: str, split: str | None, seed: int):
    """The questions of one split; split None reads the whole file (tasks released as one set). `limit`
    keeps a seeded, label-stratified random sample (`sample_questions`), not the file's first questions."""
    path = _resolve(task["path"], root)
    questions, report = load_benchmark(task["kind"], path, split, **dict(task["options"]))
    if report.errors:
        logging.warning("%s split %s: %s", task["kind"], split, report.errors)
    if not questions:
        raise ValueError(f"task {task['kind']} split {split!r} at {path} is empty (skipped: {report.skipped}); "
                         "check task.path and the task's *_split fields")
    return sample_questions(questions, task["limit"], seed)


def _carve(questions: list, fraction: float, seed: int, field: str) -> tuple[list, list]:
    """(rest, carved): a seeded random `fraction` held out, for tasks released without that split."""
    if not 0 < fraction < 1:
        raise ValueError(f"task.{field} must be in (0, 1) to carve a split from train, got {fraction}")
    order = np.random.default_rng([seed, len(questions)]).permutation(len(questions))
    held = {int(i) for i in order[:max(1, int(round(len(questions) * fraction)))]}
    return ([q for i, q in enumerate(questions) if i not in held], [q for i, q in enumerate(questions) if i in held])


def task_splits(cfg: ml_collections.ConfigDict, root: str) -> dict[str, list]:
    """train/dev/test questions; a missing dev (or test) split is carved from train by dev_fraction
    (test_fraction)."""
    task, seed = cfg.task, cfg.train.seed
    train = load_split(task, root, task.train_split or None, seed)
    test: list = []
    if task.test_split:
        test = load_split(task, root, task.test_split, seed)
    elif task.test_fraction:
        train, test = _carve(train, task.test_fraction, seed + 1, "test_fraction")
    if task.dev_split:
        dev = load_split(task, root, task.dev_split, seed)
    else:
        train, dev = _carve(train, task.dev_fraction, seed, "dev_fraction")
    return {"train": train, "dev": dev, "test": test}


def encode_task(cfg, kind: str, tokenizer, eos_id: int, splits: dict[str, list], root: str) -> dict:
    """{split: arrays} plus 'reports' and 'chance' (the accuracy of guessing)."""
    task, max_len = cfg.task, cfg.max_len
    out: dict[str, Any] = {"reports": {}}
    if kind in ("mcq", "mcq_loglik"):
        width = max(len(q.options) for qs in splits.values() for q in qs)
        for name, qs in splits.items():
            if qs and kind == "mcq":
                out[name], out["reports"][name] = adapt_data.encode_choices(
                    qs, tokenizer, task.template, max_len, width, what=f"{task.kind} {name}")
            elif qs:
                out[name], out["reports"][name] = adapt_data.encode_option_continuations(
                    qs, tokenizer, task.template, max_len, width, what=f"{task.kind} {name}")
        out["n_outputs"] = 1
    elif kind == "seqcls":
        classes = list(task.classes)
        for name, qs in splits.items():
            if qs:
                out[name], out["reports"][name] = adapt_data.encode_classes(
                    qs, tokenizer, task.template, max_len, classes, what=f"{task.kind} {name}")
        out["n_outputs"] = len(classes)
    else:
        examples = []
        for path in [p.strip() for p in str(cfg.sft.instructions).split(",") if p.strip()]:
            records, report = adapt_data.load_instructions(_resolve(path, root), limit=cfg.sft.limit)
            out["reports"][f"instructions:{path}"] = report
            examples += records
        if cfg.sft.benchmark_train:
            examples += adapt_data.questions_as_instructions(splits["train"], cfg.sft.instruction,
                                                             cfg.sft.answer_template, cfg.sft.input_template)
        encoded, report = adapt_data.encode_instructions(examples, tokenizer, cfg.sft.style, max_len, eos_id)
        out["reports"]["train"] = report
        out["train"] = adapt_data.sft_rows(encoded, max_len, cfg.sft.pack)
        for name in ("dev", "test"):
            if splits[name]:
                out[name], out["reports"][name] = adapt_data.encode_answer_choices(
                    splits[name], tokenizer, cfg.sft.style, max_len, cfg.sft.instruction, cfg.sft.answer_template,
                    cfg.sft.input_template)
    out["reports"] = {name: report.to_dict() for name, report in out["reports"].items()}
    if kind == "seqcls":
        out["chance"] = 1.0 / out["n_outputs"]
    else:
        dev_q = splits["dev"]
        out["chance"] = float(np.mean([1.0 / len(q.options) for q in dev_q]))
    return out


# --- model --------------------------------------------------------------------------------------------


def load_base(cfg, mesh, rules) -> tuple[ModelConfig, dict, Any, str]:
    """(model config, params, tokenizer, description) from init_checkpoint, or a random init of `model`."""
    from biomed_jax.inference.text import find_tokenizer, load_tokenizer

    if cfg.init_checkpoint:
        ckpt_dir = os.path.join(cfg.init_checkpoint, "checkpoints")
        if not os.path.isdir(ckpt_dir):
            raise FileNotFoundError(f"init_checkpoint={cfg.init_checkpoint!r} has no checkpoints/ folder; give a "
                                    "run directory of experiments.pretrain, convert or a fine-tuning best/")
        model_cfg, params, step = load_params(ckpt_dir, mesh=mesh, rules=rules)
        tokenizer_path = find_tokenizer(cfg.init_checkpoint, cfg.tokenizer or None)
        described = f"{cfg.init_checkpoint} (step {step})"
    else:
        if not cfg.tokenizer:
            raise ValueError("init_checkpoint is empty (random init), so set tokenizer=PATH/tokenizer.json, e.g. "
                             "the tokenizer.json of a dataset made by experiments.prepare_data")
        from configs.models import model_preset

        tokenizer_path = cfg.tokenizer
        values = model_preset(cfg.model)
        vocab = load_tokenizer(tokenizer_path).get_vocab_size()
        values["vocab_size"] = max(values["vocab_size"], vocab)
        model_cfg = ModelConfig.from_dict(values)
        shardings = shd.param_shardings(nnx.state(abstract_model(model_cfg)), mesh, rules)
        params = jax.jit(init_params, static_argnums=0, out_shardings=shardings)(
            model_cfg, jax.random.key(cfg.train.seed))
        described = f"random init of {cfg.model} (seed {cfg.train.seed})"
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.get_vocab_size() > model_cfg.vocab_size:
        raise ValueError(f"tokenizer {tokenizer_path} has {tokenizer.get_vocab_size()} tokens, more than the "
                         f"model's vocab_size {model_cfg.vocab_size}")
    if cfg.remat:
        model_cfg = model_cfg.replace(remat=cfg.remat)
    if cfg.method != "full":
        model_cfg, params = unscanned(model_cfg, params)
    return model_cfg, params, (tokenizer, tokenizer_path), described


def unscanned(model_cfg: ModelConfig, params: dict) -> tuple[ModelConfig, dict]:
    """The per-layer layout LoRA needs (qwix adds adapters to each real block)."""
    if not model_cfg.scan_layers:
        return model_cfg, params
    return model_cfg.replace(scan_layers=False), unstack_layers(params)


def checkpoint_tree(kind: str, params: dict) -> dict:
    """What best/ and merged adapters save: the decoder under 'params' (what load_params reads), a
    classifier's head beside it."""
    return {"params": params} if kind in LM_KINDS else {"params": params["decoder"], "head": params["head"]}


def build_model(kind: str, model_cfg: ModelConfig, params: dict, n_outputs: int, seed: int) -> nnx.Module:
    graphdef, _ = nnx.split(abstract_model(model_cfg))
    decoder = nnx.merge(graphdef, params)
    if kind in LM_KINDS:
        return decoder
    return Classifier(decoder, n_outputs, rngs=nnx.Rngs(seed))


def example_inputs(kind: str, arrays: Mapping[str, np.ndarray]) -> tuple:
    if kind in LM_KINDS:
        return (jnp.asarray(arrays["inputs"].reshape(-1, arrays["inputs"].shape[-1])[:1]),)
    return (jnp.asarray(arrays["tokens"][:1]), jnp.asarray(arrays["lengths"][:1]))


def on_mesh(tree: Any, mesh) -> Any:
    """Arrays not yet placed on `mesh` (a fresh head, eager-quantized weights) replicated onto it."""
    replicated = shd.replicated(mesh)

    def place(x):
        sharding = getattr(x, "sharding", None)
        if isinstance(sharding, jax.sharding.NamedSharding) and sharding.mesh == mesh:
            return x
        return jax.device_put(x, replicated)

    return jax.tree.map(place, tree)


# --- steps ---------------------------------------------------------------------------------------------


def batch_loss(kind: str, model: nnx.Module, batch: Mapping[str, jax.Array]):
    """(weighted loss sum, weight sum, correct count) of one batch; eval padding rows have weight 0."""
    weight = batch["weight"].astype(jnp.float32)
    if "loss_mask" in batch:   # SFT rows: token cross-entropy on responses
        logits = model(batch["inputs"], batch["positions"], batch["segment_ids"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        w = batch["loss_mask"].astype(jnp.float32) * weight[:, None]
        return jnp.sum(losses * w), jnp.sum(w), jnp.zeros((), jnp.float32)
    if "response_mask" in batch:   # each option's log-likelihood as the continuation of its prompt
        shape = batch["inputs"].shape
        # Through __call__, the method qwix rewrites (hidden_states alone would skip the adapters).
        logits = model(batch["inputs"].reshape(-1, shape[-1]))
        token_logprobs = -optax.softmax_cross_entropy_with_integer_labels(
            logits, batch["targets"].reshape(-1, shape[-1]))
        scores = jnp.sum(token_logprobs.reshape(shape) * batch["response_mask"], axis=-1)
        scores = jnp.where(batch["option_mask"], scores, jnp.finfo(jnp.float32).min)
    elif kind == "mcq":
        scores = option_scores(model, batch["tokens"], batch["lengths"], batch["option_mask"])
    else:
        scores = class_scores(model, batch["tokens"], batch["lengths"])
    losses = optax.softmax_cross_entropy_with_integer_labels(scores, batch["labels"])
    correct = (jnp.argmax(scores, axis=-1) == batch["labels"]).astype(jnp.float32)
    return jnp.sum(losses * weight), jnp.sum(weight), jnp.sum(correct * weight)


def make_steps(kind: str, graphdef, tx, schedule, mesh, rules):
    """(train_step(params, opt_state, step, rng_state, frozen, batch), eval_step(params, rng_state,
    frozen, batch)). Only `params` (the trainable part) is differentiated and has optimizer state."""

    def train_step(params, opt_state, step, rng_state, frozen, batch):
        def loss_fn(params):
            model = nnx.merge(graphdef, params, rng_state, frozen)
            loss_sum, weight, correct = batch_loss(kind, model, batch)
            return loss_sum / jnp.maximum(weight, 1.0), (nnx.state(model, nnx.RngState), correct / weight)

        with shd.activation_sharding(mesh, rules):
            (loss, (rng_state, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "accuracy": accuracy, "grad_norm": optax.tree.norm(grads), "lr": schedule(step)}
        return params, opt_state, step + 1, rng_state, metrics

    def eval_step(params, rng_state, frozen, batch):
        with shd.activation_sharding(mesh, rules):
            return batch_loss(kind, nnx.merge(graphdef, params, rng_state, frozen), batch)

    return jax.jit(train_step, donate_argnums=(0, 1)), jax.jit(eval_step)


def _device_batch(batch: Mapping[str, np.ndarray], mesh) -> dict:
    return {k: jax.device_put(v, shd.batch_sharding(mesh, v.ndim)) for k, v in batch.items()}


def evaluate_split(eval_step, params, rng_state, frozen, arrays, batch_size: int, mesh) -> dict:
    loss_sum = weight = correct = 0.0
    for batch, real in adapt_data.eval_batches(arrays, batch_size):
        batch["weight"] = (np.arange(batch_size) < real).astype(np.float32)
        out = eval_step(params, rng_state, frozen, _device_batch(batch, mesh))
        loss_sum, weight, correct = (a + float(b) for a, b in zip((loss_sum, weight, correct), out))
    return {"loss": loss_sum / max(weight, 1.0), "accuracy": correct / max(weight, 1.0), "n": int(weight)}


# --- the run -------------------------------------------------------------------------------------------


def save_plain(directory: str, step: int, params: dict, meta: dict, tokenizer_path: str) -> None:
    """A run directory holding `params` (decoder under 'params', a head under 'head') and the tokenizer."""
    tmp = directory + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    checkpoints = RunCheckpoints(os.path.join(tmp, "checkpoints"), keep=1, async_save=False)
    try:
        checkpoints.save(step, params, data_state={}, meta=meta, force=True)
    finally:
        checkpoints.close()
    shutil.copyfile(tokenizer_path, os.path.join(tmp, _TOKENIZER_FILE))
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)  # the previous best stays until the new one is complete


def run(cfg: ml_collections.ConfigDict, workdir: str, kind: str) -> dict:
    """Fine-tunes per `cfg` into `workdir`; returns the results dict (also written to results.json)."""
    validate(cfg, kind, jax.device_count())
    if kind == "mcq" and cfg.get("head", "last_token") == "option_loglik":
        kind = "mcq_loglik"
    os.makedirs(workdir, exist_ok=True)
    write_config_json(cfg, workdir)
    mesh = shd.make_mesh(dict(cfg.mesh))
    rules = shd.rules_dict()
    root = data_root(cfg, workdir)

    model_cfg, params, (tokenizer, tokenizer_path), init_desc = load_base(cfg, mesh, rules)
    from biomed_jax.inference.text import special_id

    eos_id = special_id(tokenizer, (cfg.eos_token, "<|endoftext|>", "</s>"))
    if eos_id is None:
        raise ValueError(f"the tokenizer has no end-of-text token {cfg.eos_token!r}; set eos_token")
    splits = task_splits(cfg, root)
    data = encode_task(cfg, kind, tokenizer, eos_id, splits, root)
    logging.info("data: %s", json.dumps(data["reports"]))

    settings = LoraSettings.from_config(cfg.lora)
    plain = build_model(kind, model_cfg, params, data.get("n_outputs", 1), cfg.train.seed)
    model = apply_lora(plain, cfg.method, settings, example_inputs(kind, data["train"]), seed=cfg.train.seed)
    if settings.dropout and cfg.method != "full":
        model.set_attributes(qwix_rngs=nnx.Rngs(dropout=cfg.train.seed + 1))
    graphdef, trainable, rng_state, frozen = nnx.split(model, trainable_filter(cfg.method), nnx.RngState, ...)
    trainable = on_mesh(nnx.to_pure_dict(trainable), mesh)
    frozen, rng_state = on_mesh(frozen, mesh), on_mesh(rng_state, mesh)
    n_trainable = sum(x.size for x in jax.tree.leaves(trainable))
    n_total = sum(x.size for x in jax.tree.leaves(nnx.state(plain, nnx.Param)))

    batch_size, epochs = cfg.train.batch_size, cfg.train.epochs
    steps_per_epoch = adapt_data.n_examples(data["train"]) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"train split has {adapt_data.n_examples(data['train'])} rows, fewer than "
                         f"train.batch_size={batch_size}")
    total = steps_per_epoch * epochs
    optim_cfg = dict(cfg.optim)
    optim_cfg["warmup_steps"] = min(optim_cfg["warmup_steps"], total)
    tx, schedule = optim.from_config(optim_cfg, total)
    opt_state = on_mesh(jax.jit(tx.init)(trainable), mesh)
    step = jax.device_put(jnp.zeros((), jnp.int32), shd.replicated(mesh))
    train_step, eval_step = make_steps(kind, graphdef, tx, schedule, mesh, rules)

    meta = {"model": model_cfg.to_dict(), "kind": kind, "method": cfg.method, "lora": settings.to_dict(),
            "init": init_desc, "init_checkpoint": cfg.init_checkpoint, "task": cfg.task.kind,
            "n_outputs": data.get("n_outputs", 1)}
    latest = RunCheckpoints(os.path.join(workdir, "checkpoints"), keep=1, async_save=False)
    start_epoch, history = 0, []
    if latest.latest_step() is not None:
        restored, saved = latest.restore(latest.latest_step(), jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
            {"params": trainable, "opt_state": opt_state, "step": step, "rngs": nnx.to_pure_dict(rng_state)}))
        trainable, opt_state, step = restored["params"], restored["opt_state"], restored["step"]
        nnx.replace_by_pure_dict(rng_state, restored["rngs"])
        start_epoch, history = saved["epoch"], saved["history"]
        logging.info("resuming after epoch %d", start_epoch)

    metrics_log = MetricsLogger(workdir, resume_step=int(step), tensorboard=cfg.logging.tensorboard)
    best = max(history, key=lambda h: h["dev_accuracy"], default=None)
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.time()
            bar = tqdm(total=steps_per_epoch, desc=f"{kind} epoch {epoch + 1}/{epochs}", disable=None, leave=False)
            for i, batch in enumerate(adapt_data.train_batches(data["train"], batch_size, cfg.train.seed, epoch)):
                batch["weight"] = np.ones((batch_size,), np.float32)
                trainable, opt_state, step, rng_state, m = train_step(
                    trainable, opt_state, step, rng_state, frozen, _device_batch(batch, mesh))
                bar.update(1)
                if (i + 1) % cfg.train.log_every == 0 or i + 1 == steps_per_epoch:
                    metrics_log.write(int(step), {f"train_{k}": float(v) for k, v in m.items()})
            bar.close()
            record = {"epoch": epoch + 1, "step": int(step), "train_seconds": round(time.time() - t0, 2)}
            for name in ("dev", "test"):
                if name in data:
                    result = evaluate_split(eval_step, trainable, rng_state, frozen, data[name],
                                            cfg.train.eval_batch_size, mesh)
                    record.update({f"{name}_{k}": v for k, v in result.items()})
            metrics_log.write(int(step), {k: v for k, v in record.items() if k != "step"})
            history.append(record)
            logging.info("epoch %d: %s", epoch + 1, record)
            if best is None or record["dev_accuracy"] > best["dev_accuracy"]:
                best = record
                _save_best(workdir, kind, cfg.method, settings, nnx.merge(graphdef, trainable, rng_state, frozen),
                           trainable, int(step), dict(meta, best=record), tokenizer_path)
            latest.save(int(step), {"params": trainable, "opt_state": opt_state, "step": step,
                                    "rngs": nnx.to_pure_dict(rng_state)},
                        data_state={"epoch": epoch + 1, "history": history}, meta=meta, force=True)
    finally:
        latest.close()
        metrics_log.close()

    results = {
        "task": cfg.task.kind, "kind": kind, "method": cfg.method, "init": init_desc, "seed": cfg.train.seed,
        "best_epoch": best["epoch"], "dev_accuracy": best["dev_accuracy"],
        "test_accuracy": best.get("test_accuracy"), "chance": data["chance"],
        "n_train": adapt_data.n_examples(data["train"]),
        "n_dev": best.get("dev_n"), "n_test": best.get("test_n"),
        "trainable_params": int(n_trainable), "total_params": int(n_total), "epochs": history,
        "data": data["reports"],
    }
    tmp = os.path.join(workdir, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, os.path.join(workdir, "results.json"))
    return results


def _save_best(workdir: str, kind: str, method: str, settings: LoraSettings, model: nnx.Module, trainable: dict,
               step: int, meta: dict, tokenizer_path: str) -> None:
    """best/: merged plain params (a checkpoint any biomed_jax tool reads); adapter/: the trainable part."""
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param)) if method == "full" else merge_lora(model, settings)
    save_plain(os.path.join(workdir, "best"), step, checkpoint_tree(kind, params), meta, tokenizer_path)
    if method != "full":
        save_plain(os.path.join(workdir, "adapter"), step, {"adapter": trainable}, meta, tokenizer_path)

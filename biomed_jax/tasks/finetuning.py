"""Fine-tuning runs: the multiple-choice and sequence classifiers and instruction tuning, each by full
fine-tuning, LoRA or LoRA over an int8/nf4 frozen base, all trained by the one trainer.

    run(cfg, workdir, kind)     kind: mcq | seqcls | sft (experiments.finetune_<kind>)

A run starts from `init_checkpoint` (any run directory: pretrained here, converted from Hugging Face,
or fine-tuned) or, for the random-init baseline, from a fresh model of the `model` preset. WORKDIR gets
  config.json            the resolved config
  metrics.jsonl          train loss every log_every steps; dev (and test) metrics at every evaluation
  checkpoints/<step>/    the trainable state, the data position and the evaluations (exact resume)
  best/                  the best evaluation by dev accuracy as a plain run directory (adapters merged,
                         the SFT prompt template recorded): evaluate / generate / convert / serve read it
  adapter/               LoRA methods: only the adapters (and head) of the best evaluation
  results.json           dev and test accuracy at the best evaluation, chance level, parameter counts
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np
from flax import nnx

from biomed_jax.kinds import FinetuneKind, Method, choice
from biomed_jax import optim, run_dir
from biomed_jax import sharding as shd
from biomed_jax.adapt.heads import Classifier
from biomed_jax.adapt.lora import LoraSettings, apply_lora, check_method, merge_lora, rewritable, trainable_filter
from biomed_jax.data.benchmarks import load_benchmark, sample_questions
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import abstract_model, init_params, unstack_layers
from biomed_jax.models.info import model_info
from biomed_jax.tasks.classification import SequenceClassification
from biomed_jax.tasks.multiple_choice import MultipleChoiceClassifier, MultipleChoiceLoglik
from biomed_jax.tasks.base import with_weight
from biomed_jax.tasks.sft import InstructionTuning, load_instructions, template_record
from biomed_jax.train import trainer as trainer_lib
from biomed_jax.train.run_config import write_config_json
from biomed_jax.synthetic.generate import generate_world

HEADS = ("last_token", "option_loglik")


# --- config and inputs --------------------------------------------------------------------------------


def validate(cfg: ml_collections.ConfigDict, kind: str, n_devices: int) -> None:
    """Raises ValueError naming the field for a config that cannot run, before anything is loaded."""
    choice(FinetuneKind, kind, "fine-tuning kind")
    check_method(cfg.method)
    if cfg.get("head", "last_token") not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}, got {cfg.head!r}")
    for field in ("epochs", "batch_size", "eval_batch_size", "microbatches", "log_every"):
        if not isinstance(cfg.train[field], int) or cfg.train[field] < 1:
            raise ValueError(f"train.{field} must be a positive integer, got {cfg.train[field]!r}")
    if cfg.train.eval_every < 0:
        raise ValueError(f"train.eval_every must be >= 0 (0: at epoch ends only), got {cfg.train.eval_every}")
    if cfg.max_len < 8:
        raise ValueError(f"max_len must be >= 8, got {cfg.max_len}")
    batch_shards = n_devices // shd.resolve_mesh_shape(cfg.mesh, n_devices)[2]  # data x fsdp
    if cfg.train.batch_size % cfg.train.microbatches:
        raise ValueError(f"train.batch_size ({cfg.train.batch_size}) must be divisible by train.microbatches "
                         f"({cfg.train.microbatches})")
    micro = cfg.train.batch_size // cfg.train.microbatches
    if micro % batch_shards:
        raise ValueError(f"each microbatch (train.batch_size / train.microbatches = {micro}) must be divisible by "
                         f"the mesh's data x fsdp = {batch_shards}")
    if cfg.train.eval_batch_size % batch_shards:
        raise ValueError(f"train.eval_batch_size={cfg.train.eval_batch_size} must be divisible by the mesh's "
                         f"data x fsdp = {batch_shards}")


def check_context(max_len: int, model_cfg: ModelConfig, source: str) -> None:
    """max_len against the model's context: a learned-position model has no embedding past max_seq_len
    (refused); a RoPE model was trained up to it and may degrade beyond (warned)."""
    if max_len <= model_cfg.max_seq_len:
        return
    if model_cfg.positions == "learned":
        raise ValueError(f"max_len={max_len} exceeds model.max_seq_len={model_cfg.max_seq_len} of {source}, a "
                         f"learned-position model with no position past it; set --config.max_len="
                         f"{model_cfg.max_seq_len} or less")
    logging.warning("max_len=%d exceeds model.max_seq_len=%d of %s: RoPE extrapolates beyond the trained "
                    "length, usually worse", max_len, model_cfg.max_seq_len, source)


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
    root = os.path.join(workdir, "world")
    if jax.process_index() == 0:
        generate_world(root, dict(cfg.world))
    _barrier("world")
    return root


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


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


# --- model --------------------------------------------------------------------------------------------


def load_base(cfg, mesh, rules) -> tuple[ModelConfig, Any, str, str, int | None]:
    """(model config, params, tokenizer path, description, eos id) from init_checkpoint, or a random init
    of the `model` preset with the `tokenizer` given."""
    if cfg.init_checkpoint:
        base = run_dir.load_run(cfg.init_checkpoint, mesh=mesh, rules=rules, tokenizer=cfg.tokenizer or None)
        return base.model_cfg, base.params, base.tokenizer_path, f"{cfg.init_checkpoint} (step {base.step})", \
            base.eos_id
    if not cfg.tokenizer:
        raise ValueError("init_checkpoint is empty (random init), so set tokenizer=PATH/tokenizer.json, e.g. "
                         "the tokenizer.json of a dataset made by experiments.prepare_data")
    from configs.models import model_preset

    tokenizer = run_dir.load_tokenizer(cfg.tokenizer)
    values = model_preset(cfg.model)
    values["vocab_size"] = max(values["vocab_size"], tokenizer.get_vocab_size())
    model_cfg = ModelConfig.from_dict(values)
    shardings = shd.param_shardings(nnx.state(abstract_model(model_cfg)), mesh, rules)
    params = jax.jit(init_params, static_argnums=0, out_shardings=shardings)(model_cfg, jax.random.key(cfg.train.seed))
    _, eos = run_dir.special_tokens(os.path.dirname(cfg.tokenizer), tokenizer)
    return model_cfg, params, cfg.tokenizer, f"random init of {cfg.model} (seed {cfg.train.seed})", eos


def for_lora(model_cfg: ModelConfig, params: dict) -> tuple[ModelConfig, dict]:
    """The model config qwix rewrites (lora.rewritable) and params in its per-layer layout."""
    return rewritable(model_cfg), unstack_layers(params) if model_cfg.scan_layers else params


def build_model(lm_head: bool, model_cfg: ModelConfig, params: dict, n_outputs: int, seed: int) -> nnx.Module:
    """The decoder (scored through its LM head) or a Classifier around it."""
    graphdef, _ = nnx.split(abstract_model(model_cfg))
    decoder = nnx.merge(graphdef, params)
    return decoder if lm_head else Classifier(decoder, n_outputs, rngs=nnx.Rngs(seed))


def checkpoint_trees(lm_head: bool, params: dict) -> dict:
    """What best/ and merged adapters save: the decoder under 'params' (what run_dir.load_run reads), a
    classifier's head beside it under 'head'."""
    return {"params": params} if lm_head else {"params": params["decoder"], "head": params["head"]}


def placement(tree: Any, model_cfg: ModelConfig, mesh, rules, under: tuple = ()) -> Any:
    """Shardings for a split model's arrays, by one rule: an array at a decoder parameter's path (`under`
    that prefix, ("decoder",) in a Classifier) follows that parameter's logical sharding (sharding.py's
    rules) on every axis the two share, so a frozen base's int8/nf4 values and per-channel scales are
    split like the weights they replace; anything else (LoRA factors, a classifier head) is replicated."""
    shapes = nnx.to_pure_dict(nnx.state(abstract_model(model_cfg), nnx.Param))
    specs = shd.param_shardings(nnx.state(abstract_model(model_cfg)), mesh, rules)
    replicated = shd.replicated(mesh)

    def sharding_for(path, leaf):
        keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path if not isinstance(k, jax.tree_util.GetAttrKey)]
        if tuple(keys[:len(under)]) != under:
            return replicated
        shape, spec = shapes, specs
        for key in keys[len(under):]:
            if not isinstance(shape, Mapping) or key not in shape:
                break
            shape, spec = shape[key], spec[key]
        if isinstance(shape, Mapping) or len(shape.shape) != len(leaf.shape):
            return replicated
        axes = [axis if a == b else None for axis, a, b in zip(spec.spec + (None,) * len(leaf.shape),
                                                              shape.shape, leaf.shape)]
        return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*axes))

    return jax.tree_util.tree_map_with_path(sharding_for, tree)


def adapted_model(method: str, settings: LoraSettings, plain: nnx.Module, example_inputs: tuple, seed: int):
    """The model to train: `plain` itself for full fine-tuning, else with LoRA adapters (qwix)."""
    model = apply_lora(plain, method, settings, example_inputs, seed=seed)
    if settings.dropout and method != Method.FULL:
        model.set_attributes(qwix_rngs=nnx.Rngs(dropout=seed + 1))
    return model


def split_model(cfg, lm_head: bool, n_outputs: int, example_inputs: tuple, model_cfg: ModelConfig, mesh, rules,
                params: Any = None) -> dict:
    """The model to fine-tune, split for the trainer and placed on `mesh`: {graphdef, trainable (pure
    dict), rngs, frozen, n_trainable, n_total}. `params` None builds it abstractly (ShapeDtypeStructs
    carrying their shardings: the compile check), else around those decoder params."""
    settings = LoraSettings.from_config(cfg.lora)
    counted = []

    def build(decoder_params):
        plain = build_model(lm_head, model_cfg, decoder_params, n_outputs, cfg.train.seed)
        counted.append(sum(x.size for x in jax.tree.leaves(nnx.state(plain, nnx.Param))))
        return adapted_model(cfg.method, settings, plain, example_inputs, cfg.train.seed)

    if params is None:
        model = nnx.eval_shape(lambda: build(init_params(model_cfg, jax.random.key(0))))
    else:
        model = build(params)
    graphdef, trainable, rngs, frozen = nnx.split(model, trainable_filter(cfg.method), nnx.RngState, ...)
    trainable = nnx.to_pure_dict(trainable)
    under = () if lm_head else ("decoder",)
    parts = {"trainable": trainable, "rngs": rngs, "frozen": frozen}
    for name, tree in parts.items():
        shardings = placement(tree, model_cfg, mesh, rules, under)
        if params is None:
            parts[name] = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree,
                                       shardings)
        else:
            parts[name] = jax.tree.map(jax.device_put, tree, shardings)
    return dict(graphdef=graphdef, **parts, n_trainable=sum(x.size for x in jax.tree.leaves(trainable)),
                n_total=counted[0])


# --- the run -------------------------------------------------------------------------------------------


def build_task(cfg, kind: str, splits: dict, tokenizer, eos_id: int | None, plain_cfg: ModelConfig, root: str):
    """The task object of `kind` (tasks/*.py): its data encoded, its loss and its evaluation."""
    train = cfg.train
    name = cfg.task.kind
    if kind == FinetuneKind.MCQ and cfg.get("head", "last_token") == "option_loglik":
        return MultipleChoiceLoglik.build(splits, tokenizer, cfg.task.template, cfg.max_len, train.batch_size,
                                          train.eval_batch_size, plain_cfg=plain_cfg, task_name=name)
    if kind == FinetuneKind.MCQ:
        return MultipleChoiceClassifier.build(splits, tokenizer, cfg.task.template, cfg.max_len, train.batch_size,
                                              train.eval_batch_size, task_name=name)
    if kind == FinetuneKind.SEQCLS:
        return SequenceClassification.build(splits, tokenizer, cfg.task.template, cfg.max_len, list(cfg.task.classes),
                                            train.batch_size, train.eval_batch_size, task_name=name)
    if eos_id is None:
        raise ValueError("the tokenizer has no end-of-text token (<|endoftext|>, </s>, ...): instruction tuning "
                         "ends every response with one")
    instructions = []
    for path in [p.strip() for p in str(cfg.sft.instructions).split(",") if p.strip()]:
        records, report = load_instructions(_resolve(path, root), limit=cfg.sft.limit)
        instructions.append((path, records, report))
    return InstructionTuning.build(cfg.sft, splits, instructions, tokenizer, eos_id, cfg.max_len, train.batch_size,
                                   train.eval_batch_size, plain_cfg)


def run(cfg: ml_collections.ConfigDict, workdir: str, kind: str) -> dict:
    """Fine-tunes per `cfg` into `workdir`; returns the results (also written to results.json), or
    {"interrupted_by": signal name, "step"} when a signal stopped the run (rerun the same command to resume)."""
    trainer_lib.connect(cfg.distributed)
    validate(cfg, kind, jax.device_count())
    mesh = shd.make_mesh(dict(cfg.mesh))
    rules = shd.rules_dict()
    root = data_root(cfg, workdir)
    model_cfg, params, tokenizer_path, init_desc, eos_id = load_base(cfg, mesh, rules)
    check_context(cfg.max_len, model_cfg, cfg.init_checkpoint or f"the {cfg.model} preset")
    if cfg.remat:
        model_cfg = model_cfg.replace(remat=cfg.remat)
    base_cfg = model_cfg
    if cfg.method != Method.FULL:
        model_cfg, params = for_lora(model_cfg, params)
    # A LoRA model runs rewritten (lora.rewritable); its merged weights are a plain model with the base's kernels.
    saved_cfg = model_cfg.replace(kernels=base_cfg.kernels, attention=base_cfg.attention)
    if jax.process_index() == 0:
        write_config_json(cfg, workdir, model_cfg)
    tokenizer = run_dir.load_tokenizer(tokenizer_path)
    splits = task_splits(cfg, root)
    task = build_task(cfg, kind, splits, tokenizer, eos_id, model_cfg, root)
    logging.info("data: %s", task.reports)

    settings = LoraSettings.from_config(cfg.lora)
    parts = split_model(cfg, task.lm_head, task.n_outputs, task.example_inputs(), model_cfg, mesh, rules, params)
    graphdef = parts["graphdef"]
    del params

    def plain_params(params, rngs_state, frozen_state):
        if cfg.method == Method.FULL:
            return params if task.lm_head else params["decoder"]
        merged = merge_lora(nnx.merge(graphdef, params, rngs_state, frozen_state), settings)
        return merged if task.lm_head else merged["decoder"]

    total_steps = task.steps_per_epoch * cfg.train.epochs
    optim_cfg = dict(cfg.optim, warmup_steps=min(cfg.optim.warmup_steps, total_steps))
    tx, schedule = optim.from_config(optim_cfg, total_steps)
    meta = {"model": saved_cfg.to_dict(), "kind": kind, "head": cfg.get("head", ""), "method": cfg.method,
            "lora": settings.to_dict(), "init": init_desc, "init_checkpoint": cfg.init_checkpoint,
            "task": cfg.task.kind, "n_outputs": task.n_outputs, "lm_head": task.lm_head}
    template = getattr(task, "template", None)

    def on_best(evaluator: trainer_lib.Evaluator, record: dict) -> None:
        """best/: merged plain params (a run directory any tool reads); adapter/: the trainable part."""
        best_meta = dict(meta, best=record)
        trees = checkpoint_trees(task.lm_head, _with_head(evaluator, task.lm_head))
        run_dir.save_run(os.path.join(workdir, "best"), trees, best_meta, tokenizer_path, step=record["step"],
                         template=template)
        if cfg.method != Method.FULL:
            run_dir.save_run(os.path.join(workdir, "adapter"), {"adapter": evaluator.params}, best_meta,
                             tokenizer_path, step=record["step"], template=template)

    handed_over = [parts.pop("trainable")]   # held here once: the trainer takes it (or restores a checkpoint)
    trainer = trainer_lib.Trainer(
        workdir, task=task,
        model=trainer_lib.ModelParts(graphdef=graphdef, abstract_params=_abstract(handed_over[0]),
                                     init=handed_over.pop, rngs=parts["rngs"], frozen=parts["frozen"],
                                     plain_params=plain_params),
        tx=tx, schedule=schedule, mesh=mesh, rules=rules,
        train=dict(cfg.train, steps=total_steps), checkpoint=cfg.checkpoint, logging_cfg=cfg.logging,
        meta=meta, seed=cfg.train.seed,
        flops_per_token=model_info(model_cfg, cfg.max_len)["flops_per_token"], on_best=on_best)
    summary = trainer.run()
    if summary.interrupted_by:
        return {"interrupted_by": summary.interrupted_by, "step": summary.step}
    best = summary.best or {}
    results = {
        "task": cfg.task.kind, "kind": kind, "method": cfg.method, "init": init_desc, "seed": cfg.train.seed,
        "best_step": best.get("step"), "best_epoch": best.get("epoch"),
        "dev_accuracy": best.get("dev_accuracy"), "test_accuracy": best.get("test_accuracy"),
        "chance": task.chance, "n_train": task.reports["train"]["examples"],
        "n_dev": best.get("dev_n"), "n_test": best.get("test_n"),
        "trainable_params": int(parts["n_trainable"]), "total_params": int(parts["n_total"]),
        "steps": total_steps, "steps_per_epoch": task.steps_per_epoch, "effective_batch": cfg.train.batch_size,
        "evaluations": summary.evaluations, "data": task.reports,
    }
    if jax.process_index() == 0:
        run_dir.write_json(os.path.join(workdir, "results.json"), results)
    return results


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _with_head(evaluator: trainer_lib.Evaluator, lm_head: bool) -> dict:
    """The plain decoder params, with a classifier's trained head beside them."""
    decoder = evaluator.plain_params()
    return decoder if lm_head else {"decoder": decoder, "head": evaluator.params["head"]}


# --- the compile check -----------------------------------------------------------------------------------

PLACEHOLDER_OPTIONS = 4   # options per question in the compile check's multiple-choice batch (MedQA's)


def placeholder_task(cfg: ml_collections.ConfigDict, kind: str):
    """The task of `cfg` with one global batch of zeros in place of its data: its loss and its batch
    shapes, to compile the train step without any data file (experiments.aot_check)."""
    b, length, k = cfg.train.batch_size, cfg.max_len, PLACEHOLDER_OPTIONS

    def ints(*shape):
        return np.zeros(shape, np.int32)

    if kind == FinetuneKind.SFT:
        rows = {name: ints(b, length) for name in ("inputs", "targets", "loss_mask", "positions", "segment_ids")}
        return InstructionTuning(rows, None, {}, {"train": {"examples": b}}, template_record(cfg.sft.style), b)
    if kind == FinetuneKind.SEQCLS:
        arrays = dict(tokens=ints(b, length), lengths=np.ones(b, np.int32), labels=ints(b))
        return SequenceClassification({}, {"train": arrays}, {}, len(cfg.task.classes), b, cfg.train.eval_batch_size)
    options = dict(option_mask=np.ones((b, k), bool), labels=ints(b))
    if cfg.get("head", "last_token") == "option_loglik":
        arrays = dict(inputs=ints(b, k, length), targets=ints(b, k, length),
                      response_mask=np.zeros((b, k, length), bool), **options)
        return MultipleChoiceLoglik({}, {"train": arrays}, {}, b, cfg.train.eval_batch_size, evaluation=None)
    arrays = dict(tokens=ints(b, k, length), lengths=np.ones((b, k), np.int32), **options)
    return MultipleChoiceClassifier({}, {"train": arrays}, {}, b, cfg.train.eval_batch_size)


def build_for_compile(cfg: ml_collections.ConfigDict, kind: str, devices: list) -> dict:
    """The fine-tuning run of `cfg` built from shapes alone, nothing allocated: {trainer, frozen, batch,
    model_cfg, n_trainable, n_total}. The model comes from init_checkpoint's recorded config (no weights
    read) or, without one, from the `model` preset, compiled as for an accelerator (ModelConfig.for_accelerator_compile)."""
    from configs.models import model_preset

    validate(cfg, kind, len(devices))
    mesh = shd.make_mesh(dict(cfg.mesh), devices)
    rules = shd.rules_dict()
    if cfg.init_checkpoint:
        model_cfg = ModelConfig.from_dict(run_dir.read_meta(cfg.init_checkpoint)[1]["model"])
    else:
        model_cfg = ModelConfig.from_dict(model_preset(cfg.model))
    check_context(cfg.max_len, model_cfg, cfg.init_checkpoint or f"the {cfg.model} preset")
    model_cfg = model_cfg.for_accelerator_compile()
    if cfg.remat:
        model_cfg = model_cfg.replace(remat=cfg.remat)
    if cfg.method != Method.FULL:
        model_cfg = rewritable(model_cfg)
    task = placeholder_task(cfg, kind)
    parts = split_model(cfg, task.lm_head, task.n_outputs, task.example_inputs(), model_cfg, mesh, rules)
    tx, schedule = optim.from_config(dict(cfg.optim, warmup_steps=0), 1)
    trainer = trainer_lib.Trainer(
        "", task=task, model=trainer_lib.ModelParts(graphdef=parts["graphdef"], abstract_params=parts["trainable"],
                                                    init=None, rngs=parts["rngs"], frozen=parts["frozen"]),
        tx=tx, schedule=schedule, mesh=mesh, rules=rules, train=dict(cfg.train, steps=1), checkpoint=cfg.checkpoint,
        logging_cfg=cfg.logging, meta={}, seed=0)
    arrays = with_weight(task.rows if kind == FinetuneKind.SFT else task.arrays["train"])
    batch = {name: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shd.batch_sharding(mesh, 1))
             for name, v in arrays.items()}
    return dict(trainer=trainer, frozen=parts["frozen"], batch=batch, model_cfg=model_cfg,
                n_trainable=parts["n_trainable"], n_total=parts["n_total"])

"""The stages the experiments are built from, one per entry point (data preparation, (continued)
pretraining, fine-tuning, evaluation): each with its config section, the settings --plan states, the
paths it reads and the single command that runs it alone (biomed_jax/stages.py runs them)."""

from __future__ import annotations

import json
import os
import shlex
import signal
from typing import Any, Callable, Iterator, Mapping

from biomed_jax.data.prepare import world_folder
from biomed_jax.kinds import FinetuneKind, Method
from biomed_jax.run_dir import ensure_same_settings
from biomed_jax.stages import Input, Stage

CONVERT_HINT = "python -m experiments.convert --direction=hf_to_jax --src=HF_DIR --workdir=DIR"


# --- the entry points each stage calls -----------------------------------------------------------------


def _prepare(section, folder: str) -> dict:
    from biomed_jax.data.prepare import prepare

    dataset = prepare(section, folder)
    tokens = {split: sum(c["tokens"] for c in sources.values())
              for split, sources in dataset.metadata["counts"].items()}
    return {"dataset": dataset.path, "vocab_size": dataset.vocab_size, "tokens": tokens}


def _pretrain(section, folder: str) -> dict:
    from biomed_jax.tasks.pretraining import run as pretrain

    summary = pretrain(section, folder)
    if summary.interrupted_by:  # saved; the stage stays unfinished and resumes when rerun
        raise SystemExit(128 + signal.Signals[summary.interrupted_by].value)
    val_loss = next((e["val_loss"] for e in reversed(summary.evaluations) if "val_loss" in e), None)
    return {"step": summary.step, "val_loss": val_loss if val_loss is not None else _last_metric(folder, "val_loss")}


def _finetune(kind: str) -> Callable:
    def call(section, folder: str) -> dict:
        from biomed_jax.tasks.finetuning import run as finetune

        results = finetune(section, folder, kind)
        if "interrupted_by" in results:  # saved; the stage stays unfinished and resumes when rerun
            raise SystemExit(128 + signal.Signals[results["interrupted_by"]].value)
        return {k: v for k, v in results.items() if k not in ("evaluations", "data")}
    return call


def _evaluate(checkpoint: str) -> Callable:
    def call(section, folder: str) -> dict:
        from biomed_jax.evaluation.harness import evaluate, load_eval_model

        # The harness keeps each finished (task, method): results of another config must not mix in.
        ensure_same_settings(os.path.join(folder, "config.json"),
                             {"config": json.loads(section.to_json(sort_keys=True)), "checkpoint": checkpoint},
                             "evaluation results", hint="delete it to re-evaluate")
        model = load_eval_model(checkpoint, batch_size=section.batch_size, max_len=section.max_len)
        results = evaluate(section, model, folder, section.data_root, progress=False)
        return {task: {method: {k: v for k, v in r.items() if k != "extraction_failed_ids"}
                       for method, r in by_method.items()} for task, by_method in results.items()}
    return call


def _last_metric(folder: str, key: str) -> float | None:
    path = os.path.join(folder, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        values = [r[key] for r in map(json.loads, f) if key in r]
    return values[-1] if values else None


# --- stage builders --------------------------------------------------------------------------------------


def benchmarks_root(cfg, workdir: str) -> str:
    """data_root, or in the smoke presets the synthetic world the data stage generates."""
    if cfg.data_root or not uses_world(cfg):
        return cfg.data_root
    return world_folder(cfg.data, os.path.join(workdir, "data"))


def uses_world(cfg) -> bool:
    return not cfg.data_root and "data" in cfg and cfg.data.generate_world


def data_stage(section, workdir: str, title: str, tokenizer_what: str = "") -> Stage:
    """experiments.prepare_data; tokenizer_what, when given, makes data.tokenizer.path required."""
    from configs import data

    folder = os.path.join(workdir, "data")
    inputs = []
    if not (section.generate_world and not section.manual_dir):
        globs = "; ".join(f"{name}: {s.paths}" for name, s in section.sources.items())
        inputs.append(Input("data.manual_dir", section.manual_dir, f"the raw corpus files ({globs})"))
    if section.tokenizer.path or tokenizer_what:
        inputs.append(Input("data.tokenizer.path", section.tokenizer.path, tokenizer_what or "a tokenizer.json"))
    mixture = ", ".join(f"{name} " + (f"{s.fraction:.0%} of characters" if s.fraction else f"x{s.epochs:g}")
                        for name, s in section.sources.items())
    tokenizer = section.tokenizer.path or (f"(not set): {tokenizer_what}" if tokenizer_what else
                                           f"byte-level BPE trained here, {section.tokenizer.vocab_size:,} tokens")
    return Stage(
        group="data", name="data", title=title, section=section, call=_prepare,
        command=_command("experiments.prepare_data", f"configs/data.py:{section.name}",
                         section, data.get_config(section.name), [f"--data_dir={folder}"]),
        settings=[("sources", mixture),
                  ("manual_dir", section.manual_dir or ("generated synthetic world" if section.generate_world
                                                        else "(not set)")),
                  ("tokenizer", tokenizer)],
        inputs=inputs)


def pretrain_stage(name: str, section, workdir: str, hardware, title: str, group: str = "",
                   init_what: str = "") -> Stage:
    """Pretraining, or continued pretraining when train.init_from is set (or init_what says it must be)."""
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.models.info import model_info
    from biomed_jax.train.run_config import validate_pretrain_config
    from configs import pretrain

    train, optim = section.train, section.optim
    inputs = []
    init_from = train.init_from
    if init_from or init_what:
        inputs.append(Input(f"{name}.train.init_from", os.path.join(init_from, "checkpoints") if init_from else "",
                            init_what or "a run directory with checkpoints/"))
    if section.data.dir:
        inputs.append(Input(f"{name}.data.dir", section.data.dir, "a dataset made by experiments.prepare_data"))
    tokens_per_step = train.batch_size * train.seq_len
    info = model_info(ModelConfig.from_dict(section.model), train.seq_len)
    dtype = section.model.dtype + (" (bfloat16 on GPU/TPU)" if section.model.dtype == "auto" else "")
    model = f"{section.preset}: {info['n_params']:,} parameters, compute {dtype}, remat {section.model.remat}"
    if init_from:
        model += f"; initialised from {init_from} (its architecture)"
    settings = [
        ("model", model),
        *_mesh_settings(section, hardware),
        ("batch", f"{train.batch_size} sequences x {train.seq_len} tokens = {tokens_per_step:,} tokens per step"),
        ("microbatches", f"{train.microbatches}: " + _per_device_microbatch(section, hardware.devices)),
        ("optimizer", f"Decoupled AdamW, lr {optim.learning_rate:g} {optim.schedule} (warmup "
                      f"{optim.warmup_steps} steps, final {optim.final_lr_fraction:g}x), weight decay "
                      f"{optim.weight_decay:g}, b1 {optim.b1:g}, b2 {optim.b2:g}, eps {optim.eps:g}, clip "
                      f"{optim.max_grad_norm:g}"),
        ("steps", f"{train.steps:,} = {_tokens(train.steps * tokens_per_step)} tokens, "
                  f"{info['flops_per_token'] * train.steps * tokens_per_step:.2e} training FLOPs"),
        ("data", section.data.dir or "generated token stream (data.kind=synthetic)"),
    ]
    overrides = _overrides(section, pretrain.get_config(section.preset))
    folder = os.path.join(workdir, name)
    notes = []
    if hardware.accelerator:
        # The compile check needs only shapes, in one process: no data, checkpoints or process group.
        aot = [o for o in overrides if not o.startswith(("--config.data.", "--config.train.init_from",
                                                         "--config.checkpoint.", "--config.logging.",
                                                         "--config.distributed."))]
        notes.append(("aot_check", command_line(["python", "-m", "experiments.aot_check",
                                          f"--config=configs/pretrain.py:{section.preset}",
                                          f"--devices={hardware.devices}",
                                          f"--accelerator={hardware.accelerator}", *aot])))
    if hardware.hosts > 1:
        notes.append(("hosts", _hosts_note(hardware)))
    return Stage(
        group=group or name, name=name, title=title, section=section, call=_pretrain,
        command=command_line(["python", "-m", "experiments.pretrain", f"--config=configs/pretrain.py:{section.preset}",
                       f"--workdir={folder}", *overrides]),
        settings=settings, inputs=inputs, check=lambda n: validate_pretrain_config(section, n), notes=notes)


def finetune_stage(name: str, section, kind: str, workdir: str, hardware, title: str, group: str,
                   init_field: str, root_field: str) -> Stage:
    """A finetune_mcq / _seqcls / _sft run from init_checkpoint; init_field and root_field name the config
    fields its init_checkpoint and data_root came from (for the error when one is missing)."""
    import importlib

    from biomed_jax.tasks import finetuning

    init = section.init_checkpoint
    if init or not section.tokenizer:
        inputs = [Input(init_field, os.path.join(init, "checkpoints") if init else "",
                        f"a run directory with checkpoints/ (a converted model: {CONVERT_HINT})")]
    else:  # a random init of the model preset
        inputs = [Input(init_field, section.tokenizer, "the tokenizer.json the random init is trained with")]
    task = section.task
    inputs.append(_under_root(root_field, section.data_root, task.path,
                              f"the {task.kind} files as released (task.path={task.path!r})"))
    if kind == FinetuneKind.SFT and section.sft.instructions:
        inputs.append(_under_root(root_field, section.data_root, section.sft.instructions,
                                  f"the instruction file sft.instructions={section.sft.instructions!r}"))
    method = section.method + ("" if section.method == Method.FULL else
                               f" (rank {section.lora.rank}, alpha {section.lora.alpha:g}, dropout "
                               f"{section.lora.dropout:g}, targets {section.lora.targets})")
    if section.remat:
        method += f"; remat {section.remat}"
    train, optim = section.train, section.optim
    per_row = " per option" if kind == FinetuneKind.MCQ else ""
    settings = [
        ("model", f"{init or (f'random init of {section.model}' if section.tokenizer else '(init_checkpoint not set)')}; "
                  f"method {method}"),
        ("task", f"{task.kind} under {section.data_root or '(data_root not set)'}; " + _splits(section, kind)),
        *_mesh_settings(section, hardware),
        ("batch", f"{train.batch_size} examples x up to {section.max_len} tokens{per_row} "
                  f"(<= {train.batch_size * section.max_len:,} tokens{per_row} per step); eval batch "
                  f"{train.eval_batch_size}"),
        ("microbatches", f"{train.microbatches}: " + _per_device_microbatch(section, hardware.devices)
         .replace("sequence(s)", "example(s)")),
        ("optimizer", f"lr {optim.learning_rate:g} {optim.schedule} (warmup {optim.warmup_steps} steps), "
                      f"weight decay {optim.weight_decay:g}"),
        ("epochs", str(train.epochs)),
    ]
    base = importlib.import_module(f"configs.finetune_{kind}").get_config(section.preset)
    folder = os.path.join(workdir, name)
    notes = []
    if hardware.accelerator:
        # The compile check needs only shapes: the model preset stands in for init_checkpoint, no data read.
        aot = [o for o in _overrides(section, base) if not o.startswith(
            ("--config.init_checkpoint", "--config.data_root", "--config.tokenizer", "--config.checkpoint.",
             "--config.logging.", "--config.distributed.", "--config.model="))]
        notes.append(("aot_check", command_line(["python", "-m", "experiments.aot_check",
                                          f"--config=configs/finetune_{kind}.py:{section.preset}",
                                          f"--config.model={section.model}", f"--devices={hardware.devices}",
                                          f"--accelerator={hardware.accelerator}", *aot])))
    if hardware.hosts > 1:
        notes.append(("hosts", _hosts_note(hardware)))
    return Stage(
        group=group, name=name, title=title, section=section, call=_finetune(kind),
        command=_command(f"experiments.finetune_{kind}", f"configs/finetune_{kind}.py:{section.preset}",
                         section, base, [f"--workdir={folder}"]),
        settings=settings, inputs=inputs, check=lambda n: finetuning.validate(section, kind, n), notes=notes)


def _hosts_note(hardware) -> str:
    return (f"{hardware.hosts} hosts x {hardware.devices // hardware.hosts} devices: start the command above on "
            "every host (distributed.mode=on connects them; each reads only its rows of every batch)")



def eval_stage(name: str, section, checkpoint: str, workdir: str, title: str, group: str, root_field: str,
               checkpoint_field: str) -> Stage:
    from configs import evaluation as eval_configs

    inputs = [Input(checkpoint_field, os.path.join(checkpoint, "checkpoints") if checkpoint else "",
                    "a run directory with checkpoints/ and tokenizer.json")]
    tasks = []
    for task_name, task in section.tasks.items():
        if not task.methods.strip():
            continue
        inputs.append(_under_root(root_field, section.data_root, task.path,
                                  f"the {task.kind} files as released (tasks.{task_name}.path={task.path!r})"))
        tasks.append(f"{task_name} {task.methods} ({task.shots}-shot" + (f", {task.limit} sampled" if task.limit
                                                                          else "") + ")")
    methods = {m.strip() for t in section.tasks.values() for m in t.methods.split(",")}
    generation = [f"cot {section.cot.max_new_tokens} new tokens"] if "cot" in methods else []
    if "sc_cot" in methods:
        generation.append(f"sc_cot {section.sc_cot.n} chains at temperature {section.sc_cot.temperature:g}")
    folder = os.path.join(workdir, name)
    return Stage(
        group=group, name=name, title=title, section=section, call=_evaluate(checkpoint),
        command=_command("experiments.evaluate", f"configs/evaluation.py:{section.suite}", section,
                         eval_configs.get_config(section.suite), [f"--checkpoint={checkpoint}", f"--workdir={folder}"]),
        settings=[("suite", f"{section.suite}: " + "; ".join(tasks)),
                  ("checkpoint", checkpoint),
                  ("batch", f"{section.batch_size}" + (f"; {', '.join(generation)}" if generation else ""))],
        inputs=inputs, extra={"checkpoint": checkpoint})


def _splits(section, kind: str) -> str:
    """Where a fine-tuning run's train / dev / test questions come from."""
    task = section.task

    def split(name: str, fraction: float) -> str:
        return name or (f"{fraction:g} of train" if fraction else "none")

    train = ("instructions only" if kind == FinetuneKind.SFT and not section.sft.benchmark_train
             else task.train_split or "the whole file")
    return (f"train {train} / dev {split(task.dev_split, task.dev_fraction)} / test "
            f"{split(task.test_split, task.test_fraction)}" + (f"; {task.limit} sampled of each" if task.limit else ""))


def _under_root(root_field: str, root: str, path: str, what: str) -> Input:
    """A benchmark file under data_root ('' while data_root is not set)."""
    return Input(root_field, os.path.join(root, path) if root else "", what)


def _mesh_settings(section, hardware) -> list[tuple[str, str]]:
    from biomed_jax import sharding as shd

    try:
        data, fsdp, tensor = shd.resolve_mesh_shape(section.mesh, hardware.devices)
    except ValueError as e:
        return [("mesh", f"ERROR: {e}")]
    return [("mesh", f"data={data} fsdp={fsdp} tensor={tensor} = {hardware.devices} devices ({hardware.target})")]


def _per_device_microbatch(section, devices: int) -> str:
    from biomed_jax import sharding as shd

    try:
        data, fsdp, _ = shd.resolve_mesh_shape(section.mesh, devices)
    except ValueError:
        return "(mesh does not fit)"
    per_device = section.train.batch_size / section.train.microbatches / (data * fsdp)
    return f"{per_device:g} sequence(s) per device per microbatch"


def _tokens(n: float) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,.0f}"


# --- equivalent command lines -------------------------------------------------------------------------


def _flatten(tree: Mapping, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _overrides(section, base) -> list[str]:
    """--config.a.b=value for every field where `section` differs from its preset `base`."""
    ours, theirs = dict(_flatten(section.to_dict())), dict(_flatten(base.to_dict()))
    if ours.keys() != theirs.keys():
        raise ValueError(f"a stage config's fields differ from its preset's, so no command line can express it: "
                         f"{sorted(ours.keys() ^ theirs.keys())}")
    return [f"--config.{key}={_cli_value(value)}" for key, value in ours.items() if value != theirs[key]]


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return repr(tuple(value))
    return repr(value) if isinstance(value, float) else str(value)


def _command(module: str, config: str, section, base, args: list[str]) -> str:
    return command_line(["python", "-m", module, f"--config={config}", *args, *_overrides(section, base)])


def command_line(argv: list[str]) -> str:
    return " ".join(map(_quote, argv))


def _quote(arg: str) -> str:
    """Quotes only what the shell needs: --config.a="('x',)" rather than '--config.a=('"'"'x'"'"',)'."""
    key, eq, value = arg.partition("=")
    if eq and shlex.quote(key) == key:
        return key + eq + _quote(value)
    quoted = shlex.quote(arg)
    if quoted != arg and "'" in arg and not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return quoted

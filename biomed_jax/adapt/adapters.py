"""LoRA adapters saved apart from their base: load them on top of a base, or merge them into a plain
checkpoint (which evaluation, generation and the Hugging Face export read like any run directory).

A fine-tuning run's WORKDIR/adapter/ holds only the trainable part (adapters, and a classifier head) and
its metadata names the base (init_checkpoint), the method and the LoRA settings.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from flax import nnx

from biomed_jax import sharding as shd
from biomed_jax.adapt.lora import LoraSettings, apply_lora, merge_lora, trainable_filter
from biomed_jax.train.checkpoint import RunCheckpoints, load_params


def read_adapter_meta(adapter_dir: str) -> tuple[int, dict]:
    checkpoints = RunCheckpoints(os.path.join(adapter_dir, "checkpoints"))
    try:
        step = checkpoints.latest_step()
        if step is None:
            raise FileNotFoundError(f"no adapter checkpoint in {adapter_dir}/checkpoints")
        return step, checkpoints.read_meta(step)
    finally:
        checkpoints.close()


def load_adapted(adapter_dir: str, base_dir: str = "", mesh=None) -> tuple[nnx.Module, dict]:
    """(the base model with the saved adapters applied, the adapter's metadata plus its `step`).

    `base_dir` defaults to the run's init_checkpoint; any run directory with the same architecture works
    (an int8/nf4 base is quantized again, deterministically, exactly as in training).
    """
    from biomed_jax.adapt.finetune import LM_KINDS, build_model, on_mesh, unscanned

    step, meta = read_adapter_meta(adapter_dir)
    base_dir = base_dir or meta["init_checkpoint"]
    if not base_dir:
        raise ValueError(f"{adapter_dir} was trained from a random init; pass the base run directory")
    mesh = mesh or shd.make_mesh(dict(data=1, fsdp=-1, tensor=1))
    model_cfg, params, _ = load_params(os.path.join(base_dir, "checkpoints"), mesh=mesh)
    model_cfg, params = unscanned(model_cfg, params)
    model_cfg = model_cfg.replace(remat=meta["model"]["remat"])
    plain = build_model(meta["kind"], model_cfg, params, meta["n_outputs"], seed=0)
    inputs = (jnp.zeros((1, 8), jnp.int32),) if meta["kind"] in LM_KINDS else \
        (jnp.zeros((1, 1, 8), jnp.int32), jnp.full((1, 1), 8, jnp.int32))
    model = apply_lora(plain, meta["method"], LoraSettings(**meta["lora"]), inputs)
    graphdef, trainable, rest = nnx.split(model, trainable_filter(meta["method"]), ...)
    trainable, rest = on_mesh(nnx.to_pure_dict(trainable), mesh), on_mesh(rest, mesh)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainable)
    checkpoints = RunCheckpoints(os.path.join(adapter_dir, "checkpoints"))
    try:
        adapter = checkpoints.restore_params(step, target, key="adapter")
    finally:
        checkpoints.close()
    return nnx.merge(graphdef, adapter, rest), dict(meta, step=step)


def merge_adapter(adapter_dir: str, out_dir: str, base_dir: str = "") -> str:
    """Writes OUT_DIR as a plain run directory (adapters merged into the base): the input of
    experiments.evaluate / generate / convert --direction=jax_to_hf."""
    from biomed_jax.adapt.finetune import checkpoint_tree, save_plain

    model, meta = load_adapted(adapter_dir, base_dir)
    params = merge_lora(model, LoraSettings(**meta["lora"]))
    save_plain(out_dir, meta.pop("step"), checkpoint_tree(meta["kind"], params),
               dict(meta, merged_from=os.path.abspath(adapter_dir)), os.path.join(adapter_dir, "tokenizer.json"))
    return out_dir

"""LoRA adapters saved apart from their base: load them on top of a base, or merge them into a plain
run directory (which evaluation, generation, serving and the Hugging Face export read like any run).

A fine-tuning run's WORKDIR/adapter/ holds only the trainable part (adapters, and a classifier head)
under the checkpoint tree "adapter"; its metadata names the base (init_checkpoint), the method and the
LoRA settings.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from flax import nnx

from biomed_jax.kinds import FinetuneKind
from biomed_jax import run_dir
from biomed_jax import sharding as shd
from biomed_jax.adapt.lora import LoraSettings, apply_lora, merge_lora, trainable_filter
from biomed_jax.tasks.finetuning import build_model, checkpoint_trees, for_lora, placement
from biomed_jax.train.checkpoint import RunCheckpoints


def load_adapted(adapter_dir: str, base_dir: str = "", mesh=None) -> tuple[nnx.Module, dict]:
    """(the base model with the saved adapters applied, the adapter's metadata plus its `step`).

    `base_dir` defaults to the run's init_checkpoint; any run directory with the same architecture works
    (an int8/nf4 base is quantized again, deterministically, exactly as in training).
    """
    step, meta = run_dir.read_meta(adapter_dir)
    base_dir = base_dir or meta.get("init_checkpoint", "")
    if not base_dir:
        raise ValueError(f"{adapter_dir} was trained from a random init; pass the base run directory (--base)")
    mesh = mesh or shd.make_mesh(run_dir.DEFAULT_MESH)
    base = run_dir.load_run(base_dir, mesh=mesh)
    model_cfg, params = for_lora(base.model_cfg, base.params)
    model_cfg = model_cfg.replace(remat=meta["model"]["remat"])
    lm_head = meta["lm_head"]
    plain = build_model(lm_head, model_cfg, params, meta["n_outputs"], seed=0)
    # Any inputs of the right shapes: qwix runs the model once to find the projections to adapt.
    tokens = jnp.zeros((1, 8) if lm_head or meta["kind"] == FinetuneKind.SEQCLS else (1, 1, 8), jnp.int32)
    inputs = (tokens,) if lm_head else (tokens, jnp.full(tokens.shape[:-1], 8, jnp.int32))
    model = apply_lora(plain, meta["method"], LoraSettings(**meta["lora"]), inputs)
    graphdef, trainable, rest = nnx.split(model, trainable_filter(meta["method"]), ...)
    under = () if lm_head else ("decoder",)
    trainable, rest = ([jax.tree.map(jax.device_put, tree, placement(tree, model_cfg, mesh, shd.rules_dict(), under))
                        for tree in (nnx.to_pure_dict(trainable), rest)])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainable)
    checkpoints = RunCheckpoints(run_dir.checkpoints_dir(adapter_dir))
    try:
        adapter = checkpoints.restore_trees(step, {"adapter": target})["adapter"]
    finally:
        checkpoints.close()
    return nnx.merge(graphdef, adapter, rest), dict(meta, step=step)


def merge_adapter(adapter_dir: str, out_dir: str, base_dir: str = "") -> str:
    """Writes OUT_DIR as a plain run directory (adapters merged into the base): the input of
    experiments.evaluate / generate / serve / convert --direction=jax_to_hf."""
    model, meta = load_adapted(adapter_dir, base_dir)
    params = merge_lora(model, LoraSettings(**meta["lora"]))
    step, lm_head = meta.pop("step"), meta["lm_head"]
    run_dir.save_run(out_dir, checkpoint_trees(lm_head, params), dict(meta, merged_from=os.path.abspath(adapter_dir)),
                     os.path.join(adapter_dir, run_dir.TOKENIZER_FILE), step=step)
    return out_dir

"""Ahead-of-time compile check: does a pretraining or fine-tuning config's train step fit the accelerator's memory?

The train step is lowered from abstract shapes (ShapeDtypeStructs carrying their shardings) and
compiled; XLA's buffer assignment then reports the per-device bytes of arguments, outputs, donated
(aliased) buffers and temporaries. Nothing is allocated, so a 7B model can be checked on a laptop
over a simulated mesh of CPU devices before any accelerator time is spent on an out-of-memory run.

The numbers come from whatever backend compiles the step. On simulated CPU devices they are an
estimate of the accelerator's: argument and output bytes (params, optimizer moments, batch) are
exact, but temporaries depend on the backend's fusion, rematerialisation and scheduling decisions
(see experiments/aot_check.py).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from biomed_jax.kinds import FinetuneKind
from biomed_jax import sharding as shd
from biomed_jax.models.config import ModelConfig
from biomed_jax.tasks import pretraining
from biomed_jax.tasks.finetuning import build_for_compile
from biomed_jax.models.info import model_info

GIB = 1024 ** 3

# HBM per device (chip / GPU) in GiB, as the vendors state it. A v4 / v5p chip is one JAX device
# (megacore); an H100 / A100 is one device.
ACCELERATOR_HBM_GIB = {
    "tpu_v4": 32.0,
    "tpu_v5e": 16.0,
    "tpu_v5p": 95.0,
    "tpu_v6e": 32.0,
    "h100": 80.0,
    "h200": 141.0,
    "a100_40": 40.0,
    "a100_80": 80.0,
}

# Below this fraction of free HBM a "fits" is called tight: the estimate is approximate and the
# runtime needs some memory of its own (collective buffers, fragmentation, the host transfer of a batch).
TIGHT_HEADROOM = 0.10

# Every key the pretraining loader yields (biomed_jax/data/loader.py, synthetic_tokens.py): the
# segment ids and positions of packed documents are always present, and the attention mask they build
# is part of the step's memory.
BATCH_DTYPES = {"inputs": jnp.int32, "targets": jnp.int32, "loss_mask": jnp.float32,
                "positions": jnp.int32, "segment_ids": jnp.int32}


def abstract_batch(batch_size: int, seq_len: int, mesh: jax.sharding.Mesh) -> dict[str, jax.ShapeDtypeStruct]:
    """The global batch as ShapeDtypeStructs, sharded over ('data', 'fsdp') like the real batches."""
    sharding = shd.batch_sharding(mesh, 2)
    return {k: jax.ShapeDtypeStruct((batch_size, seq_len), dtype, sharding=sharding)
            for k, dtype in BATCH_DTYPES.items()}


def per_device_bytes(tree: Any) -> int:
    """Bytes one device holds of a tree of sharded ShapeDtypeStructs (the largest shard of each leaf);
    sub-byte types (nf4's uint4) count at their bit width, packed, as XLA stores them."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        total += -(-math.prod(shape) * jax.dtypes.itemsize_bits(leaf.dtype) // 8)
    return total


def _accelerator_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of cfg whose model is compiled as on a GPU/TPU (ModelConfig.for_accelerator_compile), not
    as on the CPU doing the compiling: the check is for the accelerator's run."""
    cfg = copy.deepcopy(cfg)
    model = ModelConfig.from_dict(cfg.model).for_accelerator_compile()
    with cfg.unlocked():
        cfg.model.update(dtype=model.dtype, kernels=model.kernels, attention=model.attention)
    return cfg


def is_finetuning(cfg: ml_collections.ConfigDict) -> bool:
    """Whether `cfg` is a fine-tuning config (configs/finetune_*.py) rather than a pretraining one."""
    return "kind" in cfg and "method" in cfg


def compile_train_step(cfg: ml_collections.ConfigDict, devices: list | None = None) -> dict:
    """Lowers and compiles the train step of `cfg`, a pretraining or a fine-tuning config, from abstract
    shapes; returns its report.

    Built by the run's own builders (tasks/pretraining.py build_trainer, tasks/finetuning.py
    build_for_compile: config validation, mesh, sharding rules, optimizer, the model split into trainable,
    frozen (LoRA's int8/nf4 base) and RNG state, the trainer's microbatched step with the state donated),
    so a config that compiles here compiles there. A fine-tuning config stands its `model` preset in for
    init_checkpoint when that is empty (only the architecture matters). `devices` defaults to all of
    jax.devices(). Raises ValueError naming the config field when the config is inconsistent (e.g. a batch
    the mesh's batch shards do not divide).

    Returned bytes are per device: argument (state + frozen base + batch shard), output, alias (outputs
    written into donated inputs), temp (activations, gradients, collectives' buffers) and generated code.
    peak_bytes = argument + output - alias + temp, the most the step holds at once.
    """
    devices = list(jax.devices() if devices is None else devices)
    if is_finetuning(cfg):
        built = build_for_compile(cfg, cfg.kind, devices)
        trainer, frozen, batch, model_cfg = built["trainer"], built["frozen"], built["batch"], built["model_cfg"]
        seq_len, what = cfg.max_len, f"{cfg.kind} {cfg.method}" + (f" ({cfg.head} head)" if cfg.kind == FinetuneKind.MCQ else "")
        extra = {"task": what, "trainable_params": built["n_trainable"], "total_params": built["n_total"],
                 "frozen_bytes_per_device": per_device_bytes(frozen)}
    else:
        cfg = _accelerator_config(cfg)
        trainer = pretraining.build_trainer(cfg, workdir="", devices=devices)
        model_cfg = pretraining.setup(cfg, devices).model_cfg
        frozen, seq_len, what, extra = {}, cfg.train.seq_len, "pretraining", {}
        batch = abstract_batch(cfg.train.batch_size, seq_len, trainer.mesh)
    mesh, train = trainer.mesh, cfg.train
    state = trainer.abstract_state()  # ShapeDtypeStructs: nothing allocated

    t0 = time.perf_counter()
    lowered = trainer.train_step.lower(state, frozen, batch)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()

    stats = compiled.memory_analysis()
    if stats is None:
        raise RuntimeError(f"the {jax.default_backend()} backend gives no memory analysis for compiled code")
    memory = {
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "alias_bytes": int(stats.alias_size_in_bytes),
        "temp_bytes": int(stats.temp_size_in_bytes),
        "generated_code_bytes": int(stats.generated_code_size_in_bytes),
    }
    memory["peak_bytes"] = (memory["argument_bytes"] + memory["output_bytes"] - memory["alias_bytes"]
                            + memory["temp_bytes"])
    # XLA's own heap-simulated peak, where the backend computes one. XLA:CPU reports a figure close
    # to the argument bytes alone (temporaries left out), so it is not reported there.
    xla_peak = int(getattr(stats, "peak_memory_in_bytes", 0) or 0) if jax.default_backend() != "cpu" else 0
    info = model_info(model_cfg, seq_len)
    return {
        "preset": cfg.get("preset"),
        "step": what,
        "backend": jax.default_backend(),
        "n_devices": len(devices),
        "mesh_shape": dict(mesh.shape),
        "global_batch": train.batch_size,
        "seq_len": seq_len,
        "microbatches": train.microbatches,
        "per_device_microbatch": train.batch_size // train.microbatches // (mesh.shape["data"] * mesh.shape["fsdp"]),
        "n_params": info["n_params"],
        "param_dtype": model_cfg.param_dtype,
        "compute_dtype": model_cfg.dtype,
        "remat": model_cfg.remat,
        "attention": model_cfg.attention_impl,
        "state_bytes_per_device": per_device_bytes(state),  # trainable params + optimizer state, from shardings
        "lower_seconds": round(t1 - t0, 2),
        "compile_seconds": round(t2 - t1, 2),
        **extra,
        **memory,
        **({"xla_peak_bytes": xla_peak} if xla_peak else {}),
    }


def fit_verdict(peak_bytes: int, hbm_gib: float) -> dict:
    """Whether `peak_bytes` per device fits `hbm_gib` of HBM, with the headroom and a one-line note."""
    hbm = hbm_gib * GIB
    headroom = hbm - peak_bytes
    fraction = headroom / hbm if hbm > 0 else -math.inf
    fits = headroom >= 0
    if not fits:
        note = (f"does not fit: {-headroom / GIB:.2f} GiB over; shard more (more devices in mesh.fsdp), "
                "raise train.microbatches or rematerialise more (model.remat)")
    elif fraction < TIGHT_HEADROOM:
        note = (f"fits, but tight: {headroom / GIB:.2f} GiB ({fraction:.0%}) free; the CPU estimate is "
                "approximate and the runtime needs some memory of its own")
    else:
        note = f"fits with {headroom / GIB:.2f} GiB ({fraction:.0%}) headroom"
    return {"hbm_gib": hbm_gib, "fits": fits, "headroom_gib": round(headroom / GIB, 3), "note": note}

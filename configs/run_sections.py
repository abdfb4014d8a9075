"""The config sections every training run has (pretraining and fine-tuning share the one trainer):
the device mesh, the optimizer, checkpoints, logging and multi-process start-up. Presets call these with
the few values they change."""

from __future__ import annotations

import ml_collections

from biomed_jax.run_dir import DEFAULT_MESH


def mesh() -> ml_collections.ConfigDict:
    """Device mesh; -1 fills with the remaining devices. FSDP by default: it scales to any model."""
    return ml_collections.ConfigDict(dict(DEFAULT_MESH))


def optim(learning_rate: float, warmup_steps: int, **overrides) -> ml_collections.ConfigDict:
    """Decoupled AdamW (Composer): decay scaled by lr_t / lr_peak; see biomed_jax/optim.py. `overrides`
    change the defaults below by name."""
    fields = dict(
        learning_rate=learning_rate,  # peak
        warmup_steps=warmup_steps,
        schedule="cosine",            # cosine | linear | constant
        final_lr_fraction=0.1,        # the schedule's last lr, as a fraction of the peak
        weight_decay=0.0,
        b1=0.9,
        b2=0.95,
        eps=1e-8,
        max_grad_norm=1.0,
        decay_embeddings=True,
    )
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"optim has no field(s) {unknown}; fields: {sorted(fields)}")
    return ml_collections.ConfigDict({**fields, **overrides})


def checkpoint(every_steps: int) -> ml_collections.ConfigDict:
    """Orbax checkpoints every `every_steps` steps and at the end (and on SIGTERM / SIGINT); the last
    `keep` are kept; async_save writes them while training goes on."""
    return ml_collections.ConfigDict(dict(every_steps=every_steps, keep=3, async_save=True))


def logging(tensorboard: bool = True) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(tensorboard=tensorboard, progress_bar="auto"))  # auto | on | off


def distributed() -> ml_collections.ConfigDict:
    """Several processes (hosts) in one run: biomed_jax/distributed.py. 'auto' connects them when the
    environment names a coordinator (experiments.launch_local, SLURM, Open MPI); 'on' on TPU pod slices."""
    return ml_collections.ConfigDict(dict(
        mode="auto",                # auto | on | off
        coordinator_address="",     # host:port of process 0; empty = JAX_COORDINATOR_ADDRESS or detected
        num_processes=0,            # 0 = JAX_NUM_PROCESSES or detected
        process_id=-1,              # -1 = JAX_PROCESS_ID or detected
        initialization_timeout=300,  # seconds to wait for every process to connect
    ))

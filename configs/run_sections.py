"""The config sections every training run has (pretraining and fine-tuning share the one trainer):
the device mesh, checkpoints, logging and multi-process start-up."""

from __future__ import annotations

import ml_collections

from biomed_jax.run_dir import DEFAULT_MESH


def mesh() -> ml_collections.ConfigDict:
    """Device mesh; -1 fills with the remaining devices. FSDP by default: it scales to any model."""
    return ml_collections.ConfigDict(dict(DEFAULT_MESH))


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

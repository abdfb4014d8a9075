"""Multi-process start-up: one process per host (TPU VM worker, GPU node), all running the same command.

`jax.distributed.initialize` connects the processes; after it, jax.devices() lists the devices of every
process and each jitted step runs SPMD over all of them, while each process feeds only its own rows of
the global batch (biomed_jax/data/loader.py) and writes its own shards of each orbax checkpoint.

It must run before anything touches a JAX backend. Who asks for it (`distributed.mode`):
  'auto'  initialise when the environment describes more than one process: a coordinator address
          (`distributed.coordinator_address` or JAX_COORDINATOR_ADDRESS, as experiments.launch_local
          sets), or a SLURM / Open MPI job with several tasks. A single process is left alone.
  'on'    always; on Cloud TPU VMs, SLURM, Open MPI and Kubernetes JAX finds the coordinator, the
          process count and this process's id itself, so the same command runs on every host.
  'off'   never.
Explicit values (config fields, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID in the
environment) take precedence over JAX's detection.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax

MODES = ("auto", "on", "off")
ENV_ADDRESS, ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def _int_setting(value: Any, env: str, field: str, unset: int) -> int | None:
    """The config value when set, else the environment's, else None (JAX detects it)."""
    if value not in (None, unset):
        return int(value)
    if os.environ.get(env, "") == "":
        return None
    try:
        return int(os.environ[env])
    except ValueError:
        raise ValueError(f"{env}={os.environ[env]!r} (for distributed.{field}) is not an integer") from None


def _cluster_job_size() -> int:
    """Tasks in the SLURM / Open MPI job this process belongs to (1 outside one)."""
    for var in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def initialize(cfg: Mapping[str, Any] | None) -> bool:
    """Connects this process to the others when `cfg` (the `distributed` config section) asks for it.

    Returns whether jax.distributed was initialised. Safe to call twice (the second call is a no-op).
    """
    cfg = dict(cfg or {})
    mode = cfg.get("mode", "auto")
    if mode not in MODES:
        raise ValueError(f"distributed.mode must be one of {list(MODES)}, got {mode!r}")
    if mode == "off":
        return False
    if jax.distributed.is_initialized():
        return True
    address = cfg.get("coordinator_address") or os.environ.get(ENV_ADDRESS) or None
    num_processes = _int_setting(cfg.get("num_processes"), ENV_NUM_PROCESSES, "num_processes", 0)
    process_id = _int_setting(cfg.get("process_id"), ENV_PROCESS_ID, "process_id", -1)
    if mode == "auto" and address is None and _cluster_job_size() <= 1:
        return False
    if address is not None and (num_processes is None) != (process_id is None):
        raise ValueError("distributed.num_processes and distributed.process_id go together: set both "
                         f"(or {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID}), or neither to let JAX detect them")
    jax.distributed.initialize(coordinator_address=address, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=int(cfg.get("initialization_timeout", 300)))
    logging.info("jax.distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def process_env(index: int, count: int, port: int, platform: str, devices: int, n_gpus: int = 0) -> dict:
    """The environment of process `index`: where the coordinator is, who this process is, its devices."""
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES=str(count),
               JAX_PROCESS_ID=str(index), PYTHONUNBUFFERED="1")
    if platform == "cpu":
        flags_ = [f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join(flags_ + [f"--xla_force_host_platform_device_count={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    else:
        per = devices or n_gpus // count
        if per < 1 or per * count > n_gpus:
            raise ValueError(f"--processes={count} x --devices_per_process={per} needs {per * count} GPUs; "
                             f"this machine has {n_gpus}")
        env["JAX_LOCAL_DEVICE_IDS"] = ",".join(str(i) for i in range(index * per, (index + 1) * per))
    return env

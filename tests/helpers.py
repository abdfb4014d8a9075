"""Small builders shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys

import ml_collections

from configs.pretrain import get_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(preset: str = "tiny", **sections) -> ml_collections.ConfigDict:
    """configs/pretrain.py:<preset> with float32 compute and overrides {section: {field: value}}."""
    cfg = get_config(preset)
    cfg.model.dtype = "float32"
    for section, values in sections.items():
        for key, value in values.items():
            cfg[section][key] = value
    return cfg


def run_cli(module: str, *args: str, devices: int = 1, timeout: int = 300, check: bool = True,
            env_extra: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m module args` from the repo root, as a user would (`input` is fed to stdin)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc

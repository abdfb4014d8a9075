"""The pretraining command as a user runs it: learning, resuming, SIGTERM, NaN, 8 devices."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from biomed_jax.run_dir import load_run
from biomed_jax.train.checkpoint import RunCheckpoints
from helpers import REPO_ROOT, run_cli

TINY = ["--config=configs/pretrain.py:tiny", "--config.model.dtype=float32", "--config.logging.tensorboard=False"]


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def loss_records(workdir):
    return [r for r in read_metrics(workdir) if "loss" in r]


def test_tiny_pretraining_learns_resumes_and_records_everything(tmp_path):
    workdir = str(tmp_path / "run")
    args = [*TINY, f"--workdir={workdir}", "--config.train.steps=60", "--config.logging.tensorboard=True"]
    run_cli("experiments.pretrain", *args)
    records = loss_records(workdir)
    assert records[0]["step"] == 1 and records[-1]["step"] == 60
    assert records[-1]["loss"] <= 0.8 * records[0]["loss"]
    assert set(records[-1]) >= {"step", "loss", "lr", "grad_norm", "tokens_per_sec", "step_time_s", "mfu"}
    assert records[-1]["mfu"] is None  # CPU: no known peak FLOP/s
    assert records[-1]["tokens_per_sec"] > 0
    val = [r for r in read_metrics(workdir) if "val_loss" in r]
    assert [r["step"] for r in val] == [50, 60] and val[-1]["val_loss"] < records[0]["loss"]
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    assert config["train"]["steps"] == 60 and config["model"]["kernels"] == "auto"
    assert config["resolved"] == {"backend": "cpu", "dtype": "float32", "kernels": "cpu", "attention": "blocked"}
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert RunCheckpoints(os.path.join(workdir, "checkpoints")).all_steps() == [50, 60]

    n_lines = len(read_metrics(workdir))
    proc = run_cli("experiments.pretrain", *args)  # the same command again: resumes, nothing to do
    assert len(read_metrics(workdir)) == n_lines
    assert "step 60" in proc.stdout


def test_sigterm_saves_and_resuming_matches_an_uninterrupted_run(tmp_path):
    common = [*TINY, "--config.train.steps=20", "--config.train.log_every=1", "--config.train.eval_every=1000",
              "--config.checkpoint.every_steps=1000", "--config.data.mean_doc_len=0"]
    straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
    run_cli("experiments.pretrain", *common, f"--workdir={straight}")

    env = dict(os.environ, PYTHONPATH=REPO_ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=0")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.pretrain", *common, f"--workdir={interrupted}"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training is under way, then stop it like a scheduler would
        path = os.path.join(interrupted, "metrics.jsonl")
        if os.path.exists(path) and any(r.get("step", 0) >= 3 and "loss" in r for r in loss_records(interrupted)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    saved = RunCheckpoints(os.path.join(interrupted, "checkpoints")).all_steps()
    assert len(saved) == 1 and 3 <= saved[0] < 20, saved

    run_cli("experiments.pretrain", *common, f"--workdir={interrupted}")
    a, b = load_run(straight, with_tokenizer=False), load_run(interrupted, with_tokenizer=False)
    assert a.step == b.step == 20
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    steps_logged = [r["step"] for r in loss_records(interrupted)]
    assert steps_logged == sorted(set(steps_logged)) and steps_logged[-1] == 20  # no step logged twice


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    proc = run_cli("experiments.pretrain", *TINY, f"--workdir={workdir}", "--config.train.steps=30",
                   "--config.optim.learning_rate=1e30", "--config.optim.warmup_steps=0",
                   "--config.optim.max_grad_norm=0", "--config.checkpoint.every_steps=1", check=False)
    assert proc.returncode != 0
    assert "non-finite loss" in proc.stderr and "at step" in proc.stderr
    bad_step = int(proc.stderr.split("at step ")[1].split(";")[0])
    good = load_run(workdir, with_tokenizer=False)
    assert good.step == bad_step - 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(good.params))


def test_trains_on_eight_devices_with_fsdp_and_tensor_parallelism(tmp_path):
    workdir = str(tmp_path / "mesh")
    run_cli("experiments.pretrain", *TINY, f"--workdir={workdir}", "--config.train.steps=20",
            "--config.mesh.fsdp=4", "--config.mesh.tensor=2", devices=8)
    records = loss_records(workdir)
    assert records[-1]["step"] == 20 and records[-1]["loss"] < records[0]["loss"]


@pytest.mark.parametrize("override,message", [
    ("--config.train.seq_len=256", "train.seq_len"),
    ("--config.mesh.data=3", "mesh"),
    ("--config.train.microbatches=3", "train.microbatches"),
    ("--config.train.stepz=5", "stepz"),
    ("--config.model.n_kv_heads=3", "model.n_heads"),
])
def test_bad_configs_fail_before_compiling_naming_the_field(tmp_path, override, message):
    proc = run_cli("experiments.pretrain", *TINY, f"--workdir={tmp_path}", override, check=False, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))

"""Multi-host training on one machine: 2 processes x 4 CPU devices (jax.distributed over localhost, gloo
collectives) train exactly like 1 process x 8 devices, on the grain loader sharded by process, and
orbax checkpoints move between the two layouts in both directions."""

import os

import pytest

from biomed_jax import distributed
from biomed_jax.train.checkpoint import RunCheckpoints
from data_fixtures import pretrain_config, prepare_dataset, read_losses
from helpers import run_cli


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return prepare_dataset(str(tmp_path_factory.mktemp("data")))[3]


def launch_two_processes(data_dir: str, steps: int, workdir: str):
    """experiments.pretrain with the settings of data_fixtures.pretrain_config, as 2 processes x 4 devices."""
    settings = [f"--config.train.{k}={v}" for k, v in
                dict(steps=steps, batch_size=8, seq_len=32, log_every=1, eval_every=100, eval_batches=0).items()]
    settings += ["--config.checkpoint.every_steps=3", "--config.checkpoint.async_save=False",
                 "--config.logging.tensorboard=False", "--config.logging.progress_bar=off",
                 "--config.optim.warmup_steps=1", "--config.optim.schedule=constant",
                 "--config.model.dtype=float32", f"--config.data.dir={data_dir}"]
    return run_cli("experiments.launch_local", "--processes=2", "--devices_per_process=4", "--",
                   "experiments.pretrain", "--config=configs/pretrain.py:tiny", f"--workdir={workdir}", *settings,
                   timeout=600)


def test_two_processes_train_like_one_and_checkpoints_cross_between_them(data_dir, tmp_path):
    from biomed_jax.tasks.pretraining import run as pretrain

    reference = str(tmp_path / "one_process")
    pretrain(pretrain_config(data_dir, 9), reference)  # this test process: 1 process x 8 devices

    run = str(tmp_path / "mixed")
    pretrain(pretrain_config(data_dir, 3), run)  # 1 process writes step 3
    proc = launch_two_processes(data_dir, 6, run)  # 2 processes restore it, train steps 4-6, save step 6
    assert "process 0 of 2, 4 local / 8 global devices" in proc.stdout
    assert "process 1 of 2, 4 local / 8 global devices" in proc.stdout
    assert "[p1] step 6; last loss" in proc.stdout
    assert RunCheckpoints(os.path.join(run, "checkpoints")).all_steps() == [3, 6]
    pretrain(pretrain_config(data_dir, 9), run)  # 1 process restores the 2-process checkpoint: steps 7-9

    expected, got = read_losses(reference), read_losses(run)
    assert sorted(got) == list(range(1, 10))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_launcher_stops_every_process_when_one_fails(tmp_path):
    proc = run_cli("experiments.launch_local", "--processes=2", "--devices_per_process=1", "--",
                   "experiments.pretrain", "--config=configs/pretrain.py:tiny", f"--workdir={tmp_path}",
                   "--config.train.steps=0", check=False)
    assert proc.returncode != 0
    assert "[p0]" in proc.stdout and "[p1]" in proc.stdout and "train.steps" in proc.stdout


@pytest.mark.parametrize("settings, message", [
    (dict(mode="sometimes"), "distributed.mode must be one of"),
    (dict(coordinator_address="localhost:1", num_processes=2), "num_processes and distributed.process_id"),
])
def test_bad_distributed_settings_name_the_field(settings, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(settings)


def test_a_single_process_is_left_alone(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize({"mode": "auto"}) is False
    assert distributed.initialize({"mode": "off", "coordinator_address": "localhost:1"}) is False


def test_launcher_gives_each_process_its_devices_and_identity():
    from biomed_jax.distributed import process_env

    cpu = process_env(1, 2, 1234, "cpu", 4)
    assert (cpu["JAX_COORDINATOR_ADDRESS"], cpu["JAX_NUM_PROCESSES"], cpu["JAX_PROCESS_ID"]) == ("localhost:1234", "2", "1")
    assert cpu["XLA_FLAGS"].split().count("--xla_force_host_platform_device_count=4") == 1
    assert "--xla_force_host_platform_device_count=8" not in cpu["XLA_FLAGS"]  # the test session's own count
    assert [process_env(i, 4, 1, "gpu", 0, n_gpus=8)["JAX_LOCAL_DEVICE_IDS"] for i in range(4)] == \
        ["0,1", "2,3", "4,5", "6,7"]
    with pytest.raises(ValueError, match="needs 6 GPUs; this machine has 4"):
        process_env(0, 2, 1, "gpu", 3, n_gpus=4)

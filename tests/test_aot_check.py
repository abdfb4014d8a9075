"""The compile check (experiments.aot_check) on GPT-2 small: per-device bytes match the sharded train
state, the fits verdict follows the HBM, --devices sets the simulated mesh, bad batches are refused."""

import json

import pytest

from biomed_jax.train.aot import compile_train_step, fit_verdict
from helpers import run_cli, tiny_config

# A short batch keeps the compile to seconds; the state (what the assertions check) is full size.
GPT2 = ["--config=configs/pretrain.py:gpt2_125m", "--config.train.batch_size=8", "--config.train.seq_len=256",
        "--config.train.microbatches=1"]
GPT2_PARAMS = 124_439_808
STATE_BYTES = 3 * 4 * GPT2_PARAMS  # float32 params + Adam mu and nu (float32)


def report_of(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])  # the JSON line is printed last


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    path = tmp_path_factory.mktemp("aot") / "report.json"
    proc = run_cli("experiments.aot_check", *GPT2, f"--json={path}", devices=8)
    with open(path) as f:
        assert json.load(f) == report_of(proc)
    return proc


def test_per_device_bytes_cover_the_fsdp_sharded_state(gpt2):
    r = report_of(gpt2)
    assert r["n_params"] == GPT2_PARAMS and r["n_devices"] == 8 and r["backend"] == "cpu"
    assert r["mesh_shape"] == {"data": 1, "fsdp": 8, "tensor": 1}
    assert r["compute_dtype"] == "bfloat16"  # model.dtype 'auto' compiled as on the accelerator
    shards = r["mesh_shape"]["data"] * r["mesh_shape"]["fsdp"]
    # Params and both Adam moments, split 8 ways; only small norm/bias leaves are replicated.
    assert STATE_BYTES / shards <= r["state_bytes_per_device"] <= r["argument_bytes"] <= 1.05 * STATE_BYTES / shards
    assert r["alias_bytes"] >= r["state_bytes_per_device"]  # the donated state is updated in place
    assert r["peak_bytes"] == r["argument_bytes"] + r["output_bytes"] - r["alias_bytes"] + r["temp_bytes"]
    assert r["peak_bytes"] >= r["argument_bytes"] and r["temp_bytes"] > 0
    assert r["compile_seconds"] > 0
    assert r["accelerator"] == "tpu_v4" and r["hbm_gib"] == 32.0 and r["fits"] is True
    assert "fits: yes" in gpt2.stdout and "peak" in gpt2.stdout


def test_fits_verdict_flips_when_the_hbm_is_too_small(gpt2):
    proc = run_cli("experiments.aot_check", *GPT2, "--hbm_gib=0.1", devices=8)
    r, before = report_of(proc), report_of(gpt2)
    assert r["peak_bytes"] == before["peak_bytes"]  # same program, only the verdict changes
    assert r["fits"] is False and r["hbm_gib"] == 0.1 and r["headroom_gib"] < 0
    assert "fits: NO" in proc.stdout and "does not fit" in r["note"]
    assert fit_verdict(r["peak_bytes"], 80.0)["fits"] and not fit_verdict(r["peak_bytes"], 0.5)["fits"]
    assert "tight" in fit_verdict(r["peak_bytes"], 1.05 * r["peak_bytes"] / 1024 ** 3)["note"]


def test_devices_flag_sets_the_simulated_mesh(gpt2):
    # The environment says 8 devices; --devices=4 must win (it is applied before JAX starts).
    r = report_of(run_cli("experiments.aot_check", *GPT2, "--devices=4", devices=8))
    assert r["n_devices"] == 4 and r["mesh_shape"] == {"data": 1, "fsdp": 4, "tensor": 1}
    assert STATE_BYTES / 4 <= r["argument_bytes"] <= 1.05 * STATE_BYTES / 4
    assert r["state_bytes_per_device"] > 1.9 * report_of(gpt2)["state_bytes_per_device"]


def test_batch_not_divisible_by_batch_shards_names_the_fields():
    cfg = tiny_config("gpt2_125m", train={"batch_size": 12, "seq_len": 256, "microbatches": 1})  # 12 rows, 8 devices
    with pytest.raises(ValueError, match=r"train\.batch_size.*mesh\.data \* mesh\.fsdp = 8"):
        compile_train_step(cfg)

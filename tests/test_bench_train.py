"""benchmarks.bench_train runs the pretraining step and a transformers step of the same shape, and
reports both (the figures themselves are measured by hand, never asserted)."""

import json

import pytest

from helpers import run_cli


@pytest.mark.slow  # ~30 s: imports torch and compiles both sides
def test_side_by_side_report_compares_the_same_model(tmp_path):
    path = tmp_path / "report.json"
    proc = run_cli("benchmarks.bench_train", "--config=configs/pretrain.py:tiny", "--config.train.batch_size=2",
                   "--config.train.seq_len=64", "--compare=torch", "--steps=1", "--warmup=0", "--block_steps=1",
                   f"--json={path}")
    report = json.loads(path.read_text())
    assert report["torch_n_params"] == report["n_params"]  # same architecture on both sides
    assert report["biomed_jax_tokens_per_s"] > 0 and report["torch_tokens_per_s"] > 0
    assert report["ratio"] == report["biomed_jax_tokens_per_s"] / report["torch_tokens_per_s"]
    assert report["biomed_jax_mfu"] is None  # CPU: no tabulated peak
    assert "biomed_jax / torch tokens/s" in proc.stdout


@pytest.mark.slow   # a benchmark tool: four subprocess runs
def test_sweep_tables_every_combination_and_records_a_failed_one(tmp_path):
    """~12 s: two bench_train runs of the tiny model (run_cli runs on CPU, where cuDNN attention fails)."""
    proc = run_cli("benchmarks.sweep_train", "--preset=tiny", "--seq_len=64", "--batch_sizes=4", "--remat=none",
                   "--attention=xla,cudnn", "--steps=1", f"--out={tmp_path}")
    table = (tmp_path / "sweep.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 4 |")]
    assert len(rows) == 2 and "| xla |" in rows[0] and "tokens/s" in table
    assert "| cudnn | failed:" in rows[1] and "Error" in rows[1]
    assert json.loads((tmp_path / "b4_m1_none_scanTrue_xla.json").read_text())["biomed_jax_tokens_per_s"] > 0
    assert "best: python -m benchmarks.bench_train" in proc.stdout

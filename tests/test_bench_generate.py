"""The generation benchmark's matmul floor times the same work in jax and torch."""

import numpy as np
import pytest

from biomed_jax.models.config import ModelConfig
from experiments.bench_generate import floor_steps, matmul_floor
from configs.models import model_preset


@pytest.mark.parametrize("preset", ["tiny", "tiny_llama"])
def test_floor_steps_compute_the_same_logits(preset):
    cfg = ModelConfig.from_dict(model_preset(preset))
    jax_step, torch_step = floor_steps(cfg, batch=3, seed=0)
    jax_logits, torch_logits = np.asarray(jax_step()), torch_step().numpy()
    assert jax_logits.shape == torch_logits.shape == (3, cfg.vocab_size)
    np.testing.assert_allclose(jax_logits, torch_logits, rtol=1e-4, atol=1e-5)


def test_floor_times_both_libraries_and_rejects_unknown_dtypes():
    cfg = ModelConfig.from_dict(model_preset("tiny"))
    jax_ms, torch_ms = matmul_floor(cfg, batch=2, repeats=1, seed=0, dtype="bfloat16")
    assert jax_ms > 0 and torch_ms > 0
    with pytest.raises(ValueError, match="--floor_dtypes: 'int8'"):
        floor_steps(cfg, batch=2, seed=0, dtype="int8")

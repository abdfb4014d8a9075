"""The matmul floors time the same work in jax and torch (biomed_jax/perf/matmul_floor.py, for the benchmarks)."""

import numpy as np
import pytest

from biomed_jax.models.config import ModelConfig
from biomed_jax.perf.matmul_floor import (decode_floor_ms, decode_floor_steps, layer_shapes, product_speeds,
                                          step_products, train_floor_steps)
from configs.models import model_preset


@pytest.mark.parametrize("preset", ["tiny", "tiny_llama"])
def test_decode_floor_computes_the_same_logits_in_both_libraries(preset):
    cfg = ModelConfig.from_dict(model_preset(preset))
    jax_step, torch_step = decode_floor_steps(cfg, batch=3, seed=0)
    jax_logits, torch_logits = np.asarray(jax_step()), torch_step().numpy()
    assert jax_logits.shape == torch_logits.shape == (3, cfg.vocab_size)
    np.testing.assert_allclose(jax_logits, torch_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("preset,attention", [("tiny", True), ("tiny_llama", True), ("tiny", False)])
def test_train_floor_computes_the_same_logits_and_gradients_in_both_libraries(preset, attention):
    # tiny_llama: SwiGLU and grouped kv heads
    cfg = ModelConfig.from_dict(model_preset(preset))
    jax_step, torch_step = train_floor_steps(cfg, batch=2, seq_len=8, seed=0, attention=attention)
    (jax_logits, jax_grad, jax_layers), (torch_logits, torch_grad, torch_layers) = jax_step(), torch_step()
    assert jax_logits.shape == (2 * 8, cfg.vocab_size)
    np.testing.assert_allclose(np.asarray(jax_logits), torch_logits.numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(jax_grad)).max() > 0
    np.testing.assert_allclose(np.asarray(jax_grad), torch_grad.numpy(), rtol=1e-4, atol=1e-5)
    for jax_layer, torch_layer in zip(jax_layers, torch_layers):  # torch's weights are (out, in)
        for jax_w, torch_w in zip(jax_layer, torch_layer):
            np.testing.assert_allclose(np.asarray(jax_w), torch_w.numpy().T, rtol=1e-3, atol=1e-5)
    _, again, _ = torch_step()  # gradients are reset between steps, not accumulated
    np.testing.assert_allclose(again.numpy(), torch_grad.numpy(), rtol=1e-6)


def test_decode_floor_times_both_libraries_and_rejects_unknown_dtypes():
    cfg = ModelConfig.from_dict(model_preset("tiny"))
    jax_ms, torch_ms = decode_floor_ms(cfg, batch=2, repeats=1, seed=0, dtype="bfloat16")
    assert jax_ms > 0 and torch_ms > 0
    with pytest.raises(ValueError, match="--floor_dtypes: 'int8'"):
        decode_floor_steps(cfg, batch=2, seed=0, dtype="int8")


def test_step_products_cover_every_training_matmul_with_its_flops():
    cfg = ModelConfig(**model_preset("tiny"))
    products = step_products(cfg, tokens=16)
    distinct_layer_shapes = len(dict.fromkeys(layer_shapes(cfg)))
    assert len(products) == 3 * distinct_layer_shapes + 3
    # forward, input grad and weight grad of one projection multiply the same three sizes
    for forward, input_grad, weight_grad in zip(*[iter(products[:-3])] * 3):
        assert sorted(forward[1:4]) == sorted(input_grad[1:4]) == sorted(weight_grad[1:4])
    assert products[-3][1:] == (16, cfg.d_model, cfg.vocab_size, True)
    rows = product_speeds(cfg, tokens=16, seed=0, repeats=1)
    assert [(r["product"], r["m"], r["k"], r["n"]) for r in rows] == [p[:4] for p in products]

"""Adaptation: classifier heads, qwix LoRA / int8 / nf4-LoRA and merging, the memory report."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from biomed_jax.adapt.heads import Classifier, option_scores
from biomed_jax.adapt.lora import LoraSettings, apply_lora, merge_lora, rewritable, trainable_filter
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import init_model
from configs.models import model_preset


def _tiny_classifier(scan_layers=False, remat="none", kernels="xla"):
    cfg = ModelConfig.from_dict(model_preset("tiny")).replace(scan_layers=scan_layers, remat=remat, kernels=kernels)
    return Classifier(init_model(cfg, jax.random.key(0)), 1, rngs=nnx.Rngs(0))


def test_classifier_reads_the_last_real_token_and_masks_padded_options():
    model = _tiny_classifier()
    tokens = jax.random.randint(jax.random.key(1), (2, 3, 16), 1, 256)
    lengths = jnp.array([[5, 9, 16], [3, 3, 12]])
    noisy = jnp.where(jnp.arange(16) >= lengths[..., None], 7, tokens)  # different padding
    mask = jnp.array([[True, True, True], [True, True, False]])
    a, b = option_scores(model, tokens, lengths, mask), option_scores(model, noisy, lengths, mask)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert a[1, 2] < -1e30 and bool(jnp.all(jnp.isfinite(a[0])))


@pytest.mark.parametrize("method", ["lora", "int8_lora", "nf4_lora"])
def test_lora_trains_only_adapters_and_merges_exactly(method):
    model = _tiny_classifier(remat="full")
    tokens = jax.random.randint(jax.random.key(1), (2, 3, 16), 0, 256)
    lengths = jnp.full((2, 3), 16)
    adapted = apply_lora(model, method, LoraSettings(rank=4, alpha=8.0, targets="attention_mlp"),
                         (tokens[:1], lengths[:1]))
    graphdef, trainable, frozen = nnx.split(adapted, trainable_filter(method), ...)
    trainable = nnx.to_pure_dict(trainable)
    names = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(trainable)[0]}
    assert all("_lora_" in n or "'head'" in n for n in names)
    assert any("'q_proj'" in n for n in names) and any("'down_proj'" in n for n in names)
    if method != "lora":
        kernel = frozen["decoder"]["blocks"][0]["attn"]["q_proj"]["kernel"]
        assert jax.tree.leaves(kernel)[0].dtype == {"int8_lora": jnp.int8, "nf4_lora": jnp.uint4}[method]

    def loss(params):
        return jnp.mean(nnx.merge(graphdef, params, frozen)(tokens, lengths) ** 2)

    frozen_before = jax.tree.map(np.asarray, nnx.to_pure_dict(frozen))
    for _ in range(3):
        grads = jax.jit(jax.grad(loss))(trainable)
        trainable = jax.tree.map(lambda p, g: p - 0.05 * g, trainable, grads)
    b = trainable["decoder"]["blocks"][0]["attn"]["q_proj"]["kernel_lora_b"]
    assert float(jnp.abs(b).max()) > 0   # B starts at zero: the adapters did move
    jax.tree.map(np.testing.assert_array_equal, frozen_before, nnx.to_pure_dict(frozen))

    out = nnx.merge(graphdef, trainable, frozen)(tokens, lengths)
    merged = merge_lora(nnx.merge(graphdef, trainable, frozen), LoraSettings(rank=4, alpha=8.0))
    plain = nnx.merge(nnx.graphdef(model), merged)
    np.testing.assert_allclose(plain(tokens, lengths), out, atol=2e-4)


def test_lora_needs_an_unscanned_model_on_the_xla_kernels_and_a_target_that_matches():
    tokens, lengths = jnp.zeros((1, 1, 8), jnp.int32), jnp.full((1, 1), 8)
    for model in (_tiny_classifier(scan_layers=True), _tiny_classifier(kernels="cpu")):
        with pytest.raises(ValueError, match="unscanned model with the xla kernels"):
            apply_lora(model, "lora", LoraSettings(), (tokens, lengths))
    with pytest.raises(ValueError, match="matched no projection"):
        apply_lora(_tiny_classifier(), "lora", LoraSettings(targets=".*no_such_proj"), (tokens, lengths))
    with pytest.raises(ValueError, match="method must be one of"):
        apply_lora(_tiny_classifier(), "qlora", LoraSettings(), (tokens, lengths))


def test_memory_report_counts_adapters_and_quantized_bytes_exactly():
    from biomed_jax.adapt.memory import _report_for, memory_report

    cfg = ModelConfig.from_dict(model_preset("tiny_llama")).replace(n_layers=3)
    settings = LoraSettings(rank=4, targets="attention_mlp")
    d, f, q, kv = cfg.d_model, cfg.d_ff, cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    per_layer = 4 * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + f) + (f + d))
    lora = memory_report(cfg, "lora", settings)
    assert lora["trainable_params"] == 3 * per_layer
    assert lora["optimizer_bytes"] >= 2 * lora["trainable_bytes"]
    full = memory_report(cfg, "full", settings)
    assert full["trainable_params"] == sum(x.size for x in jax.tree.leaves(nnx.state(init_model(
        cfg.replace(scan_layers=False), jax.random.key(0)), nnx.Param)))
    int8, nf4 = memory_report(cfg, "int8_lora", settings), memory_report(cfg, "nf4_lora", settings)
    assert nf4["frozen_bytes"] < int8["frozen_bytes"] < lora["frozen_bytes"] == full["trainable_bytes"]
    # The 1-and-2-layer extrapolation equals tracing all three layers.
    direct = _report_for(rewritable(cfg).replace(remat="none"), "int8_lora", settings)
    assert {k: int8[k] for k in direct} == direct

"""The decoder: parameter counts of the paper presets, causality, packing, layouts, remat, GQA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from biomed_jax.kernels.cpu import blocked_attention
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import Decoder, abstract_model, init_model, stack_layers, unstack_layers
from biomed_jax.models.info import model_info
from configs.models import model_preset

FAMILIES = ("tiny", "tiny_llama")


def make_model(preset: str, seed: int = 0, **changes) -> Decoder:
    cfg = ModelConfig.from_dict({**model_preset(preset), "dtype": "float32", **changes})
    return init_model(cfg, jax.random.key(seed))


def params_of(model: Decoder) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def jitted(model: Decoder):
    """model(tokens, ...) compiled once: eager op-by-op execution is far slower on CPU."""
    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda state, tokens, **kw: nnx.merge(graphdef, state)(tokens, **kw))
    return lambda tokens, **kw: apply(state, tokens, **kw)


def random_tokens(shape, seed=0, vocab=256):
    return jax.random.randint(jax.random.key(seed), shape, 1, vocab, dtype=jnp.int32)


@pytest.mark.parametrize("preset,expected", [
    ("biomedlm_2p7b", 2_594_247_680),
    ("gpt2_125m", 124_439_808),
    ("llama2_7b", 6_738_415_616),
    ("llama2_70b", 68_976_648_192),
])
def test_preset_parameter_counts_match_hugging_face(preset, expected):
    info = model_info(ModelConfig.from_dict(model_preset(preset)))
    assert info["n_params"] == expected
    assert info["param_bytes"] == 4 * expected


def test_flops_per_token_formula_for_gpt2_small():
    cfg = ModelConfig.from_dict(model_preset("gpt2_125m"))
    info = model_info(cfg, seq_len=1024)
    # Non-embedding = total - token embedding (50257 x 768) - learned positions (1024 x 768).
    n_non_emb = 124_439_808 - 50257 * 768 - 1024 * 768
    assert info["n_params_non_embedding"] == n_non_emb
    assert info["flops_per_token"] == 6 * n_non_emb + 12 * 12 * 768 * 1024


@pytest.mark.parametrize("preset", FAMILIES)
def test_future_tokens_do_not_change_past_logits(preset):
    model = jitted(make_model(preset))
    tokens = random_tokens((2, 16))
    changed = tokens.at[:, 10:].set((tokens[:, 10:] + 7) % 255 + 1)
    a, b = model(tokens), model(changed)
    np.testing.assert_allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not np.allclose(a[:, 10:], b[:, 10:], atol=1e-3)


@pytest.mark.parametrize("preset", FAMILIES)
def test_packed_documents_do_not_attend_across_segments(preset):
    """A document packed after another gives the same logits as that document alone."""
    model = jitted(make_model(preset))
    doc_a, doc_b = random_tokens((1, 6), seed=1), random_tokens((1, 10), seed=2)
    packed = jnp.concatenate([doc_a, doc_b], axis=1)
    segment_ids = jnp.array([[1] * 6 + [2] * 10], jnp.int32)
    positions = jnp.array([list(range(6)) + list(range(10))], jnp.int32)
    packed_logits = model(packed, positions=positions, segment_ids=segment_ids)
    np.testing.assert_allclose(packed_logits[:, 6:], model(doc_b), atol=1e-5)
    np.testing.assert_allclose(packed_logits[:, :6], model(doc_a), atol=1e-5)
    unmasked = model(packed, positions=positions)
    assert not np.allclose(unmasked[:, 6:], model(doc_b), atol=1e-3)


@pytest.mark.parametrize("preset", FAMILIES)
def test_scanned_and_per_layer_models_compute_the_same_function(preset):
    scanned = make_model(preset, scan_layers=True)
    looped = make_model(preset, scan_layers=False)
    nnx.update(looped, unstack_layers(params_of(scanned)))
    tokens = random_tokens((2, 12))
    np.testing.assert_allclose(jitted(scanned)(tokens), jitted(looped)(tokens), atol=1e-5)
    back = stack_layers(params_of(looped))
    jax.tree.map(np.testing.assert_array_equal, back, params_of(scanned))


# The unscanned loop in make test time only through other tests; its remat check is slow.
@pytest.mark.parametrize("scan_layers", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_remat_policies_keep_loss_and_gradients(scan_layers):
    base = make_model("tiny_llama", scan_layers=scan_layers)
    tokens = random_tokens((2, 12))

    def loss_and_grads(remat_name):
        graphdef, _ = nnx.split(abstract_model(base.cfg.replace(remat=remat_name)))
        loss = lambda p: nnx.merge(graphdef, p)(tokens).std()
        return jax.jit(jax.value_and_grad(loss))(params_of(base))

    loss_ref, grads_ref = loss_and_grads("none")
    for remat in ("full", "minimal", "save_qkv_proj", "save_attention_out"):
        loss, grads = loss_and_grads(remat)
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-6, err_msg=remat)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, err_msg=remat), grads, grads_ref)


def test_grouped_query_attention_equals_mha_with_repeated_kv_heads():
    gqa = make_model("tiny_llama", n_heads=4, n_kv_heads=2)
    mha = make_model("tiny_llama", n_heads=4, n_kv_heads=4)
    params = params_of(gqa)
    attn = dict(params["blocks"]["attn"])
    for name in ("k_proj", "v_proj"):  # (layers, d, kv_heads, head_dim): each kv head serves 2 q heads
        attn[name] = {"kernel": jnp.repeat(attn[name]["kernel"], 2, axis=2)}
    nnx.update(mha, {**params, "blocks": {**params["blocks"], "attn": attn}})
    tokens = random_tokens((2, 12))
    np.testing.assert_allclose(jitted(gqa)(tokens), jitted(mha)(tokens), atol=1e-5)


@pytest.mark.parametrize("preset", [pytest.param("tiny", marks=pytest.mark.slow),  # 20 s; LoRA tests run
                                    "tiny_llama"])                                 # gpt2 on xla kernels
def test_cpu_and_xla_kernels_are_the_same_model(preset):
    """model.kernels picks how the model runs, not what it computes: with the same parameters the cpu
    kernels (kernels/cpu) and the plain ops give the same loss and gradients, packed segments included."""
    cpu_model = make_model(preset, kernels="cpu")
    tokens = random_tokens((2, 40))
    segment_ids = jnp.asarray([[0] * 15 + [1] * 25, [0] * 40])

    def loss_and_grads(kernels, attention):
        graphdef, _ = nnx.split(abstract_model(cpu_model.cfg.replace(kernels=kernels, attention=attention)))
        loss = lambda p: nnx.merge(graphdef, p)(tokens, segment_ids=segment_ids).std()  # noqa: E731
        return jax.jit(jax.value_and_grad(loss))(params_of(cpu_model))

    want_loss, want_grads = loss_and_grads("cpu", "blocked")
    for kernels, attention in (("xla", "xla"), ("cpu", "xla")):
        got_loss, got_grads = loss_and_grads(kernels, attention)
        np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got_grads, want_grads)


def test_auto_kernels_and_attention_resolve_per_backend_and_are_checked():
    """The suite runs on CPU (conftest.py): there `auto` means the cpu kernels and their blocked attention."""
    cfg = ModelConfig.from_dict(model_preset("tiny"))
    assert cfg.resolved() == {"backend": "cpu", "dtype": "float32", "kernels": "cpu", "attention": "blocked"}
    assert cfg.replace(kernels="xla").resolved()["attention"] == "xla"
    assert cfg.replace(dtype="bfloat16", attention="cudnn").resolved()["attention"] == "cudnn"
    with pytest.raises(ValueError, match=r"model.kernels must be one of \['auto', 'xla', 'cpu'\], got 'gpu'"):
        cfg.replace(kernels="gpu")


@pytest.mark.parametrize("seq, n_heads, n_kv_heads", [(260, 4, 2), (17, 2, 1)])
def test_blocked_causal_attention_equals_full_attention_with_its_gradients(seq, n_heads, n_kv_heads):
    """kernels/cpu/attention.py skips the causal upper triangle block by block (260 tokens: 3 query blocks):
    same outputs and gradients as jax.nn.dot_product_attention, with and without packed segments."""

    keys = jax.random.split(jax.random.key(0), 5)
    q = jax.random.normal(keys[0], (2, seq, n_heads, 8))
    k, v = (jax.random.normal(key, (2, seq, n_kv_heads, 8)) for key in keys[1:3])
    segments = jnp.cumsum(jax.random.uniform(keys[3], (2, seq)) < 0.03, axis=1)
    weights = jax.random.normal(keys[4], q.shape)
    for segment_ids in (None, segments):
        mask = None if segment_ids is None else (segment_ids[:, :, None] == segment_ids[:, None, :])[:, None]

        def reference(q, k, v):
            return jnp.sum(weights * jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True))

        def blocked(q, k, v):
            return jnp.sum(weights * blocked_attention(q, k, v, segment_ids))

        (got_sum, got_grads), (want_sum, want_grads) = (
            jax.jit(jax.value_and_grad(f, (0, 1, 2)))(q, k, v) for f in (blocked, reference))
        np.testing.assert_allclose(got_sum, want_sum, atol=1e-4)
        for got, want in zip(got_grads, want_grads):
            np.testing.assert_allclose(got, want, atol=2e-5)


def test_bfloat16_attention_gradients_stay_within_half_a_percent_of_float32():
    """The blocked attention keeps bf16 probabilities for its backward pass: its gradients' relative error
    against jax.nn.dot_product_attention in float32 stays at the level bf16 operands give anyway."""

    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(key, (2, 256, 4, 32)) for key in keys[:3])
    weights = jax.random.normal(keys[3], q.shape)
    want = jax.grad(lambda q, k, v: jnp.sum(weights * jax.nn.dot_product_attention(q, k, v, is_causal=True)),
                    (0, 1, 2))(q, k, v)
    bf16 = lambda x: x.astype(jnp.bfloat16)
    got = jax.jit(jax.grad(lambda q, k, v: jnp.sum(weights * blocked_attention(bf16(q), bf16(k), bf16(v))),
                           (0, 1, 2)))(q, k, v)
    for g, w in zip(got, want):
        assert g.dtype == jnp.float32
        assert float(jnp.linalg.norm(g - w) / jnp.linalg.norm(w)) < 0.006


def test_bf16_compute_keeps_fp32_params_and_logits():
    model = make_model("tiny", dtype="bfloat16")
    logits = jitted(model)(random_tokens((2, 8)))
    assert logits.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params_of(model)))
    reference = jitted(make_model("tiny", dtype="float32"))(random_tokens((2, 8)))
    np.testing.assert_allclose(logits, reference, atol=5e-2)


def test_gpt2_family_ties_embeddings_and_llama_family_does_not():
    gpt2, llama = params_of(make_model("tiny")), params_of(make_model("tiny_llama"))
    assert "lm_head" not in gpt2 and "position_embed" in gpt2
    assert gpt2["blocks"]["attn"]["q_proj"]["bias"].shape == (2, 4, 16)
    assert llama["lm_head"].shape == (64, 256) and "position_embed" not in llama
    assert "bias" not in llama["blocks"]["attn"]["q_proj"]
    assert set(llama["blocks"]["mlp"]) == {"gate_proj", "up_proj", "down_proj"}


@pytest.mark.parametrize("changes,field", [
    (dict(d_model=66), "model.d_model"),
    (dict(n_kv_heads=3), "model.n_heads"),
    (dict(norm="batchnorm"), "model.norm"),
    (dict(remat="sometimes"), "model.remat"),
    (dict(vocab_size=0), "model.vocab_size"),
    (dict(d_modle=64), "d_modle"),
])
def test_invalid_model_configs_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig.from_dict({**model_preset("tiny"), **changes})

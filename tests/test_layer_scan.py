"""kernels/cpu/layer_scan.py: jax.lax.scan's values and gradients, with 16-bit residuals stacked as integers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from biomed_jax.kernels import cpu
from biomed_jax.models.decoder import abstract_model
from biomed_jax.kernels.cpu.layer_scan import scan_layers
from test_model import make_model, params_of, random_tokens


def plain_scan(body, carry, layers, consts=()):
    return jax.lax.scan(lambda c, layer: (body(layer, c, *consts), None), carry, layers)[0]


@pytest.mark.parametrize("preset,dtype,remat", [
    pytest.param("tiny", "float32", "none", marks=pytest.mark.slow),   # the three others cover both
    ("tiny_llama", "bfloat16", "none"),                               # families, dtypes and remat
    ("tiny", "bfloat16", "save_attention_out"),
    ("tiny_llama", "float32", "full")])
def test_decoder_gradients_equal_those_through_jax_lax_scan(monkeypatch, preset, dtype, remat):
    model = make_model(preset, dtype=dtype, remat=remat)
    tokens = random_tokens((2, 12))
    segment_ids = jnp.asarray([[0] * 5 + [1] * 7, [0] * 12])
    graphdef, _ = nnx.split(abstract_model(model.cfg))

    def loss(params):
        return nnx.merge(graphdef, params)(tokens, segment_ids=segment_ids).std()

    got = jax.jit(jax.value_and_grad(loss))(params_of(model))
    monkeypatch.setattr(cpu, "scan_layers", plain_scan)   # what the decoder calls with the cpu kernels
    want = jax.jit(jax.value_and_grad(loss))(params_of(model))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got[1], want[1])


def _stacked_residuals(scan, dtype):
    """Avals of the arrays the forward scan of a 3-layer MLP stack keeps for the backward pass."""
    kernels = jnp.full((3, 8, 8), 0.1, jnp.float32)
    x = jnp.ones((4, 8), dtype)

    def body(kernel, c, offset):
        return jnp.tanh(jnp.dot(c, kernel.astype(c.dtype)) + offset.astype(c.dtype)).astype(c.dtype)

    loss = lambda kernels, x: jnp.sum(scan(body, x, kernels, (jnp.arange(8),)).astype(jnp.float32))
    jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(kernels, x)
    scans = [eqn for eqn in jaxpr.jaxpr.eqns if eqn.primitive.name == "scan"]
    forward = scans[0]
    return [v.aval for v in forward.outvars if v.aval.ndim and v.aval.shape[0] == 3]


def test_sixteen_bit_residuals_are_stacked_as_integers():
    plain = _stacked_residuals(plain_scan, jnp.bfloat16)
    assert any(aval.dtype == jnp.bfloat16 for aval in plain)  # control: jax stacks bf16 residuals as bf16
    ours = _stacked_residuals(scan_layers, jnp.bfloat16)
    assert ours and not any(aval.dtype in (jnp.bfloat16, jnp.float16) for aval in ours)
    assert any(aval.dtype == jnp.uint16 for aval in ours)


def test_scan_layers_equals_lax_scan_with_consts():
    kernels = jax.random.normal(jax.random.key(0), (3, 8, 8)) * 0.3
    x = jax.random.normal(jax.random.key(1), (4, 8))
    body = lambda kernel, c, offset: jnp.tanh(c @ kernel + offset)
    offset = jnp.arange(8.0)
    value, grads = jax.value_and_grad(lambda k, x: scan_layers(body, x, k, (offset,)).sum(), argnums=(0, 1))(kernels, x)
    want_value, want_grads = jax.value_and_grad(lambda k, x: plain_scan(body, x, k, (offset,)).sum(),
                                                argnums=(0, 1))(kernels, x)
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    for a, b in zip(grads, want_grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

"""models/lean_ops: the same values and derivatives as the formulas they replace, with fewer saved arrays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals

from biomed_jax.models.lean_ops import gelu_tanh, layer_norm, rms_norm, swiglu


def saved_arrays_of_shape(capsys, f, args, shape: str) -> int:
    """How many arrays of `shape` (e.g. 'f32[4,32]') the backward pass of f keeps."""
    print_saved_residuals(f, *args)
    return sum(line.startswith(shape + " ") for line in capsys.readouterr().out.splitlines())


def test_gelu_tanh_equals_jax_gelu_in_value_and_derivatives():
    x = jnp.linspace(-8.0, 8.0, 2001)
    reference = lambda v: jax.nn.gelu(v, approximate=True)
    np.testing.assert_allclose(gelu_tanh(x), reference(x), atol=1e-7)
    for derivative in (jax.grad, lambda f: jax.grad(jax.grad(f))):
        np.testing.assert_allclose(jax.vmap(derivative(gelu_tanh))(x), jax.vmap(derivative(reference))(x), atol=2e-6)
    _, tangent = jax.jvp(gelu_tanh, (x,), (jnp.full_like(x, 2.0),))
    np.testing.assert_allclose(tangent, 2 * jax.vmap(jax.grad(reference))(x), atol=2e-6)


def test_gelu_mlp_keeps_two_hidden_arrays_for_its_backward_pass(capsys):
    """gelu's derivative and the down projection's input; the composed formula keeps six."""
    x, up, down = jnp.ones((4, 8)), jnp.ones((8, 32)), jnp.ones((32, 8))
    mlp = lambda gelu: lambda up, down: (gelu(x @ up) @ down).sum()
    assert saved_arrays_of_shape(capsys, mlp(gelu_tanh), (up, down), "f32[4,32]") == 2
    assert saved_arrays_of_shape(capsys, mlp(lambda v: jax.nn.gelu(v, approximate=True)), (up, down), "f32[4,32]") == 6


def test_swiglu_equals_silu_times_up_in_value_and_derivatives_and_keeps_three_arrays(capsys):
    gate, up = (jax.random.normal(jax.random.PRNGKey(i), (4, 32)) * 4 for i in (0, 1))
    reference = lambda g, u: jax.nn.silu(g) * u
    np.testing.assert_allclose(swiglu(gate, up), reference(gate, up), rtol=1e-6, atol=1e-6)
    weights = jax.random.normal(jax.random.PRNGKey(2), gate.shape)
    for lean_grad, reference_grad in zip(*(jax.grad(lambda g, u: (f(g, u) * weights).sum(), (0, 1))(gate, up)
                                           for f in (swiglu, reference))):
        np.testing.assert_allclose(lean_grad, reference_grad, rtol=1e-5, atol=1e-5)
    x, w_gate, w_up, down = jnp.ones((4, 8)), jnp.ones((8, 32)), jnp.ones((8, 32)), jnp.ones((32, 8))
    mlp = lambda f: lambda w_gate, w_up, down: (f(x @ w_gate, x @ w_up) @ down).sum()
    # two for swiglu's backward, and the down projection's input
    assert saved_arrays_of_shape(capsys, mlp(swiglu), (w_gate, w_up, down), "f32[4,32]") == 3
    assert saved_arrays_of_shape(capsys, mlp(reference), (w_gate, w_up, down), "f32[4,32]") == 6


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_norms_equal_flax_in_value_and_gradients_and_keep_one_array(norm, capsys):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 64)) * 3 + 1
    scale, bias = jax.random.normal(jax.random.PRNGKey(1), (64,)), jax.random.normal(jax.random.PRNGKey(2), (64,))
    weights = jax.random.normal(jax.random.PRNGKey(3), x.shape)
    mean = lambda v: v.mean(-1, keepdims=True)
    if norm == "layernorm":
        lean = lambda x, s, b: layer_norm(x, s, b, 1e-5)
        formula = lambda x, s, b: (x - mean(x)) / jnp.sqrt(mean((x - mean(x)) ** 2) + 1e-5) * s + b
        module = nnx.LayerNorm(64, epsilon=1e-5, use_fast_variance=False, rngs=nnx.Rngs(0))
        module.bias[...] = bias
    else:
        lean = lambda x, s, b: rms_norm(x, s, 1e-5) + b
        formula = lambda x, s, b: x / jnp.sqrt(mean(x * x) + 1e-5) * s + b
        module = nnx.RMSNorm(64, epsilon=1e-5, rngs=nnx.Rngs(0))
        bias = jnp.zeros(64)
    module.scale[...] = scale
    np.testing.assert_array_equal(lean(x, scale, bias), module(x))  # bit for bit what flax computes
    for forward, backward in zip(*(jax.grad(lambda *a: (f(*a) * weights).sum(), (0, 1, 2))(x, scale, bias)
                                   for f in (lean, formula))):
        np.testing.assert_allclose(forward, backward, atol=5e-6, rtol=1e-5)
    lean_loss = lambda x: (lean(x, scale, bias) * weights[0, 0]).sum()
    flax_loss = lambda x: (module(x) * weights[0, 0]).sum()
    assert saved_arrays_of_shape(capsys, lean_loss, (x,), "f32[2,5,64]") == 1  # the normalized input
    assert saved_arrays_of_shape(capsys, flax_loss, (x,), "f32[2,5,64]") == 3


def test_bfloat16_norm_returns_bfloat16_values_and_gradients():
    x = (jax.random.normal(jax.random.PRNGKey(0), (4, 32)) * 2).astype(jnp.bfloat16)
    scale, bias = jnp.ones(32, jnp.bfloat16), jnp.zeros(32, jnp.bfloat16)
    module = nnx.LayerNorm(32, epsilon=1e-5, use_fast_variance=False, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = layer_norm(x, scale, bias, 1e-5)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(module(x), np.float32))
    grad = jax.grad(lambda x: layer_norm(x, scale, bias, 1e-5).astype(jnp.float32).sum())(x)
    assert grad.dtype == jnp.bfloat16

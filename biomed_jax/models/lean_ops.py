"""GELU, SwiGLU, softmax and the norms with hand-written derivatives, so the backward pass keeps few arrays.

Differentiating these formulas op by op keeps their intermediates for the backward pass: GELU five
(tokens, d_ff) arrays per layer, SwiGLU five, masked softmax three score-sized ones, flax's LayerNorm
three (tokens, d_model) ones. Each is written in the forward pass and read in the backward, and with scanned
layers also zero-filled once for the whole stack. The rules below keep one array each (GELU's
derivative, softmax's output, the normalized input; two for SwiGLU) and compute the same values: the gpt2_125m
training step at 2 x 512 needs 1.67 GB of temporary memory instead of 2.63 (experiments/bench_train.py).
GELU, SwiGLU and softmax are custom_jvp rules (forward mode works too); the norms are a custom_vjp, the only
way to keep exactly the arrays named (see _normalize_fwd).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


@jax.custom_jvp
def gelu_tanh(x: jax.Array) -> jax.Array:
    """jax.nn.gelu(x, approximate=True) (GPT-2's `gelu_new`); the backward pass keeps its derivative only."""
    return jax.nn.gelu(x, approximate=True)


@gelu_tanh.defjvp
def _gelu_tanh_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    t = jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    derivative = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    return 0.5 * x * (1 + t), derivative * x_dot


@jax.custom_jvp
def swiglu(gate: jax.Array, up: jax.Array) -> jax.Array:
    """jax.nn.silu(gate) * up (Llama's MLP); the backward pass keeps two arrays, not five."""
    return jax.nn.silu(gate) * up


@swiglu.defjvp
def _swiglu_jvp(primals, tangents):
    (gate, up), (gate_dot, up_dot) = primals, tangents
    sigmoid = jax.nn.sigmoid(gate)
    silu = gate * sigmoid
    d_silu = sigmoid * (1 + gate * (1 - sigmoid))
    return silu * up, (d_silu * up) * gate_dot + silu * up_dot


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """jax.nn.softmax(x, axis); the backward pass keeps the output only."""
    unnormalized = jnp.exp(x - jax.lax.stop_gradient(x.max(axis, keepdims=True)))
    return unnormalized / unnormalized.sum(axis, keepdims=True)


@softmax.defjvp
def _softmax_jvp(axis, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    y = softmax(x, axis)
    return y, y * (x_dot - (y * x_dot).sum(axis, keepdims=True))


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float) -> jax.Array:
    """(x - mean) / sqrt(var + epsilon) * scale + bias over the last axis; statistics in float32."""
    return _normalize(x, scale, bias, epsilon, True)


def rms_norm(x: jax.Array, scale: jax.Array, epsilon: float) -> jax.Array:
    """x / sqrt(mean(x^2) + epsilon) * scale over the last axis; statistics in float32."""
    return _normalize(x, scale, jnp.zeros((), scale.dtype), epsilon, False)


def _statistics(x, epsilon, center):
    """x in float32 (centred for LayerNorm) and 1 / sqrt(var + epsilon), as flax.nnx's norms compute them."""
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if center:
        x = x - x.mean(-1, keepdims=True)
    return x, jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _normalize(x, scale, bias, epsilon, center):
    centred, inv_std = _statistics(x, epsilon, center)
    return (centred * (inv_std * scale) + bias).astype(x.dtype)


def _normalize_fwd(x, scale, bias, epsilon, center):
    # A custom_vjp, not a jvp rule, so that exactly these are kept: a differentiated jvp rule also keeps
    # inv_std broadcast to x's full shape. The empty array carries x's dtype.
    centred, inv_std = _statistics(x, epsilon, center)
    y = (centred * (inv_std * scale) + bias).astype(x.dtype)
    return y, (centred * inv_std, inv_std, scale, bias, jnp.zeros((0,), x.dtype))


def _normalize_bwd(epsilon, center, residuals, grad):
    normalized, inv_std, scale, bias, x_dtype = residuals
    grad = grad.astype(normalized.dtype)
    leading = tuple(range(grad.ndim - 1))
    d_scale = (grad * normalized).sum(leading).astype(scale.dtype)
    d_bias = grad.sum(leading).astype(bias.dtype) if center else jnp.zeros_like(bias)
    grad = grad * scale
    if center:
        grad = grad - grad.mean(-1, keepdims=True)
    d_x = inv_std * (grad - normalized * (grad * normalized).mean(-1, keepdims=True))
    return d_x.astype(x_dtype.dtype), d_scale, d_bias


_normalize.defvjp(_normalize_fwd, _normalize_bwd)

"""GELU, SwiGLU and the norms with hand-written derivatives, so the backward pass keeps few arrays.

Differentiating these formulas op by op keeps their intermediates for the backward pass: GELU five
(tokens, d_ff) arrays per layer, SwiGLU five, flax's LayerNorm three (tokens, d_model) ones. Each is
written in the forward pass and read in the backward, and with scanned layers also zero-filled once for
the whole stack. The rules below keep one array each (GELU's derivative, the normalized input; two for
SwiGLU) and compute the same values (the blocked attention has its own backward, kernels/cpu/attention.py).
GELU and SwiGLU are custom_jvp rules (forward mode works too); the norms are a custom_vjp, the only
way to keep exactly the arrays named (see _normalize_fwd).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _f32(x: jax.Array) -> jax.Array:
    """x in (at least) float32: the elementwise formulas compute in float32 and round once at the end, as
    torch's do for bfloat16 tensors (op by op, XLA:CPU would round to bfloat16 after every operation)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


@jax.custom_jvp
def gelu_tanh(x: jax.Array) -> jax.Array:
    """jax.nn.gelu(x, approximate=True) (GPT-2's `gelu_new`); the backward pass keeps its derivative only."""
    return jax.nn.gelu(_f32(x), approximate=True).astype(x.dtype)


@gelu_tanh.defjvp
def _gelu_tanh_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    x32 = _f32(x)
    t = jnp.tanh(_SQRT_2_OVER_PI * (x32 + 0.044715 * x32**3))
    derivative = 0.5 * (1 + t) + 0.5 * x32 * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x32 * x32)
    return (0.5 * x32 * (1 + t)).astype(x.dtype), derivative.astype(x.dtype) * x_dot


@jax.custom_jvp
def swiglu(gate: jax.Array, up: jax.Array) -> jax.Array:
    """jax.nn.silu(gate) * up (Llama's MLP); the backward pass keeps two arrays, not five."""
    return (jax.nn.silu(_f32(gate)) * _f32(up)).astype(gate.dtype)


@swiglu.defjvp
def _swiglu_jvp(primals, tangents):
    (gate, up), (gate_dot, up_dot) = primals, tangents
    gate32, up32 = _f32(gate), _f32(up)
    sigmoid = jax.nn.sigmoid(gate32)
    silu = gate32 * sigmoid
    d_silu = sigmoid * (1 + gate32 * (1 - sigmoid))
    dtype = gate.dtype
    return ((silu * up32).astype(dtype),
            (d_silu * up32).astype(dtype) * gate_dot + silu.astype(dtype) * up_dot)


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

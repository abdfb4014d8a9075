"""The projection matmul (activation x kernel), written so that XLA gets well-shaped products.

Two XLA:CPU habits cost a training step time, and both are fixed here without changing the math:
  - jnp.einsum hands contracted dims to XLA in alphabetical order, so 'btnh,nhd->btd' (o_proj)
    contracts (h, n) and XLA transposes the whole kernel on every call: `contract_in_order`.
  - A weight gradient contracts over the token axis, the major axis of both operands. XLA:CPU
    sends such a dot to Eigen with a transposed copy of the larger operand (for the MLP, the
    (tokens, d_ff) gradient). Transposing the (tokens, d_in) input once, explicitly, gives YNNPACK
    a plain (d_in, tokens) x (tokens, d_out) product: the gpt2_125m training step on CPU takes
    about 4% less CPU time (experiments/bench_train.py, alternating runs). GPU and TPU compilers
    take transposed operands natively, so this form is used on CPU only.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

# A module rewriter (qwix LoRA and quantisation) swaps jax.lax.dot_general (its code object, in
# qwix 0.1) while it runs a module; then the dot is left to it (its replacement may close over its
# own parameters, which a custom_vjp cannot differentiate).
_DOT_GENERAL = jax.lax.dot_general
_DOT_GENERAL_CODE = jax.lax.dot_general.__code__


def contract_in_order(subscripts: str, x: jax.Array, kernel: jax.Array, precision=None,
                      preferred_element_type=None, out_sharding=None) -> jax.Array:
    """jnp.einsum for 'input,kernel->output' projections, contracting dims handed to XLA in memory order.

    Same math as jnp.einsum; anything other than free-lhs-dims + free-rhs-dims output goes to it.
    A projection contracting x's trailing dims with the kernel's leading dims, in full precision,
    on CPU, with no rewriter intercepting dots, takes `projection` (its weight gradient from an
    explicitly transposed input).
    """
    lhs, rest = subscripts.split(",")
    rhs, out = rest.split("->")
    contracted = "".join(c for c in lhs if c in rhs and c not in out)
    free = [c for c in lhs if c not in contracted] + [c for c in rhs if c not in contracted]
    if "".join(free) != out or any(c in rhs for c in lhs if c in out):
        return jnp.einsum(subscripts, x, kernel, precision=precision, preferred_element_type=preferred_element_type,
                          out_sharding=out_sharding)
    n = len(contracted)
    if (lhs.endswith(contracted) and rhs.startswith(contracted) and precision is None
            and out_sharding is None and _transposed_grads_pay(x, kernel, preferred_element_type)):
        return projection(x, kernel, n)
    dims = ((tuple(lhs.index(c) for c in contracted), tuple(rhs.index(c) for c in contracted)), ((), ()))
    return jax.lax.dot_general(x, kernel, dims, precision=precision, preferred_element_type=preferred_element_type,
                               out_sharding=out_sharding)


def _transposed_grads_pay(a: jax.Array, b: jax.Array, preferred_element_type) -> bool:
    """On CPU, for same-dtype operands and no dot rewriter active (see _DOT_GENERAL_CODE)."""
    return (a.dtype == b.dtype and preferred_element_type in (None, a.dtype) and jax.default_backend() == "cpu"
            and jax.lax.dot_general is _DOT_GENERAL and _DOT_GENERAL.__code__ is _DOT_GENERAL_CODE)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def projection(x: jax.Array, kernel: jax.Array, n_contracted: int) -> jax.Array:
    """x (..., c1..cn) times kernel (c1..cn, f...) -> (..., f...); the weight gradient from x transposed."""
    n = n_contracted
    return jax.lax.dot_general(x, kernel, ((tuple(range(x.ndim - n, x.ndim)), tuple(range(n))), ((), ())))


def _projection_fwd(x, kernel, n_contracted):
    return projection(x, kernel, n_contracted), (x, kernel)


def _projection_bwd(n_contracted, residuals, grad):
    x, kernel = residuals
    d_in = math.prod(kernel.shape[:n_contracted])
    d_out = math.prod(kernel.shape[n_contracted:])
    grad_2d = grad.reshape(-1, d_out)
    kernel_2d = kernel.reshape(d_in, d_out)
    d_x = jax.lax.dot_general(grad_2d, kernel_2d, (((1,), (1,)), ((), ()))).reshape(x.shape)
    # The barrier keeps XLA from folding the transpose back into the dot's dimension numbers.
    x_t = jax.lax.optimization_barrier(x.reshape(-1, d_in).T)
    d_kernel = jnp.matmul(x_t, grad_2d).reshape(kernel.shape)
    return d_x, d_kernel


projection.defvjp(_projection_fwd, _projection_bwd)


"""Matrix products that accumulate in float32 and multiply in the compute dtype, forward and backward.

`einsum` is the mixed-precision product of the model: operands cast to the compute dtype (bfloat16 in
training), products accumulated and returned in float32, and a backward pass that multiplies in the
compute dtype too (the cotangent cast down, gradients accumulated in float32 and returned in each
operand's own dtype, so a float32 parameter gets a float32 gradient). jax's own rule for a dot with
preferred_element_type=float32 would instead multiply the float32 cotangent with the bfloat16 operand,
which XLA runs as a float32 product.

On CPU the layout matters more than the dtype. XLA:CPU hands a dot to YNNPACK (on Xeons with AMX,
bfloat16 products run at 1.4 TFLOP/s on two cores, five times float32) only if its lhs contracts its
trailing dims and its rhs its leading or its trailing dims, both row-major; every other bfloat16 dot is
upcast to float32 and run by Eigen. `contract` therefore lays the operands out physically first, picking
the roles and transposes that move the fewest bytes (a weight gradient transposes the activation, not
the tokens x d_ff gradient). A plain transpose would be folded back into the dot or given a column-major
layout by XLA; `_row_major` flattens it behind an optimization barrier so it stays a row-major copy.
It also sums a very long contraction (the LM head's input gradient, over the vocabulary) in chunks,
which YNNPACK runs faster. Layouts are planned where the operands are whole on one device: under a mesh
of several devices (sharding.activation_sharding) flattening a sharded array would gather it, so there
`contract` is jnp.einsum with float32 accumulation (the same products, in XLA's layouts).
The measurements behind each choice are in docs/performance.md ("Training step on CPU").

These are the products of `model.kernels = cpu` (models/config.py). They are custom_vjp rules, so a
qwix-rewritten model (LoRA, int8, nf4), whose dot_general closes over adapters of its own, runs the `xla`
kernels instead (biomed_jax/adapt/lora.py).
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np

from biomed_jax import sharding

_LONGEST_CONTRACTION = 16384  # longer single contractions are summed in chunks of _CONTRACTION_CHUNK
_CONTRACTION_CHUNK = 2048


def _parse(subscripts: str) -> tuple[str, str, str]:
    """'lhs,rhs->out' of a bilinear product: every index of each operand is in the other one or in out."""
    try:
        lhs, rest = subscripts.replace(" ", "").split(",")
        rhs, out = rest.split("->")
    except ValueError:
        raise ValueError(f"dots: {subscripts!r} is not of the form 'lhs,rhs->out'") from None
    for name, term in (("lhs", lhs), ("rhs", rhs), ("out", out)):
        if len(set(term)) != len(term):
            raise ValueError(f"dots: repeated index in the {name} of {subscripts!r}")
    if set(out) - set(lhs) - set(rhs) or set(lhs) - set(rhs) - set(out) or set(rhs) - set(lhs) - set(out):
        raise ValueError(f"dots: {subscripts!r} is not a bilinear product (an index is summed in one operand "
                         "only, or appears in the output alone); use jnp.einsum")
    return lhs, rhs, out


def _row_major(x: jax.Array, perm: tuple[int, ...]) -> jax.Array:
    """x transposed by perm as a row-major array XLA cannot fold back into the consuming dot."""
    if perm == tuple(range(x.ndim)):
        return x
    transposed = jnp.transpose(x, perm)
    return jax.lax.optimization_barrier(transposed.reshape(-1)).reshape(transposed.shape)


@functools.lru_cache(maxsize=None)
def _plan(lhs: str, rhs: str, out: str, sizes: tuple[tuple[str, int], ...], lhs_bytes: int, rhs_bytes: int):
    """The cheapest (swap, lhs perm, rhs perm, dot dims, output perm) for a YNNPACK-shaped product."""
    size = dict(sizes)
    best = None
    for swap in (False, True):
        first, second = (rhs, lhs) if swap else (lhs, rhs)
        first_bytes, second_bytes = (rhs_bytes, lhs_bytes) if swap else (lhs_bytes, rhs_bytes)
        batch = [c for c in first if c in second and c in out]
        contracted = [c for c in first if c in second and c not in out]
        first_free = [c for c in first if c not in second]
        second_free = [c for c in second if c not in first]
        first_order = batch + first_free + contracted
        # the rhs may contract its leading dims (after batch) or, transposed, its trailing ones
        second_order = batch + second_free + contracted
        rhs_transposed = list(second) == second_order
        if not rhs_transposed:
            second_order = batch + contracted + second_free
        out_order = batch + first_free + second_free
        cost = 0
        if list(first) != first_order:
            cost += math.prod(size[c] for c in first) * first_bytes
        if list(second) != second_order:
            cost += math.prod(size[c] for c in second) * second_bytes
        if list(out) != out_order:
            cost += math.prod(size[c] for c in out) * 4  # a float32 result
        nb, nf, nc = len(batch), len(first_free), len(contracted)
        if rhs_transposed:
            second_contracting = tuple(range(nb + len(second_free), nb + len(second_free) + nc))
        else:
            second_contracting = tuple(range(nb, nb + nc))
        dims = ((tuple(range(nb + nf, nb + nf + nc)), second_contracting), (tuple(range(nb)), tuple(range(nb))))
        plan = (cost, swap, tuple(first.index(c) for c in first_order), tuple(second.index(c) for c in second_order),
                dims, tuple(out_order.index(c) for c in out))
        if best is None or cost < best[0]:
            best = plan
    return best[1:]


def contract(subscripts: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """jnp.einsum(subscripts, a, b) accumulated and returned in float32 (forward only; see `einsum`)."""
    lhs, rhs, out = _parse(subscripts)
    if sharding.activation_mesh_size() > 1:
        return jnp.einsum(subscripts, a, b, preferred_element_type=jnp.float32)
    sizes = tuple(sorted({**dict(zip(lhs, a.shape)), **dict(zip(rhs, b.shape))}.items()))
    swap, first_perm, second_perm, dims, out_perm = _plan(lhs, rhs, out, sizes, a.dtype.itemsize, b.dtype.itemsize)
    first, second = (b, a) if swap else (a, b)
    first, second = _row_major(first, first_perm), _row_major(second, second_perm)
    (first_contracting, second_contracting), _ = dims
    depth = math.prod(first.shape[d] for d in first_contracting)
    if len(first_contracting) == 1 and depth > _LONGEST_CONTRACTION:
        # YNNPACK runs a very long contraction (the LM head's input gradient sums over the vocabulary)
        # at two thirds of the speed of the same product summed in chunks.
        axis_first, axis_second = first_contracting[0], second_contracting[0]
        chunks = [(start, min(start + _CONTRACTION_CHUNK, depth)) for start in range(0, depth, _CONTRACTION_CHUNK)]
        parts = [jax.lax.dot_general(jax.lax.slice_in_dim(first, start, stop, axis=axis_first),
                                     jax.lax.slice_in_dim(second, start, stop, axis=axis_second), dims,
                                     preferred_element_type=jnp.float32) for start, stop in chunks]
        y = functools.reduce(operator.add, parts)
    else:
        y = jax.lax.dot_general(first, second, dims, preferred_element_type=jnp.float32)
    if out_perm != tuple(range(y.ndim)):
        # The barrier keeps XLA from folding the transpose into the dot (which XLA:CPU cannot then run).
        y = jnp.transpose(jax.lax.optimization_barrier(y), out_perm)
    return y


def einsum(subscripts: str, a: jax.Array, b: jax.Array, dtype=None) -> jax.Array:
    """A bilinear einsum in float32 from operands cast to `dtype` (default: as they are), differentiable.

    The backward pass multiplies the cotangent, cast to `dtype`, with the cast operands and returns each
    gradient in its operand's own dtype.
    """
    _parse(subscripts)
    dtype = np.dtype(dtype or jnp.result_type(a, b))
    return _einsum(subscripts, dtype, a, b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _einsum(subscripts, dtype, a, b):
    return contract(subscripts, a.astype(dtype), b.astype(dtype))


def _einsum_fwd(subscripts, dtype, a, b):
    return _einsum(subscripts, dtype, a, b), (a, b)


def _einsum_bwd(subscripts, dtype, residuals, grad):
    a, b = residuals
    lhs, rhs, out = _parse(subscripts)
    grad = grad.astype(dtype)
    d_a = contract(f"{out},{rhs}->{lhs}", grad, b.astype(dtype)).astype(a.dtype)
    d_b = contract(f"{lhs},{out}->{rhs}", a.astype(dtype), grad).astype(b.dtype)
    return d_a, d_b


_einsum.defvjp(_einsum_fwd, _einsum_bwd)

"""The decoder's scanned layer loop, with a backward pass that stacks each layer's residuals itself.

jax.lax.scan stacks the residuals of every layer for the backward pass in their own dtype. XLA:CPU has
no bfloat16 dynamic-update-slice: it converts the whole stack to float32 and back for every layer it
writes, so a 12-layer bfloat16 step rewrote each residual stack 12 times (gpt2_125m at 2 x 512: 2.9 s
a step scanned against 2.1 s unscanned, benchmarks/bench_train.py). `scan_layers` keeps jax.vjp's
residuals of each layer instead, and stacks 16-bit floats as uint16 (an integer update is done in
place). Residuals that are the layer's own parameters (dots.einsum keeps its float32 kernel) are not
stacked, as jax.lax.scan does not stack them either: the backward pass reads the parameter stack.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

_PACKED = {np.dtype(jnp.bfloat16): jnp.uint16, np.dtype(jnp.float16): jnp.uint16}


def scan_layers(body: Callable, carry: jax.Array, layers: Any, consts: tuple[jax.Array, ...] = ()) -> jax.Array:
    """jax.lax.scan(lambda c, layer: (body(layer, c, *consts), None), carry, layers)[0].

    Differentiable in `carry` and `layers`; `consts` (positions, segment ids) are integer arrays that every
    layer reads and nobody differentiates. `body` must not close over other traced values.
    """
    return _scan(_Body(body), carry, layers, tuple(consts))


class _Body:
    """The layer function, plus where each of its vjp residuals lives (set while the forward pass traces)."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.layout = None


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(body: _Body, carry, layers, consts):
    return jax.lax.scan(lambda c, layer: (body.fn(layer, c, *consts), None), carry, layers)[0]


def _scan_fwd(body: _Body, carry, layers, consts):
    def step(c, layer):
        y, pullback = jax.vjp(lambda layer, c: body.fn(layer, c, *consts), layer, c)
        leaves, treedef = jax.tree.flatten(pullback)
        layer_leaves = jax.tree.leaves(layer)
        stacked, where = [], []
        for leaf in leaves:
            index = next((i for i, p in enumerate(layer_leaves) if leaf is p), None)
            if index is not None:
                where.append(("layer", index))
            elif not isinstance(leaf, jax.core.Tracer):
                where.append(("constant", leaf))
            else:
                dtype = np.dtype(leaf.dtype)
                packed = jax.lax.bitcast_convert_type(leaf, _PACKED[dtype]) if dtype in _PACKED else leaf
                where.append(("stacked", len(stacked), dtype))
                stacked.append(packed)
        body.layout = (treedef, where)
        return y, stacked

    out, stacked = jax.lax.scan(step, carry, layers)
    return out, (stacked, layers)


def _scan_bwd(body: _Body, residuals, d_out):
    stacked, layers = residuals
    treedef, where = body.layout

    def step(d_c, xs):
        layer, stacked_layer = xs
        layer_leaves = jax.tree.leaves(layer)
        leaves = []
        for place in where:
            if place[0] == "layer":
                leaves.append(layer_leaves[place[1]])
            elif place[0] == "constant":
                leaves.append(place[1])
            else:
                value, dtype = stacked_layer[place[1]], place[2]
                leaves.append(jax.lax.bitcast_convert_type(value, dtype) if dtype in _PACKED else value)
        d_layer, d_c = jax.tree.unflatten(treedef, leaves)(d_c)
        return d_c, d_layer

    d_carry, d_layers = jax.lax.scan(step, d_out, (layers, stacked), reverse=True)
    return d_carry, d_layers, None


_scan.defvjp(_scan_fwd, _scan_bwd)

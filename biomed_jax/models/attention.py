"""Causal self-attention over a whole sequence in plain XLA ops: the path for CPUs, TPUs and any GPU run
without cuDNN flash attention (model.attention='xla').

Two choices make it about twice as fast as jax.nn.dot_product_attention's XLA path on CPU (training
step of gpt2_125m at seq 512, see experiments/bench_train.py):
  - heads-major layout (batch, kv_heads, group, seq, head_dim) for the two batched matmuls, so XLA
    contracts contiguous memory instead of transposing inside each einsum;
  - queries in at most MAX_BLOCKS blocks, block i scored only against the keys up to its last query:
    the causal upper triangle is mostly never computed (about (n+1)/2n of the full scores for n blocks).
Grouped-query heads share their kv head by reshaping q (never repeating k, v). Scores and softmax are
float32; the probabilities are cast to v's dtype for the second matmul, as jax.nn.dot_product_attention does.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from biomed_jax.models.lean_ops import softmax

MIN_BLOCK = 128   # shorter query blocks make matmuls too small to run well
MAX_BLOCKS = 8    # more blocks unroll more code for little extra saving


def query_block_size(seq_len: int) -> int:
    return max(MIN_BLOCK, math.ceil(seq_len / MAX_BLOCKS))


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array | None = None) -> jax.Array:
    """q (batch, seq, heads, head_dim), k and v (batch, seq, kv_heads, head_dim) -> like q.

    With `segment_ids` (batch, seq) (packed documents) a query sees only keys of its own segment.
    """
    batch, seq, n_heads, head_dim = q.shape
    n_kv = k.shape[2]
    qh = q.reshape(batch, seq, n_kv, n_heads // n_kv, head_dim).transpose(0, 2, 3, 1, 4)
    kh, vh = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    scale = jnp.float32(head_dim ** -0.5)
    block = query_block_size(seq)
    outputs = []
    for start in range(0, seq, block):
        stop = min(start + block, seq)  # this block's queries see keys [0, stop)
        scores = jnp.einsum("bkgth,bksh->bkgts", qh[:, :, :, start:stop], kh[:, :, :stop],
                            preferred_element_type=jnp.float32) * scale
        visible = jnp.arange(start, stop)[:, None] >= jnp.arange(stop)[None, :]
        if segment_ids is not None:
            same = segment_ids[:, start:stop, None] == segment_ids[:, None, :stop]
            visible = (visible[None] & same)[:, None, None]
        # An additive mask: its gradient needs no saved predicate (jnp.where's keeps one per block).
        scores = scores + jnp.where(visible, 0.0, jnp.finfo(jnp.float32).min)
        probs = softmax(scores, axis=-1).astype(v.dtype)
        outputs.append(jnp.einsum("bkgts,bksh->bkgth", probs, vh[:, :, :stop], preferred_element_type=jnp.float32))
    out = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=3)
    return out.astype(q.dtype).transpose(0, 3, 1, 2, 4).reshape(batch, seq, n_heads, head_dim)

"""Blocked causal self-attention (`model.attention = blocked`, the `auto` choice with the cpu kernels):
XLA ops laid out and blocked for XLA:CPU, with a hand-written backward pass.

Three choices make it fast on CPU (training step of gpt2_125m at seq 512, benchmarks/bench_train.py):
  - heads-major layout (batch, kv_heads, group, seq, head_dim) for the batched matmuls, so XLA
    contracts contiguous memory instead of transposing inside each einsum;
  - queries in at most MAX_BLOCKS blocks, block i scored only against the keys up to its last query:
    the causal upper triangle is mostly never computed (about (n+1)/2n of the full scores for n blocks);
  - a hand-written backward pass (flash attention's, block by block): it keeps only the probabilities,
    in the compute dtype, and sums each block's key and value gradients in float32. Differentiated op by
    op, the float32 probabilities were kept as well, and every block's partial gradient was cast to the
    compute dtype, padded to the full key length and added in bfloat16. (bfloat16 probabilities: 7%
    off the bf16 gpt2_125m step on CPU; its attention gradients' error against float32 goes from 0.44%
    to 0.47%, tests/test_model.py.)
Grouped-query heads share their kv head by reshaping q (never repeating k, v). Scores, softmax and
every accumulation are float32; matmul operands are in the compute dtype (dots.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from biomed_jax.kernels.cpu import dots

MIN_BLOCK = 128   # shorter query blocks make matmuls too small to run well
MAX_BLOCKS = 8    # more blocks unroll more code for little extra saving


def query_block_size(seq_len: int) -> int:
    return max(MIN_BLOCK, math.ceil(seq_len / MAX_BLOCKS))


def blocked_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array | None = None) -> jax.Array:
    """q (batch, seq, heads, head_dim), k and v (batch, seq, kv_heads, head_dim) -> like q.

    With `segment_ids` (batch, seq) (packed documents) a query sees only keys of its own segment.
    """
    batch, seq, n_heads, head_dim = q.shape
    n_kv = k.shape[2]
    qh = q.reshape(batch, seq, n_kv, n_heads // n_kv, head_dim).transpose(0, 2, 3, 1, 4)
    kh, vh = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    if segment_ids is None:
        segment_ids = jnp.zeros((batch, seq), jnp.int32)
    out = _heads_major_attention(qh, kh, vh, segment_ids)
    return out.transpose(0, 3, 1, 2, 4).reshape(batch, seq, n_heads, head_dim)


def _blocks(seq: int) -> list[tuple[int, int]]:
    block = query_block_size(seq)
    return [(start, min(start + block, seq)) for start in range(0, seq, block)]


def _probabilities(qh, kh, segment_ids, start, stop):
    """Softmax of the scaled scores of queries [start, stop) over the keys they may see, [0, stop)."""
    scores = dots.einsum("bkgth,bksh->bkgts", qh[:, :, :, start:stop], kh[:, :, :stop])
    scores = scores * jnp.float32(qh.shape[-1] ** -0.5)
    visible = jnp.arange(start, stop)[:, None] >= jnp.arange(stop)[None, :]
    same = segment_ids[:, start:stop, None] == segment_ids[:, None, :stop]
    visible = (visible[None] & same)[:, None, None]
    scores = jnp.where(visible, scores, jnp.finfo(jnp.float32).min)
    scores = scores - jax.lax.stop_gradient(scores.max(-1, keepdims=True))
    unnormalized = jnp.exp(scores)
    return unnormalized / unnormalized.sum(-1, keepdims=True)


@jax.custom_vjp
def _heads_major_attention(qh, kh, vh, segment_ids):
    return _forward(qh, kh, vh, segment_ids)[0]


def _forward(qh, kh, vh, segment_ids):
    outputs, probabilities = [], []
    for start, stop in _blocks(qh.shape[3]):
        probs = _probabilities(qh, kh, segment_ids, start, stop)
        probs = probs.astype(vh.dtype)
        outputs.append(dots.einsum("bkgts,bksh->bkgth", probs, vh[:, :, :stop]))
        probabilities.append(probs)
    out = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=3)
    return out.astype(qh.dtype), probabilities


def _attention_fwd(qh, kh, vh, segment_ids):
    out, probabilities = _forward(qh, kh, vh, segment_ids)
    return out, (qh, kh, vh, segment_ids, probabilities)


def _attention_bwd(residuals, d_out):
    qh, kh, vh, segment_ids, probabilities = residuals
    dtype, scale = qh.dtype, jnp.float32(qh.shape[-1] ** -0.5)
    d_out = d_out.astype(dtype)
    seq = kh.shape[2]
    d_q, d_k, d_v = [], jnp.zeros(kh.shape, jnp.float32), jnp.zeros(vh.shape, jnp.float32)
    for (start, stop), kept in zip(_blocks(qh.shape[3]), probabilities):
        probs = kept.astype(jnp.float32)
        d_out_block = d_out[:, :, :, start:stop]
        d_probs = dots.contract("bkgth,bksh->bkgts", d_out_block, vh[:, :, :stop])
        d_scores = (probs * (d_probs - (probs * d_probs).sum(-1, keepdims=True)) * scale).astype(dtype)
        d_q.append(dots.contract("bkgts,bksh->bkgth", d_scores, kh[:, :, :stop]))
        pad = ((0, 0), (0, 0), (0, seq - stop), (0, 0))
        d_k = d_k + jnp.pad(dots.contract("bkgts,bkgth->bksh", d_scores, qh[:, :, :, start:stop]), pad)
        d_v = d_v + jnp.pad(dots.contract("bkgts,bkgth->bksh", probs.astype(dtype), d_out_block), pad)
    d_q = d_q[0] if len(d_q) == 1 else jnp.concatenate(d_q, axis=3)
    return d_q.astype(dtype), d_k.astype(kh.dtype), d_v.astype(vh.dtype), None


_heads_major_attention.defvjp(_attention_fwd, _attention_bwd)

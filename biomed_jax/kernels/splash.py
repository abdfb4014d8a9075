"""Splash attention, the Pallas TPU kernel MaxText trains with (`model.attention = splash`; the `auto`
choice on TPU): causal, packed documents kept apart by segment ids, grouped-query heads sharing their
key/value head inside the kernel (no repeat).

    out = splash_attention(q, k, v, segment_ids, block=512)   # q (batch, seq, heads, head_dim)

On TPU the kernel runs compiled; on any other backend it runs in Pallas interpret mode (correct and
slow: what the tests use to compare its values and gradients with the XLA attention on CPU). Under a
mesh (sharding.activation_sharding) it runs per shard through shard_map: batch over the batch axes,
heads over the tensor axis, the sequence whole.

Block sizes: `model.splash_block` for every forward and backward tile (MaxText's default, 512, serves
v4, v5e and v5p alike), cut to the sequence length; the sequence must be a multiple of it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from biomed_jax import sharding as shd


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array | None,
                     block: int = 512) -> jax.Array:
    """Causal attention of q (batch, seq, heads, head_dim) over k, v (batch, seq, kv_heads, head_dim),
    within segments when segment_ids (batch, seq) are given; scale 1/sqrt(head_dim)."""
    batch, seq, heads, head_dim = q.shape
    tile = min(block, seq)
    if seq % tile:
        raise ValueError(f"splash attention needs the sequence length ({seq}) to be a multiple of "
                         f"model.splash_block ({block}); change one of them")
    if segment_ids is None:
        segment_ids = jnp.zeros((batch, seq), jnp.int32)
    run = functools.partial(_attend, tile=tile, interpret=jax.default_backend() != "tpu")
    context = shd._ACTIVATION_CONTEXT.get()
    if context is None:
        return run(q, k, v, segment_ids)
    mesh, rules = context
    q_spec = shd.logical_to_spec(("activation_batch", None, "activation_heads", None), mesh, rules, q.shape,
                                 what="activation")
    kv_spec = shd.logical_to_spec(("activation_batch", None, "activation_kv_heads", None), mesh, rules, k.shape,
                                  what="activation")
    ids_spec = PartitionSpec(q_spec[0], None)
    return jax.shard_map(run, mesh=mesh, in_specs=(q_spec, kv_spec, kv_spec, ids_spec), out_specs=q_spec,
                         check_vma=False)(q, k, v, segment_ids)


def _attend(q, k, v, segment_ids, *, tile: int, interpret: bool):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as kernel_lib
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as mask_lib

    _, seq, heads, head_dim = q.shape
    sizes = kernel_lib.BlockSizes(block_q=tile, block_kv=tile, block_kv_compute=tile, block_q_dkv=tile,
                                  block_kv_dkv=tile, block_kv_dkv_compute=tile, block_q_dq=tile, block_kv_dq=tile)
    mask = mask_lib.MultiHeadMask([mask_lib.CausalMask((seq, seq)) for _ in range(heads)])
    kernel = kernel_lib.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret)
    q = (q * jnp.asarray(head_dim ** -0.5, q.dtype)).transpose(0, 2, 1, 3)   # (batch, heads, seq, head_dim)
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)

    def one(q, k, v, ids):
        return kernel(q, k, v, segment_ids=kernel_lib.SegmentIds(q=ids, kv=ids))

    return jax.vmap(one)(q, k, v, segment_ids).transpose(0, 2, 1, 3)

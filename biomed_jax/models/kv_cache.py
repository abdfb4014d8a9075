"""A static, preallocated key/value cache for autoregressive decoding.

Keys and values of every layer live in two arrays of shape
(layers, batch, max_len, kv_heads, head_dim) in the compute dtype, stacked on a leading layer axis
whatever `scan_layers` is. Each layer writes only its new positions with one dynamic_update_slice on
the stacked array (layer index, write slot), so inside a jitted decode loop the cache is updated in
place instead of being copied layer by layer.

Batches are left padded: slot `s` of every row holds the token at the same step, so one scalar
`index` is the write slot for all rows, and `valid` (batch, max_len) marks the slots that hold real
(non-pad) tokens. Per-row positions (for RoPE / learned embeddings) are passed by the caller.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from biomed_jax.models.config import ModelConfig
from biomed_jax.sharding import constrain

# Logical axes of the stacked k / v arrays and of `valid`; sharding.DEFAULT_RULES maps them to the mesh
# (batch over data/fsdp and kv heads over tensor, as the activations of the same layer are).
CACHE_KV_AXES = ("cache_layers", "cache_batch", "cache_length", "cache_kv_heads", "cache_head_dim")
CACHE_VALID_AXES = ("cache_batch", "cache_length")


@struct.dataclass
class KVCache:
    """k, v: (layers, batch, max_len, kv_heads, head_dim); valid: (batch, max_len) bool; index: () int32."""

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def begin(self, mask: jax.Array) -> "KVCache":
        """Marks the slots the next `mask.shape[1]` tokens go to, valid where mask (batch, T) is true.

        Called once per forward pass, before the layers write their keys and values.
        """
        mask = constrain(mask.astype(bool), CACHE_VALID_AXES)
        return self.replace(valid=jax.lax.dynamic_update_slice(self.valid, mask, (0, self.index)))

    def write(self, layer, k_new: jax.Array, v_new: jax.Array) -> tuple["KVCache", jax.Array, jax.Array]:
        """Writes one layer's new keys/values (batch, T, kv_heads, head_dim) at the current slot.

        Returns the updated cache and that layer's full (batch, max_len, kv_heads, head_dim) k and v.
        `layer` may be a Python int (unrolled layers) or a traced int (scanned layers).
        """
        zero = jnp.zeros((), jnp.int32)
        start = (jnp.asarray(layer, jnp.int32), zero, self.index, zero, zero)
        k = constrain(jax.lax.dynamic_update_slice(self.k, k_new.astype(self.k.dtype)[None], start), CACHE_KV_AXES)
        v = constrain(jax.lax.dynamic_update_slice(self.v, v_new.astype(self.v.dtype)[None], start), CACHE_KV_AXES)
        layer_k = jax.lax.dynamic_index_in_dim(k, start[0], axis=0, keepdims=False)
        layer_v = jax.lax.dynamic_index_in_dim(v, start[0], axis=0, keepdims=False)
        return self.replace(k=k, v=v), layer_k, layer_v

    def attention_mask(self, q_len: int) -> jax.Array:
        """(batch, 1, q_len, max_len): a query at slot index+t sees valid slots <= index+t.

        A query always sees its own slot, so a pad query never has an all-masked row.
        """
        q_slots = self.index + jnp.arange(q_len, dtype=jnp.int32)
        kv_slots = jnp.arange(self.max_len, dtype=jnp.int32)
        causal = kv_slots[None, :] <= q_slots[:, None]
        own = kv_slots[None, :] == q_slots[:, None]
        mask = (self.valid[:, None, :] & causal[None]) | own[None]
        return mask[:, None, :, :]

    def advance(self, n: int) -> "KVCache":
        """Moves the write slot past the `n` positions just written."""
        return self.replace(index=self.index + n)


def init_cache(cfg: ModelConfig, batch_size: int, max_len: int, dtype=None) -> KVCache:
    """An empty cache (zeros, nothing valid, index 0), constrained to the cache's logical sharding.

    Call inside jit under sharding.activation_sharding to create it already sharded on the mesh.
    """
    if max_len < 1:
        raise ValueError(f"KV cache max_len must be >= 1, got {max_len}")
    dtype = cfg.compute_dtype if dtype is None else dtype
    shape = (cfg.n_layers, batch_size, max_len, cfg.n_kv_heads, cfg.head_dim)
    return KVCache(
        k=constrain(jnp.zeros(shape, dtype), CACHE_KV_AXES),
        v=constrain(jnp.zeros(shape, dtype), CACHE_KV_AXES),
        valid=constrain(jnp.zeros((batch_size, max_len), bool), CACHE_VALID_AXES),
        index=jnp.zeros((), jnp.int32),
    )

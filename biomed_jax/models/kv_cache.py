"""A static, preallocated key/value cache for autoregressive decoding.

Keys and values are stored heads-major, (batch, kv_heads, max_len, head_dim) per layer, in the compute
dtype: the attention matmuls then read the cache in place as batched (batch, kv_heads) matrices,
with no transpose of the whole cache per step (BTNH storage makes XLA copy it every layer, every
token). Layers either share one stacked array with a leading layer axis (scanned layers: it rides in
the scan carry) or own one array each (a tuple; unrolled layers: no per-layer slice copies). Each
layer writes only its new positions with one dynamic_update_slice, so inside a jitted decode loop
the cache is updated in place.

Batches are left padded: slot `s` of every row holds the token at the same step, so one scalar
`index` is the write slot for all rows, and `valid` (batch, max_len) marks the slots that hold real
(non-pad) tokens. Per-row positions (for RoPE / learned embeddings) are passed by the caller.

A cache made with `per_row=True` has one write slot per row instead (`index` (batch,)): each row is an
independent sequence, as in the continuous-batching engine, where a request is inserted into a free row
while the others are mid-way through theirs (biomed_jax/inference/engine.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from biomed_jax.models.config import ModelConfig
from biomed_jax.sharding import constrain

# Logical axes of the stacked k / v arrays and of `valid`; sharding.DEFAULT_RULES maps them to the mesh
# (batch over data/fsdp and kv heads over tensor, as the activations of the same layer are).
CACHE_KV_AXES = ("cache_layers", "cache_batch", "cache_kv_heads", "cache_length", "cache_head_dim")
CACHE_LAYER_KV_AXES = CACHE_KV_AXES[1:]
CACHE_VALID_AXES = ("cache_batch", "cache_length")


@struct.dataclass
class KVCache:
    """k, v: stacked (layers, batch, kv_heads, max_len, head_dim) arrays or tuples of per-layer
    (batch, kv_heads, max_len, head_dim) arrays; valid: (batch, max_len) bool; index: () int32."""

    k: jax.Array | tuple[jax.Array, ...]
    v: jax.Array | tuple[jax.Array, ...]
    valid: jax.Array
    index: jax.Array          # () one write slot for every row, or (batch,) one per row

    @property
    def per_row(self) -> bool:
        return self.index.ndim == 1

    @property
    def max_len(self) -> int:
        return self.valid.shape[1]

    def begin(self, mask: jax.Array) -> "KVCache":
        """Marks the slots the next `mask.shape[1]` tokens go to, valid where mask (batch, T) is true.

        Called once per forward pass, before the layers write their keys and values.
        """
        mask = constrain(mask.astype(bool), CACHE_VALID_AXES)
        if self.per_row:
            return self.replace(valid=jax.vmap(_update_row)(self.valid, mask, self.index))
        return self.replace(valid=jax.lax.dynamic_update_slice(self.valid, mask, (0, self.index)))

    def write(self, layer, k_new: jax.Array, v_new: jax.Array) -> tuple["KVCache", jax.Array, jax.Array]:
        """Writes one layer's new keys/values (batch, T, kv_heads, head_dim) at the current slot.

        Returns the updated cache and that layer's full (batch, kv_heads, max_len, head_dim) k and v.
        `layer` is a Python int for per-layer caches; a stacked cache also takes a traced int (scan).
        """
        k_new = k_new.astype(_dtype_of(self.k)).transpose(0, 2, 1, 3)  # (batch, kv_heads, T, head_dim)
        v_new = v_new.astype(_dtype_of(self.v)).transpose(0, 2, 1, 3)
        zero = jnp.zeros((), jnp.int32)
        if self.per_row:
            return self._write_rows(layer, k_new, v_new)
        if isinstance(self.k, tuple):
            start = (zero, zero, self.index, zero)
            layer_k = constrain(jax.lax.dynamic_update_slice(self.k[layer], k_new, start), CACHE_LAYER_KV_AXES)
            layer_v = constrain(jax.lax.dynamic_update_slice(self.v[layer], v_new, start), CACHE_LAYER_KV_AXES)
            k = self.k[:layer] + (layer_k,) + self.k[layer + 1:]
            v = self.v[:layer] + (layer_v,) + self.v[layer + 1:]
            return self.replace(k=k, v=v), layer_k, layer_v
        start = (jnp.asarray(layer, jnp.int32), zero, zero, self.index, zero)
        k = constrain(jax.lax.dynamic_update_slice(self.k, k_new[None], start), CACHE_KV_AXES)
        v = constrain(jax.lax.dynamic_update_slice(self.v, v_new[None], start), CACHE_KV_AXES)
        layer_k = jax.lax.dynamic_index_in_dim(k, start[0], axis=0, keepdims=False)
        layer_v = jax.lax.dynamic_index_in_dim(v, start[0], axis=0, keepdims=False)
        return self.replace(k=k, v=v), layer_k, layer_v

    def _write_rows(self, layer, k_new: jax.Array, v_new: jax.Array) -> tuple["KVCache", jax.Array, jax.Array]:
        """write() for a per-row cache: row b's new keys/values go to its own slot index[b]."""
        if isinstance(self.k, tuple):
            layer_k = constrain(jax.vmap(_update_row)(self.k[layer], k_new, self.index), CACHE_LAYER_KV_AXES)
            layer_v = constrain(jax.vmap(_update_row)(self.v[layer], v_new, self.index), CACHE_LAYER_KV_AXES)
            k = self.k[:layer] + (layer_k,) + self.k[layer + 1:]
            v = self.v[:layer] + (layer_v,) + self.v[layer + 1:]
            return self.replace(k=k, v=v), layer_k, layer_v
        layer = jnp.asarray(layer, jnp.int32)
        stacked_rows = jax.vmap(lambda c, n, i: _update_row(c, n[None], i, lead=(layer,)), in_axes=(1, 0, 0),
                                out_axes=1)
        k = constrain(stacked_rows(self.k, k_new, self.index), CACHE_KV_AXES)
        v = constrain(stacked_rows(self.v, v_new, self.index), CACHE_KV_AXES)
        layer_k = jax.lax.dynamic_index_in_dim(k, layer, axis=0, keepdims=False)
        layer_v = jax.lax.dynamic_index_in_dim(v, layer, axis=0, keepdims=False)
        return self.replace(k=k, v=v), layer_k, layer_v

    @property
    def stacked(self) -> bool:
        return not isinstance(self.k, tuple)

    def attention_mask(self, q_len: int) -> jax.Array:
        """(batch, q_len, max_len): a query at slot index+t sees valid slots <= index+t.

        A query always sees its own slot, so a pad query never has an all-masked row.
        """
        index = self.index[:, None] if self.per_row else self.index
        q_slots = (index + jnp.arange(q_len, dtype=jnp.int32))[..., :, None]   # ([batch,] q_len, 1)
        kv_slots = jnp.arange(self.max_len, dtype=jnp.int32)
        causal = kv_slots <= q_slots
        own = kv_slots == q_slots
        if not self.per_row:
            causal, own = causal[None], own[None]
        return (self.valid[:, None, :] & causal) | own

    def advance(self, n: int) -> "KVCache":
        """Moves the write slot past the `n` positions just written."""
        return self.replace(index=self.index + n)


def _update_row(row: jax.Array, new: jax.Array, index: jax.Array, lead: tuple = ()) -> jax.Array:
    """One row's dynamic_update_slice at slot `index` of its length axis: row (..., max_len[, head_dim]),
    new (..., T[, head_dim]); `lead` fixes the leading indices (a stacked cache's layer)."""
    start = lead + (0,) * (row.ndim - len(lead))
    axis = len(lead) + (1 if row.ndim - len(lead) == 3 else 0)   # (kv_heads, max_len, head_dim) or (max_len,)
    start = start[:axis] + (index,) + start[axis + 1:]
    return jax.lax.dynamic_update_slice(row, new.astype(row.dtype), start)


def _dtype_of(kv) -> jnp.dtype:
    return (kv[0] if isinstance(kv, tuple) else kv).dtype


def init_cache(cfg: ModelConfig, batch_size: int, max_len: int, dtype=None, stacked: bool | None = None,
               per_row: bool = False) -> KVCache:
    """An empty cache (zeros, nothing valid, index 0), constrained to the cache's logical sharding.

    stacked (default: cfg.scan_layers) picks one array with a layer axis over one array per layer;
    per_row gives every row its own write slot (an index per row).
    Call inside jit under sharding.activation_sharding to create it already sharded on the mesh.
    """
    if max_len < 1:
        raise ValueError(f"KV cache max_len must be >= 1, got {max_len}")
    dtype = cfg.compute_dtype if dtype is None else dtype
    stacked = cfg.scan_layers if stacked is None else stacked
    layer_shape = (batch_size, cfg.n_kv_heads, max_len, cfg.head_dim)
    if stacked:
        k = constrain(jnp.zeros((cfg.n_layers,) + layer_shape, dtype), CACHE_KV_AXES)
        v = constrain(jnp.zeros((cfg.n_layers,) + layer_shape, dtype), CACHE_KV_AXES)
    else:
        k = tuple(constrain(jnp.zeros(layer_shape, dtype), CACHE_LAYER_KV_AXES) for _ in range(cfg.n_layers))
        v = tuple(constrain(jnp.zeros(layer_shape, dtype), CACHE_LAYER_KV_AXES) for _ in range(cfg.n_layers))
    return KVCache(k=k, v=v, valid=constrain(jnp.zeros((batch_size, max_len), bool), CACHE_VALID_AXES),
                   index=jnp.zeros((batch_size,) if per_row else (), jnp.int32))


def cached_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Attention of q (batch, T, heads, head_dim) over one layer's cache k, v (batch, kv_heads, S, head_dim).

    mask (batch, T, S) marks the slots each query may see. Grouped-query heads share their kv head
    by reshaping q, never by repeating the cache. Scores and softmax in float32; scale 1/sqrt(head_dim).
    """
    batch, q_len, n_heads, head_dim = q.shape
    n_kv = k.shape[1]
    q = q.reshape(batch, q_len, n_kv, n_heads // n_kv, head_dim)
    scores = jnp.einsum("btkgh,bksh->bkgts", q, k, preferred_element_type=jnp.float32)
    scores = scores * jnp.float32(head_dim ** -0.5)
    scores = jnp.where(mask[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bksh->btkgh", probs, v, preferred_element_type=jnp.float32)
    return out.astype(q.dtype).reshape(batch, q_len, n_heads, head_dim)

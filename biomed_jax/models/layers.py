"""Transformer layers shared by the GPT-2 and Llama families (flax.nnx).

Every parameter is created with logical axis names (see biomed_jax/sharding.py); activations are
constrained by logical names too. Params live in `param_dtype`; matmuls multiply in the compute dtype
and accumulate in float32; norms, activations, softmax and logits are computed in float32.

The norms, GELU and SwiGLU have hand-written derivatives that keep one or two arrays for the backward
pass (lean_ops.py), on every backend. Otherwise this is plain flax.nnx and jax (`model.kernels = xla`);
with `model.kernels = cpu` the projections and the attention come from biomed_jax/kernels/cpu instead
(same parameters, same values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from biomed_jax.kernels import cpu
from biomed_jax.kernels.splash import splash_attention
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.kv_cache import KVCache, cached_attention
from biomed_jax.models.lean_ops import gelu_tanh, layer_norm, rms_norm, swiglu
from biomed_jax.sharding import constrain

BTD = ("activation_batch", "activation_length", "activation_embed")


def partitioned(init, *logical_axes: str | None):
    """An initializer whose Param carries logical axis names (sharded later, by rules)."""
    return nnx.with_partitioning(init, logical_axes, eager_sharding=False)


def normal(std: float):
    return nnx.initializers.normal(stddev=std)


def make_norm(cfg: ModelConfig, rngs: nnx.Rngs) -> nnx.Module:
    """LayerNorm (GPT-2) or RMSNorm (Llama); statistics in float32, output in the compute dtype."""
    common = dict(
        epsilon=cfg.norm_eps,
        dtype=cfg.compute_dtype,
        param_dtype=cfg.param_jnp_dtype,
        scale_init=partitioned(nnx.initializers.ones, "norm"),
        rngs=rngs,
    )
    if cfg.norm == "layernorm":
        return LayerNorm(cfg.d_model, bias_init=partitioned(nnx.initializers.zeros, "norm"), use_fast_variance=False,
                         **common)
    return RMSNorm(cfg.d_model, **common)


class LayerNorm(nnx.LayerNorm):
    """nnx.LayerNorm over the last axis (two-pass variance, as torch computes it) with the lean gradient
    of lean_ops.layer_norm: same parameters, same values, one saved array instead of four."""

    def __call__(self, x: jax.Array) -> jax.Array:
        x, scale, bias = self.promote_dtype((x, self.scale[...], self.bias[...]), dtype=self.dtype)
        return layer_norm(x, scale, bias, self.epsilon)


class RMSNorm(nnx.RMSNorm):
    """nnx.RMSNorm over the last axis with the lean gradient of lean_ops.rms_norm."""

    def __call__(self, x: jax.Array) -> jax.Array:
        x, scale = self.promote_dtype((x, self.scale[...]), dtype=self.dtype)
        return rms_norm(x, scale, self.epsilon)


def _projection(cfg: ModelConfig, einsum: str, kernel_shape, kernel_axes, bias_shape, bias_axes,
                std: float, rngs: nnx.Rngs) -> nnx.Einsum:
    return (cpu.Projection if cfg.kernel_impl == "cpu" else nnx.Einsum)(
        einsum,
        kernel_shape,
        bias_shape if cfg.use_bias else None,
        dtype=cfg.compute_dtype,
        param_dtype=cfg.param_jnp_dtype,
        kernel_init=partitioned(normal(std), *kernel_axes),
        bias_init=partitioned(nnx.initializers.zeros, *bias_axes),
        einsum_op=contract_in_order,
        rngs=rngs,
    )


def contract_in_order(subscripts: str, x: jax.Array, kernel: jax.Array, precision=None,
                      preferred_element_type=None, out_sharding=None) -> jax.Array:
    """jnp.einsum for 'input,kernel->output' projections, contracting dims handed to XLA in memory order.

    jnp.einsum hands contracted dims to XLA in alphabetical order, so 'btnh,nhd->btd' (o_proj) would
    contract (h, n) and make XLA transpose the whole kernel on every call. qwix's LoRA, which intercepts
    this dot_general, then shapes its factors in the kernel's own order too (adapt/lora.py merge_lora).
    """
    lhs, rest = subscripts.split(",")
    rhs, out = rest.split("->")
    contracted = "".join(c for c in lhs if c in rhs and c not in out)
    free = [c for c in lhs if c not in contracted] + [c for c in rhs if c not in contracted]
    if "".join(free) != out or any(c in rhs for c in lhs if c in out):
        return jnp.einsum(subscripts, x, kernel, precision=precision, preferred_element_type=preferred_element_type,
                          out_sharding=out_sharding)
    dims = ((tuple(lhs.index(c) for c in contracted), tuple(rhs.index(c) for c in contracted)), ((), ()))
    return jax.lax.dot_general(x, kernel, dims, precision=precision, preferred_element_type=preferred_element_type,
                               out_sharding=out_sharding)


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
    """Rotary position embedding, Hugging Face Llama convention (rotate the two halves).

    x: (batch, seq, heads, head_dim); positions: (batch, seq). Angles in float32.
    """
    head_dim = x.shape[-1]
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # (B, T, head_dim/2)
    angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


class Attention(nnx.Module):
    """Causal multi-head / grouped-query attention, by `cfg.attention_impl`: jax.nn.dot_product_attention
    (XLA ops or cuDNN flash attention), Pallas splash attention, or the cpu kernels' blocked attention."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        std, out_std = cfg.init_std, cfg.init_std / (2 * cfg.n_layers) ** 0.5
        self.q_proj = _projection(cfg, "btd,dnh->btnh", (d, n, h), ("embed", "heads", "head_dim"),
                                  (n, h), ("heads", "head_dim"), std, rngs)
        self.k_proj = _projection(cfg, "btd,dkh->btkh", (d, k, h), ("embed", "kv_heads", "head_dim"),
                                  (k, h), ("kv_heads", "head_dim"), std, rngs)
        self.v_proj = _projection(cfg, "btd,dkh->btkh", (d, k, h), ("embed", "kv_heads", "head_dim"),
                                  (k, h), ("kv_heads", "head_dim"), std, rngs)
        self.o_proj = _projection(cfg, "btnh,nhd->btd", (n, h, d), ("heads", "head_dim", "embed"),
                                  (d,), ("embed",), out_std, rngs)

    def __call__(self, x: jax.Array, positions: jax.Array, segment_ids: jax.Array | None,
                 cache: KVCache | None = None, layer=None):
        """Self-attention output (batch, seq, d_model); with a `cache`, (output, updated cache).

        With a cache, this layer's new keys/values are written at the cache's write slot (layer
        `layer` of the stacked cache) and the queries attend over every valid slot up to their own.
        """
        cfg = self.cfg
        q_axes = ("activation_batch", "activation_length", "activation_heads", "activation_head_dim")
        kv_axes = ("activation_batch", "activation_length", "activation_kv_heads", "activation_head_dim")
        q = constrain(checkpoint_name(self.q_proj(x), "qkv_proj"), q_axes)
        k = constrain(checkpoint_name(self.k_proj(x), "qkv_proj"), kv_axes)
        v = constrain(checkpoint_name(self.v_proj(x), "qkv_proj"), kv_axes)
        if cfg.positions == "rope":
            q = rope(q, positions, cfg.rope_theta)
            k = rope(k, positions, cfg.rope_theta)
        if cache is not None:
            cache, k, v = cache.write(layer, k, v)
            out = cached_attention(q, k, v, cache.attention_mask(q.shape[1]))
            return self.o_proj(constrain(out, q_axes)), cache
        if cfg.attention_impl == "blocked":
            out = cpu.blocked_attention(q, k, v, segment_ids)
        elif cfg.attention_impl == "splash":
            out = splash_attention(q, k, v, segment_ids, cfg.splash_block)
        else:
            mask = None
            if segment_ids is not None:
                # Packed documents: a token attends only within its own segment (and causally).
                mask = (segment_ids[:, :, None] == segment_ids[:, None, :])[:, None, :, :]
            out = jax.nn.dot_product_attention(
                q, k, v, mask=mask, is_causal=True, implementation=cfg.attention_impl)
        out = checkpoint_name(constrain(out, q_axes), "attention_out")
        return self.o_proj(out)


class MLP(nnx.Module):
    """GPT-2 GELU MLP (tanh approximation, as `gelu_new`) or Llama SwiGLU."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d, f = cfg.d_model, cfg.d_ff
        std, out_std = cfg.init_std, cfg.init_std / (2 * cfg.n_layers) ** 0.5
        self.up_proj = _projection(cfg, "btd,df->btf", (d, f), ("embed", "mlp"), (f,), ("mlp",), std, rngs)
        if cfg.mlp == "swiglu":
            self.gate_proj = _projection(cfg, "btd,df->btf", (d, f), ("embed", "mlp"), (f,), ("mlp",),
                                         std, rngs)
        self.down_proj = _projection(cfg, "btf,fd->btd", (f, d), ("mlp", "embed"), (d,), ("embed",),
                                     out_std, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        hidden_axes = ("activation_batch", "activation_length", "activation_mlp")
        up = constrain(self.up_proj(x), hidden_axes)
        if self.cfg.mlp == "swiglu":
            hidden = swiglu(constrain(self.gate_proj(x), hidden_axes), up)
        else:
            hidden = gelu_tanh(up)
        return self.down_proj(hidden)


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.attn_norm = make_norm(cfg, rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp_norm = make_norm(cfg, rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x: jax.Array, positions: jax.Array, segment_ids: jax.Array | None,
                 cache: KVCache | None = None, layer=None):
        """The block output; with a `cache` (see Attention), (output, updated cache)."""
        if cache is None:
            x = x + self.attn(self.attn_norm(x), positions, segment_ids)
        else:
            attn_out, cache = self.attn(self.attn_norm(x), positions, segment_ids, cache, layer)
            x = x + attn_out
        x = constrain(x, BTD)
        x = x + self.mlp(self.mlp_norm(x))
        x = constrain(x, BTD)
        return x if cache is None else (x, cache)

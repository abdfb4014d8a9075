"""The decoder-only language model, GPT-2 and Llama families from one ModelConfig.

With `scan_layers` the blocks are created stacked (leading 'layers' axis, via nnx.vmap) and applied
with jax.lax.scan (the cpu kernels' kernels/cpu/layer_scan.py with `model.kernels = cpu`), so compile
time does not grow with depth. Each block application is wrapped in jax.checkpoint with the configured
remat policy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from biomed_jax.kernels import cpu
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.kv_cache import KVCache
from biomed_jax.models.layers import BTD, Block, make_norm, normal, partitioned
from biomed_jax.sharding import constrain

_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "minimal": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "save_qkv_proj": jax.checkpoint_policies.save_only_these_names("qkv_proj"),
    "save_attention_out": jax.checkpoint_policies.save_only_these_names("qkv_proj", "attention_out"),
}


class Decoder(nnx.Module):
    """Token ids -> hidden states -> fp32 next-token logits."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.token_embed = nnx.Embed(
            cfg.vocab_size, cfg.d_model,
            dtype=cfg.compute_dtype, param_dtype=cfg.param_jnp_dtype,
            embedding_init=partitioned(normal(cfg.init_std), "vocab", "embed"), rngs=rngs)
        if cfg.positions == "learned":
            self.position_embed = nnx.Embed(
                cfg.max_seq_len, cfg.d_model,
                dtype=cfg.compute_dtype, param_dtype=cfg.param_jnp_dtype,
                embedding_init=partitioned(normal(cfg.init_std), "position", "embed"), rngs=rngs)
        if cfg.scan_layers:
            self.blocks = _stacked_blocks(cfg, rngs)
        else:
            self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        self.final_norm = make_norm(cfg, rngs)
        if not cfg.tie_embeddings:
            self.lm_head = nnx.Param(
                partitioned(normal(cfg.init_std), "embed", "vocab")(
                    rngs.params(), (cfg.d_model, cfg.vocab_size), cfg.param_jnp_dtype))

    def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
                 segment_ids: jax.Array | None = None) -> jax.Array:
        """Logits (batch, seq, vocab) in float32."""
        return self.logits(self.hidden_states(tokens, positions, segment_ids))

    def hidden_states(self, tokens: jax.Array, positions: jax.Array | None = None,
                      segment_ids: jax.Array | None = None) -> jax.Array:
        """Final-norm hidden states (batch, seq, d_model), the input of LM and classifier heads.

        positions default to 0..seq-1 per row; packed batches pass per-document positions and
        segment_ids so documents never attend across boundaries.
        """
        cfg = self.cfg
        if cfg.positions == "learned" and tokens.shape[1] > cfg.max_seq_len:
            # The position table has max_seq_len rows; a lookup past it would read NaN (jnp.take's fill).
            raise ValueError(f"a sequence of {tokens.shape[1]} tokens is longer than model.max_seq_len "
                             f"({cfg.max_seq_len}) of this learned-position model, which has no position "
                             "embedding past it; shorten the sequences (max_len / train.seq_len)")
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
        x = self._embed(tokens, positions)
        if cfg.scan_layers:
            block_graphdef, block_states = nnx.split(self.blocks)

            def apply_block(block_state, x, positions, segment_ids=None):
                return nnx.merge(block_graphdef, block_state)(x, positions, segment_ids)

            if cfg.remat != "none":
                apply_block = jax.checkpoint(apply_block, policy=_POLICIES[cfg.remat])
            consts = (positions,) if segment_ids is None else (positions, segment_ids)
            scan = cpu.scan_layers if cfg.kernel_impl == "cpu" else _scan_layers
            x = scan(apply_block, x, block_states, consts)
        else:
            for block in self.blocks:
                x = _apply_unscanned_block(block, x, positions, segment_ids, cfg.remat)
        return self.final_norm(x)

    def hidden_states_with_cache(self, tokens: jax.Array, positions: jax.Array, cache: KVCache,
                                 mask: jax.Array | None = None) -> tuple[jax.Array, KVCache]:
        """(final-norm hidden states, updated cache) for `tokens` (batch, T) appended at the cache's slot.

        Prefill passes the whole left-padded prompt (mask = attention mask, so pads are never
        attended to); each decode step passes one token per row. `positions` are per row (for a
        left-padded batch: cumsum(mask) - 1), so a row's result does not depend on its padding.
        """
        if mask is None:
            mask = jnp.ones(tokens.shape, bool)
        if self.cfg.scan_layers and not cache.stacked:
            raise ValueError("a scan_layers model needs a stacked KV cache: init_cache(..., stacked=True)")
        if tokens.shape[1] > cache.max_len:
            raise ValueError(f"{tokens.shape[1]} tokens do not fit a KV cache of max_len {cache.max_len}")
        x = self._embed(tokens, positions)
        cache = cache.begin(mask)
        block_graphdef, block_states = self._block_graphdef_and_states()

        def apply_block(block_state, x, cache, layer):
            return nnx.merge(block_graphdef, block_state)(x, positions, None, cache, layer)

        if self.cfg.scan_layers:
            # The stacked cache rides in the carry (written in place at [layer, :, :, index]); only
            # the block states are scanned over.
            def body(carry, xs):
                block_state, layer = xs
                return apply_block(block_state, *carry, layer), None

            layers = jnp.arange(self.cfg.n_layers, dtype=jnp.int32)
            (x, cache), _ = jax.lax.scan(body, (x, cache), (block_states, layers))
        else:
            for layer, block_state in enumerate(block_states):
                x, cache = apply_block(block_state, x, cache, layer)
        return self.final_norm(x), cache.advance(tokens.shape[1])

    def _embed(self, tokens: jax.Array, positions: jax.Array) -> jax.Array:
        cfg = self.cfg
        x = _lookup(self.token_embed, tokens, cfg.compute_dtype)
        if cfg.positions == "learned":
            x = x + _lookup(self.position_embed, positions, cfg.compute_dtype)
        return constrain(x, BTD)

    def _block_graphdef_and_states(self):
        if self.cfg.scan_layers:
            return nnx.split(self.blocks)
        # Every layer has the same structure, so one graphdef serves them all.
        return nnx.graphdef(self.blocks[0]), [nnx.state(block) for block in self.blocks]

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Next-token logits in float32: operands in the compute dtype, accumulated and returned in float32."""
        cfg = self.cfg
        if cfg.tie_embeddings:
            subscripts, table = "btd,vd->btv", self.token_embed.embedding[...]
        else:
            subscripts, table = "btd,dv->btv", self.lm_head[...]
        if cfg.kernel_impl == "cpu":
            out = cpu.einsum(subscripts, hidden, table, dtype=cfg.compute_dtype)
        else:
            out = jnp.einsum(subscripts, hidden.astype(cfg.compute_dtype), table.astype(cfg.compute_dtype),
                             preferred_element_type=jnp.float32)
        return constrain(out, ("activation_batch", "activation_length", "activation_vocab"))


def _scan_layers(body, carry: jax.Array, layers, consts: tuple[jax.Array, ...]) -> jax.Array:
    """`body(layer, carry, *consts)` applied layer by layer (the xla kernels' loop; the cpu kernels have theirs)."""
    return jax.lax.scan(lambda c, layer: (body(layer, c, *consts), None), carry, layers)[0]


def _apply_unscanned_block(block: Block, x: jax.Array, positions: jax.Array,
                           segment_ids: jax.Array | None, remat: str) -> jax.Array:
    """One block of an unscanned model, rematerialised per the policy.

    Without remat the block is called as itself, so a module rewriter (qwix LoRA/int8, see
    biomed_jax/adapt/lora.py) can add or replace parameters on it in its initialising call; with
    remat it is split and merged inside jax.checkpoint (nnx.remat rejects qwix-wrapped modules).
    """
    if remat == "none":
        return block(x, positions, segment_ids)
    graphdef, state = nnx.split(block)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x, positions, segment_ids)

    return jax.checkpoint(apply, policy=_POLICIES[remat], prevent_cse=True)(state, x)


def _lookup(embed: nnx.Embed, ids: jax.Array, dtype) -> jax.Array:
    """Embedding lookup from a table gathered whole (in the compute dtype) first.

    Like every FSDP weight, the table is all-gathered for use; gathering rows straight from a
    vocab-sharded table makes the SPMD partitioner fall back to full rematerialisation.
    """
    table = constrain(embed.embedding[...].astype(dtype), (None, None))
    return jnp.take(table, ids, axis=0)


def _stacked_blocks(cfg: ModelConfig, rngs: nnx.Rngs) -> Block:
    """n_layers Blocks stacked on a leading 'layers' axis, each with its own init key."""

    @nnx.split_rngs(splits=cfg.n_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def create(rngs: nnx.Rngs) -> Block:
        return Block(cfg, rngs=rngs)

    return create(rngs)


@functools.lru_cache(maxsize=None)
def _abstract_model_cached(cfg: ModelConfig):
    return nnx.eval_shape(lambda: Decoder(cfg, rngs=nnx.Rngs(0)))


def abstract_model(cfg: ModelConfig) -> Decoder:
    """The model with ShapeDtypeStructs instead of arrays: shapes, dtypes and axis names, no memory."""
    return _abstract_model_cached(cfg)


def init_params(cfg: ModelConfig, rng: jax.Array) -> dict:
    """Freshly initialised parameters as a pure dict (call under jit to place them sharded)."""
    return nnx.to_pure_dict(nnx.state(Decoder(cfg, rngs=nnx.Rngs(params=rng)), nnx.Param))


def init_model(cfg: ModelConfig, rng: jax.Array) -> Decoder:
    """A freshly initialised Decoder, built under jit: one compile instead of many eager ops."""
    graphdef, _ = nnx.split(abstract_model(cfg))
    return nnx.merge(graphdef, jax.jit(init_params, static_argnums=0)(cfg, rng))


def graphdef_and_abstract_params(cfg: ModelConfig):
    """(graphdef, abstract nnx.State of Params) for building shardings and restoring checkpoints."""
    graphdef, state = nnx.split(abstract_model(cfg))
    return graphdef, state


def unstack_layers(params: dict) -> dict:
    """Params of a scan_layers model -> the per-layer layout ({'blocks': {0: ..., 1: ...}})."""
    n_layers = jax.tree.leaves(params["blocks"])[0].shape[0]
    blocks = {i: jax.tree.map(lambda x, i=i: x[i], params["blocks"]) for i in range(n_layers)}
    return {**params, "blocks": blocks}


def stack_layers(params: dict) -> dict:
    """Per-layer params ({'blocks': {0: ..., 1: ...}}) -> the scan_layers layout (leading layer axis)."""
    layers = [params["blocks"][i] for i in sorted(params["blocks"])]
    return {**params, "blocks": jax.tree.map(lambda *xs: jnp.stack(xs), *layers)}

"""Batched generation: a jitted prefill plus a decode loop over a static, preallocated KV cache.

Prompts of different lengths are left padded; each row's positions come from its attention mask
(cumsum(mask) - 1) and pads are never attended to, so a row generates the same tokens alone or in
a batch. Prefill and the whole decode loop (a jax.lax.while_loop that stops early once every row has
emitted a stop token) run inside one compiled program per (batch, prompt bucket, cache length,
sampler kind): Python dispatches once per batch, not once per token.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from biomed_jax import sharding as shd
from biomed_jax.inference.sampling import SamplingConfig, sample, stop_token_array
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import Decoder, graphdef_and_abstract_params, unstack_layers
from biomed_jax.models.kv_cache import CACHE_KV_AXES, CACHE_LAYER_KV_AXES, CACHE_VALID_AXES, KVCache, init_cache

MIN_PROMPT_BUCKET = 16


@dataclasses.dataclass
class GenerationOutput:
    """tokens: (n_prompts, max_new_tokens) int32, pad_id after a row's end; lengths: (n_prompts,)."""

    tokens: np.ndarray
    lengths: np.ndarray

    def completions(self) -> list[list[int]]:
        """Each row's generated ids up to its length (a final stop token included)."""
        return [row[:n].tolist() for row, n in zip(self.tokens, self.lengths)]


def left_pad(prompts: Sequence[Sequence[int]], length: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, mask) of shape (len(prompts), length), each prompt right-aligned."""
    tokens = np.full((len(prompts), length), pad_id, np.int32)
    mask = np.zeros((len(prompts), length), np.int32)
    for i, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise ValueError(f"prompt {i} is empty; every prompt needs at least one token")
        if len(prompt) > length:
            raise ValueError(f"prompt {i} has {len(prompt)} tokens, more than the padded length {length}")
        tokens[i, length - len(prompt):] = prompt
        mask[i, length - len(prompt):] = 1
    return tokens, mask


def positions_from_mask(mask: jax.Array) -> jax.Array:
    """Per-row positions of a left-padded batch: 0 at each row's first real token (pads get 0)."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1, 0)


def prefill(model: Decoder, tokens: jax.Array, mask: jax.Array, cache: KVCache) -> tuple[jax.Array, KVCache, jax.Array]:
    """Runs the left-padded prompts through the model, filling the cache.

    Returns (float32 logits of each row's last prompt token (batch, vocab), cache, next position
    of each row (batch,)).
    """
    positions = positions_from_mask(mask)
    hidden, cache = model.hidden_states_with_cache(tokens, positions, cache, mask=mask)
    logits = model.logits(hidden[:, -1:])[:, 0]  # left padding: the last column is real in every row
    return logits, cache, positions[:, -1] + 1


def decode_step(model: Decoder, token: jax.Array, position: jax.Array, cache: KVCache) -> tuple[jax.Array, KVCache]:
    """One token per row (batch,) at `position` (batch,) -> (float32 next-token logits (batch, vocab), cache)."""
    hidden, cache = model.hidden_states_with_cache(token[:, None], position[:, None], cache)
    return model.logits(hidden)[:, 0], cache


def generate_tokens(model: Decoder, tokens: jax.Array, mask: jax.Array, key: jax.Array, temperature, top_p,
                    stop_ids: jax.Array, *, max_new_tokens: int, max_len: int, greedy: bool, top_k: int,
                    use_top_p: bool, pad_id: int) -> tuple[jax.Array, jax.Array]:
    """Prefill + decode loop, traceable as one program. Returns (tokens (batch, max_new_tokens), lengths)."""
    batch, prompt_len = tokens.shape
    if prompt_len + max_new_tokens > max_len:
        raise ValueError(f"prompt length {prompt_len} + max_new_tokens {max_new_tokens} exceeds the KV cache "
                         f"max_len {max_len}")
    pick = functools.partial(sample, temperature=temperature, top_p=top_p, greedy=greedy, top_k=top_k,
                             use_top_p=use_top_p)
    cache = init_cache(model.cfg, batch, max_len)
    logits, cache, position = prefill(model, tokens, mask, cache)

    def record(step, new, out, done, lengths):
        new = jnp.where(done, pad_id, new)
        out = jax.lax.dynamic_update_slice(out, new[:, None], (jnp.zeros((), jnp.int32), step))
        lengths = jnp.where(done, lengths, step + 1)
        done = done | jnp.any(new[:, None] == stop_ids[None, :], axis=-1)
        return new, out, done, lengths

    out = jnp.full((batch, max_new_tokens), pad_id, jnp.int32)
    done = jnp.zeros((batch,), bool)
    lengths = jnp.zeros((batch,), jnp.int32)
    step = jnp.zeros((), jnp.int32)
    token, out, done, lengths = record(step, pick(logits, jax.random.fold_in(key, 0)), out, done, lengths)

    def cond(state):
        step, _, _, _, _, done, _ = state
        return (step < max_new_tokens) & ~jnp.all(done)

    def body(state):
        step, token, position, cache, out, done, lengths = state
        logits, cache = decode_step(model, token, position, cache)
        new = pick(logits, jax.random.fold_in(key, step))
        token, out, done, lengths = record(step, new, out, done, lengths)
        return step + 1, token, position + 1, cache, out, done, lengths

    state = (step + 1, token, position, cache, out, done, lengths)
    _, _, _, _, out, _, lengths = jax.lax.while_loop(cond, body, state)
    return out, lengths


def cache_shardings(cfg: ModelConfig, mesh: Mesh, rules: Mapping[str, Any] | None = None,
                    batch_size: int | None = None, max_len: int | None = None,
                    stacked: bool | None = None) -> KVCache:
    """NamedShardings of a KVCache on `mesh` (the layout init_cache constrains the cache to)."""
    rules = shd.rules_dict(rules)
    stacked = cfg.scan_layers if stacked is None else stacked
    known = batch_size is not None
    layer_shape = (batch_size, cfg.n_kv_heads, max_len, cfg.head_dim) if known else None
    if stacked:
        shape = (cfg.n_layers,) + layer_shape if known else None
        kv = NamedSharding(mesh, shd.logical_to_spec(CACHE_KV_AXES, mesh, rules, shape, what="kv cache"))
    else:
        one = NamedSharding(mesh, shd.logical_to_spec(CACHE_LAYER_KV_AXES, mesh, rules, layer_shape, what="kv cache"))
        kv = (one,) * cfg.n_layers
    valid_shape = (batch_size, max_len) if known else None
    valid = NamedSharding(mesh, shd.logical_to_spec(CACHE_VALID_AXES, mesh, rules, valid_shape, what="kv cache"))
    return KVCache(k=kv, v=kv, valid=valid, index=NamedSharding(mesh, PartitionSpec()))


class Generator:
    """Generates from a model's params (a pure dict, e.g. biomed_jax.run_dir.load_run(...).params).

    Compiled programs are cached per static shape, so repeated calls (e.g. interactive prompts of
    similar length) reuse them. With a `mesh`, params should already be placed on it; batches are
    split over its data/fsdp axes and the cache is sharded like the attention activations.

    unroll_layers (default) re-lays a scan_layers checkpoint as one array per layer, once: inside
    a scanned decode step every layer's weights are dynamic slices of the stacked arrays, which
    XLA copies before each matmul, more than doubling the memory traffic of a decode step (for
    gpt2_125m on CPU, a scanned decode step is ~2.3x slower at batch 1 and ~1.6x at batch 16). The stacked arrays are not kept, but the
    caller's reference keeps them alive: drop it to free the memory.
    """

    def __init__(self, cfg: ModelConfig, params: Any, mesh: Mesh | None = None, rules=None,
                 unroll_layers: bool = True):
        self.mesh = mesh
        self.rules = shd.rules_dict(rules)
        if unroll_layers and cfg.scan_layers:
            cfg, params = _unrolled(cfg, params, mesh, self.rules)
        self.cfg = cfg
        self.params = params
        self.graphdef, _ = graphdef_and_abstract_params(cfg)
        self._compiled: dict[tuple, Any] = {}

    def _program(self, static: tuple):
        if static not in self._compiled:
            max_new_tokens, max_len, greedy, top_k, use_top_p, pad_id = static
            graphdef, mesh, rules = self.graphdef, self.mesh, self.rules

            def run(params, tokens, mask, key, temperature, top_p, stop_ids):
                model = nnx.merge(graphdef, params)
                kwargs = dict(max_new_tokens=max_new_tokens, max_len=max_len, greedy=greedy, top_k=top_k,
                              use_top_p=use_top_p, pad_id=pad_id)
                if mesh is None:
                    return generate_tokens(model, tokens, mask, key, temperature, top_p, stop_ids, **kwargs)
                with shd.activation_sharding(mesh, rules):
                    return generate_tokens(model, tokens, mask, key, temperature, top_p, stop_ids, **kwargs)

            self._compiled[static] = jax.jit(run)
        return self._compiled[static]

    def compiled_programs(self) -> int:
        """How many programs have been built (a test of recompilation)."""
        return len(self._compiled)

    def _place(self, array: np.ndarray) -> jax.Array:
        if self.mesh is None:
            return jnp.asarray(array)
        rows = array.shape[0]
        batch_devices = int(np.prod([self.mesh.shape[a] for a in shd.BATCH_AXES]))
        sharding = shd.batch_sharding(self.mesh, array.ndim) if rows % batch_devices == 0 else shd.replicated(self.mesh)
        return jax.device_put(array, sharding)

    def plan(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig, max_len: int = 0) -> tuple[int, int]:
        """(padded prompt length, cache max_len) for these prompts; checks they fit the model."""
        longest = max(len(p) for p in prompts)
        cfg = self.cfg
        if cfg.positions == "learned" and longest + sampling.max_new_tokens > cfg.max_seq_len:
            raise ValueError(
                f"the longest prompt ({longest} tokens) + sampling.max_new_tokens ({sampling.max_new_tokens}) "
                f"exceeds model.max_seq_len ({cfg.max_seq_len}) of this learned-position model; shorten the "
                "prompt or lower sampling.max_new_tokens")
        if max_len:
            if longest + sampling.max_new_tokens > max_len:
                raise ValueError(
                    f"sampling.max_len ({max_len}) is too small for the longest prompt ({longest} tokens) + "
                    f"sampling.max_new_tokens ({sampling.max_new_tokens}); raise it or set 0 (automatic)")
            bucket = min(_bucket(longest), max_len - sampling.max_new_tokens)
            return bucket, max_len
        bucket = _bucket(longest)
        return bucket, bucket + sampling.max_new_tokens

    def precompile(self, prompt_len: int, sampling: SamplingConfig = SamplingConfig(), batch_size: int = 1,
                   max_len: int = 0) -> None:
        """Compiles, without running, the program generate() uses for `batch_size` prompts whose longest
        has prompt_len tokens (e.g. every bucket before a server or a benchmark starts)."""
        prompt_len, cache_len = self.plan([[0] * prompt_len], sampling, max_len)
        program = self._program((sampling.max_new_tokens, cache_len, sampling.greedy, sampling.top_k,
                                 sampling.top_p < 1, sampling.pad_id))
        tokens = self._place(np.zeros((batch_size, prompt_len), np.int32))
        program.lower(self.params, tokens, tokens, jax.random.key(0), jnp.float32(1), jnp.float32(1),
                      stop_token_array(sampling.stop_tokens)).compile()

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig = SamplingConfig(),
                 batch_size: int | None = None, max_len: int = 0, stream: int = 0) -> GenerationOutput:
        """Completes every prompt (lists of token ids), `batch_size` prompts per compiled call.

        max_len is the KV cache length; 0 picks the padded prompt length + max_new_tokens. The random
        stream is (sampling.seed, stream, batch index, step): successive calls of one session (e.g.
        interactive prompts) pass stream=0, 1, ... so they do not all draw the same numbers.
        """
        prompts = [list(map(int, p)) for p in prompts]
        if not prompts:
            raise ValueError("no prompts to generate from")
        for i, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"prompt {i} is empty; every prompt needs at least one token")
            bad = [t for t in prompt if not 0 <= t < self.cfg.vocab_size]
            if bad:
                raise ValueError(f"prompt {i} has token ids outside the vocabulary of {self.cfg.vocab_size}: {bad[:5]}")
        batch_size = min(batch_size or len(prompts), len(prompts))
        if batch_size < 1:
            raise ValueError(f"sampling.batch_size must be >= 1, got {batch_size}")
        prompt_len, cache_len = self.plan(prompts, sampling, max_len)
        static = (sampling.max_new_tokens, cache_len, sampling.greedy, sampling.top_k, sampling.top_p < 1,
                  sampling.pad_id)
        program = self._program(static)
        stop_ids = stop_token_array(sampling.stop_tokens)
        base_key = jax.random.fold_in(jax.random.key(sampling.seed), stream)
        tokens_out, lengths_out = [], []
        for chunk_index, start in enumerate(range(0, len(prompts), batch_size)):
            chunk = prompts[start:start + batch_size]
            n_real = len(chunk)
            chunk = chunk + [[sampling.pad_id]] * (batch_size - n_real)  # keep the compiled batch shape
            tokens, mask = left_pad(chunk, prompt_len, sampling.pad_id)
            out, lengths = program(self.params, self._place(tokens), self._place(mask),
                                   jax.random.fold_in(base_key, chunk_index),
                                   jnp.float32(sampling.temperature if not sampling.greedy else 1.0),
                                   jnp.float32(sampling.top_p), stop_ids)
            tokens_out.append(np.asarray(out)[:n_real])
            lengths_out.append(np.asarray(lengths)[:n_real])
        return GenerationOutput(np.concatenate(tokens_out), np.concatenate(lengths_out))


def _unrolled(cfg: ModelConfig, params: Any, mesh: Mesh | None, rules) -> tuple[ModelConfig, Any]:
    """(cfg with scan_layers=False, params with one array per layer), placed with that layout's shardings."""
    unrolled_cfg = cfg.replace(scan_layers=False)
    shardings = None
    if mesh is not None:
        _, abstract = graphdef_and_abstract_params(unrolled_cfg)
        shardings = shd.param_shardings(abstract, mesh, rules)
    return unrolled_cfg, jax.jit(unstack_layers, out_shardings=shardings)(params)


def _bucket(length: int) -> int:
    """Prompt lengths are padded to a power of two (>= 16) so nearby lengths share one program."""
    bucket = MIN_PROMPT_BUCKET
    while bucket < length:
        bucket *= 2
    return bucket

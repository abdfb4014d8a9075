"""Next-token samplers on float32 logits: greedy, temperature, top-k, top-p (nucleus).

The order of the filters is that of Hugging Face generate (temperature, then top-k, then top-p), so
the same settings mean the same distribution. Which filters run is static (part of the compiled
program, so greedy decoding never pays for a sort); temperature and top_p values are traced, so
changing them does not recompile.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to pick tokens and when to stop; fields mirror the `sampling` section of configs/generate.py.

    temperature 0 is greedy decoding. top_k 0 and top_p 1 disable those filters. A row ends after
    it emits any of `stop_tokens` (the stop token is kept in the output and counted in the row's
    length); later positions hold `pad_id`.
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    stop_tokens: tuple[int, ...] = ()
    seed: int = 0
    pad_id: int = 0

    def __post_init__(self):
        object.__setattr__(self, "stop_tokens", tuple(int(t) for t in self.stop_tokens))
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not self.temperature >= 0:
            raise ValueError(f"sampling.temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"sampling.top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1] (1 = off), got {self.top_p!r}")
        if any(t < 0 for t in self.stop_tokens):
            raise ValueError(f"sampling.stop_tokens must be token ids >= 0, got {self.stop_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def top_k_filter(logits: jax.Array, k: int) -> jax.Array:
    """Sets every logit below the k-th largest of its row to -inf (ties with the k-th are kept)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits >= kth, logits, -jnp.inf)


def top_p_filter(logits: jax.Array, p) -> jax.Array:
    """Keeps the nucleus: the fewest most-probable tokens whose probability sums to at least p.

    A token is kept when the probability mass strictly before it (in descending order) is below p,
    so the most probable token is always kept; tokens tied with the last kept one are kept too.
    """
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    sorted_probs = jnp.flip(jnp.sort(probs, axis=-1), axis=-1)
    mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < p
    cutoff = jnp.min(jnp.where(keep_sorted, sorted_probs, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(probs >= cutoff, logits, -jnp.inf)


def sample(logits: jax.Array, key: jax.Array, temperature, top_p, *, greedy: bool, top_k: int,
           use_top_p: bool) -> jax.Array:
    """Token ids (batch,) int32 from logits (batch, vocab); static flags choose the filters."""
    logits = logits.astype(jnp.float32)
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    logits = top_k_filter(logits, top_k)
    if use_top_p:
        logits = top_p_filter(logits, top_p)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def stop_token_array(stop_tokens: Sequence[int]) -> jax.Array:
    """Stop ids padded with -1 to a multiple of 8, so small changes to the list do not recompile."""
    n = max(8, -(-len(stop_tokens) // 8) * 8)
    return jnp.asarray(list(stop_tokens) + [-1] * (n - len(stop_tokens)), jnp.int32)


def sample_rows(logits: jax.Array, seeds: jax.Array, steps: jax.Array, temperature: jax.Array,
                top_k: jax.Array, top_p: jax.Array) -> jax.Array:
    """Token ids (batch,) where every row has its own settings, all traced (batch,) arrays: the
    continuous-batching engine's sampler, one compiled program for any mix of requests.

    A row with temperature 0 is greedy (argmax, as `sample` with greedy=True). Otherwise the filters
    run in `sample`'s order (temperature, top-k with k 0 = off, top-p with p 1 = off) and the token is
    drawn with the key fold_in(key(seed), step): a request's draws depend on its seed and its step only,
    never on the row it landed in or on what else is in flight.
    """
    logits = logits.astype(jnp.float32)
    greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def drawn(_):
        scaled = logits / jnp.where(temperature > 0, temperature, 1.0)[:, None]
        descending = -jnp.sort(-scaled, axis=-1)
        kth = jnp.take_along_axis(descending, jnp.clip(top_k - 1, 0, scaled.shape[-1] - 1)[:, None], axis=-1)
        scaled = jnp.where((top_k[:, None] > 0) & (scaled < kth), -jnp.inf, scaled)
        scaled = jnp.where((top_p < 1)[:, None], top_p_filter(scaled, top_p[:, None]), scaled)
        keys = jax.vmap(lambda seed, step: jax.random.fold_in(jax.random.key(seed), step))(seeds, steps)
        return jax.vmap(lambda key, row: jax.random.categorical(key, row))(keys, scaled).astype(jnp.int32)

    sampled = jax.lax.cond(jnp.any(temperature > 0), drawn, lambda _: greedy, None)
    return jnp.where(temperature > 0, sampled, greedy)

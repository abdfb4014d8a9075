"""Continuous batching: a fixed set of decode slots over one preallocated KV cache, requests inserted into
free slots between decode steps (what the HTTP server runs; JetStream's and vLLM's design in small).

    engine = Engine(Generator(cfg, params, mesh), slots=16)
    engine.start()
    engine.submit(Request(prompt=ids, max_tokens=64, on_token=..., on_finish=...))

The cache has `slots` rows of `max_len` positions, each row with its own write slot (kv_cache's per-row
index). One thread owns it and loops:

  1. admit: every waiting request that finds a free row is prefilled alone (its prompt left padded to a
     power-of-two bucket, so a handful of programs serve every length: the Generator's prefill, batch 1)
     and its cache rows are copied into the free row; its first token is sampled there;
  2. decode: one token for every row in one compiled step (a free row computes too and is ignored: the
     step's shapes never change, so it compiles once);
  3. deliver: each busy row's token goes to its request's callback; a request that emitted a stop token,
     reached max_tokens, was cancelled or whose callback asked to stop frees its row at once.

So a short request never waits for a long one, and a request's tokens do not depend on what else is in
flight: its prefill runs alone, its decode row reads only its own cache row, and its sampler's key is
(its seed, its step). Greedy output is token for token what `Generator.generate` gives for the same
prompt (tests/test_engine.py).

Sharded like generation: the Generator's params on its mesh, the cache rows split over the batch axes.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biomed_jax import sharding as shd
from biomed_jax.inference.generate import MIN_PROMPT_BUCKET, Generator, _bucket, decode_step, left_pad, prefill
from biomed_jax.inference.sampling import sample_rows
from biomed_jax.models.kv_cache import KVCache, init_cache

# Alternatives returned with every token (OpenAI's chat API allows up to 20 top_logprobs).
TOP_LOGPROBS = 20

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The engine's waiting queue holds `queue_size` requests already; retry later."""


class EngineStopped(RuntimeError):
    """The engine is shutting down and accepts no new request."""


@dataclasses.dataclass(frozen=True)
class Token:
    """One generated token: its id and log-probability under the model (log-softmax of the raw logits),
    and the TOP_LOGPROBS most probable ids with theirs."""

    id: int
    logprob: float
    top_ids: np.ndarray
    top_logprobs: np.ndarray


@dataclasses.dataclass(eq=False)
class Request:
    """A completion to run. `on_token(token)` is called from the engine's thread for every token and
    returns True to end the request there (a stop string found in the text); `on_finish(reason)` is
    called once: "stop" (a stop token or on_token), "length" (max_tokens), "cancelled" or "error"."""

    prompt: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    stop_tokens: frozenset[int] = frozenset()
    on_token: Callable[[Token], bool] | None = None
    on_finish: Callable[[str], None] | None = None
    id: int = dataclasses.field(default_factory=itertools.count().__next__)
    # Set by the engine.
    generated: int = 0
    submitted_at: float = 0.0
    first_token_at: float | None = None
    cancelled: bool = False
    finish_reason: str | None = None


class Engine:
    """Continuous batching over a Generator's model (see the module docstring).

    slots: rows decoded together. max_len: positions per row (0 = the model's max_seq_len): a request
    needs its prompt + max_tokens to fit. queue_size: requests that may wait while every row is busy;
    more raise QueueFull.
    """

    def __init__(self, generator: Generator, slots: int = 16, max_len: int = 0, queue_size: int = 64):
        cfg = generator.cfg
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        self.max_len = int(max_len or cfg.max_seq_len)
        if not 1 <= self.max_len <= cfg.max_seq_len and cfg.positions == "learned":
            raise ValueError(f"max_len {self.max_len} must be in [1, model.max_seq_len = {cfg.max_seq_len}] for "
                             "this learned-position model")
        if self.max_len < 2:
            raise ValueError(f"max_len must be >= 2 (one prompt token and one new token), got {self.max_len}")
        self.generator, self.slots, self.queue_size = generator, slots, queue_size
        self.vocab_size = cfg.vocab_size
        self._lock = threading.Condition()
        self._waiting: collections.deque[Request] = collections.deque()
        self._rows: list[Request | None] = [None] * slots
        self._stopping = False   # no new requests
        self._closed = False     # the loop ends once nothing is left
        self._thread: threading.Thread | None = None
        # Per-row decode inputs, on the host (a few numbers per row each step).
        self._token = np.zeros(slots, np.int32)
        self._position = np.zeros(slots, np.int32)
        self._seed = np.zeros(slots, np.uint32)
        self._step = np.zeros(slots, np.int32)
        self._temperature = np.zeros(slots, np.float32)
        self._top_k = np.zeros(slots, np.int32)
        self._top_p = np.ones(slots, np.float32)
        self._programs: dict[int, Callable] = {}
        self._decode = self._compiled(self._decode_fn, donate=(1,))
        self._cache = self._compiled(lambda: init_cache(cfg, slots, self.max_len, per_row=True))()

    # --- the compiled programs --------------------------------------------------------------------

    def _compiled(self, fn, donate: tuple[int, ...] = ()):
        mesh, rules = self.generator.mesh, self.generator.rules

        def run(*args):
            if mesh is None:
                return fn(*args)
            with shd.activation_sharding(mesh, rules):
                return fn(*args)

        return jax.jit(run, donate_argnums=donate)

    @staticmethod
    def _pick(logits, seed, step, temperature, top_k, top_p):
        logprobs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        ids = sample_rows(logits, seed, step, temperature, top_k, top_p)
        chosen = jnp.take_along_axis(logprobs, ids[:, None], axis=-1)[:, 0]
        top_logprobs, top_ids = jax.lax.top_k(logprobs, min(TOP_LOGPROBS, logprobs.shape[-1]))
        return ids, chosen, top_ids, top_logprobs

    def _decode_fn(self, params, cache: KVCache, token, position, seed, step, temperature, top_k, top_p):
        """One token for every row. Attention reads the whole cache row: reading only the slots in use
        (a static window per power of two) was slower on XLA:CPU, which copies the slice."""
        model = nnx.merge(self.generator.graphdef, params)
        logits, cache = decode_step(model, token, position, cache)
        return self._pick(logits, seed, step, temperature, top_k, top_p), cache

    def _insert_program(self, bucket: int):
        """Prefill of one prompt left padded to `bucket`, copied into row `row` of the cache (positions
        [0, bucket), the rest of the row marked empty), and its first token."""
        if bucket not in self._programs:
            cfg, max_len = self.generator.cfg, self.max_len

            def insert(params, cache: KVCache, tokens, mask, row, seed, temperature, top_k, top_p):
                model = nnx.merge(self.generator.graphdef, params)
                part = init_cache(cfg, 1, bucket)
                logits, part, _ = prefill(model, tokens, mask, part)
                axis = 1 if cache.stacked else 0   # the batch axis of the k / v arrays

                def put(whole, piece):
                    start = [0] * whole.ndim
                    start[axis] = row
                    return jax.lax.dynamic_update_slice(whole, piece.astype(whole.dtype), start)

                valid = jnp.zeros((1, max_len), bool).at[:, :bucket].set(part.valid)
                cache = cache.replace(k=jax.tree.map(put, cache.k, part.k), v=jax.tree.map(put, cache.v, part.v),
                                      valid=jax.lax.dynamic_update_slice(cache.valid, valid, (row, 0)),
                                      index=cache.index.at[row].set(bucket))
                picked = self._pick(logits, seed[None], jnp.zeros((1,), jnp.int32), temperature[None],
                                    top_k[None], top_p[None])
                return picked, cache

            self._programs[bucket] = self._compiled(insert, donate=(1,))
        return self._programs[bucket]

    def bucket(self, prompt_len: int, max_tokens: int) -> int:
        """The padded prompt length a request is prefilled at (a power of two, as the Generator pads, cut
        so that max_tokens still fit the row)."""
        return min(_bucket(prompt_len), self.max_len - max_tokens)

    def warmup(self) -> None:
        """Compiles the decode step and every power-of-two prefill bucket (so no request pays a compile)."""
        buckets, b = [], MIN_PROMPT_BUCKET
        while b < self.max_len:
            buckets.append(b)
            b *= 2
        params = self.generator.params
        for bucket in buckets:
            tokens, mask = left_pad([[0]], bucket)
            _, self._cache = self._insert_program(bucket)(
                params, self._cache, tokens, mask, jnp.int32(0), jnp.uint32(0), jnp.float32(0), jnp.int32(0),
                jnp.float32(1))
        out, self._cache = self._decode(params, self._cache, *self._row_inputs())
        jax.block_until_ready(out)

    # --- requests -----------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        """Raises ValueError, naming the field, for a request this engine cannot run."""
        if not request.prompt:
            raise ValueError("prompt: it has no tokens; give at least one")
        bad = [t for t in request.prompt if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"prompt: token ids outside the vocabulary of {self.vocab_size}: {bad[:5]}")
        if request.max_tokens < 1:
            raise ValueError(f"max_tokens: must be >= 1, got {request.max_tokens}")
        if len(request.prompt) + request.max_tokens > self.max_len:
            raise ValueError(f"max_tokens: the prompt's {len(request.prompt)} tokens + max_tokens {request.max_tokens} "
                             f"exceed the context of {self.max_len} tokens")

    def submit(self, request: Request) -> Request:
        """Queues a request (checked first); raises QueueFull or EngineStopped."""
        self.check(request)
        with self._lock:
            if self._stopping:
                raise EngineStopped("the server is shutting down")
            free_rows = sum(row is None for row in self._rows)
            if len(self._waiting) >= self.queue_size + free_rows:   # those beyond the free rows wait
                raise QueueFull(f"{len(self._waiting) - free_rows} requests are waiting (queue_size {self.queue_size})")
            request.submitted_at = time.perf_counter()
            self._waiting.append(request)
            self._lock.notify()
        return request

    def cancel(self, request: Request) -> None:
        """Ends a request (a client went away): its row is freed before the next decode step."""
        with self._lock:
            request.cancelled = True
            self._lock.notify()

    def load(self) -> tuple[int, int]:
        """(requests waiting, rows busy)."""
        with self._lock:
            return len(self._waiting), sum(row is not None for row in self._rows)

    # --- the loop ------------------------------------------------------------------------------------

    def start(self) -> "Engine":
        """Starts the engine's thread (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="biomed-engine", daemon=True)
            self._thread.start()
        return self

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Stops accepting requests, lets those in flight and waiting finish for up to `timeout` seconds,
        then cancels the rest. True when everything finished in time."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self.load()):
            time.sleep(0.01)
        finished = not any(self.load())
        with self._lock:
            for request in list(self._waiting) + [r for r in self._rows if r is not None]:
                request.cancelled = True
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return finished

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not any(self._rows) and not self._closed:
                    self._lock.wait()
                if self._closed and not self._waiting and not any(self._rows):
                    return
                admitted = self._admit()
            try:
                for row, request in admitted:
                    self._prefill(row, request)
                self._free_cancelled()
                if any(self._rows):
                    self._decode_all()
            except Exception:  # a bug, not a request's fault: fail what is in flight, keep serving
                log.exception("engine step failed; ending the requests in flight")
                for row, request in enumerate(self._rows):
                    if request is not None:
                        self._finish(row, "error")

    def _admit(self) -> list[tuple[int, Request]]:
        """Under the lock: drops cancelled waiting requests, pairs waiting ones with free rows (FIFO)."""
        for request in [r for r in self._waiting if r.cancelled]:
            self._waiting.remove(request)
            _finish_callback(request, "cancelled")
        admitted = []
        for row in range(self.slots):
            if self._rows[row] is None and self._waiting:
                request = self._waiting.popleft()
                self._rows[row] = request
                admitted.append((row, request))
        return admitted

    def _row_inputs(self):
        place = self.generator._place
        return tuple(map(place, (self._token, self._position, self._seed, self._step, self._temperature,
                                 self._top_k, self._top_p)))

    def _prefill(self, row: int, request: Request) -> None:
        prompt = request.prompt
        bucket = self.bucket(len(prompt), request.max_tokens)
        tokens, mask = left_pad([prompt], bucket)
        out, self._cache = self._insert_program(bucket)(
            self.generator.params, self._cache, tokens, mask, jnp.int32(row), jnp.uint32(request.seed),
            jnp.float32(request.temperature), jnp.int32(request.top_k), jnp.float32(request.top_p))
        ids, chosen, top_ids, top_logprobs = (np.asarray(a) for a in out)
        self._token[row], self._position[row], self._step[row] = ids[0], len(prompt), 1
        self._seed[row], self._temperature[row] = request.seed, request.temperature
        self._top_k[row], self._top_p[row] = request.top_k, request.top_p
        request.first_token_at = time.perf_counter()
        self._deliver(row, Token(int(ids[0]), float(chosen[0]), top_ids[0], top_logprobs[0]))

    def _decode_all(self) -> None:
        out, self._cache = self._decode(self.generator.params, self._cache, *self._row_inputs())
        ids, chosen, top_ids, top_logprobs = (np.asarray(a) for a in out)
        for row, request in enumerate(self._rows):
            if request is None:
                continue
            self._token[row] = ids[row]
            self._position[row] += 1
            self._step[row] += 1
            self._deliver(row, Token(int(ids[row]), float(chosen[row]), top_ids[row], top_logprobs[row]))

    def _deliver(self, row: int, token: Token) -> None:
        request = self._rows[row]
        request.generated += 1
        try:
            stop = bool(request.on_token(token)) if request.on_token else False
        except Exception:
            log.exception("request %s: token callback failed; cancelling it", request.id)
            request.cancelled, stop = True, False
        if request.cancelled:
            self._finish(row, "cancelled")
        elif stop or token.id in request.stop_tokens:
            self._finish(row, "stop")
        elif request.generated >= request.max_tokens:
            self._finish(row, "length")

    def _free_cancelled(self) -> None:
        for row, request in enumerate(self._rows):
            if request is not None and request.cancelled:
                self._finish(row, "cancelled")

    def _finish(self, row: int, reason: str) -> None:
        request = self._rows[row]
        with self._lock:
            self._rows[row] = None
        _finish_callback(request, reason)


def _finish_callback(request: Request, reason: str) -> None:
    request.finish_reason = reason
    if request.on_finish is not None:
        try:
            request.on_finish(reason)
        except Exception:
            log.exception("request %s: finish callback failed", request.id)

"""Log-likelihood of continuations given contexts, batched and jitted: the engine behind lm-eval's
`loglikelihood` / `loglikelihood_rolling` and the project's own evaluation harness.

A request is (context_ids, continuation_ids). What the model reads is context + continuation minus
the last token, at most `max_len` tokens (lm-eval's convention: the final token is only predicted),
so a long request loses tokens from the LEFT of its context, never from its continuation.

Multiple-choice benchmarks ask for one context with several continuations (MedQA: 4 options after a
~200-token vignette). Scoring each pair as its own row, as lm-eval's Hugging Face backend does, runs
the shared context through the model once per option. Here requests whose context (bar its last
token) is identical share one prefill: the context goes through the model once into a KV cache, then
every option attends over that cache in its own pass. Logits (a `vocab`-wide matmul) are computed
for continuation positions only, and the target log-probabilities are gathered inside jit, so only
one float and one bool per request come back to the host.

Shapes are bucketed (batch fixed; prefix and continuation lengths rounded up to a few sizes; the
number of options per context to a power of two), so a whole benchmark compiles a handful of
programs. Under a mesh, rows are split over its batch axes ('data', 'fsdp') and parameters keep
their sharding rules, as in training.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from biomed_jax import sharding as shd
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params
from biomed_jax.models.kv_cache import init_cache
from biomed_jax.train.state import param_shardings
from biomed_jax.run_dir import DEFAULT_MESH, load_run

def target_logprobs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log p(target) at each position, float32: the target's logit minus the log-sum-exp of all."""
    logits = logits.astype(jnp.float32)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return target_logit - jax.nn.logsumexp(logits, axis=-1)


# A context shared by more options than this is prefilled once per this many options (bounds K).
MAX_OPTIONS_PER_PREFILL = 8
MIN_BUCKET = 16
# Logits of at most this many positions per row are live at once (the vocab-wide matmul is chunked).
LOGIT_CHUNK = 64


def bucket_length(n: int, minimum: int = MIN_BUCKET) -> int:
    """Padded length for `n` tokens: powers of two up to 64, then eighth-octave steps of at least 32
    (96, 128, 160, ..., 256, 288, ..., 512, 576, ..., 1024, 1152, ...). Padding stays under 12.5%
    past 256 tokens (a MedQA-sized 200-token context pads to 224, not 256) while a benchmark whose
    lengths spread over 50-1000 tokens compiles a few dozen shapes at most, not hundreds."""
    size = minimum
    while size < n and size < 64:
        size *= 2
    if size >= n:
        return size
    step = max(32, (1 << ((n - 1).bit_length() - 1)) // 8)
    return -(-n // step) * step


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def rolling_windows(token_ids: Sequence[int], prefix_id: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) windows that together predict every token once, each conditioned on as
    much preceding text as fits: lm-eval's get_rolling_token_windows(context_len=1) followed by
    make_disjoint_window. The first token is conditioned on `prefix_id` (BOS/EOS)."""
    tokens = [int(t) for t in token_ids]
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if not tokens:
        return []
    first = min(max_len, len(tokens))
    windows = [([int(prefix_id)], tokens[:first])]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_len)
        end = predicted + n
        windows.append((tokens[end - max_len - 1:end - n], tokens[end - n:end]))
        predicted = end
    return windows


class LoglikScorer:
    """Scores (context_ids, continuation_ids) requests with a model's params (a pure dict, as
    biomed_jax.run_dir.load_run returns them).

    batch_size is the number of contexts per compiled call (rounded up to a multiple of the mesh's
    batch devices); each context carries up to MAX_OPTIONS_PER_PREFILL continuations. max_len (default
    model.max_seq_len) is the most tokens the model reads per request. prefix_id is the token that
    conditions the first token in `rolling` (lm-eval uses BOS, else EOS). `set_params` swaps in another
    version of the same model (fine-tuning's evaluations) without compiling anything again.
    """

    def __init__(self, cfg: ModelConfig, params: Any, mesh: Mesh | None = None, batch_size: int = 16,
                 max_len: int | None = None, rules: Mapping[str, Any] | None = None,
                 prefix_id: int | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        max_len = cfg.max_seq_len if max_len is None else int(max_len)
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if cfg.positions == "learned" and max_len > cfg.max_seq_len:
            raise ValueError(f"max_len ({max_len}) exceeds model.max_seq_len ({cfg.max_seq_len}) of this "
                             "learned-position model")
        self.cfg = cfg
        self.max_len = max_len
        self.prefix_id = prefix_id
        self.mesh = mesh
        self.rules = shd.rules_dict(rules)
        self.graphdef, _ = graphdef_and_abstract_params(cfg)
        batch_devices = 1 if mesh is None else math.prod(mesh.shape[a] for a in shd.BATCH_AXES)
        self._batch_devices = batch_devices
        self.batch_size = -(-batch_size // batch_devices) * batch_devices
        _, abstract = graphdef_and_abstract_params(cfg)
        self._abstract = nnx.to_pure_dict(abstract)
        self._shardings = None
        if mesh is not None:
            self._shardings = param_shardings(cfg, mesh, self.rules)
            rows2 = shd.batch_sharding(mesh, 2)
            rows1 = shd.batch_sharding(mesh, 1)
            options = NamedSharding(mesh, PartitionSpec(None, shd.BATCH_AXES, None))
            # The two small results come back replicated: every process of a multi-host mesh can then
            # read all of them (np.asarray of a batch-sharded array fails where a process lacks shards).
            replicated = shd.replicated(mesh)
            self._program = jax.jit(self._run, in_shardings=(self._shardings, rows2, rows1, options, options, options),
                                    out_shardings=(replicated, replicated))
        else:
            self._program = jax.jit(self._run)
        self.params = None
        self.set_params(params)
        self._shapes: set[tuple[int, int, int, int]] = set()

    def set_params(self, params: Any) -> None:
        """Scores with `params` from now on: another version of the same model (same config, e.g. after a
        fine-tuning epoch), placed with this scorer's shardings so its compiled programs are reused."""
        expected = jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), self._abstract)
        try:
            given = jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), params)
        except AttributeError:
            given = None  # a leaf that is not an array
        if given != expected:
            raise ValueError("LoglikScorer.set_params: the params do not match the scorer's model config (other "
                             "parameter names, shapes or dtypes); build a new LoglikScorer for another model")
        self.params = params if self._shardings is None else jax.device_put(params, self._shardings)

    # ----------------------------------------------------------------------------- the compiled program

    def _run(self, params, prefix, prefix_len, inputs, targets, mask):
        """prefix (B, P) right padded with per-row lengths; inputs/targets/mask (K, B, T): option k of
        each row's context. Returns (summed target log-probs (K, B) fp32, all-greedy (K, B))."""
        if self.mesh is None:
            return self._score_options(params, prefix, prefix_len, inputs, targets, mask)
        with shd.activation_sharding(self.mesh, self.rules):
            return self._score_options(params, prefix, prefix_len, inputs, targets, mask)

    def _score_options(self, params, prefix, prefix_len, inputs, targets, mask):
        model = nnx.merge(self.graphdef, params)
        batch, prefix_bucket = prefix.shape
        cont_bucket = inputs.shape[2]
        slots = jnp.arange(prefix_bucket, dtype=jnp.int32)[None, :]
        prefix_mask = slots < prefix_len[:, None]
        # Pads get position 0: a learned position table has no row past max_seq_len.
        prefix_positions = jnp.where(prefix_mask, slots, 0)
        cache = init_cache(self.cfg, batch, prefix_bucket + cont_bucket)
        _, cache = model.hidden_states_with_cache(prefix, prefix_positions, cache, mask=prefix_mask)
        offsets = jnp.arange(cont_bucket, dtype=jnp.int32)[None, :]
        chunk = math.gcd(cont_bucket, LOGIT_CHUNK)  # buckets past 64 are multiples of 32

        def one_option(xs):
            tokens, target, valid = xs
            positions = jnp.where(valid, prefix_len[:, None] + offsets, 0)
            hidden, _ = model.hidden_states_with_cache(tokens, positions, cache, mask=valid)

            def chunk_scores(ys):
                h, t = ys
                logits = model.logits(h)  # (batch, chunk, vocab) float32
                logprob = target_logprobs(logits, t)   # the definition fine-tuning's loss shares
                return logprob, jnp.argmax(logits, axis=-1) == t

            n_chunks = cont_bucket // chunk
            split = lambda x: jnp.moveaxis(x.reshape((batch, n_chunks, chunk) + x.shape[2:]), 1, 0)
            logprob, greedy = jax.lax.map(chunk_scores, (split(hidden), split(target)))
            logprob = jnp.moveaxis(logprob, 0, 1).reshape(batch, cont_bucket)
            greedy = jnp.moveaxis(greedy, 0, 1).reshape(batch, cont_bucket)
            total = jnp.sum(jnp.where(valid, logprob, 0.0), axis=1, dtype=jnp.float32)
            return total, jnp.all(greedy | ~valid, axis=1)

        return jax.lax.map(one_option, (inputs, targets, mask))

    # ------------------------------------------------------------------------------------- host side

    def compiled_shapes(self) -> list[tuple[int, int, int, int]]:
        """The (batch, prefix, options, continuation) shapes compiled so far (a test of bucketing)."""
        return sorted(self._shapes)

    def _plan(self, index: int, context: Sequence[int], continuation: Sequence[int]):
        context = [int(t) for t in context]
        continuation = [int(t) for t in continuation]
        if not context:
            raise ValueError(f"request {index}: the context is empty; condition on at least one token "
                             "(e.g. the BOS/EOS id, as lm-eval does for an empty context)")
        if len(continuation) > self.max_len:
            raise ValueError(f"request {index}: the continuation alone has {len(continuation)} tokens, more "
                             f"than max_len {self.max_len}; it cannot be scored without cutting it")
        vocab = self.cfg.vocab_size
        bad = [t for t in context + continuation if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"request {index}: token ids outside the vocabulary of {vocab}: {bad[:5]}")
        keep = self.max_len + 1 - len(continuation)
        truncated = max(0, len(context) - keep)
        context = context[truncated:]
        # The model reads context[:-1] once (shared between options) and then, per option,
        # [context[-1]] + continuation[:-1], predicting continuation.
        return tuple(context[:-1]), [context[-1]] + continuation[:-1], continuation, truncated

    def score(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]], *,
              progress: bool = False) -> list[tuple[float, bool, int]]:
        """For each (context_ids, continuation_ids): (sum of the continuation's log-probs in fp32,
        whether it is the greedy argmax at every position, how many context tokens were cut from the
        left to fit max_len). Results come back in the order of `requests`; `progress` shows a bar."""
        results: list[tuple[float, bool, int] | None] = [None] * len(requests)
        groups: dict[tuple, list] = collections.defaultdict(list)
        for index, request in enumerate(requests):
            if len(request) != 2:
                raise ValueError(f"request {index}: expected (context_ids, continuation_ids), got {len(request)} items")
            prefix, inputs, targets, truncated = self._plan(index, *request)
            if len(targets) == 0:
                results[index] = (0.0, True, truncated)  # nothing to predict: log 1
                continue
            groups[prefix].append((index, inputs, targets, truncated))
        entries = []
        for prefix, options in groups.items():
            for start in range(0, len(options), MAX_OPTIONS_PER_PREFILL):
                entries.append((prefix, options[start:start + MAX_OPTIONS_PER_PREFILL]))
        # Longest first (memory errors show at once); similar lengths share a padded shape.
        entries.sort(key=lambda e: (len(e[0]), max(len(o[2]) for o in e[1])), reverse=True)
        starts = range(0, len(entries), self.batch_size)
        for start in tqdm(starts, desc="loglikelihood batches", disable=not progress or len(starts) < 2):
            self._score_batch(entries[start:start + self.batch_size], results)
        return results  # type: ignore[return-value]

    def _score_batch(self, entries, results) -> None:
        # A short (last) batch runs at the next power of two of its size, not at the full batch.
        batch = min(self.batch_size, -(-_pow2(len(entries)) // self._batch_devices) * self._batch_devices)
        prefix_bucket = bucket_length(max(len(p) for p, _ in entries))
        cont_bucket = bucket_length(max(len(o[2]) for _, opts in entries for o in opts))
        n_options = _pow2(max(len(opts) for _, opts in entries))
        prefix = np.zeros((batch, prefix_bucket), np.int32)
        prefix_len = np.zeros((batch,), np.int32)
        inputs = np.zeros((n_options, batch, cont_bucket), np.int32)
        targets = np.zeros((n_options, batch, cont_bucket), np.int32)
        mask = np.zeros((n_options, batch, cont_bucket), bool)
        for row, (p, options) in enumerate(entries):
            prefix[row, :len(p)] = p
            prefix_len[row] = len(p)
            for k, (_, x, y, _) in enumerate(options):
                inputs[k, row, :len(x)] = x
                targets[k, row, :len(y)] = y
                mask[k, row, :len(y)] = True
        self._shapes.add((batch, prefix_bucket, n_options, cont_bucket))
        totals, greedy = self._program(self.params, prefix, prefix_len, inputs, targets, mask)
        totals, greedy = np.asarray(totals), np.asarray(greedy)
        for row, (_, options) in enumerate(entries):
            for k, (index, _, _, truncated) in enumerate(options):
                results[index] = (float(totals[k, row]), bool(greedy[k, row]), truncated)

    def rolling(self, token_ids: Sequence[int], prefix_id: int | None = None) -> float:
        """Log-probability of a whole token sequence (lm-eval's loglikelihood_rolling): windows of
        max_len tokens, each token predicted once, the first conditioned on `prefix_id`."""
        return self.rolling_many([token_ids], prefix_id)[0]

    def rolling_many(self, sequences: Sequence[Sequence[int]], prefix_id: int | None = None) -> list[float]:
        """`rolling` for many sequences, their windows scored in shared batches."""
        prefix_id = self.prefix_id if prefix_id is None else prefix_id
        if prefix_id is None:
            raise ValueError("rolling log-likelihood needs a prefix_id (the BOS/EOS token that conditions "
                             "the first token): pass it here or to LoglikScorer(prefix_id=...)")
        windows, owner = [], []
        for i, tokens in enumerate(sequences):
            for window in rolling_windows(tokens, prefix_id, self.max_len):
                windows.append(window)
                owner.append(i)
        totals = [0.0] * len(sequences)
        for i, (logprob, _, _) in zip(owner, self.score(windows)):
            totals[i] += logprob
        return totals


def load_scorer(checkpoint_dir: str, *, step: int | None = None, mesh: Mesh | None = None, batch_size: int = 16,
                max_len: int | None = None, tokenizer_path: str | None = None):
    """(LoglikScorer, biomed_jax.run_dir.Run) for a run directory: the run gives the tokenizer and its
    BOS/EOS ids, the scorer holds the params (the run's reference is dropped). The scorer's prefix_id is
    the run's end-of-text id where it has one (lm-eval's default)."""
    mesh = mesh or shd.make_mesh(DEFAULT_MESH)
    run = load_run(checkpoint_dir, step=step, mesh=mesh, tokenizer=tokenizer_path)
    scorer = LoglikScorer(run.model_cfg, run.params, mesh=mesh, batch_size=batch_size, max_len=max_len,
                          prefix_id=run.eos_id)
    run.params = None  # the scorer holds them
    return scorer, run

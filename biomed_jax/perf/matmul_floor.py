"""A step's weight matmuls alone, in jax and in torch: the floor under a benchmark's step time.

A decode or training step cannot run faster than its matmuls. Timing just those matmuls in both
libraries, with the same shapes and weights, tells how much of a benchmark's gap is matmul speed
and how much is everything else (attention masking and softmax, norms, the cache, the optimizer).

Each layer: fused q/k/v, output, MLP up (and gate for SwiGLU), down; then the LM head. Every layer
has its own weights, so they stream from memory as in a real step. The torch side uses F.linear on
(out, in) weights, as transformers' nn.Linear does.
"""

from __future__ import annotations

import time


def layer_shapes(cfg) -> list[tuple[int, int]]:
    """(in, out) of each weight matmul of one layer of `cfg` (a ModelConfig)."""
    d, f = cfg.d_model, cfg.d_ff
    shapes = [(d, (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim), (cfg.n_heads * cfg.head_dim, d), (d, f), (f, d)]
    if cfg.mlp == "swiglu":
        shapes.append((d, f))
    return shapes


def _weights(cfg, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    layers = [[rng.standard_normal(s, dtype=np.float32) * 0.02 for s in layer_shapes(cfg)] for _ in range(cfg.n_layers)]
    return rng, layers, rng.standard_normal((cfg.vocab_size, cfg.d_model), dtype=np.float32) * 0.02


def _check_dtype(dtype: str) -> None:
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"--floor_dtypes: {dtype!r} is not float32 or bfloat16")


def decode_floor_steps(cfg, batch: int, seed: int, dtype: str = "float32"):
    """(jax_step, torch_step): one decode step's weight matmuls for `batch` rows, each returning logits."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    _check_dtype(dtype)
    _, weights, head = _weights(cfg, seed)
    x = np.full((batch, cfg.d_model), 0.1, np.float32)
    jax_dtype, torch_dtype = jnp.dtype(dtype), getattr(torch, dtype)

    def jax_matmuls(x, layers, head):
        for qkv, o, up, down, *gate in layers:
            x = x + (x @ qkv)[:, :o.shape[0]] @ o
            hidden = x @ up if not gate else jax.nn.silu(x @ gate[0]) * (x @ up)
            x = x + jax.nn.relu(hidden) @ down
        return x @ head.T

    compiled = jax.jit(jax_matmuls)
    args = (jnp.asarray(x, jax_dtype), [[jnp.asarray(w, jax_dtype) for w in layer] for layer in weights],
            jnp.asarray(head, jax_dtype))
    torch_layers = [[torch.from_numpy(np.ascontiguousarray(w.T)).to(torch_dtype) for w in layer] for layer in weights]
    torch_head, torch_x = torch.from_numpy(head).to(torch_dtype), torch.from_numpy(x).to(torch_dtype)

    def jax_step():
        return jax.block_until_ready(compiled(*args))

    def torch_step():
        with torch.inference_mode():
            x = torch_x
            for qkv, o, up, down, *gate in torch_layers:
                x = x + F.linear(F.linear(x, qkv)[:, :o.shape[1]], o)
                hidden = F.linear(x, up) if not gate else F.silu(F.linear(x, gate[0])) * F.linear(x, up)
                x = x + F.linear(torch.relu(hidden), down)
            return F.linear(x, torch_head)

    return jax_step, torch_step


def train_floor_steps(cfg, batch: int, seq_len: int, seed: int, device: str = "cpu", attention: bool = True):
    """(jax_step, torch_step): forward + backward of a training step's matmuls, fp32.

    Besides the weight matmuls, each layer has the attention matmuls (scores and values, all heads,
    the full seq x seq: no mask, no softmax); attention=False leaves them out (the queries go
    straight to the output projection) to separate the two. The backward starts from a fixed random
    cotangent of the logits. Each step returns (logits, LM head gradient, per-layer gradients), all
    materialised, so no matmul is pruned; the torch side runs on `device` ("cpu" or "cuda").
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    rng, weights, head = _weights(cfg, seed)
    n, k, h = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    x = rng.standard_normal((batch * seq_len, cfg.d_model), dtype=np.float32)
    cotangent = rng.standard_normal((batch * seq_len, cfg.vocab_size), dtype=np.float32)

    def jax_forward(layers, head, x):
        for qkv, o, up, down, *gate in layers:
            q, key, value = jnp.split(x @ qkv, [n * h, (n + k) * h], axis=1)
            q = q.reshape(batch, seq_len, k, n // k, h)
            key, value = key.reshape(batch, seq_len, k, h), value.reshape(batch, seq_len, k, h)
            if attention:
                scores = jnp.einsum("btkgh,bskh->bkgts", q, key) * 1e-3
                attended = jnp.einsum("bkgts,bskh->btkgh", scores, value).reshape(batch * seq_len, n * h)
            else:
                attended = q.reshape(batch * seq_len, n * h) + key.mean() + value.mean()
            x = x + attended @ o
            hidden = x @ up if not gate else jax.nn.silu(x @ gate[0]) * (x @ up)
            x = x + jax.nn.relu(hidden) @ down
        return x @ head.T

    @jax.jit
    def forward_backward(layers, head, x, cotangent):
        logits, backward = jax.vjp(lambda layers, head: jax_forward(layers, head, x), layers, head)
        return logits, backward(cotangent)  # every gradient is an output, so none is pruned

    args = ([[jnp.asarray(w) for w in layer] for layer in weights], jnp.asarray(head), jnp.asarray(x),
            jnp.asarray(cotangent))

    def jax_step():
        logits, (layer_grads, head_grad) = jax.block_until_ready(forward_backward(*args))
        return logits, head_grad, layer_grads

    def param(w):
        return torch.tensor(w, device=device, requires_grad=True)

    torch_layers = [[param(np.ascontiguousarray(w.T)) for w in layer] for layer in weights]
    torch_head = param(head)
    torch_x, torch_cotangent = torch.tensor(x, device=device), torch.tensor(cotangent, device=device)

    def torch_step():
        x = torch_x
        for qkv, o, up, down, *gate in torch_layers:
            q, key, value = F.linear(x, qkv).split([n * h, k * h, k * h], dim=1)
            q = q.reshape(batch, seq_len, k, n // k, h)
            key, value = key.reshape(batch, seq_len, k, h), value.reshape(batch, seq_len, k, h)
            if attention:
                scores = torch.einsum("btkgh,bskh->bkgts", q, key) * 1e-3
                attended = torch.einsum("bkgts,bskh->btkgh", scores, value).reshape(batch * seq_len, n * h)
            else:
                attended = q.reshape(batch * seq_len, n * h) + key.mean() + value.mean()
            x = x + F.linear(attended, o)
            hidden = F.linear(x, up) if not gate else F.silu(F.linear(x, gate[0])) * F.linear(x, up)
            x = x + F.linear(torch.relu(hidden), down)
        logits = F.linear(x, torch_head)
        logits.backward(torch_cotangent)
        head_grad, layer_grads = torch_head.grad, [[w.grad for w in layer] for layer in torch_layers]
        for p in [torch_head] + [w for layer in torch_layers for w in layer]:
            p.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        return logits.detach(), head_grad, layer_grads

    return jax_step, torch_step


def step_products(cfg, tokens: int) -> list[tuple[str, int, int, int, bool]]:
    """(name, m, k, n, rhs_transposed) of each distinct product of a training step over `tokens` tokens,
    in the layouts biomed_jax's compiled CPU step uses (see biomed_jax/kernels/cpu/dots.py)."""
    products = []
    for d_in, d_out in dict.fromkeys(layer_shapes(cfg)):
        products += [(f"{d_in}->{d_out} forward", tokens, d_in, d_out, False),
                     (f"{d_in}->{d_out} input grad", tokens, d_out, d_in, True),
                     (f"{d_in}->{d_out} weight grad", d_in, tokens, d_out, False)]
    v, d = cfg.vocab_size, cfg.d_model
    return products + [("LM head logits", tokens, d, v, True), ("LM head input grad", tokens, v, d, False),
                       ("LM head table grad", v, tokens, d, False)]


def product_speeds(cfg, tokens: int, seed: int, repeats: int = 5) -> list[dict]:
    """GFLOP/s of each of step_products in jax (XLA's dot) and torch (torch.mm), same operands, same layouts.

    The kernels alone, one product at a time: whether a gap between the whole steps is in the matrix
    multiplication libraries themselves.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    jax_mm = jax.jit(lambda a, b: a @ b)
    jax_mm_t = jax.jit(lambda a, b: a @ b.T)
    rows = []
    for name, m, k, n, transposed in step_products(cfg, tokens):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if transposed else (k, n), dtype=np.float32)
        ja, jb, ta, tb = jnp.asarray(a), jnp.asarray(b), torch.from_numpy(a), torch.from_numpy(b.copy())
        jax_fn = jax_mm_t if transposed else jax_mm
        seconds_jax = best_seconds(lambda: jax_fn(ja, jb).block_until_ready(), repeats)
        seconds_torch = best_seconds(lambda: ta @ (tb.t() if transposed else tb), repeats)
        gflop = 2 * m * k * n / 1e9
        rows.append(dict(product=name, m=m, k=k, n=n, rhs_transposed=transposed,
                         jax_gflops=gflop / seconds_jax, torch_gflops=gflop / seconds_torch))
    return rows


def best_seconds(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls (at least 3) after one untimed call."""
    fn()
    times = []
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def decode_floor_ms(cfg, batch: int, repeats: int, seed: int, dtype: str = "float32") -> tuple[float, float]:
    """Best-of-`repeats` ms of one decode step's weight matmuls alone in `dtype`: (jax, torch)."""
    jax_step, torch_step = decode_floor_steps(cfg, batch, seed, dtype)
    return 1e3 * best_seconds(jax_step, repeats), 1e3 * best_seconds(torch_step, repeats)

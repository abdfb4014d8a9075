"""Splash attention (model.attention = splash; the Pallas TPU kernel, in interpret mode on CPU): values
and gradients equal the XLA attention's with packed segments and grouped-query heads, in the model, on
an 8-device mesh, and the pretraining command trains with it."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from biomed_jax import sharding as shd
from biomed_jax.kernels.cpu import blocked_attention
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params, init_params
from biomed_jax.kernels.splash import splash_attention
from configs.models import model_preset
from helpers import run_cli


def test_splash_equals_xla_attention_with_segments_and_grouped_heads():
    rng = np.random.default_rng(0)
    batch, seq, heads, kv_heads, head_dim = 2, 256, 4, 2, 16
    q = jnp.asarray(rng.normal(size=(batch, seq, heads, head_dim)), jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(batch, seq, kv_heads, head_dim)), jnp.float32) for _ in range(2))
    segments = jnp.asarray([[1] * 100 + [2] * 156, [1] * 7 + [2] * 200 + [3] * 49], jnp.int32)

    def loss(attention, q, k, v):
        return (attention(q, k, v) ** 2 * jnp.arange(head_dim)).sum()

    splash = lambda q, k, v: splash_attention(q, k, v, segments, block=128)   # noqa: E731
    xla = lambda q, k, v: blocked_attention(q, k, v, segments)                # noqa: E731
    np.testing.assert_allclose(splash(q, k, v), xla(q, k, v), atol=2e-6)
    grads = [jax.grad(loss, argnums=(1, 2, 3))(f, q, k, v) for f in (splash, xla)]
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, atol=3e-5, rtol=1e-5)
    # Segments matter: without them the first document's tokens reach into the second.
    assert not np.allclose(splash_attention(q, k, v, None, block=128), xla(q, k, v), atol=1e-3)
    with pytest.raises(ValueError, match="multiple of model.splash_block"):
        splash_attention(q[:, :200], k[:, :200], v[:, :200], None, block=128)


def test_splash_block_is_checked_and_auto_picks_splash_only_on_tpu():
    with pytest.raises(ValueError, match="model.splash_block must be a positive multiple of 128"):
        ModelConfig.from_dict(dict(model_preset("tiny"), splash_block=100))
    cfg = ModelConfig.from_dict(model_preset("tiny"))
    assert cfg.attention_impl == {"tpu": "splash", "cpu": "blocked"}.get(jax.default_backend(), cfg.attention_impl)
    assert cfg.replace(attention="splash").attention_impl == "splash"


def test_model_with_splash_equals_xla_on_one_device_and_on_a_mesh():
    cfg = ModelConfig.from_dict({**model_preset("tiny_llama"), "dtype": "float32", "init_std": 0.2})
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(0))
    rng = np.random.default_rng(1)
    tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, size=(8, 128)), jnp.int32)
    positions = jnp.tile(jnp.arange(128), (8, 1))
    segments = jnp.asarray(np.repeat([[1] * 50 + [2] * 78], 8, 0), jnp.int32)

    def loss_and_grads(model_cfg, mesh=None):
        graphdef, abstract = graphdef_and_abstract_params(model_cfg)

        def loss(p):
            logits = nnx.merge(graphdef, p)(tokens, positions, segments)
            return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, tokens[..., None], -1)[..., 0])

        if mesh is None:
            return jax.jit(jax.value_and_grad(loss))(params)
        rules = shd.rules_dict()
        placed = jax.device_put(params, shd.param_shardings(abstract, mesh, rules))

        def sharded(p):
            with shd.activation_sharding(mesh, rules):
                return jax.value_and_grad(loss)(p)

        return jax.jit(sharded)(placed)

    want_loss, want_grads = loss_and_grads(cfg)
    runs = [loss_and_grads(cfg.replace(attention="splash", splash_block=128))]
    if jax.device_count() >= 8:
        runs.append(loss_and_grads(cfg.replace(attention="splash", splash_block=128),
                                   shd.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})))
    for got_loss, got_grads in runs:
        np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
        for got, want in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
            np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.slow   # about 20 s: the kernel runs interpreted
def test_pretraining_command_trains_with_splash_attention(tmp_path):
    workdir = str(tmp_path / "run")
    run_cli("experiments.pretrain", "--config=configs/pretrain.py:tiny_llama", "--config.model.dtype=float32",
            "--config.logging.tensorboard=False", "--config.model.attention=splash", "--config.model.splash_block=128",
            "--config.train.steps=6", "--config.optim.warmup_steps=1", "--config.train.log_every=1", f"--workdir={workdir}", timeout=900)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    assert len(losses) == 6 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["attention"] == "splash"

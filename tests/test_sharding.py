"""Sharded training on 8 simulated CPU devices equals the 1-device run; big kernels really split."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from biomed_jax import optim
from biomed_jax import sharding as shd
from biomed_jax.data.synthetic_tokens import SyntheticTokenBatches
from biomed_jax.models.config import ModelConfig
from biomed_jax.train.state import create_train_state, state_shardings
from biomed_jax.tasks.pretraining import token_loss, token_weight
from biomed_jax.train.steps import make_train_step
from biomed_jax.models.decoder import graphdef_and_abstract_params
from helpers import tiny_config

STEPS = 5


def train_losses(preset, mesh_sizes, n_devices, microbatches=1, dtype="float32"):
    cfg = tiny_config(preset, train=dict(batch_size=16, seq_len=32, microbatches=microbatches),
                      model=dict(dtype=dtype))
    model_cfg = ModelConfig.from_dict(cfg.model)
    mesh = shd.make_mesh(dict(zip(shd.MESH_AXES, mesh_sizes)), jax.devices()[:n_devices])
    rules = shd.rules_dict()
    tx, schedule = optim.from_config(cfg.optim, total_steps=20)
    shardings = state_shardings(model_cfg, tx, mesh, rules)
    state = create_train_state(model_cfg, tx, jax.random.key(0), shardings)
    graphdef, _ = graphdef_and_abstract_params(model_cfg)
    step = make_train_step(graphdef, token_loss, token_weight, tx, schedule, mesh, rules, shardings,
                           n_microbatches=microbatches)
    source = SyntheticTokenBatches(vocab_size=model_cfg.vocab_size, seq_len=32, global_batch_size=16, seed=0,
                                   mean_doc_len=12)
    losses = []
    for _ in range(STEPS):
        state, metrics = step(state, {}, shd.global_batch_from_local(next(source), mesh))
        losses.append(float(metrics["loss"]))
    return np.array(losses), state


@pytest.fixture(scope="module")
def reference_losses():
    return {preset: train_losses(preset, (1, 1, 1), 1)[0] for preset in ("tiny", "tiny_llama")}


@pytest.mark.parametrize("preset,mesh_sizes,microbatches", [
    ("tiny_llama", (2, 2, 2), 1),
    ("tiny_llama", (8, 1, 1), 1),
    ("tiny_llama", (1, 8, 1), 1),
    ("tiny", (2, 2, 2), 2),
])
def test_sharded_losses_equal_single_device(reference_losses, preset, mesh_sizes, microbatches):
    losses, state = train_losses(preset, mesh_sizes, 8, microbatches)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, reference_losses[preset], rtol=1e-4)
    data, fsdp, tensor = mesh_sizes
    up = state.params["blocks"]["mlp"]["up_proj"]["kernel"]  # (layers, d_model, d_ff)
    assert up.sharding.spec == P(None, "fsdp" if fsdp > 1 else None, "tensor" if tensor > 1 else None)
    assert up.addressable_shards[0].data.shape == (up.shape[0], up.shape[1] // fsdp, up.shape[2] // tensor)
    embed = state.params["token_embed"]["embedding"]  # (vocab, d_model)
    assert embed.addressable_shards[0].data.shape == (embed.shape[0] // tensor, embed.shape[1] // fsdp)
    q = state.params["blocks"]["attn"]["q_proj"]["kernel"]  # (layers, d_model, heads, head_dim)
    assert q.addressable_shards[0].data.shape == (q.shape[0], q.shape[1] // fsdp, q.shape[2] // tensor, q.shape[3])
    # Adam moments live with their parameter.
    mu = state.opt_state[1].mu["blocks"]["mlp"]["up_proj"]["kernel"]
    assert mu.sharding == up.sharding


def test_bfloat16_sharded_losses_equal_single_device():
    """bf16 mixed precision with the cpu kernels: one device multiplies through planned layouts
    (kernels/cpu/dots.py), eight in XLA's layouts; the losses agree to bf16's precision."""
    single, _ = train_losses("tiny", (1, 1, 1), 1, dtype="bfloat16")
    sharded, _ = train_losses("tiny", (2, 4, 1), 8, dtype="bfloat16")
    assert sharded[-1] < sharded[0]
    np.testing.assert_allclose(sharded, single, rtol=1e-2)


def test_indivisible_dimension_is_replicated_not_an_error():
    mesh = shd.make_mesh(dict(data=1, fsdp=4, tensor=2))
    spec = shd.logical_to_spec(("vocab", "embed"), mesh, shd.rules_dict(), shape=(50257, 768), what="gpt2 wte")
    assert spec == P(None, "fsdp")


@pytest.mark.parametrize("sizes,message", [
    (dict(data=2, fsdp=2, tensor=1), "= 4 .* but there are 8 devices"),
    (dict(data=-1, fsdp=-1, tensor=1), "at most one"),
    (dict(data=3, fsdp=-1, tensor=1), "not divisible"),
    (dict(data=0, fsdp=-1, tensor=1), "mesh.data"),
])
def test_bad_mesh_sizes_are_refused(sizes, message):
    with pytest.raises(ValueError, match=message):
        shd.make_mesh(sizes)


def test_minus_one_fills_the_remaining_devices():
    assert shd.resolve_mesh_shape(dict(data=2, fsdp=-1, tensor=2), 8) == (2, 2, 2)
    assert shd.make_mesh(dict(data=1, fsdp=-1, tensor=1)).shape["fsdp"] == 8

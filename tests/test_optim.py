"""Decoupled AdamW against the formula written out in numpy; schedules; the decay mask."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from biomed_jax import optim


def numpy_decoupled_adamw(params, grads_per_step, lrs, peak, wd, b1, b2, eps, max_norm, mask):
    """p <- p - lr_t * adam_update(clip(g)) - (lr_t / peak) * wd * p, for masked p."""
    p = {k: v.astype(np.float64).copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
        scale = min(1.0, max_norm / norm)
        for k in p:
            g = grads[k] * scale
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            update = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
            decay = (lr / peak) * wd * p[k] if mask[k] else 0.0
            p[k] = p[k] - lr * update - decay
    return p


def test_ten_steps_match_the_composer_formula():
    rng = np.random.default_rng(0)
    params = {"kernel": rng.normal(size=(4, 3)).astype(np.float32),
              "bias": rng.normal(size=(3,)).astype(np.float32)}
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) * 3 for k, v in params.items()} for _ in range(10)]
    peak, wd = 1e-2, 0.3
    schedule = optim.learning_rate_schedule(peak, total_steps=10, warmup_steps=3, kind="cosine",
                                            final_fraction=0.1)
    tx = optim.decoupled_adamw(schedule, peak, weight_decay=wd, b1=0.9, b2=0.95, eps=1e-8,
                               max_grad_norm=1.0, mask=optim.decay_mask)
    state = tx.init(params)
    p = jax.tree.map(jnp.asarray, params)
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = jax.tree.map(lambda a, u: a + u, p, updates)
    lrs = [float(schedule(i)) for i in range(10)]
    expected = numpy_decoupled_adamw(params, grads, lrs, peak, wd, 0.9, 0.95, 1e-8, 1.0,
                                     mask={"kernel": True, "bias": False})
    for k in params:
        np.testing.assert_allclose(p[k], expected[k], rtol=2e-5, atol=1e-6)
    assert lrs[0] == 0.0 and lrs[3] == pytest.approx(peak)


@pytest.mark.parametrize("scale", [0.0, 0.1, 30.0])
def test_clip_by_global_norm_equals_optax(scale):
    rng = np.random.default_rng(1)
    grads = {name: (rng.normal(size=shape) * scale).astype(np.float32) for name, shape in (("a", (5, 3)), ("b", (7,)))}
    got, _ = optim.clip_by_global_norm(1.0).update(grads, optim.clip_by_global_norm(1.0).init(grads))
    want, _ = optax.clip_by_global_norm(1.0).update(grads, optax.clip_by_global_norm(1.0).init(grads))
    for k in grads:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=0)


def test_decay_is_scaled_by_schedule_factor_not_learning_rate():
    peak, wd = 1e-3, 0.5
    tx = optim.decoupled_adamw(optim.learning_rate_schedule(peak, 10, 0, "constant"), peak,
                               weight_decay=wd, max_grad_norm=None)
    p = {"w": jnp.ones((2, 2))}
    updates, _ = tx.update({"w": jnp.zeros((2, 2))}, tx.init(p), p)
    # AdamW would shrink by lr * wd = 5e-4; Composer's DecoupledAdamW by (lr / peak) * wd = 0.5.
    np.testing.assert_allclose(updates["w"], -0.5 * np.ones((2, 2)), rtol=1e-6)


@pytest.mark.parametrize("kind,end", [("cosine", 0.1), ("linear", 0.1), ("constant", 1.0)])
def test_schedules_warm_up_then_decay_to_the_final_fraction(kind, end):
    schedule = optim.learning_rate_schedule(2.0, total_steps=100, warmup_steps=10, kind=kind, final_fraction=0.1)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(1.0)
    assert float(schedule(10)) == pytest.approx(2.0)
    assert float(schedule(100)) == pytest.approx(2.0 * end, rel=1e-5)
    values = [float(schedule(i)) for i in range(10, 101)]
    assert all(a >= b - 1e-7 for a, b in zip(values, values[1:]))


def test_decay_mask_skips_biases_norms_and_optionally_embeddings():
    params = {"token_embed": {"embedding": jnp.zeros((8, 4))},
              "blocks": {"attn": {"q_proj": {"kernel": jnp.zeros((2, 4, 2, 2)), "bias": jnp.zeros((2, 2, 2))}},
                         "attn_norm": {"scale": jnp.zeros((2, 4))}},
              "lm_head": jnp.zeros((4, 8))}
    mask = optim.decay_mask(params)
    assert mask["token_embed"]["embedding"] and mask["lm_head"]
    assert mask["blocks"]["attn"]["q_proj"]["kernel"]
    assert not mask["blocks"]["attn"]["q_proj"]["bias"] and not mask["blocks"]["attn_norm"]["scale"]
    assert not optim.decay_mask(params, decay_embeddings=False)["token_embed"]["embedding"]


@pytest.mark.parametrize("kwargs,field", [
    (dict(kind="step"), "optim.schedule"),
    (dict(peak=0.0), "optim.learning_rate"),
    (dict(warmup_steps=200), "optim.warmup_steps"),
    (dict(final_fraction=2.0), "optim.final_lr_fraction"),
])
def test_bad_schedule_settings_name_the_field(kwargs, field):
    args = dict(peak=1e-3, total_steps=100, warmup_steps=10, kind="cosine", final_fraction=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        optim.learning_rate_schedule(**args)

"""Projection matmuls (biomed_jax/models/dots.py): einsum's math, with XLA-friendly weight gradients."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from biomed_jax.models.dots import contract_in_order

PROJECTIONS = [("btnh,nhd->btd", (2, 3, 4, 5), (4, 5, 6)),   # o_proj: contracts two dims
               ("btd,dnh->btnh", (2, 3, 6), (6, 4, 5)),      # q/k/v
               ("btd,df->btf", (2, 3, 6), (6, 7)),           # MLP
               ("btd,fd->btf", (2, 3, 6), (7, 6))]           # a transposed kernel: plain einsum


@pytest.mark.parametrize("subscripts,x_shape,k_shape", PROJECTIONS)
def test_projections_contract_like_einsum(subscripts, x_shape, k_shape):
    rng = np.random.default_rng(0)
    x, kernel = rng.standard_normal(x_shape, np.float32), rng.standard_normal(k_shape, np.float32)
    np.testing.assert_allclose(contract_in_order(subscripts, x, kernel), np.einsum(subscripts, x, kernel),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("subscripts,x_shape,k_shape", PROJECTIONS)
def test_projection_gradients_equal_einsum(subscripts, x_shape, k_shape):
    rng = np.random.default_rng(1)
    x, kernel = rng.standard_normal(x_shape, np.float32), rng.standard_normal(k_shape, np.float32)
    out_grad = rng.standard_normal(np.einsum(subscripts, x, kernel).shape, np.float32)

    def loss(op):
        return lambda x, kernel: jnp.sum(out_grad * jnp.tanh(op(subscripts, x, kernel)))

    expected = jax.grad(loss(jnp.einsum), argnums=(0, 1))(x, kernel)
    for transform in (lambda f: f, jax.jit, jax.checkpoint):
        got = transform(jax.grad(loss(contract_in_order), argnums=(0, 1)))(x, kernel)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def _token_axis_dots(op) -> list[str]:
    """Dots in the compiled gradient of a two-projection MLP that contract over the token axis."""
    x = jnp.ones((2, 128, 64))
    up, down = jnp.ones((64, 256)) * 0.01, jnp.ones((256, 64)) * 0.01

    def loss(up, down, x):
        return jnp.sum(op("btf,fd->btd", jax.nn.gelu(op("btd,df->btf", x, up)), down) ** 2)

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(up, down, x).compile().as_text()
    return [line for line in hlo.splitlines() if re.search(r" dot\(.*lhs_contracting_dims=\{0\}", line)]


def test_weight_gradients_do_not_contract_over_the_token_axis_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("the transposed weight-gradient form is used on CPU only")
    # XLA:CPU routes a dot contracting its lhs's major (token) axis to Eigen with a transposed
    # copy; contract_in_order hands it canonical (d_in, tokens) x (tokens, d_out) products instead.
    assert _token_axis_dots(jnp.einsum), "control: plain einsum gradients should contract over tokens"
    assert _token_axis_dots(contract_in_order) == []

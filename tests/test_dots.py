"""kernels/cpu/dots.py (the cpu kernels' products): einsum's math in float32 accumulation, bfloat16 backward products, YNNPACK-shaped dots on CPU."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from biomed_jax import sharding as shd
from biomed_jax.kernels.cpu import dots

# The model's products, and ones whose plan transposes an operand, swaps the roles or permutes the output.
PRODUCTS = [("btnh,nhd->btd", (2, 3, 4, 5), (4, 5, 6)),          # o_proj: contracts two dims
            ("btd,dnh->btnh", (2, 3, 6), (6, 4, 5)),             # q/k/v
            ("btd,df->btf", (2, 3, 6), (6, 7)),                  # MLP
            ("btd,vd->btv", (2, 3, 6), (11, 6)),                 # tied LM head: the rhs contracts its last dim
            ("btf,btd->fd", (2, 3, 7), (2, 3, 6)),               # a weight gradient: contracts the tokens
            ("bkgth,bksh->bkgts", (2, 3, 2, 4, 5), (2, 3, 6, 5)),  # attention scores: batch dims
            ("bkgts,bkgth->bksh", (2, 3, 2, 4, 6), (2, 3, 2, 4, 5)),  # a key gradient
            ("ij,kj->jik", (3, 4), (5, 4)),                      # only an output transpose makes it canonical
            ("btv,vd->btd", (1, 3, 20000), (20000, 4))]          # LM-head input gradient: summed in chunks


@pytest.mark.parametrize("subscripts,a_shape,b_shape", PRODUCTS)
def test_contract_and_einsum_equal_numpy_einsum(subscripts, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape, np.float32), rng.standard_normal(b_shape, np.float32)
    expected = np.einsum(subscripts, a.astype(np.float64), b.astype(np.float64))
    tolerance = 1e-5 * (a.size * b.size / expected.size) ** 0.25  # ~ sqrt(terms summed) float32 roundings
    for f in (dots.contract, dots.einsum, jax.jit(dots.contract, static_argnums=0)):
        got = f(subscripts, a, b)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=tolerance)


@pytest.mark.parametrize("subscripts,a_shape,b_shape", PRODUCTS)
def test_einsum_gradients_equal_jnp_einsum(subscripts, a_shape, b_shape):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(a_shape, np.float32), rng.standard_normal(b_shape, np.float32)
    weights = rng.standard_normal(np.einsum(subscripts, a, b).shape, np.float32)

    def loss(op):
        return lambda a, b: jnp.sum(weights * jnp.tanh(op(subscripts, a, b)))

    expected = jax.grad(loss(jnp.einsum), argnums=(0, 1))(a, b)
    for transform in (lambda f: f, jax.jit, jax.checkpoint):
        got = transform(jax.grad(loss(dots.einsum), argnums=(0, 1)))(a, b)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_products_under_a_mesh_of_several_devices_keep_xla_layouts_and_values():
    """A weight gradient's plan transposes an operand into a row-major copy (behind an optimization barrier);
    under a mesh of several devices that copy would gather a sharded array, so it is not made there."""
    a, b = np.ones((8, 3, 7), np.float32), np.ones((8, 3, 6), np.float32)
    product = jax.jit(lambda a, b: dots.einsum("btf,btd->fd", a, b))
    assert "optimization_barrier" in product.lower(a, b).as_text()
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    with shd.activation_sharding(mesh, dict(shd.DEFAULT_RULES)):
        planned = "optimization_barrier" in jax.jit(lambda a, b: dots.einsum("btf,btd->fd", a, b)).lower(a, b).as_text()
        np.testing.assert_allclose(dots.einsum("btf,btd->fd", a, b), np.full((7, 6), 24.0))
    assert planned == (jax.device_count() == 1)


@pytest.mark.parametrize("subscripts,a_shape,b_shape", PRODUCTS)
def test_bfloat16_products_compile_and_run(subscripts, a_shape, b_shape):
    """Every plan, bfloat16: XLA:CPU has no fallback for a bf16 dot YNNPACK rejects after layout
    assignment (it fails at run time), so each layout the planner produces must run."""
    rng = np.random.default_rng(3)
    a, b = (jnp.asarray(rng.standard_normal(shape), jnp.bfloat16) for shape in (a_shape, b_shape))
    expected = np.einsum(subscripts, np.asarray(a, np.float64), np.asarray(b, np.float64))
    got = jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(dots.einsum(subscripts, a, b) ** 2), (0, 1)))(a, b)
    np.testing.assert_allclose(got[0], np.sum(expected ** 2), rtol=1e-3)
    assert got[1][0].dtype == jnp.bfloat16 and got[1][0].shape == a.shape


def test_bfloat16_einsum_returns_float32_and_gives_each_operand_a_gradient_of_its_own_dtype():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 8, 16)), jnp.bfloat16)    # an activation
    kernel = jnp.asarray(rng.standard_normal((16, 32)), jnp.float32)  # a float32 parameter
    y = dots.einsum("btd,df->btf", x, kernel, dtype=jnp.bfloat16)
    assert y.dtype == jnp.float32
    reference = np.einsum("btd,df->btf", np.asarray(x, np.float32), np.asarray(kernel.astype(jnp.bfloat16), np.float32))
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-4)  # bfloat16 products, float32 sums
    d_x, d_kernel = jax.grad(lambda x, k: jnp.sum(dots.einsum("btd,df->btf", x, k, dtype=jnp.bfloat16) ** 2),
                             argnums=(0, 1))(x, kernel)
    assert (d_x.dtype, d_kernel.dtype) == (jnp.bfloat16, jnp.float32)
    d_x32, d_kernel32 = jax.grad(lambda x, k: jnp.sum(jnp.einsum("btd,df->btf", x, k) ** 2), argnums=(0, 1))(
        x.astype(jnp.float32), kernel)
    np.testing.assert_allclose(d_kernel, d_kernel32, rtol=0.03, atol=0.3)
    np.testing.assert_allclose(d_x.astype(jnp.float32), d_x32, rtol=0.03, atol=0.3)


@pytest.mark.parametrize("subscripts", ["ij,jk", "ij,jk->ikl", "ii,ij->j", "ij,kl->i", "ij,jk->il"])
def test_subscripts_that_are_not_bilinear_products_are_refused(subscripts):
    with pytest.raises(ValueError, match="dots"):
        dots.einsum(subscripts, np.ones((2, 2)), np.ones((2, 2)))


def _compiled_products(einsum) -> list[tuple[list[str], bool]]:
    """(operand types, runs in a YNNPACK fusion) of every dot in the compiled bfloat16 gradient of an MLP
    followed by a tied-LM-head-like product."""
    x = jnp.ones((2, 64, 32), jnp.bfloat16)
    up, down, table = (jnp.full(shape, 0.01, jnp.float32) for shape in ((32, 128), (128, 32), (256, 32)))

    def loss(up, down, table, x):
        hidden = jax.nn.gelu(einsum("btd,df->btf", x, up).astype(jnp.bfloat16))
        out = einsum("btf,fd->btd", hidden, down).astype(jnp.bfloat16)
        return jnp.sum(einsum("btd,vd->btv", out, table) ** 2)

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3))).lower(up, down, table, x).compile().as_text()
    products = []
    for name, params, body in re.findall(r"\n%([\w.\-]+) \(([^)]*)\) -> [^{]*\{\n(.*?)\n\}", hlo, re.S):
        for line in body.splitlines():
            if " dot(" in line:
                operands = re.search(r" dot\(([^)]*)\)", line).group(1).split(", ")
                types = [re.search(rf"{re.escape(op.lstrip('%'))}: (\w+)\[", params).group(1) for op in operands]
                caller = re.search(rf"calls=%{re.escape(name)}(?![\w.]).*", hlo)
                products.append((types, bool(caller) and "__ynn_fusion" in caller.group(0)))
    return products


def test_every_bfloat16_product_and_its_gradients_run_as_bfloat16_ynnpack_dots_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("YNNPACK is XLA:CPU's")

    def plain(subscripts, a, b):  # jax's own rule: the backward multiplies the float32 cotangent
        return jnp.einsum(subscripts, a.astype(jnp.bfloat16), b.astype(jnp.bfloat16),
                          preferred_element_type=jnp.float32)

    # Control: with jax's rule XLA:CPU upcasts some products to float32.
    assert any(types != ["bf16", "bf16"] for types, _ in _compiled_products(plain))
    products = _compiled_products(lambda s, a, b: dots.einsum(s, a, b, dtype=jnp.bfloat16))
    assert len(products) == 9  # 3 forward, 6 backward
    assert all(types == ["bf16", "bf16"] and ynn for types, ynn in products), products

"""The cpu kernels' projection: nnx.Einsum through dots.einsum (same parameters and values)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from biomed_jax.kernels.cpu import dots


class Projection(nnx.Einsum):
    """nnx.Einsum multiplying through dots.einsum: the product and the bias add in float32, one cast to the
    compute dtype, float32 parameter gradients.

    Adding the bias in float32 also makes its gradient a float32 sum over tokens; nnx.Einsum's bfloat16
    bias add sums the gradient in bfloat16, which XLA:CPU runs as a slow tree of reduce-windows.
    """

    def __call__(self, inputs: jax.Array, einsum_str: str | None = None, out_sharding=None) -> jax.Array:
        if einsum_str is not None or out_sharding is not None or self.precision is not None:
            return super().__call__(inputs, einsum_str, out_sharding)
        (x,) = self.promote_dtype((inputs,), dtype=self.dtype)
        y = dots.einsum(self.einsum_str, x, self.kernel[...], dtype=x.dtype)
        if self.bias is not None:
            bias = self.bias[...].astype(jnp.float32)
            y = y + jnp.reshape(bias, self._infer_broadcasted_bias_shape(self.einsum_str, x, self.kernel[...]))
        return y.astype(x.dtype)

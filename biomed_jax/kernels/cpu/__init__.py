"""The cpu kernels (`model.kernels = cpu`, the `auto` choice on a CPU backend): the model's products,
layer loop and attention rewritten for XLA:CPU, with the same parameters and values as the `xla`
kernels (models/layers.py, models/decoder.py).

  dots.py        mixed-precision products in the layouts XLA:CPU's YNNPACK runs (bfloat16 backward)
  projection.py  Projection: nnx.Einsum over dots.py, the bias added in float32
  layer_scan.py  the scanned layer loop with 16-bit residuals stacked as integers (XLA:CPU has no
                 bfloat16 dynamic-update-slice)
  attention.py   blocked causal attention with a flash-style backward (`model.attention = blocked`)

Each choice is measured in docs/performance.md ("Training step on CPU").
"""

from biomed_jax.kernels.cpu.attention import blocked_attention
from biomed_jax.kernels.cpu.dots import einsum
from biomed_jax.kernels.cpu.layer_scan import scan_layers
from biomed_jax.kernels.cpu.projection import Projection

__all__ = ["Projection", "blocked_attention", "einsum", "scan_layers"]

"""The cpu kernels (`model.kernels = cpu`, the `auto` choice on a CPU backend): the model's products,
norms, activations, layer loop and attention rewritten for XLA:CPU, with the same parameters and values
as the plain ops of the `xla` kernels (models/layers.py) and gradients that keep fewer, smaller arrays.

  dots.py        mixed-precision products in the layouts XLA:CPU's YNNPACK runs (bfloat16 backward)
  layers.py      LayerNorm, RMSNorm and Projection (nnx.Einsum) over dots.py and lean_ops.py
  lean_ops.py    GELU, SwiGLU and the norms with hand-written derivatives
  layer_scan.py  the scanned layer loop with 16-bit residuals stacked as integers
  attention.py   blocked causal attention with a flash-style backward (`model.attention = blocked`)

Each choice is measured in docs/performance.md ("Training step on CPU").
"""

from biomed_jax.kernels.cpu.attention import blocked_attention
from biomed_jax.kernels.cpu.dots import contract, einsum
from biomed_jax.kernels.cpu.layer_scan import scan_layers
from biomed_jax.kernels.cpu.layers import LayerNorm, Projection, RMSNorm
from biomed_jax.kernels.cpu.lean_ops import gelu_tanh, layer_norm, rms_norm, swiglu

__all__ = ["LayerNorm", "Projection", "RMSNorm", "blocked_attention", "contract", "einsum", "gelu_tanh",
           "layer_norm", "rms_norm", "scan_layers", "swiglu"]

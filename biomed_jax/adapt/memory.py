"""Parameter and optimizer memory of full fine-tuning vs LoRA vs quantized-base LoRA, from abstract shapes.

Nothing is allocated: the model is built and adapted under nnx.eval_shape (qwix's adapter and quantized
weights appear as ShapeDtypeStructs), and the optimizer state comes from jax.eval_shape(tx.init).
Activations are not counted (they depend on batch, sequence and remat, and are the same for every method).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from biomed_jax import optim
from biomed_jax.adapt.lora import LoraSettings, apply_lora, rewritable, trainable_filter
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import Decoder


def _bytes(tree) -> int:
    """Storage bytes; sub-byte types (nf4's uint4) count at their bit width, as packed on TPU."""
    return sum(x.size * jax.dtypes.itemsize_bits(x.dtype) // 8 for x in jax.tree.leaves(tree))


def _count(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


def _report_for(cfg: ModelConfig, method: str, settings: LoraSettings) -> dict:
    tokens = jnp.zeros((1, 8), jnp.int32)

    def build():
        return apply_lora(Decoder(cfg, rngs=nnx.Rngs(0)), method, settings, (tokens,))

    model = nnx.eval_shape(build)
    _, trainable, frozen = nnx.split(model, trainable_filter(method), ...)
    trainable = nnx.to_pure_dict(trainable)
    tx = optim.decoupled_adamw(optim.learning_rate_schedule(1e-4, 10), 1e-4)
    opt_state = jax.eval_shape(tx.init, trainable)
    return {"trainable_params": _count(trainable), "frozen_bytes": _bytes(frozen),
            "trainable_bytes": _bytes(trainable), "optimizer_bytes": _bytes(opt_state)}


def memory_report(model_cfg: ModelConfig, method: str, settings: LoraSettings) -> dict:
    """{trainable_params, frozen_bytes, trainable_bytes, optimizer_bytes, total_bytes} for one method,
    with Decoupled AdamW (two moments per trainable parameter, in its dtype).

    Every count is affine in the number of layers (identical blocks), so it is computed exactly from
    1- and 2-layer models: tracing a 32-layer model through qwix takes minutes, these take seconds.
    """
    cfg = rewritable(model_cfg).replace(remat="none")
    one = _report_for(cfg.replace(n_layers=1), method, settings)
    two = _report_for(cfg.replace(n_layers=2), method, settings)
    report = {"method": method}
    report.update({k: one[k] + (model_cfg.n_layers - 1) * (two[k] - one[k]) for k in one})
    report["total_bytes"] = report["frozen_bytes"] + report["trainable_bytes"] + report["optimizer_bytes"]
    return report

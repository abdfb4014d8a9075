"""LoRA and quantized-base LoRA (MedAlpaca's "8-bit LoRA") through qwix, and merging adapters back.

qwix rewrites the model's matmuls by module path: a `LoraRule` adds `<weight>_lora_a` (contracted dims x
rank) and `<weight>_lora_b` (rank x output dims) nnx.LoRAParams next to each targeted kernel, and with a
`weight_qtype` it also replaces the kernel by a frozen quantized copy (int8 per output channel, or nf4).
Only LoRAParams (and a classifier head) are trained; the base is passed to the train step as frozen state.

Methods: full (every parameter trains), lora, int8_lora, nf4_lora.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import qwix
from flax import nnx

from biomed_jax.kinds import Method, choice
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import Decoder

_BASE_QTYPE = {Method.LORA: None, Method.INT8_LORA: "int8", Method.NF4_LORA: "nf4"}
# Module-path regexes (qwix matches them against e.g. "decoder/blocks/3/attn/q_proj").
TARGETS = {
    "attention": r".*attn/(q_proj|k_proj|v_proj|o_proj)",
    "attention_mlp": r".*(attn/(q_proj|k_proj|v_proj|o_proj)|mlp/(up_proj|gate_proj|down_proj))",
    "qv": r".*attn/(q_proj|v_proj)",
}


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    """The `lora` config section: rank, alpha (the update is scaled by alpha / rank), dropout on the
    adapter input, and `targets`, a TARGETS name or a module-path regex."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str = "attention_mlp"

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "LoraSettings":
        settings = cls(**{f.name: section[f.name] for f in dataclasses.fields(cls) if f.name in section})
        if settings.rank < 1:
            raise ValueError(f"lora.rank must be >= 1, got {settings.rank}")
        if not 0 <= settings.dropout < 1:
            raise ValueError(f"lora.dropout must be in [0, 1), got {settings.dropout}")
        return settings

    @property
    def module_path(self) -> str:
        return TARGETS.get(self.targets, self.targets)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_method(method: str) -> Method:
    return choice(Method, method, "method")


def rewritable(model_cfg: ModelConfig) -> ModelConfig:
    """The model config qwix can rewrite: blocks per layer (the adapters live on each real block) and the
    xla kernels, plain jax ops (the cpu kernels' custom gradients cannot differentiate qwix's adapters)."""
    attention = "auto" if model_cfg.attention == "blocked" else model_cfg.attention
    return model_cfg.replace(scan_layers=False, kernels="xla", attention=attention)


def apply_lora(model: nnx.Module, method: str, settings: LoraSettings, example_inputs: tuple,
               seed: int = 0) -> nnx.Module:
    """A copy of `model` with LoRA adapters (and, for int8/nf4_lora, a quantized frozen base).

    qwix creates the adapters by running the model once on `example_inputs` (any values of the right
    shapes). Every decoder inside must be unscanned (the adapters live on each real block); remat is
    switched off for that one call because parameters created inside jax.checkpoint would be lost.
    """
    check_method(method)
    if method == Method.FULL:
        return model
    decoders = [m for _, m in nnx.iter_modules(model) if isinstance(m, Decoder)]
    if any(d.cfg.scan_layers or d.cfg.kernel_impl == "cpu" or d.cfg.attention_impl == "blocked" for d in decoders):
        raise ValueError("LoRA needs an unscanned model with the xla kernels: build it from "
                         "lora.rewritable(model_cfg) (biomed_jax.adapt loads checkpoints that way for LoRA methods)")
    rule = qwix.LoraRule(module_path=settings.module_path, rank=settings.rank, alpha=settings.alpha,
                         dropout=settings.dropout, weight_qtype=_BASE_QTYPE[method])
    provider = qwix.LoraProvider([rule])
    configs = {id(d): d.cfg for d in decoders}
    for d in decoders:
        d.cfg = d.cfg.replace(remat="none")
    try:
        adapted = qwix.apply_lora_to_model(model, provider, *example_inputs, rngs=nnx.Rngs(seed))
    finally:
        for d in decoders:
            d.cfg = configs[id(d)]
    for path, module in nnx.iter_modules(adapted):
        if isinstance(module, Decoder):
            module.cfg = configs[id(_follow(model, path))]
    if not nnx.state(adapted, nnx.LoRAParam):
        raise ValueError(f"lora.targets {settings.targets!r} matched no projection; module paths look like "
                         "'decoder/blocks/0/attn/q_proj' (regex over '/'-joined names)")
    return adapted


def _follow(module: Any, path: tuple) -> Any:
    for key in path:
        module = module[key] if isinstance(key, int) else getattr(module, key)
    return module


def trainable_filter(method: str):
    """Which variables the optimizer sees: everything for full fine-tuning; else adapters and any head."""
    check_method(method)
    if method == Method.FULL:
        return nnx.Param
    return nnx.Any(nnx.LoRAParam, nnx.All(nnx.Param, nnx.PathContains("head")))


def _plain(x: Any) -> Any:
    return jax.tree.map(lambda v: v[...] if isinstance(v, nnx.Variable) else v, x,
                        is_leaf=lambda v: isinstance(v, nnx.Variable))


def merge_lora(model: nnx.Module, settings: LoraSettings) -> dict:
    """Plain parameters (a pure dict shaped like the model before apply_lora): every adapted kernel becomes
    dequant(kernel) + (A @ B) * alpha / rank.

    That is what the adapted model computes, as ordinary parameters: evaluation, generation and the
    Hugging Face export take it like any checkpoint. A quantized base stays at its quantized values.
    """
    merged = nnx.clone(model)
    scale = settings.alpha / settings.rank
    for _, module in nnx.iter_modules(merged):
        names = [n for n in vars(module) if n.endswith("_lora_a")]
        for name_a in names:
            weight = name_a[: -len("_lora_a")]
            base = getattr(module, weight)
            if isinstance(base, qwix._src.providers.ptq.WithAux):  # noqa: SLF001 (qwix's quantized weight)
                base = qwix.dequantize(_plain(base.array))
                dtype = _plain(getattr(module, name_a)).dtype
            else:
                base = base[...]
                dtype = base.dtype
            a, b = _plain(getattr(module, name_a)), _plain(getattr(module, weight + "_lora_b"))
            delta = jnp.matmul(a.astype(jnp.float32), b.astype(jnp.float32))
            if delta.size != base.size:
                raise ValueError(f"LoRA factors {a.shape} x {b.shape} do not match kernel {base.shape}")
            kernel = base.astype(jnp.float32) + delta.reshape(base.shape) * scale
            setattr(module, weight, nnx.Param(kernel.astype(dtype)))
            delattr(module, name_a)
            delattr(module, weight + "_lora_b")
    return nnx.to_pure_dict(nnx.state(merged, nnx.Param))

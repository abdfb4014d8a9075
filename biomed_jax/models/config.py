"""ModelConfig: the one description of a decoder, for both the GPT-2 and the Llama families.

Every field is checked on construction so a bad shape fails with a message naming the field,
before anything is traced or compiled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rope")
MLPS = ("gelu", "swiglu")
KERNELS = ("auto", "xla", "cpu")
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "splash", "blocked")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# Names of the rematerialisation policies a config may ask for; models/decoder.py maps them to JAX.
REMAT_POLICIES = (
    "none",
    "full",
    "minimal",
    "dots_saveable",
    "dots_with_no_batch_dims_saveable",
    "save_qkv_proj",
    "save_attention_out",
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder-only transformer.

    GPT-2/BioMedLM: norm=layernorm, positions=learned, mlp=gelu, tie_embeddings, use_bias.
    Llama-2/MEDITRON/MedAlpaca: norm=rmsnorm, positions=rope, mlp=swiglu, untied, no biases.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_seq_len: int
    n_kv_heads: int | None = None  # None: same as n_heads (multi-head attention)
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    positions: str = "learned"
    rope_theta: float = 10000.0
    mlp: str = "gelu"
    tie_embeddings: bool = True
    use_bias: bool = True
    init_std: float = 0.02
    param_dtype: str = "float32"
    dtype: str = "auto"  # compute dtype; auto = bfloat16 on GPU/TPU, float32 on CPU
    kernels: str = "auto"  # auto = cpu (biomed_jax/kernels/cpu) on a CPU backend, xla (plain ops) elsewhere
    attention: str = "auto"  # auto = splash on TPU, cudnn on GPU with 16-bit compute, blocked with cpu kernels, else xla
    splash_block: int = 512  # splash attention's tile (multiple of 128; MaxText's default for v4 / v5e / v5p)
    remat: str = "none"
    scan_layers: bool = True

    def __post_init__(self):
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        _check_choice("norm", self.norm, NORMS)
        _check_choice("positions", self.positions, POSITIONS)
        _check_choice("mlp", self.mlp, MLPS)
        _check_choice("kernels", self.kernels, KERNELS)
        _check_choice("attention", self.attention, ATTENTION_IMPLS)
        _check_choice("remat", self.remat, REMAT_POLICIES)
        _check_choice("param_dtype", self.param_dtype, tuple(DTYPES))
        _check_choice("dtype", self.dtype, ("auto",) + tuple(DTYPES))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"model.n_heads ({self.n_heads}) must be divisible by model.n_kv_heads ({self.n_kv_heads})"
            )
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"model.positions='rope' needs an even head_dim, got {self.head_dim}")
        if not self.norm_eps > 0:
            raise ValueError(f"model.norm_eps must be > 0, got {self.norm_eps}")
        if not self.init_std > 0:
            raise ValueError(f"model.init_std must be > 0, got {self.init_std}")
        if not isinstance(self.splash_block, int) or self.splash_block < 128 or self.splash_block % 128:
            raise ValueError(f"model.splash_block must be a positive multiple of 128 (the TPU lane width), got "
                             f"{self.splash_block!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Builds a config from a mapping (e.g. a ConfigDict), refusing unknown keys by name."""
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def param_jnp_dtype(self):
        return DTYPES[self.param_dtype]

    @property
    def compute_dtype(self):
        """The dtype matmuls run in; 'auto' picks bfloat16 on accelerators and float32 on CPU."""
        if self.dtype == "auto":
            return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
        return DTYPES[self.dtype]

    @property
    def kernel_impl(self) -> str:
        """The kernels that run (biomed_jax/kernels): 'cpu' or 'xla'."""
        if self.kernels != "auto":
            return self.kernels
        return "cpu" if jax.default_backend() == "cpu" else "xla"

    @property
    def attention_impl(self) -> str:
        """The attention that runs: 'splash' (kernels/splash.py), 'blocked' (kernels/cpu/attention.py), or
        'cudnn' / 'xla' as passed to jax.nn.dot_product_attention."""
        if self.attention != "auto":
            return self.attention
        backend = jax.default_backend()
        if backend == "tpu":
            return "splash"
        if backend == "gpu" and self.compute_dtype in (jnp.bfloat16, jnp.float16):
            return "cudnn"
        return "blocked" if self.kernel_impl == "cpu" else "xla"

    def for_accelerator_compile(self) -> "ModelConfig":
        """This config as experiments.aot_check compiles it on a CPU for a GPU or TPU: `auto` fields as an
        accelerator resolves them (bfloat16, the xla kernels), except attention: XLA:CPU cannot compile
        cuDNN's or splash's flash kernels, so `auto` attention compiles as `blocked`, which keeps its
        probabilities once, in bfloat16 (the flash kernels keep less; XLA's attention keeps the whole
        float32 score matrix)."""
        return self.replace(dtype="bfloat16" if self.dtype == "auto" else self.dtype,
                            kernels="xla" if self.kernels == "auto" else self.kernels,
                            attention="blocked" if self.attention == "auto" else self.attention)

    def resolved(self) -> dict[str, str]:
        """What `auto` means on this backend, for the run's config.json and log."""
        return {"backend": jax.default_backend(), "dtype": jnp.dtype(self.compute_dtype).name,
                "kernels": self.kernel_impl, "attention": self.attention_impl}


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"model.{field} must be one of {list(choices)}, got {value!r}")

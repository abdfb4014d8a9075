"""Parameter counts, FLOPs per token and memory of a ModelConfig, from abstract shapes only."""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx

from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import abstract_model


def param_shapes(cfg: ModelConfig) -> dict:
    """Pure dict of ShapeDtypeStructs for every parameter (nothing allocated)."""
    return nnx.to_pure_dict(nnx.state(abstract_model(cfg), nnx.Param))


def model_info(cfg: ModelConfig, seq_len: int | None = None) -> dict:
    """n_params, n_params_non_embedding, flops_per_token and bytes of a model.

    flops_per_token = 6 * N_non_embedding + 12 * n_layers * d_model * seq_len
    (Kaplan et al. 2020, training = forward + backward): 6 FLOPs per parameter per token for the
    weight matmuls, plus the attention score and value matmuls, which grow with the context.
    N_non_embedding excludes the token and learned position embeddings (an untied LM head counts,
    since it is a matmul); seq_len defaults to model.max_seq_len.
    """
    seq_len = cfg.max_seq_len if seq_len is None else seq_len
    shapes = param_shapes(cfg)
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    n_embedding = math.prod(shapes["token_embed"]["embedding"].shape)
    if "position_embed" in shapes:
        n_embedding += math.prod(shapes["position_embed"]["embedding"].shape)
    n_non_embedding = n_params - n_embedding
    param_bytes = sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(shapes))
    return {
        "n_params": n_params,
        "n_params_non_embedding": n_non_embedding,
        "seq_len": seq_len,
        "flops_per_token": 6 * n_non_embedding + 12 * cfg.n_layers * cfg.d_model * seq_len,
        "param_bytes": param_bytes,
        "param_dtype": cfg.param_dtype,
        # fp32 Adam moments (mu, nu) next to the params: what a full fine-tune must hold.
        "train_state_bytes": param_bytes + 2 * 4 * n_params,
    }

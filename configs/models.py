"""Model presets: the shapes of the papers' models and tiny ones for tests.

Each preset is a complete set of biomed_jax.models.config.ModelConfig fields, so every field can be
overridden from the command line (`--config.model.remat=full`).
"""

from __future__ import annotations

import copy

_GPT2 = dict(norm="layernorm", norm_eps=1e-5, positions="learned", rope_theta=10000.0, mlp="gelu",
             tie_embeddings=True, use_bias=True)
_LLAMA = dict(norm="rmsnorm", norm_eps=1e-5, positions="rope", rope_theta=10000.0, mlp="swiglu",
              tie_embeddings=False, use_bias=False)
_NUMERICS = dict(init_std=0.02, param_dtype="float32", dtype="auto", kernels="auto", attention="auto", splash_block=512,
                 remat="none", scan_layers=True)

MODEL_PRESETS = {
    # BioMedLM (stanford-crfm/BioMedLM): GPT-2 architecture, PubMed BPE vocab of 28,896.
    # 2,594,247,680 parameters, the same as HF GPT2LMHeadModel with this config.
    "biomedlm_2p7b": dict(_GPT2, vocab_size=28896, d_model=2560, n_layers=32, n_heads=20, n_kv_heads=20,
                          d_ff=10240, max_seq_len=1024, remat="full"),
    # GPT-2 small: 124,439,808 parameters with the GPT-2 vocab of 50,257.
    "gpt2_125m": dict(_GPT2, vocab_size=50257, d_model=768, n_layers=12, n_heads=12, n_kv_heads=12,
                      d_ff=3072, max_seq_len=1024),
    # Llama-2-7B, the shape of MEDITRON-7B and MedAlpaca-7B: 6,738,415,616 parameters.
    "llama2_7b": dict(_LLAMA, vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=32,
                      d_ff=11008, max_seq_len=4096, remat="full"),
    # Llama-2-70B (MEDITRON-70B): grouped-query attention with 8 key/value heads.
    "llama2_70b": dict(_LLAMA, vocab_size=32000, d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8,
                       d_ff=28672, max_seq_len=4096, remat="full"),
    # Tiny models for tests and laptop smoke runs; sizes divide a (2, 2, 2) or (1, 8, 1) mesh.
    "tiny": dict(_GPT2, vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, d_ff=256,
                 max_seq_len=128),
    # The quickstart's model: big enough to learn the synthetic world's facts in minutes on a CPU
    # (the 2-layer, 64-wide tiny model memorises the corpus text but does not answer questions about it).
    "mini": dict(_GPT2, vocab_size=4096, d_model=128, n_layers=4, n_heads=4, n_kv_heads=4, d_ff=512,
                 max_seq_len=256),
    "tiny_llama": dict(_LLAMA, vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                       d_ff=192, max_seq_len=128),
}


def model_preset(name: str) -> dict:
    """A fresh dict of every ModelConfig field for preset `name`."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    return dict(_NUMERICS, **copy.deepcopy(MODEL_PRESETS[name]))

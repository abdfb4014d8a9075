"""Weight layouts: Hugging Face tensor names and shapes <-> biomed_jax per-layer params.

Each family is a table of rules, one per biomed_jax parameter: which HF tensor(s) it comes from and
how to reshape them. GPT-2 stores Conv1D weights as (in, out) and fuses q/k/v into one c_attn;
Llama stores nn.Linear weights as (out, in). Both RoPE conventions agree (rotate-half), so Llama
q/k need no permutation.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from biomed_jax.models.config import ModelConfig

# A rule: (biomed_jax path inside one layer or at the top, HF name, to_jax(hf_array), to_hf(jax_array)).
Rule = tuple[tuple, str, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _same(x):
    return x


def _gpt2_rules(cfg: ModelConfig) -> tuple[list[Rule], list[Rule]]:
    d, n, h = cfg.d_model, cfg.n_heads, cfg.head_dim

    def qkv(part):  # one of q, k, v out of the fused (d, 3d) Conv1D kernel / (3d,) bias
        cols = slice(part * d, (part + 1) * d)
        return (lambda w: w[:, cols].reshape(d, n, h)), (lambda b: b[cols].reshape(n, h))

    top = [
        (("token_embed", "embedding"), "wte.weight", _same, _same),
        (("position_embed", "embedding"), "wpe.weight", _same, _same),
        (("final_norm", "scale"), "ln_f.weight", _same, _same),
        (("final_norm", "bias"), "ln_f.bias", _same, _same),
    ]
    layer = [
        (("attn_norm", "scale"), "ln_1.weight", _same, _same),
        (("attn_norm", "bias"), "ln_1.bias", _same, _same),
        (("attn", "o_proj", "kernel"), "attn.c_proj.weight", lambda w: w.reshape(n, h, d),
         lambda k: k.reshape(n * h, d)),
        (("attn", "o_proj", "bias"), "attn.c_proj.bias", _same, _same),
        (("mlp_norm", "scale"), "ln_2.weight", _same, _same),
        (("mlp_norm", "bias"), "ln_2.bias", _same, _same),
        (("mlp", "up_proj", "kernel"), "mlp.c_fc.weight", _same, _same),
        (("mlp", "up_proj", "bias"), "mlp.c_fc.bias", _same, _same),
        (("mlp", "down_proj", "kernel"), "mlp.c_proj.weight", _same, _same),
        (("mlp", "down_proj", "bias"), "mlp.c_proj.bias", _same, _same),
    ]
    for part, name in enumerate(("q_proj", "k_proj", "v_proj")):
        kernel_fn, bias_fn = qkv(part)
        layer.append((("attn", name, "kernel"), f"attn.c_attn.weight#{part}", kernel_fn, None))
        layer.append((("attn", name, "bias"), f"attn.c_attn.bias#{part}", bias_fn, None))
    if not cfg.tie_embeddings:
        top.append((("lm_head",), "lm_head.weight", lambda w: w.T, lambda k: k.T))
    return top, layer


def _llama_rules(cfg: ModelConfig) -> tuple[list[Rule], list[Rule]]:
    d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim

    def linear(heads):  # torch (heads*h, d) -> (d, heads, h)
        return (lambda w: w.T.reshape(d, heads, h)), (lambda x: x.reshape(d, heads * h).T)

    top = [
        (("token_embed", "embedding"), "model.embed_tokens.weight", _same, _same),
        (("final_norm", "scale"), "model.norm.weight", _same, _same),
    ]
    if not cfg.tie_embeddings:
        top.append((("lm_head",), "lm_head.weight", lambda w: w.T, lambda x: x.T))
    layer = [
        (("attn_norm", "scale"), "input_layernorm.weight", _same, _same),
        (("mlp_norm", "scale"), "post_attention_layernorm.weight", _same, _same),
        (("attn", "q_proj", "kernel"), "self_attn.q_proj.weight", *linear(n)),
        (("attn", "k_proj", "kernel"), "self_attn.k_proj.weight", *linear(k)),
        (("attn", "v_proj", "kernel"), "self_attn.v_proj.weight", *linear(k)),
        (("attn", "o_proj", "kernel"), "self_attn.o_proj.weight", lambda w: w.T.reshape(n, h, d),
         lambda x: x.reshape(n * h, d).T),
        (("mlp", "gate_proj", "kernel"), "mlp.gate_proj.weight", lambda w: w.T, lambda x: x.T),
        (("mlp", "up_proj", "kernel"), "mlp.up_proj.weight", lambda w: w.T, lambda x: x.T),
        (("mlp", "down_proj", "kernel"), "mlp.down_proj.weight", lambda w: w.T, lambda x: x.T),
    ]
    if cfg.use_bias:
        for proj, heads in (("q_proj", n), ("k_proj", k), ("v_proj", k)):
            layer.append((("attn", proj, "bias"), f"self_attn.{proj}.bias", (lambda b, m=heads: b.reshape(m, h)),
                          lambda b: b.reshape(-1)))
        layer.append((("attn", "o_proj", "bias"), "self_attn.o_proj.bias", _same, _same))
        for proj in ("gate_proj", "up_proj", "down_proj"):
            layer.append((("mlp", proj, "bias"), f"mlp.{proj}.bias", _same, _same))
    return top, layer


def rules_for(family: str, cfg: ModelConfig) -> tuple[list[Rule], list[Rule]]:
    """(top-level rules, per-layer rules) for 'gpt2' or 'llama'."""
    return _gpt2_rules(cfg) if family == "gpt2" else _llama_rules(cfg)


def layer_prefix(family: str, i: int) -> str:
    return f"h.{i}." if family == "gpt2" else f"model.layers.{i}."


def gpt2_fused_qkv(layer_params: dict) -> dict[str, np.ndarray]:
    """The fused c_attn weight (d, 3d) and bias (3d,) of one GPT-2 layer from its q/k/v params."""
    attn = layer_params["attn"]
    d = attn["q_proj"]["kernel"].shape[0]
    weight = np.concatenate([np.asarray(attn[p]["kernel"]).reshape(d, -1) for p in ("q_proj", "k_proj", "v_proj")], 1)
    bias = np.concatenate([np.asarray(attn[p]["bias"]).reshape(-1) for p in ("q_proj", "k_proj", "v_proj")])
    return {"attn.c_attn.weight": weight, "attn.c_attn.bias": bias}

"""Hugging Face config.json <-> ModelConfig for GPT2LMHeadModel and LlamaForCausalLM."""

from __future__ import annotations

from typing import Any

from biomed_jax.models.config import ModelConfig

GPT2_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # the tanh approximation our MLP computes


def family_of(hf_config: dict[str, Any]) -> str:
    """'gpt2' or 'llama' from config.json's model_type / architectures."""
    model_type = hf_config.get("model_type")
    if model_type in ("gpt2", "llama"):
        return model_type
    raise ValueError(
        f"config.json model_type {model_type!r} (architectures {hf_config.get('architectures')}) is not "
        "supported; biomed_jax converts GPT2LMHeadModel (model_type 'gpt2') and LlamaForCausalLM ('llama')")


def model_config_from_hf(hf: dict[str, Any], **overrides) -> ModelConfig:
    """The ModelConfig equivalent to an HF config.json; refuses features the decoder does not have."""
    try:
        return _model_config_from_hf(hf, **overrides)
    except KeyError as e:
        raise ValueError(f"config.json has no field {e.args[0]!r}, which a {hf.get('model_type')} model needs") from None


def _model_config_from_hf(hf: dict[str, Any], **overrides) -> ModelConfig:
    family = family_of(hf)
    if family == "gpt2":
        activation = hf.get("activation_function", "gelu_new")
        if activation not in GPT2_ACTIVATIONS:
            raise ValueError(f"config.json activation_function {activation!r}: only {GPT2_ACTIVATIONS} are supported")
        for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
            if hf.get(flag):
                raise ValueError(f"config.json {flag}=true is not supported")
        fields = dict(
            vocab_size=hf["vocab_size"], d_model=hf["n_embd"], n_layers=hf["n_layer"], n_heads=hf["n_head"],
            n_kv_heads=hf["n_head"], d_ff=hf.get("n_inner") or 4 * hf["n_embd"], max_seq_len=hf["n_positions"],
            norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), positions="learned", mlp="gelu",
            tie_embeddings=hf.get("tie_word_embeddings", True), use_bias=True,
            init_std=hf.get("initializer_range", 0.02))
    else:
        if hf.get("rope_scaling") or (hf.get("rope_parameters") or {}).get("rope_type", "default") != "default":
            raise ValueError("config.json rope scaling is not supported (plain RoPE only)")
        if bool(hf.get("attention_bias", False)) != bool(hf.get("mlp_bias", False)):
            raise ValueError("config.json attention_bias and mlp_bias must agree (model.use_bias covers both)")
        head_dim = hf.get("head_dim")
        if head_dim is not None and head_dim != hf["hidden_size"] // hf["num_attention_heads"]:
            raise ValueError(f"config.json head_dim {head_dim} != hidden_size / num_attention_heads")
        rope_theta = (hf.get("rope_parameters") or {}).get("rope_theta", hf.get("rope_theta", 10000.0))
        fields = dict(
            vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
            n_heads=hf["num_attention_heads"],
            n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            d_ff=hf["intermediate_size"], max_seq_len=hf["max_position_embeddings"], norm="rmsnorm",
            norm_eps=hf.get("rms_norm_eps", 1e-6), positions="rope", rope_theta=float(rope_theta), mlp="swiglu",
            tie_embeddings=hf.get("tie_word_embeddings", False), use_bias=bool(hf.get("attention_bias", False)),
            init_std=hf.get("initializer_range", 0.02))
    return ModelConfig(**{**fields, **overrides})


def hf_config_from_model(cfg: ModelConfig) -> dict[str, Any]:
    """A config.json that transformers.AutoModelForCausalLM builds the same model from."""
    if cfg.norm == "layernorm" and cfg.positions == "learned" and cfg.mlp == "gelu" and cfg.use_bias:
        if cfg.n_kv_heads != cfg.n_heads:
            raise ValueError("GPT-2 has no grouped-query attention: model.n_kv_heads must equal model.n_heads")
        return {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
            "n_embd": cfg.d_model, "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": cfg.d_ff,
            "n_positions": cfg.max_seq_len, "layer_norm_epsilon": cfg.norm_eps,
            "activation_function": "gelu_new", "tie_word_embeddings": cfg.tie_embeddings,
            "initializer_range": cfg.init_std, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "torch_dtype": "float32",
        }
    if cfg.norm == "rmsnorm" and cfg.positions == "rope" and cfg.mlp == "swiglu":
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers,
            "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads,
            "intermediate_size": cfg.d_ff, "max_position_embeddings": cfg.max_seq_len,
            "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta, "hidden_act": "silu",
            "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": cfg.use_bias, "mlp_bias": cfg.use_bias,
            "initializer_range": cfg.init_std, "torch_dtype": "float32",
        }
    raise ValueError("only GPT-2-style (layernorm/learned/gelu/bias) and Llama-style (rmsnorm/rope/swiglu) "
                     "models can be exported to Hugging Face")

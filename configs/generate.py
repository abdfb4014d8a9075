"""Generation config for experiments/generate.py.

    python -m experiments.generate --checkpoint=RUN_DIR --prompt="..." \
        [--config=configs/generate.py:<preset>] [--config.sampling.temperature=0.7 ...]

Presets: greedy (default: temperature 0), sample (temperature 0.7, top-p 0.9).
"""

from __future__ import annotations

import ml_collections

from biomed_jax.run_dir import DEFAULT_MESH

_PRESETS = {
    "greedy": dict(temperature=0.0, top_k=0, top_p=1.0),
    "sample": dict(temperature=0.7, top_k=0, top_p=0.9),
}


def get_config(preset: str = "greedy") -> ml_collections.ConfigDict:
    if preset not in _PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/generate.py; choose one of {sorted(_PRESETS)}")
    cfg = ml_collections.ConfigDict()
    cfg.preset = preset
    cfg.step = -1          # checkpoint step to load; -1 = latest
    cfg.dtype = ""         # compute dtype override (float32 | bfloat16 | float16 | auto); "" = the checkpoint's
    # Device mesh; -1 fills with the remaining devices. Batches split over data/fsdp, heads over tensor.
    cfg.mesh = ml_collections.ConfigDict(dict(DEFAULT_MESH))
    cfg.sampling = ml_collections.ConfigDict(dict(
        max_new_tokens=64,
        temperature=_PRESETS[preset]["temperature"],  # 0 = greedy
        top_k=_PRESETS[preset]["top_k"],              # 0 = off
        top_p=_PRESETS[preset]["top_p"],              # 1.0 = off
        stop_tokens=(),       # token ids that end a row, e.g. "(50256,)"
        stop_strings=(),      # text that ends a completion, e.g. "('\\n\\n',)"; single-token ones also stop decoding
        stop_at_eos=True,     # add the tokenizer's <|endoftext|> / </s> / eos token to the stop tokens
        seed=0,
        batch_size=8,         # prompts per compiled call
        max_len=0,            # KV cache length; 0 = padded prompt length + max_new_tokens
        pad_id=-1,            # -1 = the tokenizer's pad or eos token, else 0
    ))
    return cfg

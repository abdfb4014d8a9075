"""Serving config for experiments/serve.py (an OpenAI-compatible HTTP server with continuous batching).

    python -m experiments.serve --checkpoint=RUN_DIR [--host=127.0.0.1 --port=8000] \
        [--config=configs/serve.py --config.slots=16 --config.template=meditron ...]
"""

from __future__ import annotations

import ml_collections

from biomed_jax.run_dir import DEFAULT_MESH


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    del arg
    cfg = ml_collections.ConfigDict()
    cfg.step = -1               # checkpoint step to load; -1 = latest
    cfg.dtype = ""              # compute dtype override (float32 | bfloat16 | float16 | auto); "" = the checkpoint's
    cfg.mesh = ml_collections.ConfigDict(dict(DEFAULT_MESH))
    cfg.model_name = ""         # the name clients send as `model`; "" = the run directory's folder name
    cfg.slots = 16              # requests decoded together (rows of the KV cache)
    cfg.max_len = 0             # tokens per request (prompt + completion); 0 = the model's max_seq_len
    cfg.queue_size = 64         # requests that may wait for a slot; beyond it the server answers 429
    cfg.warmup = True           # compile every prompt bucket and the decode step before serving
    # Chat prompt template: "" = the one the run was fine-tuned with (recorded by SFT), else plain; or one of
    # plain | medalpaca | meditron | compact | qa (biomed_jax/serving/chat.py).
    cfg.template = ""
    cfg.default_max_tokens = 256   # chat completions without max_tokens (capped by the context)
    cfg.stop_at_eos = True         # the tokenizer's end-of-text token ends a completion
    cfg.shutdown_grace_s = 30.0    # on SIGTERM: seconds to finish requests in flight before exiting
    cfg.log_level = "info"
    return cfg

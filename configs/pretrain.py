"""Pretraining / continued pretraining config.

    python -m experiments.pretrain --config=configs/pretrain.py:<preset> --workdir=DIR \
        [--config.train.steps=1000 --config.mesh.fsdp=4 ...]

Presets: biomedlm_2p7b, gpt2_125m, llama2_7b, llama2_70b, mini, tiny, tiny_llama.
"""

from __future__ import annotations

import ml_collections

from configs import run_sections
from configs.models import model_preset

# Per-preset training shape: (global batch in sequences, seq_len, microbatches, peak lr, warmup).
_TRAIN = {
    "biomedlm_2p7b": (512, 1024, 8, 1.6e-4, 1000),
    "gpt2_125m": (256, 1024, 4, 6e-4, 1000),   # 4 microbatches: 7.7 GiB/device on 8 (one: 28.2, aot_check)
    "llama2_7b": (512, 4096, 16, 3e-4, 2000),
    "llama2_70b": (512, 4096, 64, 1.5e-4, 2000),
    "tiny": (16, 128, 1, 3e-3, 10),
    "tiny_llama": (16, 128, 1, 3e-3, 10),
    "mini": (16, 128, 1, 3e-3, 10),
}
# Run length, logging and decay: laptop-sized presets (tiny, tiny_llama, mini) run short and log often.
_LAPTOP = dict(steps=200, log_every=10, eval_every=50, eval_batches=2, weight_decay=0.0, checkpoint_every=50)
_FULL = dict(steps=100_000, log_every=50, eval_every=1000, eval_batches=20, weight_decay=1e-5, checkpoint_every=1000)


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
    if preset not in _TRAIN:
        raise ValueError(f"unknown preset {preset!r} for configs/pretrain.py; choose one of {sorted(_TRAIN)}")
    batch, seq_len, microbatches, lr, warmup = _TRAIN[preset]
    run = _LAPTOP if preset.startswith("tiny") or preset == "mini" else _FULL
    cfg = ml_collections.ConfigDict()
    cfg.preset = preset
    cfg.seed = 0
    cfg.model = model_preset(preset)

    cfg.mesh = run_sections.mesh()

    cfg.train = ml_collections.ConfigDict(dict(
        steps=run["steps"],
        batch_size=batch,            # global, in sequences
        seq_len=seq_len,
        microbatches=microbatches,   # gradient accumulation: batch_size is split into this many
        log_every=run["log_every"],
        eval_every=run["eval_every"],
        eval_batches=run["eval_batches"],
        # Continued pretraining: a run directory (e.g. from experiments.convert) to start from;
        # the model's architecture is read from its checkpoint.
        init_from="",
    ))

    cfg.optim = run_sections.optim(lr, warmup, weight_decay=run["weight_decay"])

    # Token source (biomed_jax/data/sources.py). 'tfds': a dataset made by experiments.prepare_data,
    # read by the grain loader; 'synthetic': a generated Markov-chain stream needing no files;
    # 'auto': tfds when data.dir is set, else synthetic.
    cfg.data = ml_collections.ConfigDict(dict(
        kind="auto",
        dir="",                     # the --data_dir given to experiments.prepare_data
        name="",                    # the data config's name; empty = the only dataset in dir
        prefetch=2,                 # batches prepared ahead by a background thread
        branching=4,                # synthetic: successors per token; the loss floor is about log(branching)
        mean_doc_len=64,            # synthetic: documents packed per row (segment ids); 0 = one per row
    ))

    cfg.checkpoint = run_sections.checkpoint(every_steps=run["checkpoint_every"])
    cfg.logging = run_sections.logging()
    cfg.distributed = run_sections.distributed()
    return cfg

"""MedAlpaca (Han et al. 2023): instruction tuning of LLaMA-7B on Medical Meadow by full fine-tuning, LoRA
and LoRA over an 8-bit base, each then evaluated zero-shot on the USMLE self-assessment (steps 1-3).

    python -m experiments.medalpaca --config=configs/medalpaca.py:paper --workdir=runs/medalpaca --plan \
        --config.init_checkpoint=runs/llama_7b --config.data_root=BENCHMARKS
    python -m experiments.medalpaca --config=configs/medalpaca.py:smoke --workdir=/tmp/medalpaca

Presets:
  paper  LLaMA-7B on `hardware.target`. Needs a converted LLaMA-7B run directory (experiments.convert) in
         init_checkpoint and, under data_root, medalpaca/ (Medical Meadow JSON), medqa/ (dev questions
         scored after each epoch) and usmle/ (MedAlpaca's step1/2/3 files).
  smoke  the same stages on a laptop CPU: a `base` stage pretrains tiny_llama on the synthetic world to
         stand in for LLaMA-7B; the three SFT runs use the world's Medical Meadow-style file; the
         evaluation asks the world's MedQA-style questions zero-shot with MedAlpaca's prompt.

Sections (each is the config its stage runs with; any field can be overridden):
  hardware        what the paper trained on and what we target; the meshes are sized for hardware.devices
  data, base      smoke only: the synthetic world and the stand-in base model (configs/data.py, pretrain.py)
  sft_full, sft_lora, sft_int8_lora
                  configs/finetune_sft.py, one run per method (`method` set); --stages=sft/lora,eval/lora
                  runs one of them
  eval            configs/evaluation.py  medalpaca_usmle: USMLE steps 1-3, zero-shot, "Option: Answer" parsing
  init_checkpoint the base model every SFT run starts from (empty in smoke: the base stage's run)
  data_root       the benchmark and instruction files; empty in smoke: the synthetic world

Hyperparameters come from the medAlpaca repository (github.com/kbressem/medAlpaca: README's full
fine-tuning command, medalpaca/train.py's defaults for LoRA and 8-bit LoRA), not the paper's text.
"""

from __future__ import annotations

import ml_collections

from biomed_jax.kinds import MEDALPACA_METHODS, Method

from configs import data, evaluation as eval_configs, finetune_sft, pretrain

PRESETS = ("paper", "smoke")

PAPER_HARDWARE = "8 x A100-80GB (medAlpaca repository README)"


def get_config(preset: str = "smoke") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/medalpaca.py; choose one of {list(PRESETS)}")
    cfg = ml_collections.ConfigDict()
    cfg.experiment = "medalpaca"
    cfg.preset = preset
    cfg.init_checkpoint = ""
    cfg.data_root = ""
    return _paper(cfg) if preset == "paper" else _smoke(cfg)


def _paper(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    cfg.hardware = ml_collections.ConfigDict(dict(
        paper=PAPER_HARDWARE, target="8xH100", accelerator="h100", devices=8, hosts=1))
    for method in MEDALPACA_METHODS:
        sft = finetune_sft.get_config("medalpaca")
        sft.method = method.value
        sft.mesh.update(dict(data=1, fsdp=8, tensor=1))
        sft.max_len = 512   # our choice: train.py's default is 256; 512 keeps most Medical Meadow answers whole
        sft.train.epochs = 3
        sft.optim.update(dict(learning_rate=2e-5, schedule="cosine", warmup_steps=100, weight_decay=0.0))
        # MedAlpaca's effective batch of 256 (README: 4 per GPU x 8 accumulation steps x 8 GPUs): the
        # finetune_sft medalpaca preset's 8 microbatches of 32 sequences; full remat keeps each one's
        # activations to one layer's worth (our choice).
        sft.remat = "full"
        sft.model = "llama2_7b"   # the shape of init_checkpoint: what `--plan`'s compile check uses
        if method != Method.FULL:
            # train.py: LoRA r 8, alpha 16, dropout 0.1 on q_proj and v_proj.
            sft.lora.update(dict(rank=8, alpha=16.0, dropout=0.1, targets="qv"))
        cfg[f"sft_{method}"] = sft
    cfg.eval = eval_configs.get_config("medalpaca_usmle")
    return cfg


def _smoke(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    cfg.hardware = ml_collections.ConfigDict(dict(
        paper=PAPER_HARDWARE, target="cpu (smoke run)", accelerator="", devices=1, hosts=1))
    cfg.data = data.get_config("quickstart")
    cfg.base = pretrain.get_config("tiny_llama")
    cfg.base.train.update(dict(steps=10, eval_every=10, eval_batches=1, log_every=5))
    cfg.base.checkpoint.every_steps = 10
    for method in MEDALPACA_METHODS:
        sft = finetune_sft.get_config("synthetic")
        sft.method = method.value
        sft.train.epochs = 1
        sft.task.limit = 32     # dev/test questions scored after the epoch
        cfg[f"sft_{method}"] = sft

    # USMLE's stand-in: the world's MedQA-style questions, zero-shot, MedAlpaca's prompt and methods.
    cfg.eval = eval_configs.get_config("quick")
    cfg.eval.tasks.medqa.update(dict(methods="generate,top_token", template="medalpaca", shots=0, limit=8))
    cfg.eval.tasks.pubmedqa.methods = ""     # not part of MedAlpaca's evaluation
    return cfg

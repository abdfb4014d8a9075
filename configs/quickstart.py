"""`make quickstart`: the BioMedLM story in miniature on the embedded synthetic world, on a laptop CPU.

    python -m experiments.quickstart --workdir=runs/quickstart [--config.pretrain.train.steps=800 ...]

Stages (biomed_jax/papers/quickstart.py; --stages takes groups or names, --plan prints them): data,
pretrain, zero_shot, mcq, mcq_random_init, sft_lora. Sections are the configs the stages run with (any
field can be overridden from the command line):
  data      configs/data.py:quickstart       the world -> clean -> tokenizer -> TFDS dataset
  pretrain  configs/pretrain.py:mini         domain pretraining of the mini GPT-2
  mcq       configs/finetune_mcq.py:synthetic  MCQ fine-tuning (option_loglik head), from the pretrained
            model and, as the no-domain-pretraining baseline, from a random init of the same model
  sft       configs/finetune_sft.py:synthetic  LoRA instruction tuning of the pretrained model
"""

from __future__ import annotations

import ml_collections

from configs import data, finetune_mcq, finetune_sft, pretrain


def get_config() -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    cfg.experiment, cfg.preset = "quickstart", "default"
    cfg.hardware = ml_collections.ConfigDict(dict(target="this machine (CPU)", accelerator="", devices=1, hosts=1))
    cfg.data = data.get_config("quickstart")
    cfg.pretrain = pretrain.get_config("mini")
    cfg.pretrain.train.steps = 500
    cfg.pretrain.checkpoint.every_steps = 100
    cfg.pretrain.train.eval_every = 100
    cfg.mcq = finetune_mcq.get_config("synthetic")
    cfg.mcq.train.epochs = 2
    cfg.mcq.max_len = 80          # the world's longest question + option is 71 tokens
    cfg.sft = finetune_sft.get_config("synthetic")
    cfg.sft.method = "lora"
    cfg.sft.train.epochs = 2
    return cfg

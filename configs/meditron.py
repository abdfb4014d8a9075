"""MEDITRON (Chen et al. 2023): continued pretraining of Llama-2-7B on the GAP-Replay mixture, supervised
fine-tuning, then top-token / chain-of-thought / self-consistency evaluation.

    python -m experiments.meditron --config=configs/meditron.py:paper --workdir=runs/meditron --plan \
        --config.pretrain.train.init_from=runs/llama2_7b
    python -m experiments.meditron --config=configs/meditron.py:smoke --workdir=/tmp/meditron

Presets:
  paper  MEDITRON-7B's settings on `hardware.target`. Needs a converted Llama-2-7B
         (python -m experiments.convert --direction=hf_to_jax --src=HF_DIR --workdir=DIR, then
         --config.pretrain.train.init_from=DIR), the GAP-Replay files in data.manual_dir (guidelines/,
         pubmed/, pmc/, replay/) and the benchmark files in data_root.
  smoke  the same stages on a laptop CPU: a `base` stage pretrains tiny_llama on the synthetic world to
         stand in for the converted checkpoint, then continued pretraining, SFT and the quick suite.

Sections (each is the config its stage runs with; any field can be overridden):
  hardware   what the paper trained on and what we target; the meshes are sized for hardware.devices
  data       configs/data.py        GAP-Replay: guidelines x2, PubMed abstracts, PMC papers, 1% replay,
                                    tokenized with the base model's tokenizer (init_from/tokenizer.json)
  base       configs/pretrain.py    smoke only: the stand-in for the converted Llama-2 checkpoint
  pretrain   configs/pretrain.py    continued pretraining from train.init_from
  sft        configs/finetune_sft.py  instruction tuning on MedQA's train questions (MEDITRON's ChatML style)
  eval       configs/evaluation.py        the meditron suite: MedQA, MedMCQA, PubMedQA, MMLU-medical;
                                    top-token, CoT and SC-CoT, 3-shot
  data_root  the benchmark files; empty in smoke: the synthetic world the data stage generates
"""

from __future__ import annotations

import ml_collections

from configs import data, evaluation as eval_configs, finetune_sft, pretrain

PRESETS = ("paper", "smoke")

PAPER_HARDWARE = ("A100-80GB nodes (8 GPUs each) with Megatron-LLM 3D parallelism; "
                  "MEDITRON-70B used 16 nodes (128 GPUs)")
TOKENS = 48.1e9   # GAP-Replay: 48.1B tokens


def get_config(preset: str = "smoke") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/meditron.py; choose one of {list(PRESETS)}")
    cfg = ml_collections.ConfigDict()
    cfg.experiment = "meditron"
    cfg.preset = preset
    cfg.data_root = ""
    return _paper(cfg) if preset == "paper" else _smoke(cfg)


def _paper(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    cfg.hardware = ml_collections.ConfigDict(dict(
        paper=PAPER_HARDWARE, target="8xH100", accelerator="h100", devices=8, hosts=1))
    cfg.data = data.get_config("gap_replay")
    cfg.data.tokenizer.eos_token = "</s>"   # Llama's; tokenizer.path defaults to init_from/tokenizer.json

    cfg.pretrain = pretrain.get_config("llama2_7b")   # the architecture is read from init_from's checkpoint
    cfg.pretrain.mesh.update(dict(data=1, fsdp=8, tensor=1))
    batch, seq_len = 512, 2048
    cfg.pretrain.train.update(dict(
        batch_size=batch,          # not stated in the paper: our choice (1M tokens per step)
        seq_len=seq_len,           # paper: context 2048 for MEDITRON-7B (4096 for 70B)
        # 8 sequences per GPU per microbatch: aot_check on 8 simulated devices measured a peak of 31.91 GiB
        # per device (45.54 GiB with 4 microbatches).
        microbatches=8,
        steps=round(TOKENS / (batch * seq_len)),   # 45,872 steps = 48.1B tokens, one pass over GAP-Replay
        eval_every=1000,
    ))
    cfg.pretrain.optim.update(dict(
        # paper: AdamW b1 0.9, b2 0.95, eps 1e-5, lr 3e-4 (7B), cosine with 2000 warmup steps to 10% of
        # the peak, weight decay 0.1, gradient clipping 1.0.
        learning_rate=3e-4, warmup_steps=2000, schedule="cosine", final_lr_fraction=0.1,
        b1=0.9, b2=0.95, eps=1e-5, max_grad_norm=1.0,
        # AdamW's decay lr_t * 0.1 * p written in Decoupled AdamW's form (lr_t / lr_peak) * wd * p.
        weight_decay=3e-5,         # = 0.1 x 3e-4
    ))

    cfg.sft = finetune_sft.get_config("meditron")
    cfg.sft.mesh.update(dict(data=1, fsdp=8, tensor=1))
    cfg.sft.remat = "full"   # a full 7B fine-tune: keep only layer inputs for the backward pass
    cfg.sft.model = "llama2_7b"   # the shape of init_checkpoint: what `--plan`'s compile check uses
    # The paper fine-tunes on each benchmark's train set; this runs MedQA's. Its SFT hyperparameters are not
    # reproduced: the preset's (lr 2e-5, 3 epochs, batch 32, max_len 512) are our choice.

    cfg.eval = eval_configs.get_config("meditron")
    return cfg


def _smoke(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    cfg.hardware = ml_collections.ConfigDict(dict(
        paper=PAPER_HARDWARE, target="cpu (smoke run)", accelerator="", devices=1, hosts=1))
    cfg.data = data.get_config("quickstart")

    cfg.base = pretrain.get_config("tiny_llama")
    cfg.base.train.update(dict(steps=10, eval_every=10, eval_batches=1, log_every=5))
    cfg.base.checkpoint.every_steps = 10

    cfg.pretrain = pretrain.get_config("tiny_llama")   # init_from: the base stage's run
    cfg.pretrain.train.update(dict(steps=5, eval_every=5, eval_batches=1, log_every=5))
    cfg.pretrain.checkpoint.every_steps = 5
    cfg.pretrain.optim.update(dict(warmup_steps=2, schedule="cosine", final_lr_fraction=0.1))

    cfg.sft = finetune_sft.get_config("synthetic")
    cfg.sft.train.epochs = 1
    cfg.sft.task.limit = 32

    # The quick suite's world questions with MEDITRON's methods.
    cfg.eval = eval_configs.get_config("quick")
    cfg.eval.tasks.medqa.update(dict(methods="top_token,cot,sc_cot", limit=8))
    cfg.eval.tasks.pubmedqa.update(dict(methods="top_token", limit=8))
    return cfg

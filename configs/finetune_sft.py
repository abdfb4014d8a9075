"""Instruction tuning (MedAlpaca, MEDITRON's SFT): loss on response tokens only, optional packing;
full fine-tuning, LoRA, or LoRA over an int8 (MedAlpaca's "8-bit LoRA") or nf4 frozen base.

    python -m experiments.finetune_sft --config=configs/finetune_sft.py:<preset> --workdir=DIR \
        --config.init_checkpoint=RUN_DIR --config.method=full|lora|int8_lora|nf4_lora

Dev/test accuracy after every epoch: the task's questions as instruction prompts; the option whose response
(answer_template, the form the SFT data teaches) has the highest log-likelihood is the prediction.

Presets:
  synthetic   the world's Medical Meadow-style pairs plus its MedQA train questions as instructions
  medalpaca   Medical Meadow JSON (data_root/medalpaca/*.json), MedAlpaca's prompt; dev = MedQA dev
  meditron    MedQA train as instructions in MEDITRON's ChatML style; dev/test = MedQA dev/test
"""

from __future__ import annotations

import ml_collections

from biomed_jax.tasks.sft import MCQ_INSTRUCTION
from biomed_jax.kinds import FinetuneKind
from configs.finetune_base import base_config, task

PRESETS = ("synthetic", "medalpaca", "meditron")


def get_config(preset: str = "synthetic"):
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/finetune_sft.py; choose one of {list(PRESETS)}")
    cfg = base_config(synthetic=preset == "synthetic")
    cfg.preset = preset
    cfg.kind = FinetuneKind.SFT.value                    # the task: experiments.finetune_sft runs it
    cfg.task = task("medqa", "medqa", template="")   # the questions evaluated (and, if benchmark_train, trained)
    cfg.sft = ml_collections.ConfigDict(dict(
        instructions={"synthetic": "medalpaca/medical_meadow_world.json",
                      "medalpaca": "medalpaca/medical_meadow_small.json", "meditron": ""}[preset],
        limit=0,                                   # first n records of each instruction file (0 = all)
        benchmark_train=preset != "medalpaca",     # add the task's train questions as instructions
        style="meditron" if preset == "meditron" else "medalpaca",   # biomed_jax.tasks.sft.SFT_TEMPLATES
        instruction=MCQ_INSTRUCTION,
        input_template="{question}\n{options}",      # a benchmark question as an instruction's input
        answer_template="{answer_letter}: {answer_text}",
        pack=True,                                 # several examples per row (segment ids keep them apart)
    ))
    if preset == "synthetic":
        # The mini model has read abstracts, not chat transcripts: plain "Question: ... Answer:" text, the
        # question without its options, answered with the option's text (scored by log-likelihood).
        cfg.sft.style = "qa"
        cfg.sft.instruction = "Answer the question."
        cfg.sft.input_template = "{question}"
        cfg.sft.answer_template = " {answer_text}"
        cfg.max_len = 128
        cfg.train.batch_size = 16
    if preset == "medalpaca":
        cfg.task.train_split = "dev"              # unused for training (benchmark_train=False)
        # MedAlpaca's effective batch of 256 through gradient accumulation: 8 microbatches of 32 sequences
        # (4 per GPU on 8 GPUs, as the medAlpaca repository's README runs it).
        cfg.train.update(dict(batch_size=256, microbatches=8))
    return cfg

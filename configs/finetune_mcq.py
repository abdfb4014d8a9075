"""BioMedLM's multiple-choice classifier: each (question, option) scored by a linear head on the decoder's
last token, softmax over the options.

    python -m experiments.finetune_mcq --config=configs/finetune_mcq.py:<preset> --workdir=DIR \
        --config.init_checkpoint=RUN_DIR [--config.method=lora ...]

Heads (`--config.head`):
  last_token     BioMedLM's: a linear layer on the final hidden state of each (question, option) text
  option_loglik  no new parameters: an option's score is its log-likelihood through the LM head after the
                 text before {option}; fine-tuned with the same softmax over options. Small models keep
                 their knowledge in next-token predictions, where this head can reach it (see docs/finetuning.md).

Presets: synthetic (the embedded world's MedQA-style questions), medqa, medmcqa, mmlu (MMLU-medical,
dev = MMLU's dev split). Real-data presets read data_root/<task path> in the released layouts.
"""

from __future__ import annotations

from biomed_jax.data.benchmarks import MEDICAL_SUBJECTS
from biomed_jax.kinds import FinetuneKind
from configs.finetune_base import base_config, task

PRESETS = ("synthetic", "medqa", "medmcqa", "mmlu")
MCQ_TEMPLATE = "Question: {question}\nAnswer: {option}"


def get_config(preset: str = "synthetic"):
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/finetune_mcq.py; choose one of {list(PRESETS)}")
    cfg = base_config(synthetic=preset == "synthetic")
    cfg.preset = preset
    cfg.kind = FinetuneKind.MCQ.value                    # the task: experiments.finetune_mcq runs it
    # BioMedLM's head for real benchmarks; on the synthetic world the mini model's facts are in its
    # next-token predictions, not linearly in its last hidden state, so the LM-head scorer (docs/finetuning.md).
    cfg.head = "option_loglik" if preset == "synthetic" else "last_token"
    cfg.task = {
        "synthetic": task("medqa", "medqa", MCQ_TEMPLATE),
        "medqa": task("medqa", "medqa", MCQ_TEMPLATE),
        "medmcqa": task("medmcqa", "medmcqa", MCQ_TEMPLATE, dev_split="", dev_fraction=0.05),
        # subjects is a field so that one subject can be chosen from the command line
        # (--config.task.options.subjects="('medical_genetics',)").
        "mmlu": task("mmlu", "mmlu", MCQ_TEMPLATE, train_split="dev", dev_split="val", test_split="test",
                     options=dict(subjects=MEDICAL_SUBJECTS)),
    }[preset]
    return cfg

"""BioMedLM's sequence classifier (PubMedQA yes/no/maybe, BioASQ yes/no): a linear head over the last
token's hidden state.

    python -m experiments.finetune_seqcls --config=configs/finetune_seqcls.py:<preset> --workdir=DIR \
        --config.init_checkpoint=RUN_DIR [--config.method=lora ...]

Presets: synthetic (the embedded world's PubMedQA items), pubmedqa (the 500 expert-labelled train items,
10% carved off as dev, test = test_ground_truth), bioasq (yes/no questions with snippets; 10% dev, 10% test
carved from the file).
"""

from __future__ import annotations

from biomed_jax.kinds import FinetuneKind
from configs.finetune_base import base_config, task

PRESETS = ("synthetic", "pubmedqa", "bioasq")
CONTEXT_TEMPLATE = "Context: {context}\nQuestion: {question}\nAnswer:"


def get_config(preset: str = "synthetic"):
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for configs/finetune_seqcls.py; choose one of {list(PRESETS)}")
    cfg = base_config(synthetic=preset == "synthetic")
    cfg.preset = preset
    cfg.kind = FinetuneKind.SEQCLS.value                    # the task: experiments.finetune_seqcls runs it
    pubmedqa = task("pubmedqa", "pubmedqa", CONTEXT_TEMPLATE, dev_split="", dev_fraction=0.1,
                    classes=("yes", "no", "maybe"))
    cfg.task = {
        "synthetic": pubmedqa,
        "pubmedqa": pubmedqa,
        "bioasq": task("bioasq", "bioasq", CONTEXT_TEMPLATE, train_split="", dev_split="", test_split="",
                       dev_fraction=0.1, test_fraction=0.1, classes=("yes", "no")),
    }[preset]
    if preset == "synthetic":
        cfg.max_len = 128   # the mini model's pretraining length; longer contexts lose their start
    return cfg

"""The names a config chooses between, each defined once. StrEnums: a member equals its string, so configs
keep plain strings ("--config.method=lora") and code compares against members."""

from __future__ import annotations

import enum


class FinetuneKind(enum.StrEnum):
    """What a fine-tuning run trains (biomed_jax/tasks/finetuning.py)."""

    MCQ = "mcq"          # a multiple-choice scorer (experiments.finetune_mcq)
    SEQCLS = "seqcls"    # a sequence classifier over fixed labels (experiments.finetune_seqcls)
    SFT = "sft"          # instruction tuning (experiments.finetune_sft)


# BioMedLM's classifier fine-tunes: a head on the decoder (biomed_jax/adapt/heads.py).
CLASSIFIER_KINDS = (FinetuneKind.MCQ, FinetuneKind.SEQCLS)


class Method(enum.StrEnum):
    """Which parameters train (biomed_jax/adapt/lora.py)."""

    FULL = "full"            # every parameter
    LORA = "lora"            # low-rank adapters on a frozen base
    INT8_LORA = "int8_lora"  # adapters on an int8-quantized frozen base (MedAlpaca's 8-bit LoRA)
    NF4_LORA = "nf4_lora"    # adapters on an nf4-quantized frozen base (QLoRA)


# MedAlpaca's comparison: full fine-tuning, LoRA and 8-bit LoRA.
MEDALPACA_METHODS = (Method.FULL, Method.LORA, Method.INT8_LORA)


def choice(enum_cls: type[enum.StrEnum], value: str, field: str) -> enum.StrEnum:
    """`value` as a member of `enum_cls`; a ValueError naming `field` and the choices otherwise."""
    try:
        return enum_cls(value)
    except ValueError:
        raise ValueError(f"{field} must be one of {[m.value for m in enum_cls]}, got {value!r}") from None

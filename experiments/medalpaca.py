"""MedAlpaca (Han et al. 2023) end to end: instruction tuning of LLaMA-7B on Medical Meadow by full
fine-tuning, LoRA and LoRA over an int8 base, then zero-shot USMLE evaluation of each -> one comparison table.

    python -m experiments.medalpaca --config=configs/medalpaca.py:smoke --workdir=/tmp/medalpaca
    python -m experiments.medalpaca --config=configs/medalpaca.py:paper --workdir=runs/medalpaca --plan
    python -m experiments.medalpaca --config=configs/medalpaca.py:paper --workdir=runs/medalpaca \
        --config.init_checkpoint=LLAMA_7B_RUN --config.data_root=BENCHMARKS [--stages=sft/lora,eval/lora]

Stages (--stages takes groups or names): data and base (smoke only: the synthetic world and a tiny_llama
standing in for LLaMA-7B), sft (sft/full, sft/lora, sft/int8_lora), eval (eval/full, ...). A stage rerun
with the same settings is skipped (biomed_jax/stages.py). WORKDIR/results.md and results.json compare
the methods.
"""

from biomed_jax import cli
from biomed_jax import stages as S
from biomed_jax.papers.medalpaca import build, report

_FLAGS = S.define_flags("medalpaca")


def main(argv):
    del argv
    S.main(_FLAGS, build, report)


if __name__ == "__main__":
    cli.run(main)

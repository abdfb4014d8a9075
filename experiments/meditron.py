"""MEDITRON (Chen et al. 2023) end to end: GAP-Replay corpus tokenized with the base model's tokenizer ->
continued pretraining of a converted Llama-2 -> supervised fine-tuning -> top-token / CoT / SC-CoT evaluation.

    python -m experiments.meditron --config=configs/meditron.py:smoke --workdir=/tmp/meditron
    python -m experiments.meditron --config=configs/meditron.py:paper --workdir=runs/meditron --plan
    python -m experiments.meditron --config=configs/meditron.py:paper --workdir=runs/meditron \
        --config.pretrain.train.init_from=LLAMA2_7B_RUN --config.data.manual_dir=CORPUS \
        --config.data_root=BENCHMARKS [--stages=pretrain,sft,eval]

Stages (--stages takes groups or names): data, base (smoke only: pretrains tiny_llama as the stand-in for the
converted checkpoint), pretrain (continued, from pretrain.train.init_from), sft, eval. A stage rerun with the
same settings is skipped (biomed_jax/stages.py). WORKDIR/results.md and results.json: the evaluation table
with the pretraining and SFT summaries.
"""

from biomed_jax import cli
from biomed_jax import stages as S
from biomed_jax.papers.meditron import build, report

_FLAGS = S.define_flags("meditron")


def main(argv):
    del argv
    S.main(_FLAGS, build, report)


if __name__ == "__main__":
    cli.run(main)

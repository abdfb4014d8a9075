"""BioMedLM (Bolton et al. 2024) end to end: PubMed corpus -> pretraining of the 2.7B GPT-2 -> fine-tuning
of its multiple-choice and sequence classifiers per task -> the paper's table (task | ours | paper).

    python -m experiments.biomedlm --config=configs/biomedlm.py:smoke --workdir=/tmp/biomedlm
    python -m experiments.biomedlm --config=configs/biomedlm.py:paper --workdir=runs/biomedlm --plan
    python -m experiments.biomedlm --config=configs/biomedlm.py:paper --workdir=runs/biomedlm \
        --config.data.manual_dir=CORPUS --config.data_root=BENCHMARKS [--stages=pretrain,finetune]

Stages (--stages takes groups or names): data, pretrain, finetune (finetune/medqa, finetune/pubmedqa, ...).
A stage rerun with the same settings is skipped (biomed_jax/stages.py). WORKDIR/results.md and
results.json hold the table, with the tasks not yet run left empty.
"""

from biomed_jax import cli
from biomed_jax import stages as S
from biomed_jax.papers.biomedlm import build, report

_FLAGS = S.define_flags("biomedlm")


def main(argv):
    del argv
    S.main(_FLAGS, build, report)


if __name__ == "__main__":
    cli.run(main)

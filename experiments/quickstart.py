"""The whole method on a laptop: synthetic world -> tokenizer -> dataset -> pretraining -> zero-shot,
MCQ fine-tuning, LoRA SFT and a no-domain-pretraining baseline -> a BioMedLM-shaped results table.

    python -m experiments.quickstart --workdir=runs/quickstart     (what `make quickstart` runs)
    python -m experiments.quickstart --workdir=runs/quickstart --plan

Stages (biomed_jax/papers/quickstart.py, run by biomed_jax/stages.py; --stages takes groups or names):
data, pretrain, zero_shot, mcq, mcq_random_init, sft_lora. Each writes its own folder under WORKDIR and
is skipped when rerun with the same settings (resumed when interrupted). At the end WORKDIR holds
results.md, results.json and loss.png (pretraining loss, fine-tuning dev accuracy). See
configs/quickstart.py for the settings.
"""

from biomed_jax import cli
from biomed_jax import stages as S
from biomed_jax.papers.quickstart import build, report

_FLAGS = S.define_flags("quickstart", config="configs/quickstart.py")


def main(argv):
    del argv
    S.main(_FLAGS, build, report)


if __name__ == "__main__":
    cli.run(main)

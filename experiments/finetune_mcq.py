"""Fine-tunes a biomed_jax checkpoint: see configs/finetune_mcq.py for presets and biomed_jax/tasks/finetuning.py
for what the run writes.

    python -m experiments.finetune_mcq --config=configs/finetune_mcq.py:synthetic --workdir=DIR \
        --config.init_checkpoint=PRETRAIN_RUN_DIR [--config.method=full|lora|int8_lora|nf4_lora]
"""

from biomed_jax.kinds import FinetuneKind
from experiments.finetune_common import main_for

if __name__ == "__main__":
    main_for(FinetuneKind.MCQ)

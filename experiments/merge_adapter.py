"""Merges a fine-tuning run's LoRA adapters into its base and writes a plain run directory.

    python -m experiments.merge_adapter --adapter=FINETUNE_DIR/adapter --workdir=MERGED [--base=BASE_RUN]

MERGED is read by experiments.evaluate / generate like any checkpoint, and exported to Hugging Face by
    python -m experiments.convert --direction=jax_to_hf --workdir=MERGED --dst=HF_OUT
(the fine-tuning run's best/ folder is the same thing for its best epoch).
"""

from absl import flags

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs

_ADAPTER = flags.DEFINE_string("adapter", None, "A fine-tuning run's adapter/ folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where to write the merged run directory.")
_BASE = flags.DEFINE_string("base", "", "The base run directory (default: the run's init_checkpoint).")


def main(argv):
    del argv
    quiet_library_logs()
    from biomed_jax.adapt.adapters import merge_adapter

    print(f"wrote {merge_adapter(_ADAPTER.value, _WORKDIR.value, _BASE.value)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["adapter", "workdir"])
    cli.run(main)

"""Converts Hugging Face checkpoints to biomed_jax and back (safetensors only).

    python -m experiments.convert --direction=hf_to_jax --src=HF_DIR --workdir=DIR
    python -m experiments.convert --direction=jax_to_hf --workdir=DIR --dst=HF_OUT [--step=N]

hf_to_jax reads GPT2LMHeadModel or LlamaForCausalLM folders (config.json + *.safetensors, sharded
index files too, and the tokenizer.json every run directory carries) and writes the run directory DIR:
DIR/checkpoints/0 plus the tokenizer files. jax_to_hf writes a folder that
transformers.AutoModelForCausalLM.from_pretrained loads. Both go through biomed_jax.run_dir.
"""

from absl import app, flags

from biomed_jax import cli
from biomed_jax.convert.hf_checkpoint import hf_to_jax, jax_to_hf
from biomed_jax.logs import quiet_library_logs

_DIRECTION = flags.DEFINE_enum("direction", None, ["hf_to_jax", "jax_to_hf"], "Which way to convert.")
_SRC = flags.DEFINE_string("src", None, "hf_to_jax: the Hugging Face model folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The biomed_jax run directory (written or read).")
_DST = flags.DEFINE_string("dst", None, "jax_to_hf: the folder to write.")
_STEP = flags.DEFINE_integer("step", None, "jax_to_hf: checkpoint step (default: latest).")
_SCAN = flags.DEFINE_bool("scan_layers", True, "hf_to_jax: store layers stacked for scanning.")


def main(argv):
    del argv
    quiet_library_logs()
    if _DIRECTION.value == "hf_to_jax" and not _SRC.value:
        raise app.UsageError("--src is required for --direction=hf_to_jax")
    if _DIRECTION.value == "jax_to_hf" and not _DST.value:
        raise app.UsageError("--dst is required for --direction=jax_to_hf")
    # A missing file, a used --workdir or weights that do not fit their config: one line (biomed_jax/cli.py).
    if _DIRECTION.value == "hf_to_jax":
        cfg = hf_to_jax(_SRC.value, _WORKDIR.value, scan_layers=_SCAN.value)
        print(f"wrote {_WORKDIR.value}/checkpoints/0: {cfg.n_layers} layers, d_model {cfg.d_model}, "
              f"vocab {cfg.vocab_size}")
    else:
        print(f"wrote {jax_to_hf(_WORKDIR.value, _DST.value, _STEP.value)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["direction", "workdir"])
    cli.run(main)

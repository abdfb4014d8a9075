"""Raw sources -> TFDS token dataset, end to end.

    python -m experiments.prepare_data --config=configs/data.py:synthetic --data_dir=/tmp/d
    python -m experiments.prepare_data --config=configs/data.py:pubmed --data_dir=DIR --config.engine=beam \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"

Stages, each resumable and skipped when already done (under --config.work_dir, default
DATA_DIR/biomed_work/<name>/; a gs:// or s3:// bucket works):
  1. the synthetic world (preset synthetic only), generated into manual/;
  2. read + clean + dedup every source (clean/, with clean_report.json);
  3. the tokenizer: data.tokenizer.path, or a byte-level BPE trained on the clean train split
     (tokenizer/tokenizer.json, fertility.json);
  4. mix, tokenize in data.build.num_workers processes, write array_record shards
     (DATA_DIR/biomed_corpus/<name>/1.0.0/, renamed into place only when complete).
Then `python -m experiments.pretrain --config=configs/pretrain.py:tiny --config.data.dir=DATA_DIR`.
"""

from __future__ import annotations

from absl import app, flags

from biomed_jax import cli
from biomed_jax.data.prepare import prepare
from biomed_jax.logs import quiet_library_logs

_CONFIG = cli.define_config_file("config", None, "Data config and preset, e.g. configs/data.py:synthetic",
                                          lock_config=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the dataset (and its work files) are written.")
_BEAM = flags.DEFINE_string(
    "beam_pipeline_options", "", "With --config.engine=beam: Beam pipeline options in TFDS's comma-separated "
    "format, e.g. runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing (default: "
    "runner=DirectRunner); see docs/data.md for Dataflow, Flink and Spark.")


def main(argv):
    del argv
    quiet_library_logs()
    if _BEAM.value and _CONFIG.value.engine != "beam":
        raise app.UsageError("--beam_pipeline_options needs --config.engine=beam")
    dataset = prepare(_CONFIG.value, _DATA_DIR.value, _BEAM.value)
    print(f"dataset: {dataset.path}")
    print(f"tokenizer: vocab {dataset.vocab_size}, eos id {dataset.eos_id}")
    for split, sources in dataset.metadata["counts"].items():
        total = sum(c["tokens"] for c in sources.values())
        parts = ", ".join(f"{name} {c['documents']} docs / {c['tokens']} tokens" for name, c in sources.items())
        print(f"{split}: {total} tokens ({parts})")
    print("mixture: " + ", ".join(f"{name} x{m['epochs']:.3g} ({100 * m['char_share']:.1f}%)"
                                  for name, m in dataset.metadata["mixture"].items()))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "data_dir"])
    cli.run(main)

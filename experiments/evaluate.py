"""Benchmark evaluation of a checkpoint: one command, a paper-style table.

    python -m experiments.evaluate --config=configs/evaluation.py:<suite> --checkpoint=RUN_DIR --workdir=OUT \
        [--config.data_root=BENCHMARKS --tokenizer=PATH]

RUN_DIR is any run directory with checkpoints/ (pretrained, fine-tuned, or converted from Hugging
Face) and a tokenizer.json. Writes OUT/results.json (per task and method: accuracy, standard error, n,
truncations, extraction failures), OUT/predictions.jsonl and OUT/results.md. A rerun skips finished
(task, method) pairs; a different config in the same OUT is refused.
"""

from __future__ import annotations

import json
import os

from absl import flags

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs
from biomed_jax.run_dir import ensure_same_settings, require_run

_CONFIG = cli.define_config_file("config", None, "Suite, e.g. configs/evaluation.py:quick", lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run directory holding checkpoints/ and tokenizer.json.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results go.")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "tokenizer.json to use instead of the run directory's.")


def main(argv):
    del argv
    quiet_library_logs()
    from biomed_jax.evaluation.harness import evaluate, load_eval_model

    cfg, workdir = _CONFIG.value, _WORKDIR.value
    require_run(_CHECKPOINT.value)  # before anything is written
    # Finished (task, method) results are kept and skipped on a rerun: another config's must not mix in.
    ensure_same_settings(os.path.join(workdir, "config.json"), json.loads(cfg.to_json()), "evaluation results",
                         hint="use a new --workdir")
    data_root = cfg.data_root
    if not data_root:
        if cfg.suite != "quick":
            raise ValueError(f"suite {cfg.suite!r} reads the released benchmark files: pass --config.data_root="
                             "FOLDER (holding medqa/, medmcqa/, pubmedqa/, mmlu/, bioasq/, usmle/)")
        from biomed_jax.synthetic.defaults import QUICKSTART_WORLD
        from biomed_jax.synthetic.generate import generate_world

        data_root = os.path.join(workdir, "world")
        generate_world(data_root, dict(QUICKSTART_WORLD))
    model = load_eval_model(_CHECKPOINT.value, batch_size=cfg.batch_size, max_len=cfg.max_len,
                            tokenizer_path=_TOKENIZER.value)
    evaluate(cfg, model, workdir, data_root)
    with open(os.path.join(workdir, "results.md")) as f:
        print(f.read())
    print(f"results: {workdir}/results.json  predictions: {workdir}/predictions.jsonl  table: {workdir}/results.md")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "checkpoint", "workdir"])
    cli.run(main)

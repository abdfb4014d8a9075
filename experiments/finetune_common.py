"""The command line shared by experiments.finetune_mcq, finetune_seqcls and finetune_sft."""

import json
import os
import signal

from absl import app, flags, logging

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs

_CONFIG = cli.define_config_file("config", None, "A configs/finetune_*.py preset.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumes if it holds a checkpoint).")


def main_for(kind: str) -> None:
    def main(argv):
        del argv
        quiet_library_logs()
        from biomed_jax.tasks.finetuning import run

        if _CONFIG.value.kind != kind:
            raise app.UsageError(f"--config is a {_CONFIG.value.kind} config; run it with "
                                 f"experiments.finetune_{_CONFIG.value.kind}")
        results = run(_CONFIG.value, _WORKDIR.value, kind)
        if "interrupted_by" in results:
            logging.warning("stopped by %s at step %d; rerun the same command to resume",
                            results["interrupted_by"], results["step"])
            raise SystemExit(128 + signal.Signals[results["interrupted_by"]].value)
        summary = {k: results[k] for k in ("task", "method", "init", "best_epoch", "dev_accuracy", "test_accuracy",
                                           "chance", "trainable_params", "total_params")}
        print(json.dumps(summary, indent=2))
        print(f"wrote {os.path.join(_WORKDIR.value, 'results.json')}")

    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)

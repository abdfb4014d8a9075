"""Pretraining and continued pretraining.

    python -m experiments.pretrain --config=configs/pretrain.py:tiny --workdir=/tmp/w \
        [--config.train.steps=60 --config.mesh.fsdp=4 --config.mesh.tensor=2 ...]

Writes WORKDIR/config.json, metrics.jsonl, tensorboard/ and checkpoints/. Rerunning the same
command resumes from the latest checkpoint. SIGTERM/SIGINT save a checkpoint, then exit 128+signal.

Several hosts run the same command (see biomed_jax/distributed.py and docs/sharding.md): on a TPU pod slice
add --config.distributed.mode=on; on one machine, experiments.launch_local starts the processes.
"""

from absl import flags, logging

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs
from biomed_jax.tasks import pretraining

_CONFIG = cli.define_config_file("config", None, "Config file and preset, e.g. configs/pretrain.py:tiny",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: config, metrics, checkpoints.")


def main(argv):
    del argv
    quiet_library_logs()
    summary = pretraining.run(_CONFIG.value, _WORKDIR.value)
    val_loss = summary.evaluations[-1].get("val_loss") if summary.evaluations else None
    print(f"step {summary.step}; last loss {summary.last_loss}; validation loss {val_loss}")
    workdir = _WORKDIR.value
    print(f"metrics: {workdir}/metrics.jsonl  tensorboard: {workdir}/tensorboard  "
          f"checkpoints: {workdir}/checkpoints")
    if summary.interrupted_by:
        import signal

        logging.warning("stopped by %s; rerun the same command to resume", summary.interrupted_by)
        raise SystemExit(128 + signal.Signals[summary.interrupted_by].value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)

"""lm-evaluation-harness on a biomed_jax run directory, in-process and offline.

    python -m experiments.lm_eval --checkpoint=RUN_DIR --tasks=medqa_local,pubmedqa_local \
        [--include_path=configs/lm_eval_tasks] [any lm-eval flag: --limit, --num_fewshot, --batch_size,
        --output_path, --log_samples, --metadata='{"data_dir": "/path/to/data"}', ...]

Registers the `biomed_jax` model (biomed_jax/evaluation/lm_eval_adapter.py) and hands the command line
to lm-eval's own CLI, with `--checkpoint=DIR` turned into `--model biomed_jax --model_args
pretrained=DIR` (further --model_args, e.g. step=1000,max_length=512, are appended). --include_path
defaults to the project's local-file task definitions (configs/lm_eval_tasks). HF_DATASETS_OFFLINE,
HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE are set (unless already set), so nothing is fetched from a
hub; tasks must read local files. Without --checkpoint the arguments go to lm-eval unchanged.
"""

from __future__ import annotations

import os
import sys

from biomed_jax import cli
from biomed_jax.evaluation.lm_eval_command import OFFLINE_ENV, translate


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    for name in OFFLINE_ENV:
        os.environ.setdefault(name, "1")
    try:
        args = translate(argv)
    except ValueError as err:
        cli.fail(cli.message(err))
    import biomed_jax.evaluation.lm_eval_adapter  # noqa: F401  (registers the "biomed_jax" model)
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm-eval", *args]
    cli_evaluate()


if __name__ == "__main__":
    main()

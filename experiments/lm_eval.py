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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TASKS_DIR = os.path.join(REPO_ROOT, "configs", "lm_eval_tasks")
OFFLINE_ENV = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _pop_flag(argv: list[str], name: str) -> tuple[str | None, list[str]]:
    """(value of --name=V or --name V, argv without it); a flag given twice is an error."""
    value, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == f"--{name}" or arg.startswith(f"--{name}="):
            if value is not None:
                raise ValueError(f"--{name} is given more than once")
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                value, i = argv[i + 1], i + 1
            else:
                raise ValueError(f"--{name} needs a value")
        else:
            rest.append(arg)
        i += 1
    return value, rest


def translate(argv: list[str]) -> list[str]:
    """Our command line -> lm-eval's (without the program name)."""
    command = argv[:1] if argv[:1] == ["run"] else []  # lm-eval's optional subcommand stays first
    checkpoint, argv = _pop_flag(argv[len(command):], "checkpoint")
    if checkpoint is None:
        return command + argv
    if not os.path.isdir(checkpoint):
        raise ValueError(f"--checkpoint={checkpoint} is not a directory; pass a biomed_jax run directory "
                         "(checkpoints/ and tokenizer.json, e.g. from experiments.convert --direction=hf_to_jax)")
    model, argv = _pop_flag(argv, "model")
    if model not in (None, "biomed_jax"):
        raise ValueError(f"--checkpoint selects the biomed_jax model; drop --model={model}")
    model_args, argv = _pop_flag(argv, "model_args")
    model_args = f"pretrained={os.path.abspath(checkpoint)}" + (f",{model_args}" if model_args else "")
    include_path, argv = _pop_flag(argv, "include_path")
    return [*command, "--model", "biomed_jax", "--model_args", model_args,
            "--include_path", include_path or DEFAULT_TASKS_DIR, *argv]


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

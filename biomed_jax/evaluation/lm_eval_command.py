"""experiments.lm_eval's command line turned into lm-evaluation-harness's: `--checkpoint=DIR` becomes
`--model biomed_jax --model_args pretrained=DIR`, and the project's local-file tasks are the default
--include_path."""

from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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

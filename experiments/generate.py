"""Generates completions from a biomed_jax checkpoint.

    python -m experiments.generate --checkpoint=RUN_DIR --prompt="The patient presented with" \
        [--prompt="..."] [--interactive] [--tokenizer=PATH/tokenizer.json] \
        [--config=configs/generate.py:sample] [--config.sampling.temperature=0.7 --config.sampling.top_p=0.9]

RUN_DIR is a run directory holding checkpoints/ and tokenizer.json (what experiments.convert and
experiments.pretrain write). Each prompt's completion is printed after a "[i] prompt" line;
--interactive then reads prompts from stdin, one per line, until EOF.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

from biomed_jax import cli
from biomed_jax.inference.text import completion_text, pad_id, stop_string_ids
from biomed_jax.logs import quiet_library_logs

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "generate.py")
_CONFIG = cli.define_config_file("config", _DEFAULT_CONFIG, "Config file and preset, e.g. configs/generate.py:sample",
                                          lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run directory holding checkpoints/ and tokenizer.json.")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "tokenizer.json to use instead of RUN_DIR/tokenizer.json.")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "A prompt to complete; repeat for a batch.")
_INTERACTIVE = flags.DEFINE_bool("interactive", False, "Read prompts from stdin, one per line, until EOF.")


def main(argv):
    del argv
    quiet_library_logs()
    cfg = _CONFIG.value
    run_dir = _CHECKPOINT.value
    if not _PROMPT.value and not _INTERACTIVE.value:
        raise app.UsageError("give at least one --prompt, or --interactive to read prompts from stdin")

    from biomed_jax import sharding as shd
    from biomed_jax.inference.generate import Generator
    from biomed_jax.inference.sampling import SamplingConfig
    from biomed_jax.run_dir import load_run

    mesh = shd.make_mesh(dict(cfg.mesh))
    run = load_run(run_dir, step=None if cfg.step < 0 else cfg.step, mesh=mesh, tokenizer=_TOKENIZER.value)
    tokenizer = run.tokenizer
    s = cfg.sampling
    stop_strings = tuple(s.stop_strings)
    stop_tokens = list(s.stop_tokens) + stop_string_ids(tokenizer, stop_strings)
    if s.stop_at_eos and run.eos_id is not None:
        stop_tokens.append(run.eos_id)
    pad = s.pad_id
    if pad < 0:
        pad = next((t for t in (pad_id(tokenizer), run.eos_id) if t is not None), 0)
    sampling = SamplingConfig(max_new_tokens=s.max_new_tokens, temperature=float(s.temperature), top_k=s.top_k,
                              top_p=float(s.top_p), stop_tokens=tuple(dict.fromkeys(stop_tokens)), seed=s.seed,
                              pad_id=pad)

    model_cfg = run.model_cfg.replace(dtype=cfg.dtype) if cfg.dtype else run.model_cfg
    generator = Generator(model_cfg, run.params, mesh)
    run.params = None  # the generator keeps its own (per-layer) copy
    print(f"loaded {run_dir} step {run.step}: {model_cfg.n_layers} layers, d_model {model_cfg.d_model}, "
          f"vocab {model_cfg.vocab_size}; stop tokens {list(sampling.stop_tokens)}", file=sys.stderr)

    counter = [0]
    calls = [0]

    def complete(prompts: list[str]) -> None:
        ids = [tokenizer.encode(p).ids for p in prompts]
        start = time.perf_counter()
        out = generator.generate(ids, sampling, batch_size=s.batch_size, max_len=s.max_len, stream=calls[0])
        calls[0] += 1
        seconds = time.perf_counter() - start
        for prompt, completion in zip(prompts, out.completions()):
            print(f"[{counter[0]}] {prompt}")
            print(completion_text(tokenizer, completion, sampling.stop_tokens, stop_strings))
            counter[0] += 1
        print(f"{int(out.lengths.sum())} tokens in {seconds:.2f} s (compilation included on first use)",
              file=sys.stderr)
        sys.stdout.flush()

    if _PROMPT.value:
        complete(list(_PROMPT.value))
    if _INTERACTIVE.value:
        tty = sys.stdin.isatty()
        while True:
            if tty:
                print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            line = line.rstrip("\n")
            if line.strip():
                complete([line])


if __name__ == "__main__":
    flags.mark_flags_as_required(["checkpoint"])
    cli.run(main)

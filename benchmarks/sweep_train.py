"""Sweeps the training-step settings that decide MFU, one benchmarks.bench_train run per combination.

    python -m benchmarks.sweep_train --preset=biomedlm_2p7b --seq_len=1024 \
        --batch_sizes=8,16 --microbatches=1,2 --remat=none,minimal,dots_saveable,full \
        --scan_layers=True,False --attention=cudnn,xla --out=/tmp/sweep [--profile_best]

Each combination runs in its own process (a fresh device: an out-of-memory run is recorded as failed
and the sweep goes on), writes OUT/<name>.json, and the table of every run, best MFU first, is printed
and written to OUT/sweep.md. --profile_best reruns the best combination with jax.profiler tracing into
OUT/profile. Compute is bf16 (model.dtype=bfloat16) unless --dtype says otherwise.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

from absl import flags

from biomed_jax import cli
from configs.pretrain import get_config

_PRESET = flags.DEFINE_string("preset", "gpt2_125m", "configs/pretrain.py preset.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 1024, "Sequence length.")
_BATCH = flags.DEFINE_list("batch_sizes", ["8"], "Global batch sizes (sequences).")
_MICRO = flags.DEFINE_list("microbatches", ["1"], "train.microbatches values.")
_REMAT = flags.DEFINE_list("remat", ["none", "full"], "model.remat policies.")
_SCAN = flags.DEFINE_list("scan_layers", ["True"], "model.scan_layers values.")
_ATTENTION = flags.DEFINE_list("attention", ["auto"], "model.attention values (auto, xla, cudnn).")
_DTYPE = flags.DEFINE_string("dtype", "bfloat16", "model.dtype.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per run.")
_TIMEOUT = flags.DEFINE_integer("timeout", 900, "Seconds per run before it is recorded as failed.")
_OUT = flags.DEFINE_string("out", "/tmp/sweep_train", "Folder for the per-run JSON, sweep.md and the profile.")
_PROFILE_BEST = flags.DEFINE_bool("profile_best", False, "Trace the best run with jax.profiler.")


def bench_args(preset: str, seq_len: int, batch: int, micro: int, remat: str, scan: str, attention: str,
               dtype: str) -> list[str]:
    """The benchmarks.bench_train command line of one combination."""
    return [f"--config=configs/pretrain.py:{preset}", f"--config.train.seq_len={seq_len}",
            f"--config.train.batch_size={batch}", f"--config.train.microbatches={micro}",
            f"--config.model.remat={remat}", f"--config.model.scan_layers={scan}",
            f"--config.model.attention={attention}", f"--config.model.dtype={dtype}"]


def _run(args: list[str], json_path: str, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_train", *args, f"--steps={_STEPS.value}", f"--json={json_path}",
           *extra]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT.value)
    except subprocess.TimeoutExpired:
        return {"failed": f"timeout after {_TIMEOUT.value} s"}
    if proc.returncode != 0 or not os.path.exists(json_path):
        lines = proc.stderr.strip().splitlines() or ["no output"]
        errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
        out_of_memory = "RESOURCE_EXHAUSTED" in proc.stderr or "out of memory" in proc.stderr
        reason = "out of memory" if out_of_memory else (errors or lines)[-1]
        return {"failed": reason.strip()[:200]}
    with open(json_path) as f:
        return json.load(f)


def main(argv):
    del argv
    get_config(_PRESET.value)   # an unknown preset: one line now, not a table of failed runs
    os.makedirs(_OUT.value, exist_ok=True)
    combos = list(itertools.product([int(b) for b in _BATCH.value], [int(m) for m in _MICRO.value], _REMAT.value,
                                    _SCAN.value, _ATTENTION.value))
    rows = []
    for batch, micro, remat, scan, attention in combos:
        name = f"b{batch}_m{micro}_{remat}_scan{scan}_{attention}"
        args = bench_args(_PRESET.value, _SEQ_LEN.value, batch, micro, remat, scan, attention, _DTYPE.value)
        result = _run(args, os.path.join(_OUT.value, f"{name}.json"))
        # the combination's own fields last: bench_train's report has 'remat' and 'attention' too
        rows.append({**result, "name": name, "args": args, "batch": batch, "micro": micro, "remat": remat,
                     "scan": scan, "attention": attention})
        print(f"{name}: " + (result["failed"] if "failed" in result else
                             f"{result['biomed_jax_tokens_per_s']:.0f} tokens/s, MFU "
                             f"{_pct(result['biomed_jax_mfu'])}"), flush=True)

    done = sorted((r for r in rows if "failed" not in r), key=lambda r: -(r["biomed_jax_tokens_per_s"]))
    lines = [f"{_PRESET.value}, seq {_SEQ_LEN.value}, {_DTYPE.value}: `python -m benchmarks.bench_train "
             "<args>` per row", "",
             "| batch | microbatches | remat | scan_layers | attention | step (s) | tokens/s | MFU | peak GiB |",
             "|---:|---:|---|---|---|---:|---:|---:|---:|"]
    for r in done:
        lines.append(f"| {r['batch']} | {r['micro']} | {r['remat']} | {r['scan']} | {r['attention']} | "
                     f"{r['biomed_jax_step_s']:.3f} | {r['biomed_jax_tokens_per_s']:.0f} | {_pct(r['biomed_jax_mfu'])} | "
                     f"{r.get('biomed_jax_peak_gib', float('nan')):.1f} |")
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['batch']} | {r['micro']} | {r['remat']} | {r['scan']} | {r['attention']} | "
                         f"failed: {r['failed']} | | | |")
    if done:
        lines += ["", "best: python -m benchmarks.bench_train " + " ".join(done[0]["args"])]
    text = "\n".join(lines)
    with open(os.path.join(_OUT.value, "sweep.md"), "w") as f:
        f.write(text + "\n")
    print("\n" + text)
    if _PROFILE_BEST.value and done:
        profile = os.path.join(_OUT.value, "profile")
        _run(done[0]["args"], os.path.join(_OUT.value, "best_profiled.json"), [f"--profile_dir={profile}"])
        print(f"profile of the best run: {profile}")


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    cli.run(main)

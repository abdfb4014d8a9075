"""Generation throughput: biomed_jax (jitted prefill + while_loop decode over a static KV cache)
against transformers' generate on torch CPU, same weights, same prompts, greedy, in one run.

    python -m benchmarks.bench_generate [--preset=gpt2_125m] [--batch_sizes=1,16] [--prompt_len=32] \
        [--new_tokens=64] [--repeats=5] [--torch_threads=N] [--matmul_floor]

A random-weight Hugging Face model of the preset's shape is built once, saved as safetensors to a
temporary folder and read into biomed_jax (so both sides run the same weights). Tokens/s counts
generated tokens (batch * new_tokens) over the wall time of a whole generate call, prefill
included; timed calls alternate between the two (so both see the same background load) and the
best of `repeats` is reported. biomed_jax's first call (tracing and XLA compilation) and
transformers' first call are excluded and reported separately. No stop token:
every row generates exactly new_tokens tokens on both sides.

--matmul_floor also times, per batch size, one decode step's weight matmuls alone (q/k/v fused,
output, MLP, LM head; no attention, norms or cache) in each library (biomed_jax/perf/matmul_floor.py).
A decode step cannot be faster than its matmuls, so this floor bounds the speed-up any generate
loop can show over transformers' measured step time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from absl import app, flags

from biomed_jax import cli
from biomed_jax.perf.matmul_floor import decode_floor_ms

_PRESET = flags.DEFINE_string("preset", "gpt2_125m", "Model shape from configs/models.py (gpt2_* or llama* family).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "16"], "Batch sizes to measure.")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 32, "Prompt length in tokens (every row the same).")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 64, "Tokens generated per row.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement, alternating the two (best is reported).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and prompts.")
_SKIP_HF = flags.DEFINE_bool("skip_transformers", False, "Measure biomed_jax only.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads for transformers; 0 = torch's default.")
_FLOOR = flags.DEFINE_bool("matmul_floor", False, "Also time one decode step's weight matmuls alone in jax and torch.")
_FLOOR_DTYPES = flags.DEFINE_list("floor_dtypes", ["float32"], "Weight/activation dtypes of the matmul floor "
                                  "(float32, bfloat16); the generate comparison itself is float32.")


def main(argv):
    del argv
    import jax
    import numpy as np
    import torch
    import transformers

    from biomed_jax import sharding as shd
    from biomed_jax.convert.hf_checkpoint import SafetensorsFolder, read_hf_params
    from biomed_jax.convert.hf_config import hf_config_from_model
    from biomed_jax.inference.generate import Generator
    from biomed_jax.inference.sampling import SamplingConfig
    from biomed_jax.logs import quiet_library_logs
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.run_dir import DEFAULT_MESH
    from configs.models import model_preset

    quiet_library_logs()
    if _FLOOR.value and _SKIP_HF.value:
        raise app.UsageError("--matmul_floor compares against transformers' step: drop --skip_transformers")
    if _TORCH_THREADS.value:
        torch.set_num_threads(_TORCH_THREADS.value)
    cfg = ModelConfig.from_dict({**model_preset(_PRESET.value), "dtype": "float32", "remat": "none"})
    family = "gpt2" if cfg.positions == "learned" else "llama"
    batch_sizes = [int(b) for b in _BATCH_SIZES.value]
    prompt_len, new_tokens = _PROMPT_LEN.value, _NEW_TOKENS.value

    torch.manual_seed(_SEED.value)
    hf_config = transformers.AutoConfig.for_model(**hf_config_from_model(cfg))
    hf_model = transformers.AutoModelForCausalLM.from_config(hf_config, torch_dtype=torch.float32).eval()
    n_params = sum(p.numel() for p in hf_model.parameters())
    tmp = tempfile.mkdtemp(prefix="bench_generate_")
    try:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        mesh = shd.make_mesh(DEFAULT_MESH)
        params = read_hf_params(SafetensorsFolder(tmp), family, cfg, mesh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    generator = Generator(cfg, params, mesh)
    sampling = SamplingConfig(max_new_tokens=new_tokens)

    print(f"model: {_PRESET.value} shapes, {n_params / 1e6:.1f}M params, float32, random weights; "
          f"prompt {prompt_len} tokens, {new_tokens} new tokens, greedy, no stop token")
    print(f"jax {jax.__version__} on {jax.default_backend()} ({len(jax.devices())} device(s)); "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; transformers {transformers.__version__}; "
          f"{os.cpu_count()} CPU cores; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    rng = np.random.default_rng(_SEED.value)
    rows = []
    for batch in batch_sizes:
        prompts = rng.integers(0, cfg.vocab_size, size=(batch, prompt_len))
        ids = torch.tensor(prompts, dtype=torch.long)
        mask = torch.ones_like(ids)

        def jax_generate():
            return generator.generate(prompts.tolist(), sampling, batch_size=batch)

        def hf_generate():
            with torch.inference_mode():
                return hf_model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                         max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                         pad_token_id=0, eos_token_id=None)

        first_jax, out = _timed(jax_generate)
        row = dict(batch=batch, jax=[], hf=[])
        if not _SKIP_HF.value:
            row["hf_warm"], hf_out = _timed(hf_generate)
            row["same"] = np.mean(hf_out[:, prompt_len:].numpy() == out.tokens)
        # Alternate the two so both see the same background load (the best of each is reported).
        for _ in range(_REPEATS.value):
            row["jax"].append(_timed(jax_generate)[0])
            if not _SKIP_HF.value:
                row["hf"].append(_timed(hf_generate)[0])
        row["jax_compile"] = first_jax - min(row["jax"])
        if _FLOOR.value:
            row["floor"] = {dtype: decode_floor_ms(cfg, batch, _REPEATS.value, _SEED.value, dtype)
                            for dtype in _FLOOR_DTYPES.value}
        rows.append(row)
        print(f"batch {batch}: biomed_jax calls {_fmt(row['jax'])} s; transformers calls {_fmt(row['hf'])} s",
              flush=True)

    def tps(row, key):
        return row["batch"] * new_tokens / min(row[key])

    print()
    if _SKIP_HF.value:
        print("| batch | biomed_jax tokens/s | biomed_jax compile (s) |")
        print("|---:|---:|---:|")
        for r in rows:
            print(f"| {r['batch']} | {tps(r, 'jax'):.1f} | {r['jax_compile']:.1f} |")
        return
    print("| batch | biomed_jax tokens/s | transformers tokens/s | ratio | biomed_jax compile (s) | "
          "transformers first call (s) | same greedy tokens |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {tps(r, 'jax'):.1f} | {tps(r, 'hf'):.1f} | {tps(r, 'jax') / tps(r, 'hf'):.2f}x | "
              f"{r['jax_compile']:.1f} | {r['hf_warm']:.1f} | {100 * r['same']:.0f}% |")
    if _FLOOR.value:
        print()
        floor_heads = "".join(f"matmuls alone {dtype}, jax | matmuls alone {dtype}, torch | "
                              for dtype in _FLOOR_DTYPES.value)
        print(f"| batch | biomed_jax step | transformers step | {floor_heads}step for 2x transformers |")
        print("|---:" * (4 + 2 * len(_FLOOR_DTYPES.value)) + "|")
        for r in rows:
            jax_step, hf_step = 1e3 * min(r["jax"]) / new_tokens, 1e3 * min(r["hf"]) / new_tokens
            floors = "".join(f"{j:.1f} | {t:.1f} | " for j, t in r["floor"].values())
            print(f"| {r['batch']} | {jax_step:.1f} | {hf_step:.1f} | {floors}{hf_step / 2:.1f} |")
        print("(milliseconds; step = a whole generate call / new tokens, prefill included)")


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _fmt(times):
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    cli.run(main)

"""Peak host memory of converting a ~1B-parameter Hugging Face checkpoint to biomed_jax.

    python -m benchmarks.bench_convert [--n_layers=22 --d_model=2048 --d_ff=5632 --n_heads=32 \
        --n_kv_heads=4 --vocab_size=32000] [--disk_dtype=bfloat16] [--param_dtype=float32] [--tmpdir=DIR]

Writes a random Llama checkpoint in the Hugging Face layout (config.json, safetensors shards of one
layer each, model.safetensors.index.json; default: the TinyLlama-1.1B shape in bfloat16, 2.2 GB on
disk) to a temporary folder, then converts it in fresh subprocesses, each measuring its own peak
resident memory (getrusage ru_maxrss) against its RSS before the conversion started:

  read       biomed_jax.convert.hf_checkpoint.read_hf_params: tensor by tensor, each placed with
             its target sharding (what fine-tuning / generation from an HF folder does)
  convert    hf_to_jax: the same, plus the orbax checkpoint written to WORKDIR/checkpoints/0

Everything written is deleted at the end (also on failure).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

from biomed_jax import cli

_N_LAYERS = flags.DEFINE_integer("n_layers", 22, "Decoder layers.")
_D_MODEL = flags.DEFINE_integer("d_model", 2048, "Hidden size.")
_D_FF = flags.DEFINE_integer("d_ff", 5632, "MLP intermediate size.")
_N_HEADS = flags.DEFINE_integer("n_heads", 32, "Attention heads.")
_N_KV_HEADS = flags.DEFINE_integer("n_kv_heads", 4, "Key/value heads (grouped-query attention).")
_VOCAB = flags.DEFINE_integer("vocab_size", 32000, "Vocabulary size.")
_DISK_DTYPE = flags.DEFINE_enum("disk_dtype", "bfloat16", ["bfloat16", "float32"], "dtype of the safetensors.")
_PARAM_DTYPE = flags.DEFINE_enum("param_dtype", "float32", ["bfloat16", "float32"], "biomed_jax param dtype.")
_SCAN = flags.DEFINE_multi_string("scan_layers", ["true", "false"], "Layer layouts to measure (true/false).")
_MODES = flags.DEFINE_list("modes", ["read", "convert"], "What to measure: read and/or convert.")
_TMPDIR = flags.DEFINE_string("tmpdir", None, "Where the temporary checkpoint goes (default: the system temp).")
# Internal: run one measurement in this (fresh) process and print its result as JSON.
_CHILD = flags.DEFINE_string("child", None, "Internal: read|convert.")
_SRC = flags.DEFINE_string("src", None, "Internal: HF folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Internal: output run directory.")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _hf_config() -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": _VOCAB.value,
        "hidden_size": _D_MODEL.value, "intermediate_size": _D_FF.value, "num_hidden_layers": _N_LAYERS.value,
        "num_attention_heads": _N_HEADS.value, "num_key_value_heads": _N_KV_HEADS.value,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": _DISK_DTYPE.value,
    }


def write_random_llama(folder: str) -> tuple[int, int]:
    """Writes the checkpoint one layer per shard (so this process never holds the whole model).

    Returns (parameter count, bytes on disk).
    """
    import ml_dtypes
    import numpy as np
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models

    dtype = ml_dtypes.bfloat16 if _DISK_DTYPE.value == "bfloat16" else np.float32
    d, f, v, h = _D_MODEL.value, _D_FF.value, _VOCAB.value, _D_MODEL.value // _N_HEADS.value
    kv = _N_KV_HEADS.value * h
    rng = np.random.default_rng(0)

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype)

    groups = [{"model.embed_tokens.weight": rand(v, d)}]
    for i in range(_N_LAYERS.value):
        p = f"model.layers.{i}."
        groups.append(lambda p=p: {
            p + "input_layernorm.weight": np.ones(d, dtype), p + "post_attention_layernorm.weight": np.ones(d, dtype),
            p + "self_attn.q_proj.weight": rand(d, d), p + "self_attn.k_proj.weight": rand(kv, d),
            p + "self_attn.v_proj.weight": rand(kv, d), p + "self_attn.o_proj.weight": rand(d, d),
            p + "mlp.gate_proj.weight": rand(f, d), p + "mlp.up_proj.weight": rand(f, d),
            p + "mlp.down_proj.weight": rand(d, f)})
    groups.append(lambda: {"model.norm.weight": np.ones(d, dtype), "lm_head.weight": rand(v, d)})
    weight_map, n_params, total = {}, 0, 0
    for i, group in enumerate(groups, start=1):
        tensors = group() if callable(group) else group
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        save_file(tensors, os.path.join(folder, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
        n_params += sum(t.size for t in tensors.values())
        total += sum(t.nbytes for t in tensors.values())
        groups[i - 1] = None  # free each shard's arrays once written
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump(_hf_config(), fh)
    # A stand-in tokenizer: hf_to_jax copies the tokenizer.json every run directory carries.
    Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, unk_token="<unk>")).save(
        os.path.join(folder, "tokenizer.json"))
    disk = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    return n_params, disk


def child(mode: str, src: str, workdir: str, scan_layers: bool, param_dtype: str) -> dict:
    """One measurement, in a process that has done nothing else (ru_maxrss is per process)."""
    import jax
    import numpy as np

    from biomed_jax import sharding as shd
    from biomed_jax.convert.hf_checkpoint import SafetensorsFolder, hf_to_jax, read_hf_params
    from biomed_jax.convert.hf_config import family_of, model_config_from_hf
    from biomed_jax.logs import quiet_library_logs
    from biomed_jax.run_dir import DEFAULT_MESH

    quiet_library_logs()
    mesh = shd.make_mesh(DEFAULT_MESH)
    jax.block_until_ready(jax.device_put(np.zeros(1), shd.replicated(mesh)))  # initialise the backend
    baseline = _rss_bytes()
    start = time.perf_counter()
    overrides = dict(scan_layers=scan_layers, param_dtype=param_dtype)
    if mode == "read":
        with open(os.path.join(src, "config.json")) as fh:
            hf = json.load(fh)
        cfg = model_config_from_hf(hf, **overrides)
        params = jax.block_until_ready(read_hf_params(SafetensorsFolder(src), family_of(hf), cfg, mesh))
        model_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    else:
        cfg = hf_to_jax(src, workdir, mesh, **overrides)
        model_bytes = None
    seconds = time.perf_counter() - start
    return dict(mode=mode, scan_layers=scan_layers, baseline_rss=baseline, peak_rss=_peak_rss_bytes(),
                seconds=seconds, model_bytes=model_bytes, n_layers=cfg.n_layers)


def main(argv):
    del argv
    if set(_MODES.value) - {"read", "convert"}:
        raise ValueError(f"--modes={','.join(_MODES.value)}: give read and/or convert")
    if _CHILD.value:
        result = child(_CHILD.value, _SRC.value, _WORKDIR.value, _SCAN.value[0] == "true", _PARAM_DTYPE.value)
        print("RESULT " + json.dumps(result))
        return

    tmp = tempfile.mkdtemp(prefix="bench_convert_", dir=_TMPDIR.value)
    try:
        src = os.path.join(tmp, "hf")
        os.makedirs(src)
        start = time.perf_counter()
        n_params, disk = write_random_llama(src)
        bytes_per = 4 if _PARAM_DTYPE.value == "float32" else 2
        model_bytes = n_params * bytes_per
        print(f"random Llama checkpoint: {n_params / 1e9:.3f}B params ({_N_LAYERS.value} layers, d_model "
              f"{_D_MODEL.value}, d_ff {_D_FF.value}, {_N_HEADS.value}/{_N_KV_HEADS.value} heads, vocab "
              f"{_VOCAB.value}), {disk / 2**30:.2f} GiB on disk in {_DISK_DTYPE.value} "
              f"(written in {time.perf_counter() - start:.0f} s); biomed_jax params in {_PARAM_DTYPE.value}: "
              f"{model_bytes / 2**30:.2f} GiB", flush=True)
        env = dict(os.environ)
        env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                    if "force_host_platform_device_count" not in f)  # one CPU device
        env.setdefault("JAX_PLATFORMS", "cpu")
        rows = []
        for scan in _SCAN.value:
            for mode in _MODES.value:
                workdir = os.path.join(tmp, f"run_{mode}_{scan}")
                cmd = [sys.executable, "-m", "benchmarks.bench_convert", f"--child={mode}", f"--src={src}",
                       f"--workdir={workdir}", f"--scan_layers={scan}", f"--param_dtype={_PARAM_DTYPE.value}"]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
                rows.append(result)
                shutil.rmtree(workdir, ignore_errors=True)
                print(f"{mode} scan_layers={scan}: done", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    gib = 2**30
    print()
    print("| what | scan_layers | seconds | RSS before (GiB) | peak RSS (GiB) | peak - before (GiB) | "
          "params (GiB) | (peak - before) / params |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        grown = r["peak_rss"] - r["baseline_rss"]
        print(f"| {r['mode']} | {r['scan_layers']} | {r['seconds']:.0f} | {r['baseline_rss'] / gib:.2f} | "
              f"{r['peak_rss'] / gib:.2f} | {grown / gib:.2f} | {model_bytes / gib:.2f} | {grown / model_bytes:.2f}x |")


if __name__ == "__main__":
    cli.run(main)

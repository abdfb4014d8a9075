"""Compile check at paper scale: per-device memory of a preset's train step, without an accelerator.

    python -m experiments.aot_check --config=configs/pretrain.py:biomedlm_2p7b \
        [--devices=8] [--accelerator=tpu_v4 | --hbm_gib=24] [--json=OUT.json] \
        [--config.mesh.fsdp=8 --config.train.batch_size=256 --config.train.microbatches=4 ...]
    python -m experiments.aot_check --config=configs/finetune_sft.py:medalpaca --config.method=nf4_lora \
        --config.model=llama2_70b --devices=1 --accelerator=h100

Lowers and compiles the train step of a pretraining or fine-tuning config (built as experiments.pretrain
and experiments.finetune_* build it: same mesh, sharding rules, optimizer, microbatching, donation; for
fine-tuning the model preset `--config.model` stands in for init_checkpoint, only its shape mattering,
and a batch of zeros for the data) from abstract shapes on a mesh of `--devices`
simulated CPU devices; nothing is allocated, so a 7B model compiles on a laptop. Prints the
per-device bytes from `compiled.memory_analysis()` (arguments, outputs, donated/aliased, temporaries,
peak = arguments + outputs - aliased + temporaries), whether the peak fits the target accelerator's
HBM, and one JSON line (also written to --json).

A planning check, not a guarantee. The XLA CPU backend's buffer assignment is not the TPU's or GPU's:
argument and output bytes (params, optimizer moments, the batch shard) are exact, but temporaries
(activations kept for the backward pass, gradients, collective buffers) depend on fusion,
rematerialisation and scheduling decisions that each backend makes differently. Two differences
make the CPU figure conservative for the usual bfloat16 run: XLA:CPU computes much of bfloat16 in
float32 (its temporaries come out about the same as with model.dtype=float32, where a TPU keeps
bfloat16 activations), and a GPU run uses cuDNN flash attention where the CPU compiles XLA attention,
which holds the full seq x seq scores. model.dtype 'auto' is compiled as bfloat16, as it runs on an
accelerator. Leave a margin: a 'tight' verdict (<10% free) deserves a real run before relying on it.
A third difference makes unscanned models' figures (LoRA fine-tuning: qwix adapts each real block, so
the layers are not scanned) an upper bound well above an accelerator's: XLA:CPU keeps every unrolled
layer's temporaries, so remat does not lower its figure (a chain of dense layers measures the same with
and without jax.checkpoint), while scanned layers reuse one layer's buffers.

--devices must be known before JAX starts, so it is read from the command line ahead of the other
flags and set as XLA_FLAGS=--xla_force_host_platform_device_count=N with JAX_PLATFORMS=cpu.
--devices=0 keeps the machine's own backend and devices (e.g. on a real TPU host, where the
memory analysis is the accelerator's own).
"""

import os
import sys

DEFAULT_DEVICES = 8


def _devices_from_argv(argv: list[str]) -> int:
    """--devices from the raw command line (absl parses flags only after JAX would be imported)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--devices="):
            return int(arg.split("=", 1)[1])
        if arg == "--devices" and i + 1 < len(argv):
            return int(argv[i + 1])
    return DEFAULT_DEVICES


def _simulate_cpu_devices(n: int) -> None:
    """n CPU devices for JAX; any other XLA flags already set are kept.

    The compiled code never runs, so LLVM optimisation is skipped (--xla_backend_optimization_level=0,
    unless set): it more than halves compile time and leaves the buffer assignment, hence every
    reported byte, unchanged.
    """
    flags_ = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    if not any("xla_backend_optimization_level" in f for f in flags_):
        flags_.append("--xla_backend_optimization_level=0")
    os.environ["XLA_FLAGS"] = " ".join(flags_ + [f"--xla_force_host_platform_device_count={n}"])
    os.environ["JAX_PLATFORMS"] = "cpu"


if __name__ == "__main__" and "jax" not in sys.modules:
    try:
        _n = _devices_from_argv(sys.argv[1:])
    except ValueError:
        _n = DEFAULT_DEVICES  # absl reports the bad value below
    if _n > 0:
        _simulate_cpu_devices(_n)

import json  # noqa: E402

import jax  # noqa: E402
from absl import flags  # noqa: E402

from biomed_jax import cli  # noqa: E402
from biomed_jax.logs import quiet_library_logs  # noqa: E402
from biomed_jax.run_dir import write_json  # noqa: E402
from biomed_jax.train.aot import ACCELERATOR_HBM_GIB, GIB, compile_train_step, fit_verdict  # noqa: E402

_CONFIG = cli.define_config_file(
    "config", None, "Config file and preset, e.g. configs/pretrain.py:biomedlm_2p7b", lock_config=True)
_DEVICES = flags.DEFINE_integer("devices", DEFAULT_DEVICES,
                                "Simulated CPU devices (the mesh is built over them); 0 = the real devices.")
_ACCELERATOR = flags.DEFINE_enum("accelerator", "tpu_v4", sorted(ACCELERATOR_HBM_GIB),
                                 "Target accelerator whose per-device HBM the peak is compared with.")
_HBM_GIB = flags.DEFINE_float("hbm_gib", None, "Per-device HBM in GiB, overriding --accelerator's.")
_JSON = flags.DEFINE_string("json", "", "Also write the report (JSON) here.")


def _gib(n: int) -> str:
    return f"{n / GIB:8.2f}"


def print_report(r: dict) -> None:
    mesh = " ".join(f"{k}={v}" for k, v in r["mesh_shape"].items())
    where = "simulated cpu" if r["backend"] == "cpu" else r["backend"]
    print(f"aot_check: {r['preset']} {r['step']} train step on {r['n_devices']} {where} devices, mesh {mesh}")
    print(f"  model   {r['n_params']:,} params ({r['param_dtype']}), compute {r['compute_dtype']}, "
          f"remat {r['remat']}, attention {r['attention']}")
    if "trainable_params" in r:
        print(f"  train   {r['trainable_params']:,} of {r['total_params']:,} params; frozen base "
              f"{r['frozen_bytes_per_device'] / GIB:.2f} GiB per device")
    print(f"  batch   {r['global_batch']} x {r['seq_len']} tokens in {r['microbatches']} microbatch(es): "
          f"{r['per_device_microbatch']} sequence(s) per device per microbatch")
    print(f"  compile {r['compile_seconds']:.1f} s (lowering {r['lower_seconds']:.1f} s)")
    print("  per device                GiB")
    frozen = " + frozen base" if "frozen_bytes_per_device" in r else ""
    print(f"    arguments          {_gib(r['argument_bytes'])}   state {r['state_bytes_per_device'] / GIB:.2f} "
          f"(trained params + optimizer){frozen} + batch shard")
    print(f"    outputs            {_gib(r['output_bytes'])}")
    print(f"    aliased (donated)  {_gib(r['alias_bytes'])}   outputs written into the donated state")
    print(f"    temporaries        {_gib(r['temp_bytes'])}   activations, gradients, collectives")
    print(f"    generated code     {_gib(r['generated_code_bytes'])}")
    print(f"    peak               {_gib(r['peak_bytes'])}   = arguments + outputs - aliased + temporaries")
    print(f"  target  {r['accelerator']}: {r['hbm_gib']:g} GiB HBM per device -> fits: "
          f"{'yes' if r['fits'] else 'NO'} ({r['note']})")
    if r["backend"] == "cpu":
        print("  (XLA:CPU buffer assignment approximates the accelerator's: a planning estimate)")


def main(argv):
    del argv
    quiet_library_logs()
    if _DEVICES.value > 0 and (jax.default_backend() != "cpu" or jax.device_count() != _DEVICES.value):
        raise ValueError(f"--devices={_DEVICES.value} but JAX started with {jax.device_count()} "
                         f"{jax.default_backend()} device(s); run as `python -m experiments.aot_check`")
    hbm_gib = _HBM_GIB.value if _HBM_GIB.value is not None else ACCELERATOR_HBM_GIB[_ACCELERATOR.value]
    report = compile_train_step(_CONFIG.value)
    accelerator = _ACCELERATOR.value if _HBM_GIB.value is None else "custom (--hbm_gib)"
    report.update(accelerator=accelerator, **fit_verdict(report["peak_bytes"], hbm_gib))
    print_report(report)
    print(json.dumps(report, sort_keys=True))
    if _JSON.value:
        write_json(_JSON.value, report, sort_keys=True)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    cli.run(main)

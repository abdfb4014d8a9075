"""Training step throughput and MFU, optionally side by side with a transformers (torch) step.

    python -m benchmarks.bench_train --config=configs/pretrain.py:gpt2_125m \
        --config.train.batch_size=8 --config.train.seq_len=512 --config.train.microbatches=1 \
        [--config.model.remat=full --config.model.scan_layers=False --config.model.attention=cudnn ...] \
        [--compare=torch] [--steps=10] [--json=OUT.json] [--profile_dir=DIR] [--matmul_floor]

biomed_jax's side is the pretraining step itself (biomed_jax/tasks/pretraining.py build_trainer: the config's mesh,
sharding, Decoupled AdamW with clipping, microbatching, donation) on a fixed random batch. The torch
side (--compare=torch) is a transformers model of the same shape (GPT2LMHeadModel / LlamaForCausalLM
from the same ModelConfig) doing the same work per step: forward, token cross-entropy, backward,
gradient clipping at optim.max_grad_norm, torch.optim.AdamW with the same hyperparameters; with
bfloat16 autocast (CPU or CUDA) when the model computes in bfloat16 (--config.model.dtype=bfloat16:
fp32 parameters, bf16 matmuls, as biomed_jax), fp32 otherwise; transformers' default (SDPA)
attention. Both see the same batch (one document per row, causal attention).

The two sides take turns in blocks (so both see the same background load): each block runs one
untimed step, then --block_steps timed steps back to back, as a training loop runs them. The untimed
step absorbs what switching costs: the other side's thread pool winding down and, on a virtual
machine, re-faulting memory the hypervisor reclaimed while the other side ran (on the 2-core dev VM
that first step cost biomed_jax up to 1.3 s of kernel time, its median is reported as
{side}_block_first_step_s). The median timed step is used for tokens/s and the ratio (biomed_jax's
tokens/s over torch's: > 1 means biomed_jax is faster). Compilation (jax) and the first step (torch)
are excluded and reported.
MFU = flops_per_token (6 N + attention, biomed_jax.models.info) x tokens/s over the devices' peak
bf16 FLOP/s; null on CPU, whose peak is not tabulated (achieved TFLOP/s is printed instead).

--matmul_floor (fp32 models) also times the step's matmuls alone, forward and backward, in jax and
torch (biomed_jax/perf/matmul_floor.py): how much of a gap between the two whole steps is matmul speed.
On CPU it also times each distinct product of the step alone, same operands and layouts in both
libraries (GFLOP/s): whether that part of the gap is in the matrix multiplication kernels.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from absl import app, flags

from biomed_jax import cli
from biomed_jax.perf.matmul_floor import best_seconds, product_speeds, train_floor_steps

_CONFIG = cli.define_config_file("config", "configs/pretrain.py:gpt2_125m", "Pretraining config and preset.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per side.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps per side after the first (compiling) one.")
_COMPARE = flags.DEFINE_enum("compare", "none", ["none", "torch"], "Also time a transformers step of the same shape.")
_BLOCK = flags.DEFINE_integer("block_steps", 2, "Timed steps per turn of a side, after one untimed step.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads on CPU; 0 = torch's default.")
_JSON = flags.DEFINE_string("json", "", "Also write the report here as JSON.")
_FLOOR = flags.DEFINE_bool("matmul_floor", False, "Also time the step's matmuls alone (forward + backward) in jax "
                            "and torch, fp32.")
_PROFILE = flags.DEFINE_string("profile_dir", "", "Also trace 3 biomed_jax steps with jax.profiler into this folder "
                               "(open with TensorBoard's profile plugin or xprof).")


def _random_batch(cfg, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, cfg.model.vocab_size, size=(cfg.train.batch_size, cfg.train.seq_len + 1), dtype=np.int32)
    return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:],
            "loss_mask": np.ones((cfg.train.batch_size, cfg.train.seq_len), np.float32)}


class JaxStep:
    """The pretraining step of the config on its own train state."""

    def __init__(self, cfg, batch):
        import jax

        from biomed_jax import sharding as shd
        from biomed_jax.tasks import pretraining

        self.setup = pretraining.setup(cfg)
        self.trainer = pretraining.build_trainer(cfg, workdir="")
        self.state = self.trainer.initial_state()
        self.batch = {k: jax.device_put(v, shd.batch_sharding(self.setup.mesh)) for k, v in batch.items()}

    def __call__(self) -> float:
        self.state, metrics = self.trainer.train_step(self.state, {}, self.batch)
        return float(metrics["loss"])  # blocks until the step is done


class TorchStep:
    """A transformers model of the same shape, one AdamW step per call."""

    def __init__(self, cfg, model_cfg, batch):
        import torch
        import transformers

        from biomed_jax.convert.hf_config import hf_config_from_model

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu" and _TORCH_THREADS.value:
            torch.set_num_threads(_TORCH_THREADS.value)
        torch.manual_seed(cfg.seed)
        hf_config = transformers.AutoConfig.for_model(**hf_config_from_model(model_cfg))
        self.model = transformers.AutoModelForCausalLM.from_config(hf_config, torch_dtype=torch.float32)
        self.model.to(self.device).train()
        if model_cfg.remat != "none" and hasattr(self.model, "gradient_checkpointing_enable"):
            self.model.gradient_checkpointing_enable()
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.learning_rate, betas=(o.b1, o.b2),
                                           eps=o.eps, weight_decay=o.weight_decay)
        self.max_grad_norm = o.max_grad_norm
        self.autocast = "bfloat16" in str(model_cfg.compute_dtype)
        self.inputs = torch.as_tensor(batch["inputs"], dtype=torch.long, device=self.device)
        self.targets = torch.as_tensor(batch["targets"], dtype=torch.long, device=self.device)
        self.info = dict(device=self.device, threads=torch.get_num_threads(), bf16_autocast=self.autocast,
                         attention=getattr(self.model.config, "_attn_implementation", "default"),
                         gradient_checkpointing=model_cfg.remat != "none",
                         n_params=sum(p.numel() for p in self.model.parameters()))

    def __call__(self) -> float:
        torch = self.torch
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(input_ids=self.inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), self.targets.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss)  # synchronises on CUDA


def _matmul_floor(model_cfg, batch_size: int, seq_len: int, seed: int) -> dict:
    import torch

    if "float32" not in str(model_cfg.compute_dtype):
        raise app.UsageError("--matmul_floor times fp32 matmuls: add --config.model.dtype=float32")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {}
    for attention, suffix in ((True, ""), (False, "_no_attention")):
        jax_step, torch_step = train_floor_steps(model_cfg, batch_size, seq_len, seed, device, attention)
        report[f"floor{suffix}_jax_s"] = best_seconds(jax_step, 3)
        report[f"floor{suffix}_torch_s"] = best_seconds(torch_step, 3)
    if device == "cpu":
        report["products"] = product_speeds(model_cfg, batch_size * seq_len, seed)
    return report


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv):
    del argv
    import jax

    from biomed_jax.logs import quiet_library_logs
    from biomed_jax.models.info import model_info
    from biomed_jax.train.metrics import mfu, peak_flops_per_device

    quiet_library_logs()
    cfg = _CONFIG.value
    batch = _random_batch(cfg, cfg.seed)
    tokens_per_step = cfg.train.batch_size * cfg.train.seq_len
    sides = {"biomed_jax": JaxStep(cfg, batch)}
    model_cfg = sides["biomed_jax"].setup.model_cfg
    if _COMPARE.value == "torch":
        sides["torch"] = TorchStep(cfg, model_cfg, batch)
    info = model_info(model_cfg, cfg.train.seq_len)
    n_devices, peak = jax.device_count(), peak_flops_per_device()
    print(f"model: {cfg.preset} ({info['n_params'] / 1e6:.1f}M params), batch {cfg.train.batch_size} x seq "
          f"{cfg.train.seq_len}, {cfg.train.microbatches} microbatch(es); compute {model_cfg.compute_dtype.__name__}, "
          f"remat {model_cfg.remat}, scan_layers {model_cfg.scan_layers}, attention {model_cfg.attention_impl}")
    print(f"jax {jax.__version__} on {jax.default_backend()} ({n_devices} x {jax.devices()[0].device_kind}), "
          f"mesh {dict(sides['biomed_jax'].setup.mesh.shape)}; {os.cpu_count()} CPU cores"
          + (f"; torch {sides['torch'].info}" if "torch" in sides else ""))

    report = {"preset": cfg.preset, "batch_size": cfg.train.batch_size, "seq_len": cfg.train.seq_len,
              "microbatches": cfg.train.microbatches, "remat": model_cfg.remat, "scan_layers": model_cfg.scan_layers,
              "attention": model_cfg.attention_impl, "compute_dtype": model_cfg.compute_dtype.__name__,
              "n_params": info["n_params"], "backend": jax.default_backend(), "n_devices": n_devices,
              "device_kind": jax.devices()[0].device_kind}
    for name, step in sides.items():
        report[f"{name}_first_step_s"] = _timed(step)  # jax: tracing + compilation
        for _ in range(_WARMUP.value):
            step()
    times = {name: [] for name in sides}
    block_first = {name: [] for name in sides}
    while len(times["biomed_jax"]) < _STEPS.value:  # take turns, so both sides share any background load
        block = min(_BLOCK.value, _STEPS.value - len(times["biomed_jax"]))
        for name, step in sides.items():
            block_first[name].append(_timed(step))
            times[name].extend(_timed(step) for _ in range(block))
    for name in sides:
        step_time = statistics.median(times[name])
        tokens_per_sec = tokens_per_step / step_time
        report[f"{name}_step_s"] = step_time
        report[f"{name}_block_first_step_s"] = statistics.median(block_first[name])
        report[f"{name}_tokens_per_s"] = tokens_per_sec
        report[f"{name}_tflops_per_s"] = info["flops_per_token"] * tokens_per_sec / 1e12
        report[f"{name}_mfu"] = mfu(info["flops_per_token"], tokens_per_sec, n_devices, peak)
    if _PROFILE.value:
        with jax.profiler.trace(_PROFILE.value):
            for _ in range(3):
                sides["biomed_jax"]()
        report["profile_dir"] = _PROFILE.value
    if _FLOOR.value:
        report.update(_matmul_floor(model_cfg, cfg.train.batch_size, cfg.train.seq_len, cfg.seed))
    if jax.default_backend() == "gpu":
        stats = jax.devices()[0].memory_stats() or {}
        report["biomed_jax_peak_gib"] = stats.get("peak_bytes_in_use", 0) / 2**30
        if "torch" in sides:
            import torch

            report["torch_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if "torch" in sides:
        report["torch_n_params"] = sides["torch"].info["n_params"]
        report["ratio"] = report["biomed_jax_tokens_per_s"] / report["torch_tokens_per_s"]

    print("\n| side | step (s, median) | tokens/s | model TFLOP/s | MFU | first step of a turn (s) | first step (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in sides:
        m = report[f"{name}_mfu"]
        print(f"| {name} | {report[f'{name}_step_s']:.3f} | {report[f'{name}_tokens_per_s']:.0f} | "
              f"{report[f'{name}_tflops_per_s']:.3f} | {'n/a' if m is None else f'{100 * m:.1f}%'} | "
              f"{report[f'{name}_block_first_step_s']:.3f} | {report[f'{name}_first_step_s']:.1f} |")
    if "ratio" in report:
        print(f"\nbiomed_jax / torch tokens/s: {report['ratio']:.2f}x")
    if _FLOOR.value:
        print(f"matmuls alone (forward + backward, no norms, softmax or optimizer): biomed_jax "
              f"{report['floor_jax_s']:.3f} s, torch {report['floor_torch_s']:.3f} s; without the attention "
              f"matmuls: {report['floor_no_attention_jax_s']:.3f} s, {report['floor_no_attention_torch_s']:.3f} s")
        if "products" in report:
            print("\n| product (m x k x n) | rhs transposed | biomed_jax GFLOP/s | torch GFLOP/s |\n|---|---|---:|---:|")
            for row in report["products"]:
                print(f"| {row['product']} ({row['m']} x {row['k']} x {row['n']}) | {'yes' if row['rhs_transposed'] else 'no'} | "
                      f"{row['jax_gflops']:.0f} | {row['torch_gflops']:.0f} |")
    line = json.dumps(report)
    print(line)
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    cli.run(main)

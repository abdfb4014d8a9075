"""Serving under load: the continuous-batching engine against static batches (today's Generator) and
transformers' generate batched the same way, on the same Poisson-arriving requests.

    python -m benchmarks.bench_serve [--requests=48 --rate=4 --slots=16 --model=gpt2_125m --dtype=float32]

Requests: prompts of 16-512 random tokens, outputs of 16-256 tokens (uniform; generation never stops early,
so every request produces exactly its max_tokens), arriving as a Poisson process of `rate` per second;
random weights of the `model` preset. Three servers see the same requests at the same times:

  continuous    biomed_jax.inference.engine.Engine (slots rows; a request joins between decode steps)
  static        a dispatcher that, whenever idle, takes up to `slots` arrived requests and runs them as one
                Generator.generate batch to the batch's longest output (rounded up to 64, so that a few
                compiled programs serve every batch; all are compiled before timing)
  transformers  the same dispatcher over transformers' GPT2LMHeadModel.generate (left padded, greedy)

Reported per server: generated tokens/s (all tokens / (last finish - first arrival)), time to first token
(arrival -> first token; a static batch hands its tokens over at the end) and per-token latency
((finish - first token) / (tokens - 1); for a static batch its decode time per step) at p50 and p99.
Then a light load (`--light_requests` at `--light_rate`/s) on the engine: its p99 time to first token
against the same requests sent one at a time (the unloaded figure).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import numpy as np
from absl import flags

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs

_REQUESTS = flags.DEFINE_integer("requests", 48, "Requests in the loaded run.")
_RATE = flags.DEFINE_float("rate", 4.0, "Poisson arrival rate of the loaded run (requests/s).")
_SLOTS = flags.DEFINE_integer("slots", 16, "Decode slots of the engine; batch size of the static servers.")
_MODEL = flags.DEFINE_string("model", "gpt2_125m", "Model preset (configs/models.py), random weights.")
_DTYPE = flags.DEFINE_string("dtype", "float32", "Compute dtype.")
_PROMPTS = flags.DEFINE_list("prompt_tokens", ["16", "512"], "Prompt length range.")
_OUTPUTS = flags.DEFINE_list("output_tokens", ["16", "256"], "Output length range.")
_LIGHT_REQUESTS = flags.DEFINE_integer("light_requests", 8, "Requests in the light-load run (0 = skip it).")
_LIGHT_RATE = flags.DEFINE_float("light_rate", 0.1, "Arrival rate of the light-load run (requests/s).")
_METHODS = flags.DEFINE_list("methods", ["continuous", "static", "transformers"], "Servers to compare.")
_SEED = flags.DEFINE_integer("seed", 0, "Workload and weights seed.")
_OUT = flags.DEFINE_string("out", "", "Write the results as JSON here.")


@dataclasses.dataclass
class Job:
    arrival: float
    prompt: list[int]
    max_tokens: int
    first_token: float | None = None
    finish: float | None = None
    tokens: int = 0


def workload(n: int, rate: float, vocab: int, prompts: tuple[int, int], outputs: tuple[int, int], seed: int):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=n)) if rate > 0 else np.zeros(n)
    arrivals -= arrivals[0]
    return [Job(float(t), rng.integers(0, vocab, size=int(rng.integers(prompts[0], prompts[1] + 1))).tolist(),
                int(rng.integers(outputs[0], outputs[1] + 1))) for t in arrivals]


def fresh(jobs):
    return [Job(j.arrival, j.prompt, j.max_tokens) for j in jobs]


def run_engine(engine, jobs, sequential: bool = False):
    """Submits each job at its arrival time (or, sequentially, each after the previous finished)."""
    from biomed_jax.inference.engine import Request

    done = threading.Semaphore(0)
    start = time.perf_counter()

    def request(job):
        def on_token(_):
            job.tokens += 1
            if job.first_token is None:
                job.first_token = time.perf_counter() - start

        def on_finish(_):
            job.finish = time.perf_counter() - start
            done.release()

        return Request(prompt=job.prompt, max_tokens=job.max_tokens, on_token=on_token, on_finish=on_finish)

    for job in jobs:
        if sequential:
            job.arrival = time.perf_counter() - start
        else:
            time.sleep(max(0.0, job.arrival - (time.perf_counter() - start)))
        engine.submit(request(job))
        if sequential:
            done.acquire()
    for _ in range(0 if sequential else len(jobs)):
        done.acquire()
    return jobs


def run_static(generate_batch, jobs, batch_size: int):
    """Whenever idle, the arrived jobs (up to batch_size, in arrival order) run as one batch."""
    start = time.perf_counter()
    pending = list(jobs)
    while pending:
        now = time.perf_counter() - start
        if pending[0].arrival > now:
            time.sleep(pending[0].arrival - now)
            continue
        batch = [j for j in pending if j.arrival <= now][:batch_size]
        began = time.perf_counter() - start
        steps = generate_batch([j.prompt for j in batch], _round_up(max(j.max_tokens for j in batch)))
        ended = time.perf_counter() - start
        for job in batch:
            job.first_token, job.finish, job.tokens = ended, ended, job.max_tokens
            job.per_token = (ended - began) / steps
            pending.remove(job)
    return jobs


def _round_up(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


def summary(name: str, jobs) -> dict:
    ttft = np.array([j.first_token - j.arrival for j in jobs])
    per_token = np.array([getattr(j, "per_token", None) or (j.finish - j.first_token) / max(j.tokens - 1, 1)
                          for j in jobs])
    span = max(j.finish for j in jobs) - min(j.arrival for j in jobs)
    return {"server": name, "requests": len(jobs), "tokens": sum(j.tokens for j in jobs),
            "seconds": round(span, 2), "tokens_per_s": round(sum(j.tokens for j in jobs) / span, 1),
            "ttft_p50_s": round(float(np.percentile(ttft, 50)), 3), "ttft_p99_s": round(float(np.percentile(ttft, 99)), 3),
            "per_token_p50_ms": round(float(np.percentile(per_token, 50)) * 1e3, 1),
            "per_token_p99_ms": round(float(np.percentile(per_token, 99)) * 1e3, 1)}


def main(argv):
    del argv
    quiet_library_logs()
    import jax

    from biomed_jax.inference.engine import Engine
    from biomed_jax.inference.generate import Generator
    from biomed_jax.inference.sampling import SamplingConfig
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.models.decoder import init_params
    from biomed_jax.run_dir import write_json
    from configs.models import model_preset

    cfg = ModelConfig.from_dict({**model_preset(_MODEL.value), "dtype": _DTYPE.value})
    prompts = tuple(map(int, _PROMPTS.value))
    outputs = tuple(map(int, _OUTPUTS.value))
    max_len = prompts[1] + outputs[1]
    jobs = workload(_REQUESTS.value, _RATE.value, cfg.vocab_size, prompts, outputs, _SEED.value)
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(_SEED.value))
    generator = Generator(cfg, params)
    del params
    print(f"{_MODEL.value} ({_DTYPE.value}) on {jax.devices()[0].platform}: {len(jobs)} requests at {_RATE.value}/s, "
          f"prompts {prompts}, outputs {outputs}, {_SLOTS.value} slots", flush=True)
    rows = []

    if "continuous" in _METHODS.value:
        engine = Engine(generator, slots=_SLOTS.value, max_len=max_len, queue_size=len(jobs))
        began = time.perf_counter()
        engine.warmup()
        print(f"engine compiled in {time.perf_counter() - began:.0f} s", flush=True)
        engine.start()
        rows.append(summary("continuous (Engine)", run_engine(engine, fresh(jobs))))
        print(rows[-1], flush=True)

    if "static" in _METHODS.value:
        def generate_batch(batch, max_new):
            sampling = SamplingConfig(max_new_tokens=max_new)
            out = generator.generate(batch, sampling, batch_size=_SLOTS.value,
                                     max_len=prompts[1] + _round_up(outputs[1]))
            out.tokens.sum()
            return max_new

        began = time.perf_counter()   # every program a batch can need, compiled before timing
        for length in sorted({min(16 * 2 ** i, prompts[1]) for i in range(12) if 16 * 2 ** (i - 1) < prompts[1]}):
            for max_new in range(64, _round_up(outputs[1]) + 1, 64):
                generator.precompile(length, SamplingConfig(max_new_tokens=max_new), _SLOTS.value,
                                     prompts[1] + _round_up(outputs[1]))
        print(f"static programs compiled in {time.perf_counter() - began:.0f} s", flush=True)
        rows.append(summary("static batches (Generator)", run_static(generate_batch, fresh(jobs), _SLOTS.value)))
        print(rows[-1], flush=True)

    if "transformers" in _METHODS.value:
        import torch
        import transformers

        torch.manual_seed(_SEED.value)
        torch.set_num_threads(os.cpu_count())
        hf_cfg = transformers.GPT2Config(vocab_size=cfg.vocab_size, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                                         n_head=cfg.n_heads, n_positions=cfg.max_seq_len, n_inner=cfg.d_ff)
        model = transformers.GPT2LMHeadModel(hf_cfg).eval()

        def hf_batch(batch, max_new):
            longest = max(map(len, batch))
            ids = torch.zeros((len(batch), longest), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, p in enumerate(batch):
                ids[i, longest - len(p):] = torch.tensor(p)
                mask[i, longest - len(p):] = 1
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new,
                               min_new_tokens=max_new, pad_token_id=0, eos_token_id=None)
            return max_new

        rows.append(summary("transformers generate (static batches)", run_static(hf_batch, fresh(jobs), _SLOTS.value)))
        print(rows[-1], flush=True)

    light = {}
    if "continuous" in _METHODS.value and _LIGHT_REQUESTS.value:
        light_jobs = workload(_LIGHT_REQUESTS.value, _LIGHT_RATE.value, cfg.vocab_size, prompts, outputs,
                              _SEED.value + 1)
        alone = summary("unloaded (one at a time)", run_engine(engine, fresh(light_jobs), sequential=True))
        loaded = summary(f"light load ({_LIGHT_RATE.value}/s)", run_engine(engine, fresh(light_jobs)))
        light = {"unloaded": alone, "light": loaded,
                 "ttft_p99_ratio": round(loaded["ttft_p99_s"] / alone["ttft_p99_s"], 2)}
        engine.shutdown(30)

    print()
    print("| server | tokens/s | TTFT p50 s | TTFT p99 s | per-token p50 ms | per-token p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['tokens_per_s']} | {r['ttft_p50_s']} | {r['ttft_p99_s']} | "
              f"{r['per_token_p50_ms']} | {r['per_token_p99_ms']} |")
    by_name = {r["server"].split()[0]: r for r in rows}
    if "continuous" in by_name:
        for other in ("static", "transformers"):
            if other in by_name:
                print(f"continuous / {other}: {by_name['continuous']['tokens_per_s'] / by_name[other]['tokens_per_s']:.2f}x "
                      "tokens/s")
    if light:
        print(f"light load: TTFT p99 {light['light']['ttft_p99_s']} s vs unloaded {light['unloaded']['ttft_p99_s']} s "
              f"({light['ttft_p99_ratio']}x)")
    if _OUT.value:
        write_json(_OUT.value, {"rows": rows, "light": light, "flags": {
            "requests": _REQUESTS.value, "rate": _RATE.value, "slots": _SLOTS.value, "model": _MODEL.value,
            "dtype": _DTYPE.value, "prompts": prompts, "outputs": outputs}})


if __name__ == "__main__":
    cli.run(main)

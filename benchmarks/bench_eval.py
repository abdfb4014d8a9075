"""Log-likelihood scoring throughput on MedQA-shaped questions: biomed_jax's LoglikScorer against
lm-eval's Hugging Face backend (HFLM, torch CPU), same weights, same token requests, in one run.

    python -m benchmarks.bench_eval [--preset=gpt2_125m] [--questions=32] [--context_len=200] \
        [--option_len=10] [--options=4] [--batch_size=16] [--hf_batch_size=16]

A question is a context of about `context_len` random token ids (+-10%) and `options` continuations
of about `option_len` ids (+-20%), scored as lm-eval scores a multiple-choice task: one
(context, option) log-likelihood request per option. The model is a random-weight Hugging Face model
of the preset's shape, built in-process (no download), saved as safetensors and read into biomed_jax,
so both sides score with the same weights; the largest difference between their log-likelihoods is
printed as a check.

Questions/s is the number of questions over the wall time of scoring them all. biomed_jax's first
call (tracing and XLA compilation of the few bucketed shapes) is timed and reported separately, then
the whole set is scored again for the figure; HFLM gets a warm-up call on two questions first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from absl import flags

from biomed_jax import cli

_PRESET = flags.DEFINE_string("preset", "gpt2_125m", "Model shape from configs/models.py (gpt2_* or llama* family).")
_QUESTIONS = flags.DEFINE_integer("questions", 32, "Questions scored per side.")
_CONTEXT_LEN = flags.DEFINE_integer("context_len", 200, "Mean context length in tokens (+-10%).")
_OPTION_LEN = flags.DEFINE_integer("option_len", 10, "Mean option length in tokens (+-20%).")
_OPTIONS = flags.DEFINE_integer("options", 4, "Options per question.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "biomed_jax: contexts per compiled call (each with its options).")
_HF_BATCH = flags.DEFINE_integer("hf_batch_size", 16, "lm-eval HFLM batch_size: (context, option) rows per forward.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and token ids.")
_SKIP_HF = flags.DEFINE_bool("skip_hf", False, "Measure biomed_jax only.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads for HFLM; 0 = torch's default.")


def _questions(rng, n: int, vocab: int) -> list[tuple[list[int], list[list[int]]]]:
    out = []
    for _ in range(n):
        c = _CONTEXT_LEN.value
        context = rng.integers(0, vocab, int(rng.integers(c - c // 10, c + c // 10 + 1))).tolist()
        o = _OPTION_LEN.value
        options = [rng.integers(0, vocab, int(rng.integers(max(1, o - o // 5), o + o // 5 + 1))).tolist()
                   for _ in range(_OPTIONS.value)]
        out.append((context, options))
    return out


def _requests(questions) -> list[tuple[list[int], list[int]]]:
    return [(context, option) for context, options in questions for option in options]


def main(argv):
    del argv
    import jax
    import numpy as np
    import tokenizers
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM

    from biomed_jax import sharding as shd
    from biomed_jax.convert.hf_checkpoint import SafetensorsFolder, read_hf_params
    from biomed_jax.convert.hf_config import hf_config_from_model
    from biomed_jax.evaluation.scoring import LoglikScorer
    from biomed_jax.logs import quiet_library_logs
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.run_dir import DEFAULT_MESH
    from configs.models import model_preset

    quiet_library_logs()
    if _TORCH_THREADS.value:
        torch.set_num_threads(_TORCH_THREADS.value)
    cfg = ModelConfig.from_dict({**model_preset(_PRESET.value), "dtype": "float32", "remat": "none"})
    family = "gpt2" if cfg.positions == "learned" else "llama"
    torch.manual_seed(_SEED.value)
    hf_config = transformers.AutoConfig.for_model(**hf_config_from_model(cfg))
    hf_model = transformers.AutoModelForCausalLM.from_config(hf_config, torch_dtype=torch.float32).eval()
    n_params = sum(p.numel() for p in hf_model.parameters())
    tmp = tempfile.mkdtemp(prefix="bench_eval_")
    try:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        mesh = shd.make_mesh(DEFAULT_MESH)
        params = read_hf_params(SafetensorsFolder(tmp), family, cfg, mesh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    scorer = LoglikScorer(cfg, params, mesh=mesh, batch_size=_BATCH.value)

    rng = np.random.default_rng(_SEED.value)
    questions = _questions(rng, _QUESTIONS.value, cfg.vocab_size)
    requests = _requests(questions)
    n = len(questions)
    print(f"model: {_PRESET.value} shapes, {n_params / 1e6:.1f}M params, float32, random weights; {n} questions x "
          f"{_OPTIONS.value} options, context ~{_CONTEXT_LEN.value} tokens, options ~{_OPTION_LEN.value} tokens "
          f"({sum(len(c) + len(o) for c, o in requests)} request tokens)")
    print(f"jax {jax.__version__} on {jax.default_backend()} ({len(jax.devices())} device(s)); torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads; transformers {transformers.__version__}; {os.cpu_count()} CPU cores; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}", flush=True)

    start = time.perf_counter()
    scorer.score(requests)
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    ours = scorer.score(requests)
    jax_time = time.perf_counter() - start
    compile_time = first_call - jax_time
    print(f"biomed_jax: {n / jax_time:.2f} questions/s ({jax_time:.1f} s); first call {first_call:.1f} s, so about "
          f"{compile_time:.1f} s of tracing + compilation for {len(scorer.compiled_shapes())} shapes "
          f"{scorer.compiled_shapes()}", flush=True)
    if _SKIP_HF.value:
        return

    # HFLM needs a tokenizer object; requests are already token ids, so a two-token one will do.
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<|endoftext|>": 0, "[UNK]": 1}, unk_token="[UNK]"))
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    hf_lm = HFLM(pretrained=hf_model, tokenizer=hf_tok, batch_size=_HF_BATCH.value, device="cpu",
                 max_length=cfg.max_seq_len)
    as_hf = lambda reqs: [(("", ""), context, option) for context, option in reqs]  # noqa: E731
    start = time.perf_counter()
    hf_lm._loglikelihood_tokens(as_hf(_requests(questions[:2])), disable_tqdm=True)
    hf_warm = time.perf_counter() - start
    start = time.perf_counter()
    theirs = hf_lm._loglikelihood_tokens(as_hf(requests), disable_tqdm=True)
    hf_time = time.perf_counter() - start
    print(f"lm-eval HFLM: {n / hf_time:.2f} questions/s ({hf_time:.1f} s); warm-up call {hf_warm:.1f} s", flush=True)
    diff = max(abs(a[0] - b[0]) for a, b in zip(ours, theirs))
    same_greedy = np.mean([a[1] == b[1] for a, b in zip(ours, theirs)])

    print()
    print("| model | questions | biomed_jax questions/s | lm-eval HFLM questions/s | speed-up | biomed_jax compile (s) | "
          "max abs loglik difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {_PRESET.value} | {n} | {n / jax_time:.2f} | {n / hf_time:.2f} | {hf_time / jax_time:.2f}x | "
          f"{compile_time:.1f} | {diff:.1e} |")
    if same_greedy < 1:
        print(f"note: is_greedy differs on {100 * (1 - same_greedy):.1f}% of requests")


if __name__ == "__main__":
    cli.run(main)

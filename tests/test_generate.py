"""Generation: KV-cache decoding equals full recompute and transformers' generate; samplers; stop
tokens; sharded equals single-device; the generate command (prompts and --interactive)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from biomed_jax import sharding as shd
from biomed_jax.inference.generate import Generator, cache_shardings, left_pad
from biomed_jax.inference.sampling import SamplingConfig, sample, top_k_filter, top_p_filter
from biomed_jax.inference.text import completion_text
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params, init_params, unstack_layers
from biomed_jax.models.kv_cache import init_cache
from biomed_jax.run_dir import load_run
from configs.models import model_preset
import helpers  # noqa: E402
from helpers import run_cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Different lengths, so the batch is left padded; four rows so a (2, 2, 2) mesh splits the batch.
PROMPTS = [[5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [42], [9, 8, 7, 6, 5]]
N_NEW = 8


def tiny(preset: str, scan_layers: bool = True, seed: int = 0):
    """(cfg, params) of a tiny random model whose logits are far from uniform (init_std 0.2).

    The per-layer layout is the stacked one unstacked (one init program to compile, not two).
    """
    cfg = ModelConfig.from_dict({**model_preset(preset), "dtype": "float32", "init_std": 0.2})
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(seed))
    if scan_layers:
        return cfg, params
    return cfg.replace(scan_layers=False), unstack_layers(params)


def naive_greedy(cfg, params, prompts, n_new):
    """Greedy decoding by recomputing the whole left-padded sequence for every new token.

    One fixed-size buffer (prompt + n_new) is run each step; causality keeps the not-yet-written
    tail from affecting the logits read at the last written position.
    """
    graphdef, _ = graphdef_and_abstract_params(cfg)
    forward = jax.jit(lambda p, t, pos, seg: nnx.merge(graphdef, p)(t, pos, seg))
    length = max(map(len, prompts))
    tokens, mask = left_pad(prompts, length)
    buf = np.zeros((len(prompts), length + n_new), np.int32)
    buf_mask = np.zeros_like(buf)
    buf[:, :length], buf_mask[:, :length] = tokens, mask
    for t in range(n_new):
        buf_mask[:, length:length + t] = 1
        positions = np.maximum(np.cumsum(buf_mask, axis=1) - 1, 0)
        logits = forward(params, buf, positions, buf_mask)  # pads: their own segment, never attended
        buf[:, length + t] = np.asarray(jnp.argmax(logits[:, length + t - 1], axis=-1))
    return buf[:, length:]


@pytest.mark.parametrize("preset", ["tiny", "tiny_llama"])
@pytest.mark.parametrize("scan_layers", [True, False])
def test_cached_greedy_equals_full_recompute_and_rows_alone(preset, scan_layers):
    cfg, params = tiny(preset, scan_layers)
    # unroll_layers=False keeps the scanned layout, so the scanned cache path is what runs here.
    out = Generator(cfg, params, unroll_layers=False).generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW))
    expected = naive_greedy(cfg, params, PROMPTS, N_NEW)
    assert len({tuple(row) for row in expected}) > 1  # the rows really differ
    np.testing.assert_array_equal(out.tokens, expected)
    np.testing.assert_array_equal(out.lengths, [N_NEW] * len(PROMPTS))
    if scan_layers and preset == "tiny":
        # Unrolled copy of the scanned params, one prompt at a time (other padding, learned positions).
        generator = Generator(cfg, params)
        assert not generator.cfg.scan_layers
        alone = generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW), batch_size=1)
        np.testing.assert_array_equal(alone.tokens, expected)


# --- transformers parity -------------------------------------------------------------------------

HF_VOCAB = 128


def tiny_hf_model(family):
    return helpers.tiny_hf_model(family, HF_VOCAB)


def converted(tmp_path, family):
    """(HF model, run dir of its hf_to_jax conversion, with word_tokenizer())."""
    from biomed_jax.convert.hf_checkpoint import hf_to_jax

    hf_model = tiny_hf_model(family)
    hf_dir, run_dir = str(tmp_path / "hf"), str(tmp_path / "run")
    hf_model.save_pretrained(hf_dir, safe_serialization=True)
    helpers.word_tokenizer(HF_VOCAB).save(os.path.join(hf_dir, "tokenizer.json"))
    hf_to_jax(hf_dir, run_dir)
    return hf_model, run_dir


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_greedy_equals_transformers_generate(tmp_path, family):
    hf_model, run_dir = converted(tmp_path, family)
    tokens, mask = left_pad(PROMPTS, max(map(len, PROMPTS)))
    with torch.no_grad():
        hf_out = hf_model.generate(input_ids=torch.tensor(tokens, dtype=torch.long),
                                   attention_mask=torch.tensor(mask, dtype=torch.long), do_sample=False,
                                   max_new_tokens=N_NEW, pad_token_id=0, eos_token_id=None)
    expected = hf_out[:, tokens.shape[1]:].numpy()
    run = load_run(run_dir)
    out = Generator(run.model_cfg, run.params).generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW))
    assert len({tuple(row) for row in expected}) > 1
    np.testing.assert_array_equal(out.tokens, expected)


# --- samplers and stopping -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama_generator():
    return Generator(*tiny("tiny_llama"))


def test_sampling_is_seeded_and_top_k_1_is_greedy(llama_generator):
    def run(**kw):
        return llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW, **kw)).tokens

    first, again = run(temperature=1.0, seed=1), run(temperature=1.0, seed=1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, run(temperature=1.0, seed=2))
    greedy = run()
    assert not np.array_equal(first, greedy)  # sampling at temperature 1 is not argmax here
    np.testing.assert_array_equal(run(temperature=1.0, top_k=1, seed=3), greedy)
    # Another stream of the same seed (e.g. the next interactive prompt) draws other numbers.
    other = llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW, temperature=1.0, seed=1),
                                     stream=1).tokens
    assert not np.array_equal(first, other)
    # Changing traced values (temperature, top_p) reuses the compiled program.
    n_programs = llama_generator.compiled_programs()
    run(temperature=0.5, seed=1)
    assert llama_generator.compiled_programs() == n_programs


def test_top_p_keeps_exactly_the_nucleus():
    probs = np.array([0.05, 0.5, 0.1, 0.2, 0.15])
    logits = jnp.log(jnp.asarray(probs, jnp.float32))[None]
    for p, nucleus in [(0.3, {1}), (0.5, {1}), (0.6, {1, 3}), (0.8, {1, 3, 4}), (0.9, {1, 2, 3, 4}),
                       (1.0, {0, 1, 2, 3, 4})]:
        kept = set(np.flatnonzero(np.isfinite(np.asarray(top_p_filter(logits, p))[0])).tolist())
        assert kept == nucleus, (p, kept)
    # Samples come only from the nucleus, in proportion to the renormalised probabilities.
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = np.asarray(jax.vmap(lambda k: sample(logits, k, 1.0, 0.6, greedy=False, top_k=0, use_top_p=True))(keys))
    assert set(np.unique(draws)) == {1, 3}
    assert abs(np.mean(draws == 1) - 0.5 / 0.7) < 0.03


def test_filters_match_transformers_warpers():
    logits = jax.random.normal(jax.random.key(0), (6, 50)) * 3
    scores = torch.tensor(np.asarray(logits))
    for p in (0.3, 0.7, 0.95):
        hf = transformers.TopPLogitsWarper(p)(None, scores.clone()).numpy()
        np.testing.assert_array_equal(np.isfinite(np.asarray(top_p_filter(logits, p))), np.isfinite(hf))
    for k in (1, 5, 20):
        hf = transformers.TopKLogitsWarper(k)(None, scores.clone()).numpy()
        np.testing.assert_array_equal(np.isfinite(np.asarray(top_k_filter(logits, k))), np.isfinite(hf))


def test_stop_tokens_end_rows_and_pad_the_rest(llama_generator):
    free = llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW)).tokens
    assert free.shape == (len(PROMPTS), N_NEW)  # max_new_tokens respected
    stop = int(free[0, 2])  # row 0 emits it at step 2 (or earlier)
    pad = 255
    out = llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW, stop_tokens=(stop,), pad_id=pad))
    assert out.tokens.shape == (len(PROMPTS), N_NEW)
    for row, free_row, length in zip(out.tokens, free, out.lengths):
        hits = np.flatnonzero(free_row == stop)
        expected_len = hits[0] + 1 if hits.size else N_NEW
        assert length == expected_len
        np.testing.assert_array_equal(row[:length], free_row[:length])
        assert (row[length:] == pad).all()
    assert out.lengths[0] <= 3 and out.completions()[0][-1] == stop
    # Every row stopping at its first token ends the loop with all rows length 1.
    firsts = tuple(int(t) for t in free[:, 0])
    out = llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW, stop_tokens=firsts, pad_id=pad))
    np.testing.assert_array_equal(out.lengths, [1] * len(PROMPTS))
    assert (out.tokens[:, 1:] == pad).all()


def test_bad_settings_name_the_field(llama_generator):
    with pytest.raises(ValueError, match="sampling.top_p"):
        SamplingConfig(top_p=0.0)
    with pytest.raises(ValueError, match="sampling.temperature"):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(ValueError, match="sampling.max_len"):
        llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW), max_len=12)
    cfg, params = tiny("tiny")  # learned positions: max_seq_len 128
    with pytest.raises(ValueError, match="model.max_seq_len"):
        Generator(cfg, params).generate([[1] * 100], SamplingConfig(max_new_tokens=40))


# --- sharding ------------------------------------------------------------------------------------

def test_sharded_generation_equals_single_device(llama_generator):
    cfg, params = tiny("tiny_llama")  # the weights of llama_generator, which runs on one device
    expected = llama_generator.generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW)).tokens
    mesh = shd.make_mesh(dict(data=2, fsdp=2, tensor=2))
    rules = shd.rules_dict()
    _, abstract = graphdef_and_abstract_params(cfg)
    placed = jax.device_put(params, shd.param_shardings(abstract, mesh, rules))
    out = Generator(cfg, placed, mesh).generate(PROMPTS, SamplingConfig(max_new_tokens=N_NEW))
    np.testing.assert_array_equal(out.tokens, expected)

    # The cache is laid out like the attention activations: batch over data+fsdp, kv heads over tensor.
    for stacked in (True, False):
        def make():
            with shd.activation_sharding(mesh, rules):
                return init_cache(cfg, 4, 32, stacked=stacked)

        cache = jax.jit(make)()
        want = cache_shardings(cfg, mesh, rules, 4, 32, stacked=stacked)
        spec = jax.sharding.PartitionSpec(*([None] if stacked else []), ("data", "fsdp"), "tensor")
        for got, expected in zip(jax.tree.leaves((cache.k, cache.v, cache.valid)),
                                 jax.tree.leaves((want.k, want.v, want.valid))):
            assert got.sharding.is_equivalent_to(expected, got.ndim)
        assert jax.tree.leaves(cache.k)[0].sharding.spec == spec


# --- the command ---------------------------------------------------------------------------------

def test_generate_command_prompts_and_interactive(tmp_path):
    _, run_dir = converted(tmp_path, "gpt2")
    run = load_run(run_dir)
    tokenizer = run.tokenizer
    texts = ["w1 w2 w3", "w7", "w40 w41 w42 w43 w44"]
    eos = HF_VOCAB - 1
    assert run.eos_id == eos
    sampling = SamplingConfig(max_new_tokens=6, stop_tokens=(eos,), pad_id=eos)
    out = Generator(run.model_cfg, run.params).generate([tokenizer.encode(t).ids for t in texts], sampling)
    expected = [completion_text(tokenizer, ids, (eos,)) for ids in out.completions()]
    assert all(expected) and len(set(expected)) == len(texts)

    proc = run_cli("experiments.generate", f"--checkpoint={run_dir}", f"--prompt={texts[0]}",
                   "--interactive", "--config.sampling.max_new_tokens=6", input=f"{texts[1]}\n\n{texts[2]}\n")
    for i, (text, completion) in enumerate(zip(texts, expected)):
        assert f"[{i}] {text}\n{completion}\n" in proc.stdout, proc.stdout

    os.remove(os.path.join(run_dir, "tokenizer.json"))
    proc = run_cli("experiments.generate", f"--checkpoint={run_dir}", "--prompt=w1", check=False)
    assert proc.returncode != 0 and os.path.join(run_dir, "tokenizer.json") in proc.stderr
    assert "Traceback" not in proc.stderr  # a user's mistake: one line

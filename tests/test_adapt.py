"""Adaptation: classifier inputs and heads, SFT rows, qwix LoRA / int8-LoRA, and fine-tuning runs."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from adapt_fixtures import toy_config, write_toy_world
from biomed_jax.adapt import data as adapt_data
from biomed_jax.adapt.finetune import run
from biomed_jax.adapt.heads import Classifier, option_scores
from biomed_jax.adapt.lora import LoraSettings, apply_lora, merge_lora, trainable_filter
from biomed_jax.data.benchmarks import MCQuestion
from biomed_jax.data.tokenizer import train_bpe
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import init_model
from biomed_jax.train.checkpoint import load_params
from configs.models import model_preset
from helpers import run_cli


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return write_toy_world(str(tmp_path_factory.mktemp("toy")), n_train=512)


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(["Question: which drug treats the disease? Answer: alpha bravo charlie delta"] * 20,
                     vocab_size=300)


def _question(n_options: int, answer: int = 0, qid: str = "q") -> MCQuestion:
    options = ["alpha", "bravo", "charlie", "delta", "echo"][:n_options]
    return MCQuestion(id=qid, question="which drug treats the disease?", context="", options=options,
                      answer=answer, letters=list("ABCDE"[:n_options]))


def test_choices_pad_short_questions_with_masked_options(tokenizer):
    arrays, report = adapt_data.encode_choices([_question(4), _question(2, answer=1)], tokenizer,
                                               "Question: {question}\nAnswer: {option}", max_len=64)
    assert arrays["tokens"].shape == (2, 4, 64)
    np.testing.assert_array_equal(arrays["option_mask"], [[True] * 4, [True, True, False, False]])
    np.testing.assert_array_equal(arrays["labels"], [0, 1])
    # Each row ends with its option: the last real token is where the head reads.
    for col, word in enumerate(["alpha", "bravo"]):
        ids = arrays["tokens"][1, col, :arrays["lengths"][1, col]].tolist()
        assert tokenizer.decode(ids).endswith(word)
    assert report.examples == 2 and report.truncated == 0


def test_choices_keep_the_option_when_truncated(tokenizer):
    arrays, report = adapt_data.encode_choices([_question(3)], tokenizer, "Question: {question}\nAnswer: {option}",
                                               max_len=8)
    assert report.truncated == 3
    assert tokenizer.decode(arrays["tokens"][0, 2].tolist()).endswith("charlie")


def test_more_options_than_configured_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="5 options, more than n_options=4"):
        adapt_data.encode_choices([_question(5)], tokenizer, "{question} {option}", 32, n_options=4)


def test_template_with_a_missing_field_names_it(tokenizer):
    with pytest.raises(ValueError, match=r"\{rationale\} is unknown"):
        adapt_data.encode_choices([_question(4)], tokenizer, "{question} {rationale} {option}", 32)


def test_empty_split_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="dev split is empty"):
        adapt_data.encode_choices([], tokenizer, "{question} {option}", 32, what="dev split")


def test_classes_must_cover_the_answers(tokenizer):
    q = MCQuestion(id="7", question="q?", context="c", options=["yes", "no", "maybe"], answer=2,
                   letters=["yes", "no", "maybe"])
    arrays, _ = adapt_data.encode_classes([q], tokenizer, "{context} {question}", 32, ["yes", "no", "maybe"])
    assert arrays["labels"].tolist() == [2]
    with pytest.raises(ValueError, match="not one of the classes"):
        adapt_data.encode_classes([q], tokenizer, "{context} {question}", 32, ["yes", "no"])


def test_instructions_skip_and_count_corrupt_records(tmp_path):
    path = tmp_path / "meadow.json"
    path.write_text(json.dumps([{"instruction": "Define.", "input": "", "output": "A word."},
                                {"instruction": "No output."}, "not a record",
                                {"instruction": "Explain.", "input": None, "output": "Because."}]))
    records, report = adapt_data.load_instructions(str(path))
    assert [r["output"] for r in records] == ["A word.", "Because."]
    assert report.skipped == {"missing_instruction_or_output": 2}
    with pytest.raises(FileNotFoundError, match="missing.json"):
        adapt_data.load_instructions(str(tmp_path / "missing.json"))


def test_sft_loss_covers_only_the_response_and_packing_keeps_examples_apart(tokenizer):
    examples = [{"instruction": "Name a drug.", "input": "", "output": "alpha"},
                {"instruction": "Name another.", "input": "disease", "output": "bravo charlie"}]
    eos = tokenizer.token_to_id("<|endoftext|>")
    encoded, _ = adapt_data.encode_instructions(examples, tokenizer, "medalpaca", max_len=512, eos_id=eos)
    for (ids, weights), example in zip(encoded, examples):
        response = tokenizer.encode(example["output"], add_special_tokens=False).ids + [eos]
        assert ids[weights == 1].tolist() == response
    unpacked = adapt_data.sft_rows(encoded, 512, pack=False)
    packed = adapt_data.sft_rows(encoded, 512, pack=True)
    assert unpacked["inputs"].shape[0] == 2 and packed["inputs"].shape[0] == 1
    row = packed
    assert sorted(set(row["segment_ids"][0].tolist())) == [0, 1, 2]
    second = row["segment_ids"][0] == 2
    assert row["positions"][0][second][0] == 0          # positions restart per example
    # The same targets are trained, packed or not.
    assert row["loss_mask"].sum() == unpacked["loss_mask"].sum()
    assert sorted(row["targets"][row["loss_mask"] == 1].tolist()) == \
        sorted(unpacked["targets"][unpacked["loss_mask"] == 1].tolist())


def test_sft_accuracy_scores_each_options_full_response(tokenizer):
    arrays, _ = adapt_data.encode_answer_choices([_question(3, answer=2)], tokenizer, "meditron", 256)
    for col, word in enumerate(["alpha", "bravo", "charlie"]):
        response = arrays["targets"][0, col][arrays["response_mask"][0, col]].tolist()
        assert tokenizer.decode(response) == f"{'ABC'[col]}: {word}"
        # inputs are targets shifted right: the response is predicted from the prompt before it
        n = int(np.argmax(arrays["response_mask"][0, col]))
        assert arrays["inputs"][0, col, n + 1] == arrays["targets"][0, col, n]
    assert arrays["labels"].tolist() == [2] and arrays["option_mask"].tolist() == [[True, True, True]]


def _tiny_classifier(scan_layers=False, remat="none"):
    cfg = ModelConfig.from_dict(model_preset("tiny")).replace(scan_layers=scan_layers, remat=remat)
    return Classifier(init_model(cfg, jax.random.key(0)), 1, rngs=nnx.Rngs(0))


def test_classifier_reads_the_last_real_token_and_masks_padded_options():
    model = _tiny_classifier()
    tokens = jax.random.randint(jax.random.key(1), (2, 3, 16), 1, 256)
    lengths = jnp.array([[5, 9, 16], [3, 3, 12]])
    noisy = jnp.where(jnp.arange(16) >= lengths[..., None], 7, tokens)  # different padding
    mask = jnp.array([[True, True, True], [True, True, False]])
    a, b = option_scores(model, tokens, lengths, mask), option_scores(model, noisy, lengths, mask)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert a[1, 2] < -1e30 and bool(jnp.all(jnp.isfinite(a[0])))


@pytest.mark.parametrize("method", ["lora", "int8_lora", "nf4_lora"])
def test_lora_trains_only_adapters_and_merges_exactly(method):
    model = _tiny_classifier(remat="full")
    tokens = jax.random.randint(jax.random.key(1), (2, 3, 16), 0, 256)
    lengths = jnp.full((2, 3), 16)
    adapted = apply_lora(model, method, LoraSettings(rank=4, alpha=8.0, targets="attention_mlp"),
                         (tokens[:1], lengths[:1]))
    graphdef, trainable, frozen = nnx.split(adapted, trainable_filter(method), ...)
    trainable = nnx.to_pure_dict(trainable)
    names = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(trainable)[0]}
    assert all("_lora_" in n or "'head'" in n for n in names)
    assert any("'q_proj'" in n for n in names) and any("'down_proj'" in n for n in names)
    if method != "lora":
        kernel = frozen["decoder"]["blocks"][0]["attn"]["q_proj"]["kernel"]
        assert jax.tree.leaves(kernel)[0].dtype == {"int8_lora": jnp.int8, "nf4_lora": jnp.uint4}[method]

    def loss(params):
        return jnp.mean(nnx.merge(graphdef, params, frozen)(tokens, lengths) ** 2)

    frozen_before = jax.tree.map(np.asarray, nnx.to_pure_dict(frozen))
    for _ in range(3):
        grads = jax.jit(jax.grad(loss))(trainable)
        trainable = jax.tree.map(lambda p, g: p - 0.05 * g, trainable, grads)
    b = trainable["decoder"]["blocks"][0]["attn"]["q_proj"]["kernel_lora_b"]
    assert float(jnp.abs(b).max()) > 0   # B starts at zero: the adapters did move
    jax.tree.map(np.testing.assert_array_equal, frozen_before, nnx.to_pure_dict(frozen))

    out = nnx.merge(graphdef, trainable, frozen)(tokens, lengths)
    merged = merge_lora(nnx.merge(graphdef, trainable, frozen), LoraSettings(rank=4, alpha=8.0))
    plain = nnx.merge(nnx.graphdef(model), merged)
    np.testing.assert_allclose(plain(tokens, lengths), out, atol=2e-4)


def test_lora_needs_an_unscanned_model_and_a_target_that_matches():
    tokens, lengths = jnp.zeros((1, 1, 8), jnp.int32), jnp.full((1, 1), 8)
    with pytest.raises(ValueError, match="unscanned"):
        apply_lora(_tiny_classifier(scan_layers=True), "lora", LoraSettings(), (tokens, lengths))
    with pytest.raises(ValueError, match="matched no projection"):
        apply_lora(_tiny_classifier(), "lora", LoraSettings(targets=".*no_such_proj"), (tokens, lengths))
    with pytest.raises(ValueError, match="method must be one of"):
        apply_lora(_tiny_classifier(), "qlora", LoraSettings(), (tokens, lengths))


def test_mcq_classifier_learns_and_writes_its_run(toy_root, tmp_path):
    workdir = str(tmp_path / "mcq")
    results = run(toy_config("finetune_mcq", toy_root, head="last_token"), workdir, "mcq")
    assert results["chance"] == 0.25
    assert results["dev_accuracy"] >= 0.75, results["epochs"]
    assert results["trainable_params"] == results["total_params"]
    lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["epoch"] for r in lines if "dev_accuracy" in r] == [1, 2, 3]
    saved = json.load(open(os.path.join(workdir, "results.json")))
    assert saved["dev_accuracy"] == results["dev_accuracy"] == max(e["dev_accuracy"] for e in results["epochs"])
    # best/ is an ordinary run directory: its decoder loads like any checkpoint.
    model_cfg, params, _ = load_params(os.path.join(workdir, "best", "checkpoints"))
    assert model_cfg.d_model == 64 and "blocks" in params
    assert os.path.isfile(os.path.join(workdir, "best", "tokenizer.json"))


def _save_random_base(directory: str, tokenizer_path: str) -> None:
    """A run directory holding a random tiny decoder, as a base to fine-tune from."""
    from biomed_jax.adapt.finetune import save_plain
    from biomed_jax.models.decoder import init_params

    cfg = ModelConfig.from_dict(model_preset("tiny")).replace(vocab_size=512)
    save_plain(directory, 0, {"params": init_params(cfg, jax.random.key(3))}, {"model": cfg.to_dict()},
               tokenizer_path)


@pytest.mark.slow  # ~100 s on 2 cores; int8-LoRA merging itself is covered by test_lora_trains_only_adapters...
def test_int8_lora_sft_from_the_command_line_saves_adapters_and_a_merged_model(toy_root, tmp_path):
    base, workdir = str(tmp_path / "base"), str(tmp_path / "sft")
    _save_random_base(base, f"{toy_root}/tokenizer.json")
    args = [f"--config.data_root={toy_root}", f"--config.init_checkpoint={base}",
            "--config.sft.instructions=medalpaca/toy.json", "--config.max_len=48",
            "--config.train.batch_size=16", "--config.train.eval_batch_size=16", "--config.optim.learning_rate=3e-3",
            "--config.optim.warmup_steps=5", "--config.task.limit=128", "--config.method=int8_lora"]
    proc = run_cli("experiments.finetune_sft", "--config=configs/finetune_sft.py:synthetic", f"--workdir={workdir}",
                   *args, "--config.train.epochs=2", devices=8, timeout=600)
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["method"] == "int8_lora" and '"dev_accuracy"' in proc.stdout
    assert results["trainable_params"] < results["total_params"] / 5
    losses = [json.loads(line)["train_loss"] for line in open(os.path.join(workdir, "metrics.jsonl"))
              if "train_loss" in line]
    assert losses[-1] < losses[0]
    _, best, _ = load_params(os.path.join(workdir, "best", "checkpoints"))
    q_proj = best["blocks"][0]["attn"]["q_proj"]
    assert set(q_proj) == {"kernel", "bias"} and q_proj["kernel"].dtype == jnp.float32

    # The adapters alone, applied to the base again (int8-quantized again) and merged, give best/.
    run_cli("experiments.merge_adapter", f"--adapter={workdir}/adapter", f"--workdir={tmp_path}/merged", devices=8)
    _, merged, _ = load_params(os.path.join(tmp_path, "merged", "checkpoints"))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), merged, best)
    _, base_params, _ = load_params(os.path.join(base, "checkpoints"))
    assert not np.allclose(merged["blocks"][0]["attn"]["q_proj"]["kernel"],
                           base_params["blocks"]["attn"]["q_proj"]["kernel"][0], atol=1e-4)  # base is stacked

    # A rerun with more epochs resumes after the saved epochs instead of starting over.
    run_cli("experiments.finetune_sft", "--config=configs/finetune_sft.py:synthetic", f"--workdir={workdir}",
            *args, "--config.train.epochs=3", devices=8, timeout=600)
    resumed = json.load(open(os.path.join(workdir, "results.json")))
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    assert resumed["epochs"][:2] == results["epochs"]


def test_memory_report_counts_adapters_and_quantized_bytes_exactly():
    from biomed_jax.adapt.memory import _report_for, memory_report

    cfg = ModelConfig.from_dict(model_preset("tiny_llama")).replace(n_layers=3)
    settings = LoraSettings(rank=4, targets="attention_mlp")
    d, f, q, kv = cfg.d_model, cfg.d_ff, cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    per_layer = 4 * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + f) + (f + d))
    lora = memory_report(cfg, "lora", settings)
    assert lora["trainable_params"] == 3 * per_layer
    assert lora["optimizer_bytes"] >= 2 * lora["trainable_bytes"]
    full = memory_report(cfg, "full", settings)
    assert full["trainable_params"] == sum(x.size for x in jax.tree.leaves(nnx.state(init_model(
        cfg.replace(scan_layers=False), jax.random.key(0)), nnx.Param)))
    int8, nf4 = memory_report(cfg, "int8_lora", settings), memory_report(cfg, "nf4_lora", settings)
    assert nf4["frozen_bytes"] < int8["frozen_bytes"] < lora["frozen_bytes"] == full["trainable_bytes"]
    # The 1-and-2-layer extrapolation equals tracing all three layers.
    direct = _report_for(cfg.replace(scan_layers=False, remat="none"), "int8_lora", settings)
    assert {k: int8[k] for k in direct} == direct


def test_option_loglik_scores_each_option_as_a_continuation(tokenizer):
    arrays, _ = adapt_data.encode_option_continuations([_question(3, answer=1), _question(2)], tokenizer,
                                                       "Question: {question}\nAnswer: {option}", 64)
    assert arrays["inputs"].shape == (2, 3, 64)
    for col, word in enumerate(["alpha", "bravo", "charlie"]):
        continuation = arrays["targets"][0, col][arrays["response_mask"][0, col]].tolist()
        assert tokenizer.decode(continuation) == f" {word}"
    assert arrays["option_mask"].tolist() == [[True, True, True], [True, True, False]]
    with pytest.raises(ValueError, match="exactly one"):
        adapt_data.encode_option_continuations([_question(2)], tokenizer, "{question}", 64)

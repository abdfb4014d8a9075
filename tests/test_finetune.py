"""Fine-tuning through the one trainer, as a user runs it: learning and the run it writes, gradient
accumulation, interruption and exact resumption (at the first step too, for pretraining as well),
non-finite losses, context checks, dev accuracy that the evaluation harness reproduces on best/, and
LoRA adapters saved, merged and resumed."""

from __future__ import annotations

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from adapt_fixtures import toy_config, write_toy_world
from biomed_jax.run_dir import load_run, save_run
from biomed_jax.tasks.finetuning import run
from biomed_jax.train import trainer as trainer_lib
from biomed_jax.train.checkpoint import RunCheckpoints
from helpers import run_cli


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return write_toy_world(str(tmp_path_factory.mktemp("toy")), n_train=512)


def metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(workdir: str) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metrics(workdir) if "loss" in r}


def saved_state(workdir: str) -> tuple[int, dict]:
    """(step, the latest checkpoint's train state as numpy arrays), read without a target."""
    step = RunCheckpoints(os.path.join(workdir, "checkpoints")).latest_step()
    state = ocp.PyTreeCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))
    return step, state


def assert_same_tree(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


class SignalAt:
    """Sends this process a real SIGTERM just before the trainer's step `at` runs (for step 1: while it
    is being compiled), as a scheduler would."""

    def __init__(self, monkeypatch, at: int):
        self.calls, self.at = 0, at
        original = trainer_lib.Trainer.__init__

        def init(trainer, *args, **kwargs):
            original(trainer, *args, **kwargs)
            step = trainer.train_step

            def wrapped(*step_args):
                self.calls += 1
                if self.calls == self.at:
                    os.kill(os.getpid(), signal.SIGTERM)
                return step(*step_args)

            trainer.train_step = wrapped

        monkeypatch.setattr(trainer_lib.Trainer, "__init__", init)


def test_mcq_classifier_learns_and_writes_its_run(toy_root, tmp_path):
    workdir = str(tmp_path / "mcq")
    results = run(toy_config("finetune_mcq", toy_root, head="last_token"), workdir, "mcq")
    assert results["chance"] == 0.25 and results["steps"] == 3 * 32 and results["effective_batch"] == 16
    assert results["dev_accuracy"] >= 0.75, results["evaluations"]
    assert results["trainable_params"] == results["total_params"]
    lines = metrics(workdir)
    assert [r["epoch"] for r in lines if "dev_accuracy" in r] == [1, 2, 3]
    # A training-loss line per logged step, as in pretraining: the first step and every log_every steps.
    assert sorted(r["step"] for r in lines if "loss" in r) == [1, 20, 40, 60, 80, 96]
    saved = json.load(open(os.path.join(workdir, "results.json")))
    assert saved["dev_accuracy"] == results["dev_accuracy"] == max(e["dev_accuracy"] for e in results["evaluations"])
    # best/ is an ordinary run directory: its decoder loads like any run, the head beside it.
    best = load_run(os.path.join(workdir, "best"), extra=("head",))
    assert best.model_cfg.d_model == 64 and "blocks" in best.params
    assert best.extra["head"]["kernel"].shape == (64, 1) and best.meta["best"]["step"] == results["best_step"]
    # The same command again: the run is finished, nothing is trained or logged twice.
    assert run(toy_config("finetune_mcq", toy_root, head="last_token"), workdir, "mcq")["dev_accuracy"] == \
        results["dev_accuracy"]
    assert len(metrics(workdir)) == len(lines)


def test_gradient_accumulation_gives_the_update_of_one_batch(toy_root, tmp_path):
    """train.microbatches=4 splits each global batch of 32 into 4 slices and sums their gradients in
    float32: the same per-example gradients, summed in another order, so they agree to float32 rounding
    (relative ~1e-7). The first update is compared with optim.eps=1: Adam divides each gradient by its own
    size plus eps, and with the usual 1e-8 it would turn rounding noise in a gradient that is exactly zero
    (the head's bias: a softmax over options ignores a shift shared by all of them) into a full step of
    lr; with eps=1 the update stays proportional to the gradient, so parameters agree to lr x 1e-5."""
    runs = {}
    for micro in (1, 4):
        cfg = toy_config("finetune_mcq", toy_root, head="last_token",
                         **{"task.limit": 32, "train.batch_size": 32, "train.epochs": 1, "train.microbatches": micro,
                            "optim.warmup_steps": 0, "optim.eps": 1.0})
        workdir = str(tmp_path / f"micro{micro}")
        run(cfg, workdir, "mcq")
        runs[micro] = (metrics(workdir), saved_state(workdir))
    (log_1, (step_1, state_1)), (log_4, (step_4, state_4)) = runs[1], runs[4]
    first_1, first_4 = (next(r for r in log if "loss" in r) for log in (log_1, log_4))
    assert step_1 == step_4 == 1 and first_1["step"] == 1
    assert first_1["loss"] == pytest.approx(first_4["loss"], rel=1e-6)
    assert first_1["grad_norm"] == pytest.approx(first_4["grad_norm"], rel=1e-5)
    lr = 3e-3
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), state_1["params"], state_4["params"])
    assert max(jax.tree.leaves(moved)) < lr * 1e-5
    assert first_1["grad_norm"] > 0.01     # a real gradient: the compared update is not a zero step


# While the first step compiles; mid-epoch, after a checkpoint. Both slow (about a minute each): the one
# trainer's SIGTERM path runs in `make test` through pretraining (tests/test_train_loop.py).
@pytest.mark.parametrize("stop_at", [pytest.param(1, marks=pytest.mark.slow), pytest.param(40, marks=pytest.mark.slow)])
def test_sigterm_then_the_same_command_finishes_like_an_uninterrupted_run(toy_root, tmp_path, monkeypatch,
                                                                         stop_at):
    def config():
        return toy_config("finetune_mcq", toy_root, head="last_token",
                          **{"train.epochs": 2, "train.log_every": 1, "checkpoint.every_steps": 30})

    straight = str(tmp_path / "straight")
    expected = run(config(), straight, "mcq")
    workdir = str(tmp_path / "interrupted")
    with monkeypatch.context() as patch:
        SignalAt(patch, stop_at)
        stopped = run(config(), workdir, "mcq")
    assert stopped == {"interrupted_by": "SIGTERM", "step": stop_at}
    assert RunCheckpoints(os.path.join(workdir, "checkpoints")).all_steps()[-1] == stop_at
    assert not os.path.exists(os.path.join(workdir, "results.json"))   # nothing half-done looks finished
    resumed = run(config(), workdir, "mcq")
    assert resumed["evaluations"] == expected["evaluations"]
    assert_same_tree(saved_state(workdir), saved_state(straight))         # bit for bit on CPU
    steps = [r["step"] for r in metrics(workdir) if "loss" in r]
    assert steps == list(range(1, 65)) and losses(workdir) == losses(straight)   # each step logged once


@pytest.fixture(scope="module")
def token_data(tmp_path_factory):
    from data_fixtures import prepare_dataset

    return prepare_dataset(str(tmp_path_factory.mktemp("data")))[3]


# While the first step compiles; before the first periodic checkpoint; right after it (slow ones: make test-all).
@pytest.mark.parametrize("stop_at", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow)])
def test_pretraining_interrupted_anywhere_resumes_exactly(token_data, tmp_path, monkeypatch, stop_at):
    from biomed_jax.tasks.pretraining import run as pretrain
    from data_fixtures import pretrain_config

    data_dir = token_data
    straight = str(tmp_path / "straight")
    pretrain(pretrain_config(data_dir, 6), straight)    # checkpoints every 3 steps
    workdir = str(tmp_path / "interrupted")
    with monkeypatch.context() as patch:
        SignalAt(patch, stop_at)
        assert pretrain(pretrain_config(data_dir, 6), workdir).interrupted_by == "SIGTERM"
    pretrain(pretrain_config(data_dir, 6), workdir)
    assert losses(workdir) == losses(straight)
    assert_same_tree(load_run(workdir).params, load_run(straight).params)


@pytest.mark.slow   # the trainer's check; tests/test_train_loop.py runs it in make test through pretraining
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(toy_root, tmp_path):
    cfg = toy_config("finetune_mcq", toy_root, head="last_token",
                     **{"optim.learning_rate": 1e30, "optim.warmup_steps": 0, "optim.max_grad_norm": 0.0,
                        "checkpoint.every_steps": 1, "checkpoint.async_save": False})
    workdir = str(tmp_path / "nan")
    with pytest.raises(trainer_lib.NonFiniteLossError, match=r"at step (\d+)") as error:
        run(cfg, workdir, "mcq")
    bad_step = int(str(error.value).split("at step ")[1].split(";")[0])
    step, state = saved_state(workdir)
    assert step == bad_step - 1 and all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))
    assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_max_len_beyond_learned_positions_is_refused_before_anything_compiles(toy_root, tmp_path):
    cfg = toy_config("finetune_mcq", toy_root, head="last_token", max_len=512)   # the tiny model has 128
    with pytest.raises(ValueError, match=r"max_len=512 exceeds model.max_seq_len=128"):
        run(cfg, str(tmp_path / "long"), "mcq")
    assert not os.path.exists(os.path.join(tmp_path, "long", "checkpoints"))


def test_a_position_past_the_table_is_an_error_not_nan():
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.models.decoder import init_model
    from configs.models import model_preset

    model = init_model(ModelConfig.from_dict(model_preset("tiny")), jax.random.key(0))
    with pytest.raises(ValueError, match="longer than model.max_seq_len"):
        model(jnp.zeros((1, 129), jnp.int32))


def test_dev_accuracy_is_what_evaluate_reports_on_best(toy_root, tmp_path):
    """option_loglik: the run's dev accuracy is the harness's loglik accuracy on best/, same questions."""
    workdir = str(tmp_path / "loglik")
    results = run(toy_config("finetune_mcq", toy_root, head="option_loglik", **{"train.epochs": 1}), workdir, "mcq")
    out = str(tmp_path / "eval")
    run_cli("experiments.evaluate", "--config=configs/evaluation.py:quick", f"--checkpoint={workdir}/best",
            f"--workdir={out}", f"--config.data_root={toy_root}", "--config.tasks.medqa.path=medqa/dev.jsonl",
            "--config.tasks.medqa.methods=loglik", "--config.tasks.medqa.shots=0", "--config.tasks.medqa.limit=0",
            "--config.tasks.pubmedqa.methods=", "--config.max_len=32")   # the run's max_len
    evaluated = json.load(open(os.path.join(out, "results.json")))["medqa"]["loglik"]
    assert evaluated["n"] == results["n_dev"] == 32
    assert evaluated["accuracy"] == results["dev_accuracy"]


def _save_random_base(directory: str, tokenizer_path: str) -> None:
    """A run directory holding a random tiny decoder, as a base to fine-tune from."""
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.models.decoder import init_params
    from configs.models import model_preset

    cfg = ModelConfig.from_dict(model_preset("tiny")).replace(vocab_size=512)
    save_run(directory, {"params": init_params(cfg, jax.random.key(3))}, {"model": cfg.to_dict()}, tokenizer_path)


# Slow (about a minute): the same trainer's multi-process path runs in make test through pretraining
# (tests/test_multiprocess.py); this adds fine-tuning's per-process rows.
@pytest.mark.slow
def test_multi_process_fine_tuning_trains_like_one_process(toy_root, tmp_path):
    """2 processes x 4 CPU devices (jax.distributed, each reading its rows) = 1 process x 8 devices."""
    settings = {"task.limit": 64, "train.epochs": 2, "train.log_every": 1}
    reference = str(tmp_path / "one")
    run(toy_config("finetune_mcq", toy_root, head="last_token", **settings), reference, "mcq")
    workdir = str(tmp_path / "two")
    args = [f"--config.data_root={toy_root}", f"--config.tokenizer={toy_root}/tokenizer.json", "--config.head=last_token",
            "--config.max_len=32", "--config.train.batch_size=16", "--config.train.eval_batch_size=16",
            "--config.optim.learning_rate=3e-3", "--config.optim.warmup_steps=5", "--config.logging.progress_bar=off",
            *[f"--config.{k}={v}" for k, v in settings.items()]]
    proc = run_cli("experiments.launch_local", "--processes=2", "--devices_per_process=4", "--",
                   "experiments.finetune_mcq", "--config=configs/finetune_mcq.py:synthetic", f"--workdir={workdir}",
                   *args, timeout=600)
    assert "process 1 of 2, 4 local / 8 global devices" in proc.stdout
    expected, got = losses(reference), losses(workdir)
    assert sorted(got) == list(range(1, 9))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)
    a, b = (json.load(open(os.path.join(d, "results.json"))) for d in (reference, workdir))
    assert a["dev_accuracy"] == b["dev_accuracy"] and a["best_step"] == b["best_step"]


@pytest.mark.slow  # ~2 min on 2 cores; int8-LoRA merging itself is covered by test_adapt's LoRA tests
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
    trained = [r["loss"] for r in metrics(workdir) if "loss" in r]
    assert trained[-1] < trained[0]
    best = load_run(os.path.join(workdir, "best"))
    q_proj = best.params["blocks"][0]["attn"]["q_proj"]
    assert set(q_proj) == {"kernel", "bias"} and q_proj["kernel"].dtype == jnp.float32
    assert best.template["style"] == "qa"                     # the prompt the run was taught with

    # The adapters alone, applied to the base again (int8-quantized again) and merged, give best/.
    run_cli("experiments.merge_adapter", f"--adapter={workdir}/adapter", f"--workdir={tmp_path}/merged", devices=8)
    merged = load_run(os.path.join(tmp_path, "merged")).params
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), merged, best.params)
    base_params = load_run(base).params
    assert not np.allclose(merged["blocks"][0]["attn"]["q_proj"]["kernel"],
                           base_params["blocks"]["attn"]["q_proj"]["kernel"][0], atol=1e-4)  # base is stacked

    # A rerun with more epochs resumes from the last checkpoint instead of starting over.
    run_cli("experiments.finetune_sft", "--config=configs/finetune_sft.py:synthetic", f"--workdir={workdir}",
            *args, "--config.train.epochs=3", devices=8, timeout=600)
    resumed = json.load(open(os.path.join(workdir, "results.json")))
    assert [e["epoch"] for e in resumed["evaluations"]] == [1, 2, 3]
    assert resumed["evaluations"][:2] == results["evaluations"]

"""The paper experiments (biomed_jax/papers/: biomedlm, meditron, medalpaca; run by experiments.*).

The plan of a `paper` preset states the paper's numbers on the target's mesh without allocating anything
(tests read the typed plan, biomed_jax.stages.make_plan, that --plan prints); a `smoke` preset runs every
stage end to end through the command line, writes results.md/results.json, and skips the finished stages
when rerun; a missing real input fails before anything runs, naming the config field and the path.
"""

from __future__ import annotations

import importlib
import json
import os

import pytest

from biomed_jax import stages as S
from helpers import run_cli


def _plan(experiment: str, **overrides) -> S.Plan:
    """The plan `python -m experiments.EXPERIMENT --config=configs/EXPERIMENT.py:paper --plan` prints, with
    `overrides` ({"pretrain.train.init_from": ...}) as --config.X=... would set them."""
    cfg = importlib.import_module(f"configs.{experiment}").get_config("paper")
    cfg.update_from_flattened_dict(overrides)
    stages = importlib.import_module(f"biomed_jax.papers.{experiment}").build(cfg, "runs/x")
    return S.make_plan(cfg, stages, stages, "runs/x")


def _stage(plan: S.Plan, name: str) -> dict[str, str]:
    return plan.stage(name).fields()


def test_biomedlm_plan_states_the_paper_run_on_a_tpu_v4_128():
    out = _plan("biomedlm")
    assert (out.hardware["target"], out.hardware["devices"]) == ("tpu_v4-128", 64)
    pre = _stage(out, "pretrain")
    assert pre["mesh"] == "data=1 fsdp=64 tensor=1 = 64 devices (tpu_v4-128)"
    assert pre["batch"] == "1024 sequences x 1024 tokens = 1,048,576 tokens per step"
    assert pre["microbatches"] == "1: 16 sequence(s) per device per microbatch"
    assert pre["steps"].startswith("286,102 = 300.0B tokens")
    assert "lr 0.00016" in pre["optimizer"] and "weight decay 1.6e-05" in pre["optimizer"]
    assert pre["model"].startswith("biomedlm_2p7b: 2,594,247,680 parameters")
    assert pre["check"] == "ok for 64 device(s)"
    for flag in ("--config.train.batch_size=1024", "--config.mesh.fsdp=64", "--config.train.steps=286102"):
        assert flag in pre["command"] and flag in pre["aot_check"]
    assert pre["command"].startswith("python -m experiments.pretrain --config=configs/pretrain.py:biomedlm_2p7b")
    assert "--devices=64 --accelerator=tpu_v4" in pre["aot_check"]
    for task in ("medqa", "medmcqa", "mmlu_medical_genetics", "pubmedqa", "bioasq"):
        finetune = _stage(out, f"finetune/{task}")
        assert finetune["check"] == "ok for 64 device(s)"
        assert "--config.model=biomedlm_2p7b --devices=64 --accelerator=tpu_v4" in finetune["aot_check"]
        assert "16 hosts x 4 devices: start the command above on every host" in finetune["hosts"]
    assert "--config.task.options.subjects=\"('medical_genetics',)\"" in \
        _stage(out, "finetune/mmlu_medical_genetics")["command"]
    assert "data.manual_dir = (not set)" in out.external_inputs and "data_root = (not set)" in out.external_inputs


def test_meditron_plan_states_continued_pretraining_on_8_h100():
    out = _plan("meditron", **{"pretrain.train.init_from": "/models/llama2_7b"})
    pre = _stage(out, "pretrain")
    assert pre["mesh"] == "data=1 fsdp=8 tensor=1 = 8 devices (8xH100)"
    assert pre["batch"] == "512 sequences x 2048 tokens = 1,048,576 tokens per step"
    assert pre["steps"].startswith("45,872 = 48.1B tokens")
    assert "lr 0.0003 cosine (warmup 2000 steps, final 0.1x)" in pre["optimizer"]
    assert "initialised from /models/llama2_7b" in pre["model"]
    assert "--config.train.init_from=/models/llama2_7b" in pre["command"]
    assert "init_from" not in pre["aot_check"] and "--devices=8 --accelerator=h100" in pre["aot_check"]
    assert _stage(out, "data")["tokenizer"] == "/models/llama2_7b/tokenizer.json"
    assert "top_token,cot,sc_cot (3-shot)" in _stage(out, "eval")["suite"]


def test_medalpaca_plan_compares_three_methods_on_8_h100():
    out = _plan("medalpaca")
    for method in ("full", "lora", "int8_lora"):
        sft = _stage(out, f"sft/{method}")
        assert sft["mesh"] == "data=1 fsdp=8 tensor=1 = 8 devices (8xH100)"
        # MedAlpaca's effective batch of 256 through gradient accumulation: 8 microbatches of 4 per GPU.
        assert sft["batch"].startswith("256 examples x up to 512 tokens")
        assert sft["microbatches"] == "8: 4 example(s) per device per microbatch"
        assert sft["model"].startswith(f"(init_checkpoint not set); method {method}")
        assert sft["check"] == "ok for 8 device(s)"
        # The fine-tuning step is compile-checked like pretraining's, the base's preset standing in for it.
        assert sft["aot_check"].startswith("python -m experiments.aot_check --config=configs/finetune_sft.py:medalpaca "
                                           "--config.model=llama2_7b --devices=8 --accelerator=h100")
        assert f"--config.method={method}" in sft["aot_check"] or method == "full"
        assert _stage(out, f"eval/{method}")["suite"].startswith("medalpaca_usmle: usmle_step1 generate,top_token")
    assert "init_checkpoint = (not set)" in out.external_inputs


def test_quickstart_plan_runs_the_story_in_six_stages_on_this_machine():
    from biomed_jax.papers import quickstart
    cfg = importlib.import_module("configs.quickstart").get_config()
    stages = quickstart.build(cfg, "runs/q")
    plan = S.make_plan(cfg, stages, stages, "runs/q")
    assert [p.stage.name for p in plan.stages] == ["data", "pretrain", "zero_shot", "mcq", "mcq_random_init",
                                                   "sft_lora"]
    assert plan.ok and plan.external_inputs == []   # the world is generated: nothing to bring
    assert _stage(plan, "mcq")["model"] == "runs/q/pretrain; method full"
    assert _stage(plan, "mcq_random_init")["model"] == "random init of mini; method full"
    assert "--config.tokenizer=runs/q/pretrain/tokenizer.json" in _stage(plan, "mcq_random_init")["command"]
    assert _stage(plan, "sft_lora")["model"].startswith("runs/q/pretrain; method lora (rank 8")
    assert _stage(plan, "zero_shot")["command"] == "python -m experiments.quickstart --workdir=runs/q --stages=zero_shot"


@pytest.mark.slow   # 4-6 min on 2 cores: every stage of the quickstart, shortened
def test_quickstart_runs_every_stage_and_writes_the_table_and_plot(tmp_path):
    workdir = str(tmp_path / "q")
    run_cli("experiments.quickstart", f"--workdir={workdir}", "--config.pretrain.train.steps=20",
            "--config.pretrain.train.eval_every=20", "--config.mcq.train.epochs=1", "--config.sft.train.epochs=1",
            timeout=900)
    with open(os.path.join(workdir, "results.json")) as f:
        rows = json.load(f)["rows"]
    assert [r["model"] for r in rows] == [
        "chance", "mini, domain-pretrained, zero-shot (option log-likelihood)",
        "mini, MCQ fine-tuning, domain-pretrained", "mini, MCQ fine-tuning, random init (no pretraining)",
        "mini, lora SFT, domain-pretrained"]
    assert rows[0]["dev_accuracy"] == 0.25 and all(_accuracy(r["test_accuracy"]) for r in rows)
    assert os.path.getsize(os.path.join(workdir, "loss.png")) > 10_000
    assert run_cli("experiments.quickstart", f"--workdir={workdir}", "--config.pretrain.train.steps=20",
                   "--config.pretrain.train.eval_every=20", "--config.mcq.train.epochs=1",
                   "--config.sft.train.epochs=1").stdout.count("done, skipped") == 6


def test_plan_fails_when_the_batch_does_not_fit_the_mesh():
    plan = _plan("biomedlm", **{"pretrain.train.batch_size": 1000})
    assert not plan.ok and not plan.stage("pretrain").ok and plan.stage("finetune/medqa").ok
    assert "must be divisible by mesh.data * mesh.fsdp = 64" in _stage(plan, "pretrain")["check"]


def test_plan_command_prints_the_plan_and_fails_when_a_stage_does_not_fit():
    ok = run_cli("experiments.biomedlm", "--config=configs/biomedlm.py:paper", "--workdir=runs/x", "--plan")
    bad = run_cli("experiments.biomedlm", "--config=configs/biomedlm.py:paper", "--workdir=runs/x", "--plan",
                  "--config.pretrain.train.batch_size=1000", check=False)
    assert bad.returncode == 1 and "ERROR" in bad.stdout and "ERROR" not in ok.stdout


SMOKE = [
    pytest.param("biomedlm", ["data", "pretrain", "finetune/medqa", "finetune/pubmedqa"], id="biomedlm"),
    # About 60 s each on 2 cores; its stages (continued pretraining from a converted base, SFT, CoT
    # evaluation) have their own tests in make test.
    pytest.param("meditron", ["data", "base", "pretrain", "sft", "eval"], id="meditron", marks=pytest.mark.slow),
    # The slowest: three fine-tuning runs and three evaluations (about 100 s on 2 cores).
    pytest.param("medalpaca", ["data", "base", "sft/full", "sft/lora", "sft/int8_lora", "eval/full", "eval/lora",
                               "eval/int8_lora"], id="medalpaca", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("experiment, stages", SMOKE)
def test_smoke_runs_end_to_end_and_a_rerun_skips_finished_stages(tmp_path, experiment, stages):
    workdir = str(tmp_path / experiment)
    args = (f"experiments.{experiment}", f"--config=configs/{experiment}.py:smoke", f"--workdir={workdir}")
    first = run_cli(*args, timeout=600)
    for i, name in enumerate(stages, 1):
        assert f"== [{i}/{len(stages)}] {name}: " in first.stdout
        assert os.path.exists(os.path.join(workdir, name, "stage.json"))
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(workdir, "results.md")) as f:
        table = f.read()
    _check_results[experiment](results, table)

    stamps = {name: os.path.getmtime(os.path.join(workdir, name, "stage.json")) for name in stages}
    second = run_cli(*args)
    assert second.stdout.count("done, skipped") == len(stages) and "finished in" not in second.stdout
    assert stamps == {name: os.path.getmtime(os.path.join(workdir, name, "stage.json")) for name in stages}
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f) == results


def _accuracy(x) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


def _check_biomedlm(results: dict, table: str) -> None:
    assert [(r["task"], r["paper"]) for r in results["rows"]] == [("medqa", 50.3), ("pubmedqa", 74.4)]
    assert all(_accuracy(r["test_accuracy"]) and r["n_test"] == 64 for r in results["rows"])
    assert results["pretrain"]["step"] == 10
    assert "| task | n test | ours | paper |" in table
    assert "| MedQA (USMLE, 4 options) style, synthetic world | 64 |" in table


def _check_meditron(results: dict, table: str) -> None:
    assert results["pretrain"]["step"] == 5 and results["base"]["step"] == 10
    assert _accuracy(results["sft"]["test_accuracy"])
    assert sorted(results["eval"]["medqa"]) == ["cot", "sc_cot", "top_token"]
    assert results["eval"]["medqa"]["sc_cot"]["n"] == 8
    assert "| task | n | top_token | cot | sc_cot | paper |" in table


def _check_medalpaca(results: dict, table: str) -> None:
    rows = {r["method"]: r for r in results["rows"]}
    assert list(rows) == ["full", "lora", "int8_lora"]
    assert rows["full"]["trainable_params"] == rows["full"]["total_params"]
    assert rows["lora"]["trainable_params"] == rows["int8_lora"]["trainable_params"] < rows["lora"]["total_params"]
    assert all(_accuracy(r["eval"]["medqa top_token"]) for r in rows.values())
    assert "| method | trainable params | SFT dev | SFT test | medqa generate | medqa top_token |" in table


_check_results = {"biomedlm": _check_biomedlm, "meditron": _check_meditron, "medalpaca": _check_medalpaca}


@pytest.mark.parametrize("experiment, args, expected", [
    ("biomedlm", ["--config=configs/biomedlm.py:paper", "--config.data.manual_dir=/no/such/pubmed",
                  "--config.data_root=/no/such/benchmarks"],
     ["data.manual_dir: /no/such/pubmed does not exist", "data_root: /no/such/benchmarks/medqa does not exist"]),
    ("meditron", ["--config=configs/meditron.py:paper"],
     ["pretrain.train.init_from is not set", "python -m experiments.convert"]),
    ("medalpaca", ["--config=configs/medalpaca.py:paper", "--config.init_checkpoint=/no/such/llama"],
     ["init_checkpoint: /no/such/llama/checkpoints does not exist", "data_root is not set"]),
    ("biomedlm", ["--stages=finetune"],
     ["which stage pretrain writes: run it first (--stages=pretrain)"]),
])
def test_missing_inputs_fail_before_anything_runs(tmp_path, experiment, args, expected):
    workdir = tmp_path / "run"
    proc = run_cli(f"experiments.{experiment}", f"--workdir={workdir}", *args, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: ")
    for text in expected:
        assert text in proc.stderr
    assert not workdir.exists()

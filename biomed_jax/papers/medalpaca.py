"""MedAlpaca (Han et al. 2023) as stages: instruction tuning by full fine-tuning, LoRA and 8-bit LoRA, each
evaluated zero-shot on the USMLE questions (experiments.medalpaca runs it)."""

from __future__ import annotations

import os

from biomed_jax import stages as S
from biomed_jax.papers import builders as B
from biomed_jax.kinds import MEDALPACA_METHODS


def _runs(cfg) -> list[str]:
    """The methods whose sft_<method> section the config has."""
    return [m for m in MEDALPACA_METHODS if f"sft_{m}" in cfg]


def build(cfg, workdir: str) -> list[S.Stage]:
    stages = []
    init, init_field = cfg.init_checkpoint, "init_checkpoint"
    if "data" in cfg:
        stages.append(B.data_stage(cfg.data, workdir, "synthetic world -> clean + dedup -> BPE tokenizer -> TFDS"))
    if "base" in cfg:
        base = cfg.base.copy_and_resolve_references()
        base.data.dir = base.data.dir or os.path.join(workdir, "data")
        stages.append(B.pretrain_stage("base", base, workdir, cfg.hardware,
                                       f"{base.preset} pretrained from scratch: the stand-in for LLaMA-7B"))
        if not init:
            init, init_field = os.path.join(workdir, "base"), "base"
    root = B.benchmarks_root(cfg, workdir)
    for method in _runs(cfg):
        field = f"sft_{method}"
        sft = cfg[field].copy_and_resolve_references()
        own_init, own_root = sft.init_checkpoint, sft.data_root
        sft.init_checkpoint, sft.data_root = own_init or init, own_root or root
        stages.append(B.finetune_stage(
            f"sft/{method}", sft, "sft", workdir, cfg.hardware,
            f"instruction tuning, {method}, on {sft.sft.instructions or sft.task.kind}", "sft",
            f"{field}.init_checkpoint" if own_init else init_field, f"{field}.data_root" if own_root else "data_root"))
    evaluation = cfg.eval.copy_and_resolve_references()
    root_field = "eval.data_root" if evaluation.data_root else "data_root"
    evaluation.data_root = evaluation.data_root or root
    for method in _runs(cfg):
        stages.append(B.eval_stage(f"eval/{method}", evaluation, os.path.join(workdir, "sft", method, "best"),
                                   workdir, f"{evaluation.suite} zero-shot on the {method} model", "eval",
                                   root_field, checkpoint_field=f"sft_{method}"))
    return stages


def report(cfg, workdir: str, summaries: dict) -> None:
    columns = [(task, m.strip()) for task, t in cfg.eval.tasks.items() for m in t.methods.split(",") if m.strip()]
    rows = []
    for method in _runs(cfg):
        sft, ev = summaries.get(f"sft/{method}", {}), summaries.get(f"eval/{method}", {})
        rows.append(dict(method=method, trainable_params=sft.get("trainable_params"),
                         total_params=sft.get("total_params"), sft_dev_accuracy=sft.get("dev_accuracy"),
                         sft_test_accuracy=sft.get("test_accuracy"),
                         eval={f"{task} {m}": ev.get(task, {}).get(m, {}).get("accuracy") for task, m in columns}))
    world = B.uses_world(cfg)
    lines = [f"# MedAlpaca: configs/medalpaca.py:{cfg.preset}", "",
             "Instruction tuning by method: trainable parameters, the SFT run's dev/test accuracy (option "
             f"log-likelihood, best epoch) and the zero-shot {cfg.eval.suite} evaluation (accuracy %).", ""]
    if world:
        lines += ["Smoke run: a tiny model on the synthetic world; the shape of the comparison, not its numbers.",
                  ""]
    header = ["method", "trainable params", "SFT dev", "SFT test", *[f"{t} {m}" for t, m in columns]]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in rows:
        params = (f"{r['trainable_params']:,} of {r['total_params']:,}" if r["trainable_params"] is not None
                  else "—")
        cells = [r["method"], params, S.percent(r["sft_dev_accuracy"]), S.percent(r["sft_test_accuracy"]),
                 *[S.percent(v) for v in r["eval"].values()]]
        lines.append("| " + " | ".join(cells) + " |")
    S.write_results(workdir, "\n".join(lines) + "\n", {"experiment": "medalpaca", "preset": cfg.preset, "rows": rows})

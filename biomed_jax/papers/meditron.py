"""MEDITRON (Chen et al. 2023) as stages: the GAP-Replay data, continued pretraining of Llama-2, SFT on a
benchmark's train set, and top-token / CoT / self-consistency evaluation (experiments.meditron runs it)."""

from __future__ import annotations

import os

from biomed_jax import stages as S
from biomed_jax.papers import builders as B


def build(cfg, workdir: str) -> list[S.Stage]:
    data_folder = os.path.join(workdir, "data")
    pretrain = cfg.pretrain.copy_and_resolve_references()
    data = cfg.data.copy_and_resolve_references()
    stages = []
    if "base" in cfg:
        # The smoke run trains its own tokenizer and base model on the world; continued pretraining starts there.
        pretrain.train.init_from = pretrain.train.init_from or os.path.join(workdir, "base")
        stages.append(B.data_stage(data, workdir, "synthetic world -> clean + dedup -> BPE tokenizer -> TFDS"))
        base = cfg.base.copy_and_resolve_references()
        base.data.dir = base.data.dir or data_folder
        stages.append(B.pretrain_stage("base", base, workdir, cfg.hardware,
                                       f"{base.preset} pretrained from scratch: the stand-in for a converted "
                                       "Llama-2 checkpoint"))
    else:
        # Continued pretraining reads token ids of the base model's vocabulary.
        if not data.tokenizer.path and pretrain.train.init_from:
            data.tokenizer.path = os.path.join(pretrain.train.init_from, "tokenizer.json")
        stages.append(B.data_stage(data, workdir, "GAP-Replay -> clean + dedup -> TFDS, base model's tokenizer",
                                   tokenizer_what="the base model's tokenizer.json (default: "
                                                  "pretrain.train.init_from/tokenizer.json)"))
    pretrain.data.dir = pretrain.data.dir or data_folder
    stages.append(B.pretrain_stage(
        "pretrain", pretrain, workdir, cfg.hardware, "continued pretraining of "
        + (pretrain.train.init_from or "pretrain.train.init_from (not set)"),
        init_what=f"a converted Llama-2 run directory ({B.CONVERT_HINT})"))

    root = B.benchmarks_root(cfg, workdir)
    sft = cfg.sft.copy_and_resolve_references()
    init_field = "sft.init_checkpoint" if sft.init_checkpoint else "pretrain"
    root_field = "sft.data_root" if sft.data_root else "data_root"
    sft.init_checkpoint = sft.init_checkpoint or os.path.join(workdir, "pretrain")
    sft.data_root = sft.data_root or root
    stages.append(B.finetune_stage("sft", sft, "sft", workdir, cfg.hardware,
                                   f"supervised fine-tuning on {sft.task.kind} train ({sft.method}, "
                                   f"{sft.sft.style} prompts)", "sft", init_field, root_field))

    evaluation = cfg.eval.copy_and_resolve_references()
    root_field = "eval.data_root" if evaluation.data_root else "data_root"
    evaluation.data_root = evaluation.data_root or root
    stages.append(B.eval_stage("eval", evaluation, os.path.join(workdir, "sft", "best"), workdir,
                               f"the {evaluation.suite} suite on the fine-tuned model", "eval", root_field,
                               checkpoint_field="sft"))
    return stages


def report(cfg, workdir: str, summaries: dict) -> None:
    lines = [f"# MEDITRON: configs/meditron.py:{cfg.preset}", ""]
    for name in ("base", "pretrain"):
        if name in summaries:
            lines.append("- " + S.pretrain_line(name, cfg[name], summaries[name]))
    sft = summaries.get("sft")
    if sft:
        lines.append(f"- sft ({sft['method']}, {sft['task']}): dev {S.percent(sft['dev_accuracy'])}, test "
                     f"{S.percent(sft['test_accuracy'])} (accuracy %, option log-likelihood, best epoch "
                     f"{sft['best_epoch']})")
    lines.append("")
    table_path = os.path.join(workdir, "eval", "results.md")
    if "eval" in summaries and os.path.exists(table_path):
        with open(table_path) as f:
            lines += ["Evaluation of the fine-tuned model (accuracy % ± standard error):", "", f.read()]
    S.write_results(workdir, "\n".join(lines) + "\n",
                    {"experiment": "meditron", "preset": cfg.preset,
                     **{name: summaries.get(name) for name in ("base", "pretrain", "sft", "eval")}})

"""BioMedLM (Bolton et al. 2024) as stages: corpus, pretraining of the 2.7B GPT-2, a fine-tuned classifier
per task, and the paper's table (experiments.biomedlm runs it)."""

from __future__ import annotations

import os

from biomed_jax import stages as S
from biomed_jax.papers import builders as B
from biomed_jax.kinds import CLASSIFIER_KINDS, FinetuneKind


TASK_LABELS = {"medqa": "MedQA (USMLE, 4 options)", "medmcqa": "MedMCQA (dev)",
               "mmlu_medical_genetics": "MMLU medical genetics", "pubmedqa": "PubMedQA", "bioasq": "BioASQ"}


def build(cfg, workdir: str) -> list[S.Stage]:
    stages = []
    pretrain = cfg.pretrain.copy_and_resolve_references()
    if "data" in cfg:
        stages.append(B.data_stage(cfg.data, workdir, "corpus -> clean + dedup -> BPE tokenizer -> TFDS dataset"))
        pretrain.data.dir = pretrain.data.dir or os.path.join(workdir, "data")
    stages.append(B.pretrain_stage("pretrain", pretrain, workdir, cfg.hardware,
                                   f"pretraining {pretrain.preset} from scratch"))
    root = B.benchmarks_root(cfg, workdir)
    for kind in CLASSIFIER_KINDS:
        for task, section in cfg[kind].items():
            ft = section.copy_and_resolve_references()
            init_field = f"{kind}.{task}.init_checkpoint" if ft.init_checkpoint else "pretrain"
            root_field = f"{kind}.{task}.data_root" if ft.data_root else "data_root"
            ft.init_checkpoint = ft.init_checkpoint or os.path.join(workdir, "pretrain")
            ft.data_root = ft.data_root or root
            head = f", {ft.head} head" if kind == FinetuneKind.MCQ else ""
            stages.append(B.finetune_stage(
                f"finetune/{task}", ft, kind, workdir, cfg.hardware,
                f"{kind} fine-tuning on {task} ({ft.method}{head})", "finetune", init_field, root_field))
    return stages


def report(cfg, workdir: str, summaries: dict) -> None:
    world = B.uses_world(cfg)
    suffix = " style, synthetic world" if world else ""
    rows = []
    for kind in CLASSIFIER_KINDS:
        for task in cfg[kind]:
            r = summaries.get(f"finetune/{task}", {})
            rows.append(dict(task=task, kind=kind, label=TASK_LABELS[task] + suffix,
                             n_test=r.get("n_test"), dev_accuracy=r.get("dev_accuracy"),
                             test_accuracy=r.get("test_accuracy"), paper=cfg.paper_accuracy.get(task)))
    pre = summaries.get("pretrain")
    lines = [f"# BioMedLM: configs/biomedlm.py:{cfg.preset}", ""]
    if pre:
        lines += [S.pretrain_line("Pretraining", cfg.pretrain, pre) + ".", ""]
    lines += ["Fine-tuned classifiers: test accuracy (%) at the epoch with the best dev accuracy. "
              "Paper: Bolton et al. 2024, BioMedLM fine-tuned.", ""]
    if world:
        lines += ["Smoke run: questions of the synthetic world answered by a tiny model; the paper column is "
                  "there for the table's shape, not for comparison.", ""]
    lines += ["| task | n test | ours | paper |", "|---|---:|---:|---:|"]
    lines += [f"| {r['label']} | {r['n_test'] or '—'} | {S.percent(r['test_accuracy'])} | "
              f"{r['paper'] if r['paper'] is not None else '—'} |" for r in rows]
    S.write_results(workdir, "\n".join(lines) + "\n",
                    {"experiment": "biomedlm", "preset": cfg.preset, "pretrain": pre, "rows": rows})

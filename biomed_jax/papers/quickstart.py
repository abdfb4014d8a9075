"""`make quickstart` as stages: the BioMedLM story in miniature on the synthetic world, on a laptop CPU.

synthetic world -> tokenizer -> dataset -> pretraining of the mini GPT-2 -> zero-shot, MCQ fine-tuning
(from the pretrained model and from a random init, the no-domain-pretraining baseline) and LoRA SFT ->
results.md, results.json and loss.png (experiments.quickstart runs it; configs/quickstart.py)."""

from __future__ import annotations

import json
import os

import ml_collections

from biomed_jax import stages as S
from biomed_jax.papers import builders as B
from biomed_jax.data.prepare import world_folder
from biomed_jax.kinds import FinetuneKind
from biomed_jax.run_dir import read_json

ZERO_SHOT_PROMPT = "Question: {question}\nAnswer:"


def build(cfg, workdir: str) -> list[S.Stage]:
    world = world_folder(cfg.data, os.path.join(workdir, "data"))
    pretrain_dir = os.path.join(workdir, "pretrain")
    pretrain = cfg.pretrain.copy_and_resolve_references()
    pretrain.data.dir = os.path.join(workdir, "data")
    stages = [
        B.data_stage(cfg.data, workdir, "synthetic world -> clean + dedup -> BPE tokenizer -> TFDS token dataset"),
        B.pretrain_stage("pretrain", pretrain, workdir, cfg.hardware,
                         f"domain pretraining: {pretrain.preset} GPT-2, {pretrain.train.steps} steps"),
        _zero_shot_stage(pretrain_dir, world, workdir),
    ]
    for name, init in (("mcq", pretrain_dir), ("mcq_random_init", "")):
        mcq = cfg.mcq.copy_and_resolve_references()
        mcq.data_root = world
        if init:
            mcq.init_checkpoint = init
        else:
            mcq.model, mcq.tokenizer = cfg.pretrain.preset, os.path.join(pretrain_dir, "tokenizer.json")
        what = "the domain-pretrained model" if init else "a random init (the no-pretraining baseline)"
        stages.append(B.finetune_stage(name, mcq, FinetuneKind.MCQ, workdir, cfg.hardware,
                                       f"MCQ fine-tuning of {what}", "finetune", "pretrain", "data"))
    sft = cfg.sft.copy_and_resolve_references()
    sft.data_root, sft.init_checkpoint = world, pretrain_dir
    stages.append(B.finetune_stage(f"sft_{sft.method}", sft, FinetuneKind.SFT, workdir, cfg.hardware,
                                   f"{sft.method} instruction tuning of the domain-pretrained model", "finetune",
                                   "pretrain", "data"))
    return stages


def _zero_shot_stage(checkpoint: str, world: str, workdir: str) -> S.Stage:
    section = ml_collections.ConfigDict(dict(checkpoint=checkpoint, world=world, batch_size=32, max_len=128,
                                             prompt=ZERO_SHOT_PROMPT))
    return S.Stage(
        group="eval", name="zero_shot", title="zero-shot (log-likelihood of each option) on the world's "
        "MedQA-style questions", section=section, call=_zero_shot,
        command=B.command_line(["python", "-m", "experiments.quickstart", f"--workdir={workdir}", "--stages=zero_shot"]),
        settings=[("checkpoint", checkpoint), ("questions", f"{world}/medqa dev and test; prompt {ZERO_SHOT_PROMPT!r}")],
        inputs=[S.Input("pretrain", os.path.join(checkpoint, "checkpoints"), "the pretrained run"),
                S.Input("data", os.path.join(world, "medqa"), "the world's MedQA-style questions")])


def _zero_shot(section, folder: str) -> dict:
    """Loglik accuracy of the pretrained model on the world's MedQA dev and test, before fine-tuning."""
    from biomed_jax.data.benchmarks import load_medqa, render
    from biomed_jax.evaluation.harness import load_eval_model, run_loglik

    model = load_eval_model(section.checkpoint, batch_size=section.batch_size, max_len=section.max_len)
    result = {}
    for split in ("dev", "test"):
        questions, _ = load_medqa(os.path.join(section.world, "medqa"), split)
        predictions = run_loglik(model, questions, [render(section.prompt, q) for q in questions])
        result[f"{split}_accuracy"] = sum(p["prediction"] == p["gold"] for p in predictions) / len(predictions)
    return result


def report(cfg, workdir: str, summaries: dict) -> None:
    labels = {"mcq": "MCQ fine-tuning, domain-pretrained", "mcq_random_init": "MCQ fine-tuning, random init "
              "(no pretraining)", f"sft_{cfg.sft.method}": f"{cfg.sft.method} SFT, domain-pretrained"}
    runs = {label: summaries[name] for name, label in labels.items() if name in summaries}
    if "pretrain" not in summaries or "zero_shot" not in summaries or len(runs) < len(labels):
        print(f"stages not finished yet: {[n for n in ['pretrain', 'zero_shot', *labels] if n not in summaries]}")
        return
    first, zero_shot, pre = next(iter(runs.values())), summaries["zero_shot"], summaries["pretrain"]
    rows = [("chance", first["chance"], first["chance"]),
            ("mini, domain-pretrained, zero-shot (option log-likelihood)", zero_shot["dev_accuracy"],
             zero_shot["test_accuracy"])]
    rows += [(f"mini, {label}", r["dev_accuracy"], r["test_accuracy"]) for label, r in runs.items()]
    minutes = sum(s.get("seconds", 0) for s in summaries.values()) / 60
    text = "\n".join([
        "# biomed_jax quickstart: BioMedLM in miniature",
        "",
        f"Synthetic world questions (dev {first['n_dev']}, test {first['n_test']}; facts asked in dev/test are "
        "never asked in train, so fine-tuning cannot memorise answers: only what pretraining read helps). "
        "Accuracy in %; fine-tuned rows at the epoch with the best dev accuracy.",
        "",
        "| model | MedQA-style dev | MedQA-style test |", "|---|---:|---:|",
        *[f"| {name} | {100 * dev:.1f} | {100 * test:.1f} |" for name, dev, test in rows],
        "",
        f"Pretraining: {pre['step']} steps, validation loss {pre['val_loss']:.3f}. Loss curve and dev accuracy "
        f"per epoch: loss.png. Total time {minutes:.1f} min (the stages' own times).",
        ""])
    S.write_results(workdir, text, {"rows": [dict(model=n, dev_accuracy=d, test_accuracy=t) for n, d, t in rows],
                                    "pretrain_steps": pre["step"], "val_loss": pre["val_loss"], "minutes": minutes})
    evaluations = {label: read_json(os.path.join(workdir, name, "results.json"), "fine-tuning results")["evaluations"]
                   for name, label in labels.items()}
    _plot(os.path.join(workdir, "pretrain"), evaluations, first["chance"], os.path.join(workdir, "loss.png"))
    print(f"wrote {workdir}/loss.png")


def _plot(pretrain_dir: str, evaluations: dict, chance: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(pretrain_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    left.plot(*zip(*train), label="train")
    if val:
        left.plot(*zip(*val), "o-", label="validation")
    left.set(title="domain pretraining (mini GPT-2)", xlabel="step", ylabel="loss", yscale="log")
    left.legend()
    for label, evals in evaluations.items():
        right.plot([e["epoch"] for e in evals], [100 * e["dev_accuracy"] for e in evals], "o-", label=label)
    right.axhline(100 * chance, color="gray", ls="--", label="chance")
    right.set_xticks(range(1, max(round(e[-1]["epoch"]) for e in evaluations.values()) + 1))
    right.set(title="fine-tuning: MedQA-style dev accuracy", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100))
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

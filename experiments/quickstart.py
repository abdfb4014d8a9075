"""The whole method on a laptop: synthetic world -> tokenizer -> dataset -> pretraining -> zero-shot,
MCQ fine-tuning, LoRA SFT and a no-domain-pretraining baseline -> a BioMedLM-shaped results table.

    python -m experiments.quickstart --workdir=runs/quickstart     (what `make quickstart` runs)

Every stage writes into its own folder under WORKDIR and is skipped (or resumed) when rerun. At the end
WORKDIR holds results.md, results.json and loss.png (pretraining loss, fine-tuning dev accuracy).
See configs/quickstart.py for the settings.
"""

import json
import os
import time

from absl import flags

from biomed_jax import cli
from biomed_jax.kinds import FinetuneKind
from biomed_jax.logs import quiet_library_logs
from biomed_jax.run_dir import read_json, write_json

_CONFIG = cli.define_config_file("config", "configs/quickstart.py", "The quickstart config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Where every stage writes.")


def _stage(name: str):
    print(f"\n== {name}", flush=True)
    return time.time()


def _zero_shot(run_dir: str, world: str, out_path: str) -> dict:
    """Loglik accuracy of the pretrained model on the world's MedQA dev and test, before fine-tuning."""
    if os.path.exists(out_path):
        return read_json(out_path, "zero-shot results")
    from biomed_jax.data.benchmarks import load_medqa, render
    from biomed_jax.evaluation.harness import load_eval_model, run_loglik

    model = load_eval_model(run_dir, batch_size=32, max_len=128)
    result = {}
    for split in ("dev", "test"):
        questions, _ = load_medqa(os.path.join(world, "medqa"), split)
        predictions = run_loglik(model, questions, [render("Question: {question}\nAnswer:", q) for q in questions])
        result[f"{split}_accuracy"] = sum(p["prediction"] == p["gold"] for p in predictions) / len(predictions)
    write_json(out_path, result)
    return result


def _plot(pretrain_dir: str, runs: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in open(os.path.join(pretrain_dir, "metrics.jsonl"))]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    left.plot(*zip(*train), label="train")
    if val:
        left.plot(*zip(*val), "o-", label="validation")
    left.set(title="domain pretraining (mini GPT-2)", xlabel="step", ylabel="loss", yscale="log")
    left.legend()
    for label, results in runs.items():
        evaluations = results["evaluations"]
        right.plot([e["epoch"] for e in evaluations], [100 * e["dev_accuracy"] for e in evaluations], "o-",
                   label=label)
    right.axhline(100 * next(iter(runs.values()))["chance"], color="gray", ls="--", label="chance")
    right.set_xticks(range(1, max(round(r["evaluations"][-1]["epoch"]) for r in runs.values()) + 1))
    right.set(title="fine-tuning: MedQA-style dev accuracy", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100))
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    quiet_library_logs()
    from biomed_jax.data.prepare import prepare, world_folder
    from biomed_jax.tasks.finetuning import run as finetune
    from biomed_jax.tasks.pretraining import run as pretrain

    cfg, workdir = _CONFIG.value, os.path.abspath(_WORKDIR.value)
    t0 = time.time()
    data_dir, pretrain_dir = os.path.join(workdir, "data"), os.path.join(workdir, "pretrain")
    world = world_folder(cfg.data, data_dir)

    _stage("1/5 data: synthetic world -> clean + dedup -> BPE tokenizer -> TFDS token dataset")
    prepare(cfg.data, data_dir)

    _stage(f"2/5 domain pretraining: mini GPT-2, {cfg.pretrain.train.steps} steps")
    cfg.pretrain.data.dir = data_dir
    summary = pretrain(cfg.pretrain, pretrain_dir)
    val_loss = summary.evaluations[-1]["val_loss"]
    print(f"step {summary.step}; validation loss {val_loss}")

    _stage("3/5 zero-shot (log-likelihood of each option) on the world's MedQA-style questions")
    zero_shot = _zero_shot(pretrain_dir, world, os.path.join(workdir, "zero_shot.json"))
    print(zero_shot)

    _stage("4/5 MCQ fine-tuning: from the domain-pretrained model and from a random init (baseline)")
    runs = {}
    for label, init in (("domain-pretrained", pretrain_dir), ("random init (no pretraining)", "")):
        mcq = cfg.mcq.copy_and_resolve_references()
        mcq.data_root = world
        if init:
            mcq.init_checkpoint = init
        else:
            mcq.model, mcq.tokenizer = cfg.pretrain.preset, os.path.join(pretrain_dir, "tokenizer.json")
        runs[f"MCQ fine-tuning, {label}"] = finetune(
            mcq, os.path.join(workdir, "mcq" if init else "mcq_random_init"), FinetuneKind.MCQ)

    _stage("5/5 LoRA instruction tuning of the domain-pretrained model")
    sft = cfg.sft.copy_and_resolve_references()
    sft.data_root, sft.init_checkpoint = world, pretrain_dir
    runs[f"{sft.method} SFT, domain-pretrained"] = finetune(sft, os.path.join(workdir, f"sft_{sft.method}"),
                                                            FinetuneKind.SFT)

    chance = next(iter(runs.values()))["chance"]
    rows = [("chance", chance, chance),
            ("mini, domain-pretrained, zero-shot (option log-likelihood)", zero_shot["dev_accuracy"],
             zero_shot["test_accuracy"])]
    rows += [(f"mini, {label}", r["dev_accuracy"], r["test_accuracy"]) for label, r in runs.items()]
    n_dev, n_test = next(iter(runs.values()))["n_dev"], next(iter(runs.values()))["n_test"]
    table = ["| model | MedQA-style dev | MedQA-style test |", "|---|---:|---:|"]
    table += [f"| {name} | {100 * dev:.1f} | {100 * test:.1f} |" for name, dev, test in rows]
    minutes = (time.time() - t0) / 60
    text = "\n".join([
        "# biomed_jax quickstart: BioMedLM in miniature",
        "",
        f"Synthetic world questions (dev {n_dev}, test {n_test}; facts asked in dev/test are never asked in "
        "train, so fine-tuning cannot memorise answers: only what pretraining read helps). Accuracy in %; "
        "fine-tuned rows at the epoch with the best dev accuracy.",
        "",
        *table,
        "",
        f"Pretraining: {summary.step} steps, validation loss {val_loss:.3f}. Loss curve and dev accuracy "
        f"per epoch: loss.png. Total time {minutes:.1f} min.",
        ""])
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(text)
    write_json(os.path.join(workdir, "results.json"),
               {"rows": [dict(model=n, dev_accuracy=d, test_accuracy=t) for n, d, t in rows],
                "pretrain_steps": summary.step, "val_loss": val_loss, "minutes": minutes})
    _plot(pretrain_dir, runs, os.path.join(workdir, "loss.png"))
    print("\n" + text)
    print(f"wrote {workdir}/results.md, results.json, loss.png")


if __name__ == "__main__":
    cli.run(main)

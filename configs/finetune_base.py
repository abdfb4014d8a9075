"""The fields every fine-tuning config shares (configs/finetune_mcq.py, _seqcls.py, _sft.py build on it).

    init_checkpoint   a run directory to start from (pretrain, convert, or a fine-tuning best/);
                      empty = a random init of `model` (the baseline the papers' claim is measured against)
    method            full | lora | int8_lora | nf4_lora (see biomed_jax/adapt/lora.py)
    task              the benchmark (a biomed_jax.data.benchmarks kind), its path under data_root, splits
                      and prompt template; dev_fraction carves dev from train when dev_split is empty;
                      limit > 0 keeps that many questions of each split, a sample drawn from train.seed
                      and stratified by answer label (never the file's first questions)
    data_root         where task paths point; empty with a `world` section = generate the synthetic world
    max_len           tokens per example, at most the model's context (checked before anything compiles)
    train             epochs; batch_size, the effective batch of each update, split into `microbatches`
                      (gradient accumulation); eval_every (0: evaluate at epoch ends only); seed
    checkpoint, logging, distributed, mesh
                      as in pretraining (configs/run_sections.py): the same trainer runs both
"""

from __future__ import annotations

import ml_collections

from biomed_jax.synthetic.defaults import QUICKSTART_WORLD, WORLD_DEFAULTS
from configs import run_sections


def task(kind: str, path: str, template: str, train_split: str = "train", dev_split: str = "dev",
         test_split: str = "test", dev_fraction: float = 0.0, test_fraction: float = 0.0, classes: tuple = (), limit: int = 0,
         options: dict | None = None) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        kind=kind, path=path, template=template, train_split=train_split, dev_split=dev_split,
        test_split=test_split, dev_fraction=dev_fraction, test_fraction=test_fraction, classes=classes, limit=limit,
        options=ml_collections.ConfigDict(options or {})))


# What differs between the synthetic presets (a tiny model on the generated world) and the released
# benchmarks' (a converted paper-scale model).
_SYNTHETIC = dict(max_len=128, epochs=4, batch_size=16, log_every=20, learning_rate=3e-4, warmup_steps=20,
                  checkpoint_every=50)
_RELEASED = dict(max_len=512, epochs=3, batch_size=32, log_every=10, learning_rate=2e-5, warmup_steps=100,
                 checkpoint_every=500)


def base_config(synthetic: bool) -> ml_collections.ConfigDict:
    run = _SYNTHETIC if synthetic else _RELEASED
    cfg = ml_collections.ConfigDict()
    cfg.init_checkpoint = ""
    cfg.model = "tiny"                 # random init only: a configs/models.py preset
    cfg.tokenizer = ""                 # default: INIT_CHECKPOINT/tokenizer.json
    cfg.remat = ""                     # override the checkpoint's remat policy (e.g. full for 7B)
    cfg.method = "full"
    cfg.lora = ml_collections.ConfigDict(dict(rank=8, alpha=16.0, dropout=0.0, targets="attention_mlp"))
    cfg.data_root = ""
    # The synthetic presets generate the same world as configs/data.py:quickstart (so the questions are
    # about the facts the pretraining corpus states). After preparing configs/data.py:synthetic instead,
    # pass --config.data_root=DATA_DIR/biomed_work/synthetic/manual/synthetic_world.
    if synthetic:
        cfg.world = ml_collections.ConfigDict(dict(WORLD_DEFAULTS, **QUICKSTART_WORLD))
    cfg.max_len = run["max_len"]       # tokens per example; at most the model's context
    cfg.mesh = run_sections.mesh()
    cfg.train = ml_collections.ConfigDict(dict(
        epochs=run["epochs"],
        batch_size=run["batch_size"],         # global, in examples: the effective batch of each update
        microbatches=1,                       # gradient accumulation: batch_size is split into this many
        eval_batch_size=32,
        eval_every=0,                         # also evaluate every n steps (0: at epoch ends only)
        seed=0, log_every=run["log_every"]))
    cfg.optim = run_sections.optim(run["learning_rate"], run["warmup_steps"], schedule="linear",
                                   final_lr_fraction=0.0, b2=0.999)
    cfg.checkpoint = run_sections.checkpoint(every_steps=run["checkpoint_every"])
    cfg.logging = run_sections.logging(tensorboard=False)
    cfg.distributed = run_sections.distributed()
    return cfg

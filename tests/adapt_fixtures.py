"""A toy multiple-choice world for the adaptation tests: the right option is the word the question names.

A tiny random model can learn it in a few hundred steps on CPU, so tests can check learning, not just
that the code runs.
"""

from __future__ import annotations

import json
import os

import numpy as np

from biomed_jax.data.tokenizer import train_bpe

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def write_toy_world(root: str, n_train: int = 256, n_dev: int = 32, n_test: int = 32, seed: int = 0,
                    option_counts: tuple[int, ...] = (4,)) -> str:
    """medqa/{train,dev,test}.jsonl, medalpaca/toy.json and tokenizer.json under `root`; returns root."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "medqa"), exist_ok=True)
    os.makedirs(os.path.join(root, "medalpaca"), exist_ok=True)
    texts = []
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        with open(os.path.join(root, "medqa", f"{split}.jsonl"), "w") as f:
            for i in range(n):
                k = option_counts[i % len(option_counts)]
                options = [str(w) for w in rng.choice(WORDS, size=k, replace=False)]
                answer = int(rng.integers(k))
                letters = "ABCDE"[:k]
                record = {"question": f"The code word is {options[answer]}. Which is the code word?",
                          "options": dict(zip(letters, options)), "answer_idx": letters[answer],
                          "answer": options[answer], "meta_info": "toy"}
                f.write(json.dumps(record) + "\n")
                texts.append(record["question"] + " " + " ".join(options))
    instructions = [{"instruction": "Repeat the code word.", "input": f"The code word is {w}.", "output": w}
                    for w in WORDS for _ in range(4)]
    with open(os.path.join(root, "medalpaca", "toy.json"), "w") as f:
        json.dump(instructions, f)
    tokenizer = train_bpe(texts * 4 + [json.dumps(instructions)], vocab_size=400)
    tokenizer.save(os.path.join(root, "tokenizer.json"))
    return root


def toy_config(module: str, root: str, **overrides):
    """configs/<module>.py:synthetic pointed at the toy world, random init of the tiny model."""
    import importlib

    cfg = importlib.import_module(f"configs.{module}").get_config("synthetic")
    cfg.data_root = root
    cfg.tokenizer = os.path.join(root, "tokenizer.json")
    cfg.max_len = 32
    cfg.train.batch_size = 16
    cfg.train.eval_batch_size = 16
    cfg.train.epochs = 3
    cfg.optim.learning_rate = 3e-3
    cfg.optim.warmup_steps = 5
    for key, value in overrides.items():
        section, _, field = key.rpartition(".")
        (cfg[section] if section else cfg)[field] = value
    return cfg

"""The run directory (biomed_jax.run_dir): what every tool that reads or writes a trained model goes through.

save_run then load_run gives back the params, step, template, the tokenizer's special ids and a
classifier's extra tree; saving over a run replaces it whole or not at all; a folder built with other
settings is refused naming the field; JSON is never half written; a path that is no run is one line.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from biomed_jax import run_dir
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import init_params
from configs.models import model_preset

VOCAB = ["w0", "w1", "w2", "<s>", "</s>", "<|endoftext|>"]


@pytest.fixture(scope="module")
def model():
    cfg = ModelConfig.from_dict(dict(model_preset("tiny"), vocab_size=64, dtype="float32"))
    init = jax.jit(init_params, static_argnums=0)
    return cfg, init(cfg, jax.random.key(0)), init(cfg, jax.random.key(1))


@pytest.fixture
def tokenizer_dir(tmp_path):
    """A tokenizer.json whose tokenizer_config.json names "</s>" as end of text (not "<|endoftext|>", which
    the usual names would pick first) and "<s>" as BOS, as a converted Llama's does."""
    from tokenizers import Tokenizer, models

    folder = tmp_path / "tok"
    folder.mkdir()
    vocab = {w: i for i, w in enumerate(VOCAB)}
    Tokenizer(models.WordLevel(vocab, unk_token="w0")).save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>",
                                                              "eos_token": {"content": "</s>", "special": True}}))
    return str(folder)


def _equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_save_then_load_round_trips_params_step_template_special_ids_and_extra_trees(tmp_path, model, tokenizer_dir):
    cfg, params, _ = model
    head = {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4), "bias": np.ones(4, np.float32)}
    template = {"style": "medalpaca", "prompt": "Question: {question}\nAnswer:"}
    path = str(tmp_path / "run")
    run_dir.save_run(path, {"params": params, "head": head}, {"model": cfg.to_dict(), "task": "mcq"},
                     tokenizer_from=os.path.join(tokenizer_dir, "tokenizer.json"), step=7, template=template)
    assert {"checkpoints", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(path))
    assert not os.path.exists(path + ".tmp") and not os.path.exists(path + ".old")

    run = run_dir.load_run(path, extra=("head",))
    assert run.step == 7 and run.model_cfg == cfg and run.meta["task"] == "mcq" and run.template == template
    _equal(run.params, params)
    _equal(run.extra["head"], head)
    assert run.eos_id == VOCAB.index("</s>") and run.bos_id == VOCAB.index("<s>")
    assert run.tokenizer.token_to_id("w2") == 2 and run.tokenizer_path == os.path.join(path, "tokenizer.json")
    # Params are placed over every device by default (DEFAULT_MESH: all of them as FSDP).
    assert {d for leaf in jax.tree.leaves(run.params) for d in leaf.sharding.device_set} == set(jax.devices())

    described = run_dir.load_run(path, params=False)
    assert described.params is None and described.extra == {} and described.step == 7
    assert run_dir.read_meta(path) == (7, run.meta)
    with pytest.raises(KeyError, match="'adapter'"):
        run_dir.load_run(path, params=False, extra=("adapter",))


def test_without_tokenizer_settings_special_ids_go_by_the_usual_names(tmp_path, model, tokenizer_dir):
    cfg, params, _ = model
    os.remove(os.path.join(tokenizer_dir, "tokenizer_config.json"))
    path = run_dir.save_run(str(tmp_path / "run"), {"params": params}, {"model": cfg.to_dict()},
                            tokenizer_from=os.path.join(tokenizer_dir, "tokenizer.json"))
    run = run_dir.load_run(path, params=False)
    assert run.eos_id == VOCAB.index("<|endoftext|>") and run.bos_id == VOCAB.index("<s>")
    assert run.template is None


def test_saving_over_a_run_replaces_it_whole_or_not_at_all(tmp_path, model, tokenizer_dir, monkeypatch):
    cfg, first, second = model
    path = str(tmp_path / "run")
    tokenizer_json = os.path.join(tokenizer_dir, "tokenizer.json")
    run_dir.save_run(path, {"params": first}, {"model": cfg.to_dict()}, tokenizer_from=tokenizer_json, step=1)

    # A failure after the new checkpoint is written (here: copying the tokenizer) leaves the old run as it was.
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(run_dir, "copy_tokenizer", fail)
    with pytest.raises(OSError, match="disk full"):
        run_dir.save_run(path, {"params": second}, {"model": cfg.to_dict()}, tokenizer_from=tokenizer_json, step=2)
    monkeypatch.undo()
    old = run_dir.load_run(path)
    assert old.step == 1
    _equal(old.params, first)

    run_dir.save_run(path, {"params": second}, {"model": cfg.to_dict()}, tokenizer_from=tokenizer_json, step=2)
    new = run_dir.load_run(path)
    assert new.step == 2 and os.listdir(os.path.join(path, "checkpoints")) == ["2"]
    _equal(new.params, second)
    assert sorted(os.listdir(tmp_path)) == ["run", "tok"]  # nothing left beside it


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(tmp_path, model):
    from tokenizers import Tokenizer, models

    cfg, params, _ = model
    big = tmp_path / "big.json"
    Tokenizer(models.WordLevel({f"w{i}": i for i in range(100)}, unk_token="w0")).save(str(big))
    path = run_dir.save_run(str(tmp_path / "run"), {"params": params}, {"model": cfg.to_dict()},
                            tokenizer_from=str(big))
    with pytest.raises(ValueError, match="100 tokens, more than the model's vocab_size 64"):
        run_dir.load_run(path, params=False)


def test_ensure_same_settings_records_then_refuses_naming_the_fields(tmp_path):
    path = str(tmp_path / "stage" / "settings.json")
    settings = {"train": {"steps": 10, "lr": 1e-3}, "seed": 0, "sources": ("a", "b")}
    run_dir.ensure_same_settings(path, settings, "a test stage")
    assert json.load(open(path)) == {"train": {"steps": 10, "lr": 1e-3}, "seed": 0, "sources": ["a", "b"]}
    run_dir.ensure_same_settings(path, settings, "a test stage")  # the same settings: accepted
    changed = {**settings, "train": {"steps": 20, "lr": 1e-3}, "extra": True}
    with pytest.raises(FileExistsError) as err:
        run_dir.ensure_same_settings(path, changed, "a test stage", hint="use a new --workdir")
    message = str(err.value)
    assert "holds a test stage built with other settings (extra, train.steps); use a new --workdir" in message
    assert "\n" not in message and "lr" not in message
    assert json.load(open(path))["train"]["steps"] == 10  # the record is not touched by a refused run


def test_write_json_never_leaves_a_partial_file(tmp_path):
    path = str(tmp_path / "deep" / "results.json")
    run_dir.write_json(path, {"accuracy": 0.5, "n": 10})
    assert run_dir.read_json(path) == {"accuracy": 0.5, "n": 10}

    class Unprintable:
        def __str__(self):
            raise RuntimeError("interrupted mid-write")

    with pytest.raises(RuntimeError, match="interrupted"):
        run_dir.write_json(path, {"accuracy": 0.75, "rows": [1, 2, 3] * 1000, "z": Unprintable()})
    assert run_dir.read_json(path) == {"accuracy": 0.5, "n": 10}  # the old file, whole

    (tmp_path / "bad.json").write_text('{"accuracy": 0.')
    with pytest.raises(ValueError, match="bad.json .results. is not valid JSON"):
        run_dir.read_json(str(tmp_path / "bad.json"), "results")


def test_require_run_is_one_line_naming_the_field(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        run_dir.require_run(str(tmp_path), "--config.init_checkpoint")
    message = str(err.value)
    assert message.startswith(f"--config.init_checkpoint={str(tmp_path)!r} is not a run directory")
    assert "\n" not in message
    (tmp_path / "checkpoints").mkdir()
    assert run_dir.require_run(str(tmp_path)) == str(tmp_path / "checkpoints")
    assert run_dir.require_run(str(tmp_path / "checkpoints")) == str(tmp_path / "checkpoints")
    with pytest.raises(FileNotFoundError, match="no finished checkpoint"):
        run_dir.read_meta(str(tmp_path))

"""Hugging Face interop: tiny random GPT-2 and Llama convert with logits parity, export, round trip."""

import json
import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

from biomed_jax.convert.hf_checkpoint import hf_to_jax, jax_to_hf  # noqa: E402
from biomed_jax.models.decoder import graphdef_and_abstract_params  # noqa: E402
from biomed_jax.run_dir import load_run  # noqa: E402
import helpers  # noqa: E402
from helpers import run_cli  # noqa: E402

VOCAB = 128


def tiny_hf_model(family):
    return helpers.tiny_hf_model(family, VOCAB)


def save_hf_folder(model, folder):
    """The model's safetensors and config, with a word-level tokenizer.json (a run directory carries one)."""
    from tokenizers import Tokenizer, models

    model.save_pretrained(folder, safe_serialization=True)
    vocab = {f"w{i}": i for i in range(VOCAB - 1)} | {"</s>": VOCAB - 1}
    Tokenizer(models.WordLevel(vocab, unk_token="w0")).save(os.path.join(folder, "tokenizer.json"))


def padded_batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCAB, size=(3, 12))
    mask = np.ones((3, 12), np.int64)
    mask[1, 8:] = 0  # right padding
    mask[2, :5] = 0  # left padding
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    return tokens, mask, positions


def hf_logits(model, tokens, mask, positions):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask),
                    position_ids=torch.tensor(positions))
    return out.logits.float().numpy()


def jax_logits(workdir, tokens, mask, positions):
    run = load_run(workdir)
    graphdef, _ = graphdef_and_abstract_params(run.model_cfg)
    model = nnx.merge(graphdef, run.params)
    # Padding is its own segment: real tokens never attend to it, whatever side it is on.
    return np.asarray(jax.jit(lambda t, p, s: model(t, p, s))(tokens, positions, mask.astype(np.int32)))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("scan_layers", [True, False])
def test_convert_parity_export_and_round_trip(tmp_path, family, scan_layers):
    hf_model = tiny_hf_model(family)
    hf_dir, jax_dir, out_dir, back_dir = (str(tmp_path / d) for d in ("hf", "jax", "out", "back"))
    save_hf_folder(hf_model, hf_dir)
    hf_to_jax(hf_dir, jax_dir, scan_layers=scan_layers, dtype="float32")

    tokens, mask, positions = padded_batch()
    expected = hf_logits(hf_model, tokens, mask, positions)
    real = mask.astype(bool)
    np.testing.assert_allclose(jax_logits(jax_dir, tokens, mask, positions)[real], expected[real], atol=1e-4)

    jax_to_hf(jax_dir, out_dir)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out_dir).eval()
    np.testing.assert_allclose(hf_logits(reloaded, tokens, mask, positions), expected, atol=1e-4)

    hf_to_jax(out_dir, back_dir, scan_layers=scan_layers, dtype="float32")
    first, again = load_run(jax_dir), load_run(back_dir)
    jax.tree.map(np.testing.assert_array_equal, first.params, again.params)
    assert first.eos_id == again.eos_id == VOCAB - 1  # the tokenizer went along both ways


def test_pickle_checkpoints_are_refused(tmp_path):
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"model_type": "gpt2"}, f)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="pickle"):
        hf_to_jax(str(tmp_path), str(tmp_path / "out"))


def test_shape_mismatch_names_the_tensor(tmp_path):
    hf_dir = str(tmp_path / "hf")
    save_hf_folder(tiny_hf_model("llama"), hf_dir)
    with open(os.path.join(hf_dir, "config.json")) as f:
        config = json.load(f)
    config["intermediate_size"] = 48
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match="mlp.gate_proj.weight"):
        hf_to_jax(hf_dir, str(tmp_path / "jax"))


def test_convert_command_writes_a_run_directory_and_copies_the_tokenizer(tmp_path):
    hf_dir, jax_dir, out_dir = (str(tmp_path / d) for d in ("hf", "jax", "out"))
    save_hf_folder(tiny_hf_model("gpt2"), hf_dir)
    with open(os.path.join(hf_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "w5"}, f)
    proc = run_cli("experiments.convert", "--direction=hf_to_jax", f"--src={hf_dir}", f"--workdir={jax_dir}")
    assert "2 layers, d_model 32, vocab 128" in proc.stdout
    assert {"checkpoints", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(jax_dir))
    assert load_run(jax_dir, params=False).eos_id == 5  # as tokenizer_config.json states
    run_cli("experiments.convert", "--direction=jax_to_hf", f"--workdir={jax_dir}", f"--dst={out_dir}")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(out_dir))

    # User mistakes are one line naming the folder or file, not a traceback.
    again = run_cli("experiments.convert", "--direction=hf_to_jax", f"--src={hf_dir}", f"--workdir={jax_dir}",
                    check=False)
    assert again.returncode != 0 and f"{jax_dir} already exists" in again.stderr and "Traceback" not in again.stderr
    os.remove(os.path.join(hf_dir, "tokenizer.json"))
    missing = run_cli("experiments.convert", "--direction=hf_to_jax", f"--src={hf_dir}",
                      f"--workdir={tmp_path / 'other'}", check=False)
    assert missing.returncode != 0 and os.path.join(hf_dir, "tokenizer.json") in missing.stderr
    assert "Traceback" not in missing.stderr and not os.path.exists(tmp_path / "other")

"""Small builders shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys

import ml_collections

from configs.pretrain import get_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(preset: str = "tiny", **sections) -> ml_collections.ConfigDict:
    """configs/pretrain.py:<preset> with float32 compute and overrides {section: {field: value}}."""
    cfg = get_config(preset)
    cfg.model.dtype = "float32"
    for section, values in sections.items():
        for key, value in values.items():
            cfg[section][key] = value
    return cfg


def run_cli(module: str, *args: str, devices: int = 1, timeout: int = 300, check: bool = True,
            env_extra: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m module args` from the repo root, as a user would (`input` is fed to stdin)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def tiny_hf_model(family: str, vocab: int = 128):
    """A tiny random transformers GPT2LMHeadModel ('gpt2') or LlamaForCausalLM (GQA, untied), in eval mode."""
    import torch
    import transformers

    torch.manual_seed(0)
    if family == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=64, tie_word_embeddings=False)
        model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # HF initialises some tensors to constants; randomise all so the test can fail
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


def tiny_run(folder, texts, vocab_size: int = 300, **model) -> str:
    """FOLDER/run: a random tiny GPT-2-family model (`model` overrides its fields) saved as a run directory,
    with a BPE tokenizer trained on `texts` (saved as FOLDER/tokenizer.json); returns the run's path."""
    import jax

    from biomed_jax.data.tokenizer import train_bpe
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.models.decoder import init_params
    from biomed_jax.run_dir import save_run
    from configs.models import model_preset

    tokenizer = train_bpe(list(texts), vocab_size=vocab_size, min_frequency=1)
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    cfg = ModelConfig.from_dict(dict(model_preset("tiny"), vocab_size=tokenizer.get_vocab_size(), dtype="float32",
                                     **model))
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(0))
    return save_run(os.path.join(folder, "run"), {"params": params}, {"model": cfg.to_dict()},
                    tokenizer_from=os.path.join(folder, "tokenizer.json"))


def word_tokenizer(vocab: int = 128):
    """A word-level tokenizer of w0 .. w{vocab-3}, [UNK] and <|endoftext|> (the last id): text a tiny
    random model's ids decode to, one word per token."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {f"w{i}": i for i in range(vocab - 2)}
    words.update({"[UNK]": vocab - 2, "<|endoftext|>": vocab - 1})
    tokenizer = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(["<|endoftext|>"])
    return tokenizer

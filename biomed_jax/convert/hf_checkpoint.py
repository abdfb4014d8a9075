"""Hugging Face model folders (config.json + safetensors + tokenizer.json) <-> biomed_jax run directories.

Reading is tensor by tensor: each parameter is assembled on the host (one parameter at a time)
and placed straight into its target sharding, so peak host memory stays near one copy of the
model. Only safetensors are read: pickle checkpoints (.bin/.pt/.pth) can run arbitrary code.
Runs are written and read through biomed_jax.run_dir (save_run / load_run), like every other tool's.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from biomed_jax import run_dir
from biomed_jax import sharding as shd
from biomed_jax.convert import weights as W
from biomed_jax.convert.hf_config import family_of, hf_config_from_model, model_config_from_hf
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params, unstack_layers
from biomed_jax.train.state import param_shardings

# Buffers some exports carry that are not parameters.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


class SafetensorsFolder:
    """Lazy, name-addressed access to the tensors of an HF folder (single file or sharded index)."""

    def __init__(self, folder: str):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"Hugging Face model folder {folder} does not exist")
        files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
        if not files:
            pickles = [p for pattern in PICKLE_PATTERNS for p in glob.glob(os.path.join(folder, pattern))]
            if pickles:
                raise ValueError(
                    f"{folder} has only pickle weights ({os.path.basename(pickles[0])}); biomed_jax does not load "
                    "pickles (unpickling can run arbitrary code). Convert them once with transformers: "
                    "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(out, safe_serialization=True)")
            raise FileNotFoundError(f"no *.safetensors files in {folder}")
        self.folder = folder
        self.file_of: dict[str, str] = {}
        for path in files:
            try:
                with safe_open(path, framework="flax") as f:
                    for name in f.keys():
                        self.file_of[name] = path
            except SafetensorError as err:
                raise ValueError(f"{path} is not a readable safetensors file ({err}): download or export it "
                                 f"again") from None

    def canonical(self, name: str) -> str | None:
        """The stored name of `name`, allowing the 'transformer.' prefix of GPT2LMHeadModel exports."""
        for candidate in (name, "transformer." + name):
            if candidate in self.file_of:
                return candidate
        return None

    def get(self, name: str) -> np.ndarray:
        stored = self.canonical(name)
        if stored is None:
            raise ValueError(f"tensor {name!r} is missing from the safetensors files of {self.folder}: they do not "
                             f"hold the model its config.json describes")
        with jax.default_device(jax.local_devices(backend="cpu")[0]), safe_open(self.file_of[stored], "flax") as f:
            return np.asarray(f.get_tensor(stored))  # via flax so bfloat16 tensors read too


def _lookup(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def _read_param(folder: SafetensorsFolder, family: str, rule: W.Rule, expected: tuple, layer: int | None):
    path, hf_name, to_jax, _ = rule
    base, _, part = hf_name.partition("#")  # GPT-2's q/k/v share one fused tensor
    name = (W.layer_prefix(family, layer) + base) if layer is not None else base
    raw = folder.get(name)
    try:
        value = to_jax(raw)
    except ValueError as e:
        raise ValueError(f"tensor {name!r} has shape {raw.shape}, which does not fit {'/'.join(map(str, path))} "
                         f"{expected}: {e}") from None
    if value.shape != expected:
        raise ValueError(f"tensor {name!r} has shape {raw.shape}; expected one giving {expected} for "
                         f"{'/'.join(map(str, path))}")
    return value


def _stack_on_device(leaf, sharding, read_layer, n_layers: int) -> jax.Array:
    """A stacked (layers, ...) parameter written layer by layer into one donated device buffer.

    np.stack of the layers, a cast and a device_put would hold the parameter three times over (measured
    1.53x the params at peak for a 1.1B model); this holds it once plus one layer.
    """
    buffer = jax.jit(lambda: jnp.zeros(leaf.shape, leaf.dtype), out_shardings=sharding)()
    write = jax.jit(lambda buf, layer, i: jax.lax.dynamic_update_index_in_dim(buf, layer.astype(buf.dtype), i, 0),
                    donate_argnums=0, out_shardings=sharding)
    for i in range(n_layers):
        buffer = write(buffer, read_layer(i), i)
    return buffer


def read_hf_params(folder: SafetensorsFolder, family: str, cfg: ModelConfig, mesh: Mesh, rules=None) -> dict:
    """Params for `cfg` (its scan_layers layout) placed with their sharding on `mesh`."""
    top_rules, layer_rules = W.rules_for(family, cfg)
    shardings = param_shardings(cfg, mesh, shd.rules_dict(rules))
    _, abstract = graphdef_and_abstract_params(cfg)
    abstract = nnx.to_pure_dict(abstract)
    params: dict[str, Any] = {}

    def put(path: tuple, value: np.ndarray):
        sharding = _lookup(shardings, path)
        leaf = _lookup(abstract, path)
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = jax.device_put(np.asarray(value, dtype=leaf.dtype), sharding)  # no copy if same dtype

    for rule in top_rules:
        if rule[0][0] == "position_embed" and cfg.positions != "learned":
            continue
        put(rule[0], _read_param(folder, family, rule, _lookup(abstract, rule[0]).shape, None))
    for rule in layer_rules:
        if cfg.scan_layers:
            path = ("blocks",) + rule[0]
            leaf = _lookup(abstract, path)
            node = params
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = _stack_on_device(
                leaf, _lookup(shardings, path),
                lambda i, rule=rule, leaf=leaf: _read_param(folder, family, rule, leaf.shape[1:], i), cfg.n_layers)
        else:
            for i in range(cfg.n_layers):
                put(("blocks", i) + rule[0], _read_param(folder, family, rule, _lookup(abstract["blocks"][i], rule[0]).shape, i))
    _check_all_used(folder, family, cfg, top_rules, layer_rules)
    return params


def _check_all_used(folder, family, cfg, top_rules, layer_rules) -> None:
    used = {folder.canonical(r[1].partition("#")[0]) for r in top_rules}
    used |= {folder.canonical(W.layer_prefix(family, i) + r[1].partition("#")[0])
             for r in layer_rules for i in range(cfg.n_layers)}
    if cfg.tie_embeddings:
        used.add(folder.canonical("lm_head.weight"))  # a tied export may repeat the embedding
    unused = sorted(n for n in folder.file_of if n not in used and not n.endswith(IGNORED_SUFFIXES))
    if unused:
        raise ValueError(f"the checkpoint has tensors the model does not use (config mismatch?): {unused[:8]}")


def hf_to_jax(src: str, workdir: str, mesh: Mesh | None = None, **model_overrides) -> ModelConfig:
    """Converts an HF folder into the run directory WORKDIR (checkpoints/0 and the tokenizer files, written
    with run_dir.save_run); returns the ModelConfig. WORKDIR must be new or empty."""
    folder = SafetensorsFolder(src)  # refuses pickle-only folders before anything else
    config_path = os.path.join(src, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found: --src must be a Hugging Face model folder")
    tokenizer_json = os.path.join(src, run_dir.TOKENIZER_FILE)
    if not os.path.isfile(tokenizer_json):
        raise FileNotFoundError(
            f"{tokenizer_json} not found: a run directory carries its tokenizer.json; write one beside the weights "
            f"with transformers: AutoTokenizer.from_pretrained(SRC).save_pretrained(SRC)")
    run_dir.load_tokenizer(tokenizer_json)  # a damaged file fails here, not in a later evaluation
    if os.path.isdir(workdir) and os.listdir(workdir):  # save_run replaces the folder it writes
        raise FileExistsError(f"{workdir} already exists and is not empty; use a new --workdir")
    hf_config = run_dir.read_json(config_path, "Hugging Face model config")
    family = family_of(hf_config)
    cfg = model_config_from_hf(hf_config, **model_overrides)
    mesh = mesh or shd.make_mesh(run_dir.DEFAULT_MESH)
    params = read_hf_params(folder, family, cfg, mesh)
    run_dir.save_run(workdir, {"params": params}, {"model": cfg.to_dict(), "source": os.path.abspath(src)},
                     tokenizer_from=tokenizer_json)
    return cfg


def jax_to_hf(workdir: str, dst: str, step: int | None = None, max_shard_bytes: int = 5 * 2**30) -> str:
    """Writes a run's checkpoint as an HF folder: config.json, safetensors (sharded if large), tokenizer files."""
    run = run_dir.load_run(workdir, step=step)
    cfg = run.model_cfg
    family = "gpt2" if cfg.positions == "learned" else "llama"
    hf_config = hf_config_from_model(cfg)
    params = jax.tree.map(np.asarray, run.params)
    run.params = None
    if cfg.scan_layers:
        params = unstack_layers(params)
    top_rules, layer_rules = W.rules_for(family, cfg)
    tensors: dict[str, np.ndarray] = {}
    prefix = "transformer." if family == "gpt2" else ""
    for path, name, _, to_hf in top_rules:
        if path[0] in params:
            tensors[prefix + name if not name.startswith("lm_head") else name] = to_hf(_lookup(params, path))
    for i in range(cfg.n_layers):
        layer = params["blocks"][i]
        for path, name, _, to_hf in layer_rules:
            if to_hf is not None:
                tensors[prefix + W.layer_prefix(family, i) + name] = to_hf(_lookup(layer, path))
        if family == "gpt2":
            for name, value in W.gpt2_fused_qkv(layer).items():
                tensors[prefix + W.layer_prefix(family, i) + name] = value
    os.makedirs(dst, exist_ok=True)
    _write_safetensors({k: np.ascontiguousarray(v) for k, v in tensors.items()}, dst, max_shard_bytes)
    run_dir.write_json(os.path.join(dst, "config.json"), hf_config)
    run_dir.copy_tokenizer(run.tokenizer_path, dst)
    return dst


def _write_safetensors(tensors: dict[str, np.ndarray], dst: str, max_shard_bytes: int) -> None:
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, value in tensors.items():
        if shards[-1] and size + value.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = value
        size += value.nbytes
    if len(shards) == 1:
        save_file(shards[0], os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        filename = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(dst, filename), metadata={"format": "pt"})
        weight_map.update({name: filename for name in shard})
    total = sum(v.nbytes for v in tensors.values())
    run_dir.write_json(os.path.join(dst, "model.safetensors.index.json"),
                       {"metadata": {"total_size": total}, "weight_map": weight_map})

"""The run directory: what every tool that reads or writes a trained model goes through.

A run directory holds `checkpoints/<step>/` (orbax: the parameters under state["params"], a classifier's
head under state["head"], a LoRA run's adapter under state["adapter"]; the run's metadata, with the model
config under meta["model"]), `tokenizer.json` (and, when converted from Hugging Face, its
tokenizer_config.json / special_tokens_map.json), and, for training runs, config.json and metrics.jsonl.
Pretraining, fine-tuning (its best/ and adapter/ are run directories too), `experiments.convert` and
`merge_adapter` write them; evaluation, generation, the lm-eval adapter, serving and fine-tuning's
initialisation read them.

    run = load_run("runs/quickstart/pretrain")        # params sharded over DEFAULT_MESH
    run.model_cfg, run.params, run.tokenizer, run.eos_id, run.template

The helpers here are also the one place for two chores every stage needs: writing JSON so that a reader
never sees half a file (`write_json`), and refusing a folder that was built with other settings
(`ensure_same_settings`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Mapping

from biomed_jax import files

# The default device mesh of every run and tool: all devices as FSDP (parameters and optimizer state
# split over every device, the batch too). configs/ and the tools use it unless told otherwise.
DEFAULT_MESH = {"data": 1, "fsdp": -1, "tensor": 1}

CHECKPOINTS = "checkpoints"
TOKENIZER_FILE = "tokenizer.json"
# What experiments.convert copies from a Hugging Face folder beside tokenizer.json.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Names end-of-text and beginning-of-text tokens go by in GPT-2, Llama-2/3 and SentencePiece vocabularies.
EOS_TOKENS = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>", "<eos>", "[EOS]")
BOS_TOKENS = ("<s>", "<|begin_of_text|>", "<bos>", "[BOS]")


# --- files -------------------------------------------------------------------------------------------


def write_json(path: str, value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Writes `value` as JSON to `path` (a local path or an object store's, see files.py), whole or not at
    all: readers see the old file or the new one, never half of one. Values JSON cannot hold are written as
    their str()."""
    return files.write_text(path, json.dumps(value, indent=indent, sort_keys=sort_keys, default=str,
                                             ensure_ascii=False))


def read_json(path: str, what: str = "file") -> Any:
    """The JSON document at `path`; a clear error naming the file when it is missing or damaged."""
    if not files.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(files.read_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} ({what}) is not valid JSON: {err}") from None


def differing_keys(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two nested dicts (either side may lack one)."""
    names = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            names += differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


def ensure_same_settings(path: str, settings: Mapping[str, Any], what: str,
                         hint: str = "use a new folder, or delete this one to rebuild it") -> None:
    """Records `settings` at `path` (JSON) the first time; afterwards refuses, naming the fields that
    differ, a folder whose recorded settings are not these. The one check behind "a rerun resumes, a
    different config is refused" in every stage that writes a folder."""
    current = json.loads(json.dumps(settings, default=str))
    if not files.exists(path):
        write_json(path, current, sort_keys=True)
        return
    saved = read_json(path, f"the settings of {what}")
    if saved != current:
        fields = differing_keys(saved, current)
        shown = ", ".join(fields[:6]) + (f" and {len(fields) - 6} more" if len(fields) > 6 else "")
        raise FileExistsError(f"{files.dirname(path)} holds {what} built with other settings "
                              f"({shown}); {hint}")


# --- tokens ------------------------------------------------------------------------------------------


def _token_name(value: Any) -> str | None:
    """A special token's text from tokenizer_config.json ("</s>" or {"content": "</s>", ...})."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def special_tokens(path: str, tokenizer) -> tuple[int | None, int | None]:
    """(bos_id, eos_id) of a run: as the Hugging Face tokenizer_config.json / special_tokens_map.json
    beside the tokenizer states them (a folder that states no BOS has none), else by the usual names."""
    by_name = (_first_id(tokenizer, BOS_TOKENS), _first_id(tokenizer, EOS_TOKENS))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        config_path = os.path.join(path, name)
        if not os.path.isfile(config_path):
            continue
        config = read_json(config_path, "tokenizer settings")
        if isinstance(config, dict) and ("bos_token" in config or "eos_token" in config):
            bos_name, eos_name = _token_name(config.get("bos_token")), _token_name(config.get("eos_token"))
            bos = tokenizer.token_to_id(bos_name) if bos_name else None
            eos = tokenizer.token_to_id(eos_name) if eos_name else None
            return bos, eos if eos is not None else by_name[1]
    return by_name


def _first_id(tokenizer, names) -> int | None:
    for name in names:
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            return token_id
    return None


# --- reading a run -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """A loaded run directory. `params` is the decoder's parameter dict, sharded over the mesh it was
    loaded with (None when loaded without weights); `extra` holds the checkpoint's other trees (a
    classifier's "head") when asked for. `template` is the prompt template the run was instruction-tuned
    with ({"style", "prompt"}), None where none was recorded."""

    path: str
    step: int
    meta: dict
    model_cfg: Any                   # biomed_jax.models.config.ModelConfig
    params: Any
    tokenizer: Any                   # tokenizers.Tokenizer
    tokenizer_path: str | None
    bos_id: int | None
    eos_id: int | None
    template: dict | None
    extra: dict = dataclasses.field(default_factory=dict)


def checkpoints_dir(path: str) -> str:
    """PATH/checkpoints; PATH itself where it already is a checkpoints folder."""
    return path if os.path.basename(os.path.normpath(path)) == CHECKPOINTS else os.path.join(path, CHECKPOINTS)


def require_run(path: str, field: str = "--checkpoint") -> str:
    """`path`'s checkpoints folder, or a one-line error naming the field when `path` is no run directory."""
    directory = checkpoints_dir(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{field}={path!r} is not a run directory: no {CHECKPOINTS}/ folder in it (give a "
                                "folder written by experiments.pretrain, a fine-tuning run's best/, "
                                "experiments.convert or experiments.merge_adapter)")
    return directory


def read_meta(path: str, step: int | None = None) -> tuple[int, dict]:
    """(step, metadata) of a run's checkpoint (the latest by default), without reading any array."""
    from biomed_jax.train.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(require_run(path))
    try:
        step = checkpoints.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no finished checkpoint in {checkpoints.directory}")
        return step, checkpoints.read_meta(step)
    finally:
        checkpoints.close()


def tokenizer_path(path: str, override: str | None = None) -> str:
    """The tokenizer.json to use: `override`, else PATH/tokenizer.json."""
    chosen = override or os.path.join(path, TOKENIZER_FILE)
    if not os.path.isfile(chosen):
        hint = "" if override else " (pretraining on a prepared dataset and experiments.convert put it there)"
        raise FileNotFoundError(f"tokenizer file {chosen} not found{hint}; pass --tokenizer=PATH/tokenizer.json")
    return chosen


def load_tokenizer(path: str):
    """A `tokenizers` Tokenizer from a tokenizer.json, with a one-line error for a damaged file."""
    from tokenizers import Tokenizer

    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file {path} not found")
    try:
        return Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises a bare Exception on malformed JSON
        raise ValueError(f"{path} is not a valid tokenizers tokenizer.json: {err}") from None


def load_run(path: str, *, step: int | None = None, mesh=None, rules=None, tokenizer: str | None = None,
             params: bool = True, extra: tuple[str, ...] = (), with_tokenizer: bool = True) -> Run:
    """Reads a run directory: model config, params (sharded over `mesh`, default DEFAULT_MESH over every
    device; `params=False` reads none), tokenizer (`tokenizer` overrides the run's tokenizer.json), its
    BOS/EOS ids and its recorded prompt template. `extra` names further checkpoint trees to read
    (e.g. ("head",) for a classifier). `with_tokenizer=False` reads a run that has none (pretraining on
    synthetic token ids): tokenizer, its path and the special ids are then None."""
    from biomed_jax.models.config import ModelConfig

    step, meta = read_meta(path, step)
    model_cfg = ModelConfig.from_dict(meta["model"])
    tok = tok_path = bos = eos = None
    if with_tokenizer:
        tok_path = tokenizer_path(path, tokenizer)
        tok = load_tokenizer(tok_path)
        if tok.get_vocab_size() > model_cfg.vocab_size:
            raise ValueError(f"tokenizer {tok_path} has {tok.get_vocab_size()} tokens, more than the model's "
                             f"vocab_size {model_cfg.vocab_size}: it is not the tokenizer this model was trained with")
        bos, eos = special_tokens(os.path.dirname(tok_path), tok)
    loaded, trees = None, {}
    if params or extra:
        loaded, trees = _read_params(path, step, model_cfg, mesh, rules, params, extra)
    return Run(path=path, step=step, meta=meta, model_cfg=model_cfg, params=loaded, tokenizer=tok,
               tokenizer_path=tok_path, bos_id=bos, eos_id=eos, template=meta.get("template"), extra=trees)


def _read_params(path: str, step: int, model_cfg, mesh, rules, with_params: bool, extra: tuple[str, ...]):
    import jax
    from flax import nnx

    from biomed_jax import sharding as shd
    from biomed_jax.models.decoder import graphdef_and_abstract_params
    from biomed_jax.train.checkpoint import RunCheckpoints
    from biomed_jax.train.state import param_shardings

    mesh = mesh or shd.make_mesh(DEFAULT_MESH)
    target: dict[str, Any] = {}
    if with_params:
        _, abstract = graphdef_and_abstract_params(model_cfg)
        target["params"] = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                        nnx.to_pure_dict(abstract),
                                        param_shardings(model_cfg, mesh, shd.rules_dict(rules)))
    checkpoints = RunCheckpoints(checkpoints_dir(path))
    try:
        if extra:
            shapes = checkpoints.saved_shapes(step)
            replicated = shd.replicated(mesh)
            for key in extra:
                if key not in shapes:
                    raise KeyError(f"{path} has no {key!r} tree in its checkpoint (it holds {sorted(shapes)})")
                target[key] = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                                           shapes[key])
        restored = checkpoints.restore_trees(step, target)
    finally:
        checkpoints.close()
    return restored.pop("params", None), restored


# --- writing a run -----------------------------------------------------------------------------------


def save_run(path: str, trees: Mapping[str, Any], meta: Mapping[str, Any], tokenizer_from: str, step: int = 0,
             *, template: Mapping[str, Any] | None = None) -> str:
    """Writes a plain run directory at `path`: `trees` ({"params": decoder params} plus e.g. "head" or
    "adapter") as checkpoints/<step>, the tokenizer files from the folder of `tokenizer_from` (a
    tokenizer.json), `template` into the metadata. Built beside `path` and renamed into place, so a
    reader sees the previous run or the new one, never a half-written one. With several processes every
    one must call it (each writes its shards); process 0 alone moves folders."""
    import jax

    from biomed_jax.train.checkpoint import RunCheckpoints

    lead = jax.process_index() == 0
    tmp, old = os.path.abspath(path) + ".tmp", os.path.abspath(path) + ".old"
    if lead:
        shutil.rmtree(tmp, ignore_errors=True)
    _sync(f"save_run:start:{path}")
    meta = dict(meta)
    if template is not None:
        meta["template"] = dict(template)
    checkpoints = RunCheckpoints(os.path.join(tmp, CHECKPOINTS), keep=1, async_save=False)
    try:
        checkpoints.save(step, dict(trees), data_state={}, meta=meta, force=True)
    finally:
        checkpoints.close()
    if lead:
        copy_tokenizer(tokenizer_from, tmp)
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(path):
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    _sync(f"save_run:done:{path}")
    return path


def _sync(name: str) -> None:
    """A barrier across processes (nothing with one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def copy_tokenizer(tokenizer_json: str, directory: str) -> None:
    """Copies tokenizer.json (as that name) and the Hugging Face tokenizer settings beside it into `directory`."""
    os.makedirs(directory, exist_ok=True)
    source_dir = os.path.dirname(os.path.abspath(tokenizer_json))
    shutil.copyfile(tokenizer_json, os.path.join(directory, TOKENIZER_FILE))
    for name in TOKENIZER_FILES[1:]:
        if os.path.isfile(os.path.join(source_dir, name)):
            shutil.copyfile(os.path.join(source_dir, name), os.path.join(directory, name))

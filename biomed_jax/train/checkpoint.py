"""Orbax checkpoints of a run: the sharded train state, the data iterator state and run metadata.

Layout: WORKDIR/checkpoints/<step>/{state, data, meta}. Orbax writes each step into a temporary
directory and renames it when complete, so an interrupted save never looks finished; saves are
asynchronous (training continues while arrays are written) and only the last `keep` are kept.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh

from biomed_jax import sharding as shd
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params
from biomed_jax.train.state import TrainState, param_shardings


class RunCheckpoints:
    """A CheckpointManager for one run directory."""

    def __init__(self, directory: str, keep: int = 3, every_steps: int = 1000, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"checkpoint.keep must be >= 1, got {keep}")
        if every_steps < 1:
            raise ValueError(f"checkpoint.every_steps must be >= 1, got {every_steps}")
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            save_interval_steps=every_steps,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: TrainState | dict, data_state: dict, meta: dict, force: bool = False) -> bool:
        """Saves if `step` is on the save interval (or `force`); returns whether a save started.

        `state` is a TrainState, or {"params": ...} for a model converted from Hugging Face.
        """
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data_state),
                meta=ocp.args.JsonSave(meta),
            ),
            force=force,
        )

    def read_meta(self, step: int) -> dict:
        """The run metadata saved with `step` (e.g. the model config), without reading arrays."""
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def restore(self, step: int, abstract_state: TrainState) -> tuple[TrainState, dict]:
        """(state placed with the shardings in `abstract_state`, data iterator state)."""
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=ocp.args.JsonRestore(),
            ),
        )
        return restored["state"], dict(restored["data"])

    def restore_params(self, step: int, abstract_params: Any, key: str = "params") -> Any:
        """Only state[key] of the saved state (partial restore: optimizer moments are not read);
        `key` is "adapter" for a fine-tuning run's adapter/ checkpoint."""
        target = {key: abstract_params}
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True)))
        return restored["state"][key]

    def wait(self) -> None:
        """Blocks until any asynchronous save has been committed to disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def load_params(checkpoint_dir: str, step: int | None = None, mesh: Mesh | None = None,
                rules=None) -> tuple[ModelConfig, dict, int]:
    """(model config, params placed sharded over `mesh`, step) from a run's checkpoints directory.

    Only the parameters are read (no optimizer state): what fine-tuning, evaluation, generation
    and export start from. `step` defaults to the latest; `mesh` to all devices as FSDP.
    """
    if not os.path.isdir(checkpoint_dir):
        raise FileNotFoundError(f"checkpoint directory {checkpoint_dir} does not exist")
    checkpoints = RunCheckpoints(checkpoint_dir)
    try:
        step = checkpoints.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no finished checkpoint in {checkpoints.directory}")
        model_cfg = ModelConfig.from_dict(checkpoints.read_meta(step)["model"])
        mesh = mesh or shd.make_mesh(dict(data=1, fsdp=-1, tensor=1))
        shardings = param_shardings(model_cfg, mesh, shd.rules_dict(rules))
        _, abstract = graphdef_and_abstract_params(model_cfg)
        target = jax.tree.map(lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                              nnx.to_pure_dict(abstract), shardings)
        return model_cfg, checkpoints.restore_params(step, target), step
    finally:
        checkpoints.close()

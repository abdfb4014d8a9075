"""Orbax checkpoints of a run: the sharded train state, the data iterator state and run metadata.

Layout: WORKDIR/checkpoints/<step>/{state, data, meta}. Orbax writes each step into a temporary
directory and renames it when complete, so an interrupted save never looks finished; saves are
asynchronous (training continues while arrays are written) and only the last `keep` are kept.
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp

from biomed_jax.train.state import TrainState


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

    def saved_shapes(self, step: int) -> dict:
        """The saved state's tree with each array as its metadata (.shape, .dtype), reading no array."""
        metadata = ocp.PyTreeCheckpointer().metadata(os.path.join(self.directory, str(step), "state"))
        return dict(metadata.item_metadata.tree)

    def restore_trees(self, step: int, target: dict) -> dict:
        """Only the top-level trees of the saved state that `target` names (a partial restore: a run's
        "params" without its optimizer moments, a fine-tuning run's "adapter" or "head"), placed with the
        shardings of `target`'s ShapeDtypeStructs."""
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True)))
        return dict(restored["state"])

    def wait(self) -> None:
        """Blocks until any asynchronous save has been committed to disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

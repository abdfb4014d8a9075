"""Device mesh and logical-axis sharding.

Parameters and activations are annotated with *logical* axis names ('embed', 'mlp', 'heads', ...).
One rules table maps each logical name to mesh axes ('data', 'fsdp', 'tensor'), so changing the
parallelism layout is a config change, never a model change (the MaxText convention).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from typing import Any, Iterable, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis name -> mesh axis (or tuple of mesh axes, or None = replicated)
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    # parameters
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("norm", None),
    ("position", None),
    ("layers", None),
    ("classes", None),
    # activations
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_kv_heads", "tensor"),
    ("activation_head_dim", None),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    # KV cache for generation (biomed_jax/models/kv_cache.py): laid out like the attention activations
    ("cache_layers", None),
    ("cache_batch", ("data", "fsdp")),
    ("cache_length", None),
    ("cache_kv_heads", "tensor"),
    ("cache_head_dim", None),
)

BATCH_AXES = ("data", "fsdp")

_ACTIVATION_CONTEXT: contextvars.ContextVar[tuple[Mesh, Mapping[str, Any]] | None] = (
    contextvars.ContextVar("biomed_jax_activation_sharding", default=None)
)


def resolve_mesh_shape(mesh_sizes: Mapping[str, int], n_devices: int) -> tuple[int, ...]:
    """Mesh sizes (data, fsdp, tensor) with at most one -1 filled from the device count."""
    sizes = [int(mesh_sizes[name]) for name in MESH_AXES]
    for name, size in zip(MESH_AXES, sizes):
        if size == 0 or size < -1:
            raise ValueError(f"mesh.{name} must be a positive integer or -1 (fill), got {size}")
    n_fill = sizes.count(-1)
    if n_fill > 1:
        raise ValueError(f"at most one of mesh.data/fsdp/tensor may be -1, got {dict(zip(MESH_AXES, sizes))}")
    known = math.prod(s for s in sizes if s != -1)
    if n_fill:
        if n_devices % known:
            raise ValueError(
                f"cannot fill the -1 mesh axis: {n_devices} devices are not divisible by the product "
                f"of the other axes ({known}); mesh = {dict(zip(MESH_AXES, sizes))}"
            )
        sizes[sizes.index(-1)] = n_devices // known
    if math.prod(sizes) != n_devices:
        raise ValueError(
            f"mesh.data * mesh.fsdp * mesh.tensor = {math.prod(sizes)} ({dict(zip(MESH_AXES, sizes))}) "
            f"but there are {n_devices} devices; set one axis to -1 to fill, or change the sizes"
        )
    return tuple(sizes)


def make_mesh(mesh_sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the ('data', 'fsdp', 'tensor') mesh from config sizes over `devices` (default: all)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(mesh_sizes, len(devices))
    auto = (AxisType.Auto,) * len(MESH_AXES)  # GSPMD propagation, constrained by our annotations
    if len(devices) == len(jax.devices()):
        # Let JAX order devices for the physical topology (ICI rings on TPU, NVLink on GPU).
        return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=auto)


def rules_dict(rules: Iterable[tuple[str, Any]] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    rules = DEFAULT_RULES if rules is None else rules
    return dict(rules.items() if isinstance(rules, Mapping) else rules)


def _mesh_axes_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    return math.prod(mesh.shape[a] for a in axes)


_warned: set[tuple] = set()


def logical_to_spec(
    logical_axes: Sequence[str | None],
    mesh: Mesh,
    rules: Mapping[str, Any],
    shape: Sequence[int] | None = None,
    what: str = "array",
) -> PartitionSpec:
    """Maps logical axis names to a PartitionSpec.

    A dimension whose size the mapped mesh axes do not divide (e.g. GPT-2's odd 50,257 vocab
    over tensor=2) is replicated instead, with a one-time warning naming it: correct, if slower.
    A mesh axis already used by an earlier dimension is not reused.
    """
    spec, used = [], set()
    for dim, name in enumerate(logical_axes):
        axes = rules.get(name) if name is not None else None
        if name is not None and name not in rules:
            raise ValueError(f"logical axis {name!r} of {what} has no entry in the sharding rules")
        if axes is not None:
            axes_t = (axes,) if isinstance(axes, str) else tuple(axes)
            axes_t = tuple(a for a in axes_t if a not in used and mesh.shape.get(a, 1) > 1)
            if shape is not None and axes_t and shape[dim] % _mesh_axes_size(mesh, axes_t):
                key = (what, dim, shape[dim], axes_t)
                if key not in _warned:
                    _warned.add(key)
                    logging.warning(
                        "%s: dimension %d (%s, size %d) is not divisible by mesh axes %s (size %d); "
                        "replicating it", what, dim, name, shape[dim], axes_t, _mesh_axes_size(mesh, axes_t))
                axes_t = ()
            used.update(axes_t)
            axes = None if not axes_t else (axes_t[0] if len(axes_t) == 1 else axes_t)
        spec.append(axes)
    return PartitionSpec(*spec)


def param_shardings(abstract_state: nnx.State, mesh: Mesh, rules: Mapping[str, Any]) -> dict:
    """NamedShardings (as a pure dict tree) for an nnx State whose Params carry logical axis names."""
    logical_specs = nnx.to_pure_dict(nnx.get_partition_spec(abstract_state))
    shapes = jax.tree.map(lambda x: x.shape, nnx.to_pure_dict(abstract_state))
    paths_specs = jax.tree_util.tree_flatten_with_path(
        logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec))[0]
    treedef = jax.tree.structure(logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    shape_leaves = jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))
    out = []
    for (path, logical), shape in zip(paths_specs, shape_leaves):
        name = jax.tree_util.keystr(path)
        logical = tuple(logical) + (None,) * (len(shape) - len(logical))
        out.append(NamedSharding(mesh, logical_to_spec(logical, mesh, rules, shape, what=name)))
    return jax.tree.unflatten(treedef, out)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Batches are split over ('data', 'fsdp') on their leading axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules: Mapping[str, Any]):
    """Within this context `constrain` pins activations to the mesh; outside it is a no-op."""
    token = _ACTIVATION_CONTEXT.set((mesh, rules))
    try:
        yield
    finally:
        _ACTIVATION_CONTEXT.reset(token)


def activation_mesh_size() -> int:
    """Devices in the mesh of the enclosing `activation_sharding` (1 outside one)."""
    context = _ACTIVATION_CONTEXT.get()
    return 1 if context is None else context[0].size


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """with_sharding_constraint by logical names, using the mesh of `activation_sharding`."""
    context = _ACTIVATION_CONTEXT.get()
    if context is None:
        return x
    mesh, rules = context
    spec = logical_to_spec(logical_axes, mesh, rules, x.shape, what="activation")
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def global_batch_from_local(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles this process's slice of the batch into global arrays sharded over the batch axes."""
    return {
        key: jax.make_array_from_process_local_data(batch_sharding(mesh, value.ndim), value)
        for key, value in local_batch.items()
    }

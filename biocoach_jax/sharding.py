"""Logical axis names -> mesh axes, in one place for the whole project.

Parameters carry logical axis names (metadata `sharding_names`, e.g. ('embed', 'mlp')); these
rules say which mesh axis ('data', 'fsdp', 'tensor') each name is split over. A name mapped to
None (or missing from the rules) is replicated. A mesh axis is dropped for a dimension it does
not divide (odd vocabularies such as 1001) or that is already used by an earlier dimension, so any
model shape can be placed on any mesh.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# logical name -> mesh axis, tuple of mesh axes, or None (replicated)
LOGICAL_RULES: Mapping[str, Any] = {
    "batch": ("data", "fsdp"),
    "seq": None,
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",  # q / o projections: heads * head_dim flattened, split by whole heads
    "kv_heads": "tensor",
    "mlp": "tensor",
    "head_dim": None,
    "norm": None,
    "lora_rank": None,
    "vision": None,  # feature channels of the vision tower / cross-attention inputs
}


def make_mesh(data: int = 1, fsdp: int = 1, tensor: int = 1, devices=None) -> Mesh:
    """A ('data', 'fsdp', 'tensor') mesh with Auto axes (GSPMD style propagation)."""
    shape = (data, fsdp, tensor)
    n = int(np.prod(shape))
    devices = jax.devices() if devices is None else devices
    if len(devices) < n:
        raise ValueError(f"mesh {dict(zip(MESH_AXES, shape))} needs {n} devices, have {len(devices)}")
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices[:n])


def _as_tuple(mesh_axes) -> tuple:
    if mesh_axes is None:
        return ()
    return (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)


def logical_to_spec(
    names: Sequence[str | None] | None,
    shape: Sequence[int] | None = None,
    mesh: Mesh | None = None,
    rules: Mapping[str, Any] = LOGICAL_RULES,
) -> PartitionSpec:
    """PartitionSpec for one array; with `shape` and `mesh`, axes that cannot split are dropped."""
    if not names:
        return PartitionSpec()
    used: set[str] = set()
    out = []
    for dim, name in enumerate(names):
        axes, split = [], 1
        size = None if shape is None else int(shape[dim])
        for ax in _as_tuple(rules.get(name) if name is not None else None):
            if ax in used or (mesh is not None and ax not in mesh.shape):
                continue
            n = 1 if mesh is None else mesh.shape[ax]
            if size is not None and size % (split * n):
                continue  # uneven split: replicate along this mesh axis instead
            axes.append(ax)
            split *= n
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
    return PartitionSpec(*out)


def variable_axes(var) -> tuple | None:
    """Logical axis names stored on an nnx.Variable (flax renames `sharding_names` internally)."""
    meta = var.get_metadata()
    for key in ("sharding_names", "out_sharding", "sharding"):
        if meta.get(key) is not None:
            return tuple(meta[key])
    return None


def named_sharding(mesh: Mesh, names, shape, rules: Mapping[str, Any] = LOGICAL_RULES):
    return NamedSharding(mesh, logical_to_spec(names, shape, mesh, rules))


def state_shardings(state, mesh: Mesh, rules: Mapping[str, Any] = LOGICAL_RULES):
    """Tree of NamedSharding matching an nnx.State (abstract or concrete)."""
    from flax import nnx

    def one(var):
        return named_sharding(mesh, variable_axes(var), var.get_value().shape, rules)

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))

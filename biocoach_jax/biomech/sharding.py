"""Sessions sharded over a mesh's `data` axis (GSPMD style, REFERENCE §8).

The kernel is independent per session, so sharding the batch axis needs no communication:
B is padded to a multiple of the `data` axis size (by repeating session 0), the padded batch
is placed with NamedSharding(mesh, P("data")), the jitted kernel runs under `jax.set_mesh`,
and the padding is stripped from every output leaf.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

from .pipeline import KernelResult, _analyze_jit, check_batch
from .spec import KernelSpec


def data_mesh(n_devices: int | None = None):
    """A 1-D mesh with a single Auto `data` axis over the first n devices (default: all)."""
    n = len(jax.devices()) if n_devices is None else int(n_devices)
    if not 1 <= n <= len(jax.devices()):
        raise ValueError(f"data_mesh: need 1..{len(jax.devices())} devices, got {n}")
    return jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:n])


def analyze_batch_sharded(poses, lengths, spec: KernelSpec, fps: float, mesh) -> KernelResult:
    """analyze_batch with sessions sharded over mesh axis `data`; same results as unsharded."""
    if "data" not in mesh.axis_names:
        raise ValueError(f"analyze_batch_sharded: mesh needs a 'data' axis, has {mesh.axis_names}")
    poses = jnp.asarray(poses, jnp.float32)
    lengths = jnp.asarray(lengths, jnp.int32)
    check_batch(poses, lengths, fps, "analyze_batch_sharded")
    B = poses.shape[0]
    n = mesh.shape["data"]
    pad = (-B) % n
    if pad:
        poses = jnp.concatenate([poses, jnp.repeat(poses[:1], pad, axis=0)])
        lengths = jnp.concatenate([lengths, jnp.repeat(lengths[:1], pad)])
    batch = NamedSharding(mesh, P("data"))
    with jax.set_mesh(mesh):
        poses = jax.device_put(poses, batch)
        lengths = jax.device_put(lengths, batch)
        spec = jax.device_put(spec, NamedSharding(mesh, P()))
        out = _analyze_jit(poses, lengths, spec, float(fps))
    return jax.tree.map(lambda a: a[:B], out)

"""Devices for training: multi-process start-up, the ('data', 'fsdp', 'tensor') mesh from the
config, sharded model creation and batch placement.

Parameters carry logical axis names; `biocoach_jax.sharding` maps them to mesh axes, so this
file only turns configs into meshes and states into NamedShardings.
"""
from __future__ import annotations

import os
from typing import Callable

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from biocoach_jax import sharding as shd

# Environment variables that mean "this is one process of several" (JAX's own cluster
# detection reads the same ones: explicit coordinator, SLURM, TPU pods / GKE, Open MPI).
_MULTI_PROCESS_ENV = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES",
                      "MEGASCALE_COORDINATOR_ADDRESS", "OMPI_COMM_WORLD_SIZE")


def maybe_initialize_distributed(env=None) -> bool:
    """Call `jax.distributed.initialize()` when the environment describes a multi-process job.

    With JAX_COORDINATOR_ADDRESS set (our local/manual launcher), the process id and count come
    from JAX_PROCESS_ID / JAX_NUM_PROCESSES; otherwise JAX auto-detects SLURM / TPU / MPI.
    A single-task SLURM allocation (SLURM_NTASKS=1) is not multi-process. Returns whether it ran.
    """
    env = os.environ if env is None else env
    present = [k for k in _MULTI_PROCESS_ENV if env.get(k)]
    if not present or (present == ["SLURM_NTASKS"] and env.get("SLURM_NTASKS") == "1"):
        return False
    if env.get("JAX_COORDINATOR_ADDRESS"):
        missing = [k for k in ("JAX_PROCESS_ID", "JAX_NUM_PROCESSES") if not env.get(k)]
        if missing:
            raise ValueError(f"JAX_COORDINATOR_ADDRESS is set but {missing} are not "
                             "(see launch/local_multiprocess.sh)")
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env["JAX_NUM_PROCESSES"]),
                                   process_id=int(env["JAX_PROCESS_ID"]))
    else:
        jax.distributed.initialize()
    return True


def mesh_shape(data: int, fsdp: int, tensor: int, num_devices: int) -> tuple[int, int, int]:
    """Resolve one -1 entry so the product equals the device count; errors name the problem."""
    shape = [int(data), int(fsdp), int(tensor)]
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh {dict(zip(shd.MESH_AXES, shape))}: each axis must be >= 1, "
                         "with at most one -1 (fill)")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if num_devices % known:
            raise ValueError(f"mesh {dict(zip(shd.MESH_AXES, shape))}: {num_devices} devices are "
                             f"not divisible by {known}")
        shape[shape.index(-1)] = num_devices // known
    if int(np.prod(shape)) != num_devices:
        raise ValueError(f"mesh {dict(zip(shd.MESH_AXES, shape))} has {int(np.prod(shape))} "
                         f"devices, but {num_devices} are available (use -1 to fill one axis)")
    return tuple(shape)


def mesh_from_config(mesh_cfg, devices=None):
    """The mesh of `mesh.{data,fsdp,tensor}`. Without a -1, a mesh smaller than the machine uses
    its first devices (single-process only: e.g. one device of a test's eight fake ones)."""
    devices = jax.devices() if devices is None else list(devices)
    sizes = [int(mesh_cfg.data), int(mesh_cfg.fsdp), int(mesh_cfg.tensor)]
    n = len(devices)
    if -1 not in sizes and 0 < int(np.prod(sizes)) < n and jax.process_count() == 1:
        n = int(np.prod(sizes))
    shape = mesh_shape(*sizes, n)
    return shd.make_mesh(*shape, devices=devices[:n])


def create_sharded(build: Callable[[], nnx.Module], mesh) -> nnx.Module:
    """Build a module with every parameter created directly in its NamedSharding (no
    full-size host copy): shapes come from `nnx.eval_shape`, values from one jitted init."""
    abstract = nnx.eval_shape(build)
    graphdef, abs_state = nnx.split(abstract)
    shardings = shd.state_shardings(abs_state, mesh)
    state = jax.jit(lambda: nnx.split(build())[1], out_shardings=shardings)()
    return nnx.merge(graphdef, state)


def place(tree, mesh):
    """Move an nnx object's state (a model, an optimizer, a tuple of them) onto its
    NamedShardings, in place; returns the object."""
    state = nnx.state(tree)
    nnx.update(tree, jax.device_put(state, shd.state_shardings(state, mesh)))
    return tree


def batch_sharding(mesh, ndim: int) -> NamedSharding:
    """Leading (batch) axis split over ('data', 'fsdp'), the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp"), *([None] * (ndim - 1))))


def batch_divisor(mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def shard_batch(batch, mesh):
    """Host-local numpy batch (this process's rows) -> global jax arrays split over the batch
    axes. On one process this is a device_put; on several, each contributes its own rows."""
    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(batch_sharding(mesh, x.ndim), x)
    return jax.tree.map(one, batch)

"""Per-device memory of parameters and optimizer state, from shapes only (nothing allocated).

Each array's per-device shard is its shape divided along the mesh axes its logical names map
to (`biocoach_jax.sharding.logical_to_spec`, which replicates where an axis does not divide).
AdamW keeps two moments per trainable array in the parameter's dtype, sharded like it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from flax import nnx
from jax.sharding import AbstractMesh, AxisType

from biocoach_jax import sharding as shd


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    num_devices: int
    param_count: int
    trainable_count: int
    param_bytes_total: int
    param_bytes_per_device: int
    opt_bytes_per_device: int

    def lines(self) -> list[str]:
        gib = 2.0 ** 30
        return [f"parameters: {self.param_count / 1e9:.3f} B ({self.trainable_count / 1e6:.1f} M trainable), "
                f"{self.param_bytes_total / gib:.2f} GiB in all",
                f"per device ({self.num_devices} devices): params {self.param_bytes_per_device / gib:.3f} GiB, "
                f"optimizer {self.opt_bytes_per_device / gib:.3f} GiB"]


def abstract_mesh(shape: tuple[int, int, int]) -> AbstractMesh:
    return AbstractMesh(tuple(shape), shd.MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def shard_bytes(shape, dtype, names, mesh) -> int:
    spec = shd.logical_to_spec(names, shape, mesh)
    local = list(shape)
    for dim, axes in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
        for ax in () if axes is None else (axes,) if isinstance(axes, str) else axes:
            local[dim] //= mesh.shape[ax]
    return int(np.prod(local)) * np.dtype(dtype).itemsize


def memory_report(abstract_model: nnx.Module, trainable, mesh_shape, opt_moments: int = 2) -> MemoryReport:
    mesh = abstract_mesh(mesh_shape)
    train_paths = {p for p, _ in nnx.to_flat_state(nnx.state(abstract_model, trainable))}
    count = tcount = total = per_dev = opt = 0
    for path, var in nnx.to_flat_state(nnx.state(abstract_model, nnx.Param)):
        value = var.get_value()
        n = int(np.prod(value.shape))
        local = shard_bytes(value.shape, value.dtype, shd.variable_axes(var), mesh)
        count, total, per_dev = count + n, total + n * np.dtype(value.dtype).itemsize, per_dev + local
        if path in train_paths:
            tcount += n
            opt += opt_moments * local
    return MemoryReport(int(np.prod(mesh_shape)), count, tcount, total, per_dev, opt)


def abstract_for_config(cfg):
    """(abstract model, trainable filter) of a config's stage, from shapes only: llm.config gives
    the LLaMA shapes, so no weights need to exist (the paper config's 7B dry run)."""
    from biocoach_jax.models import biocoach as bc

    if cfg.stage == "lm":
        import jax.numpy as jnp
        from biocoach_jax.models.llama import Llama, LlamaConfig

        lcfg = LlamaConfig.from_json_dict(dict(cfg.llm.config), "config llm.config")
        dtype = jnp.dtype(cfg.llm.get("dtype", "float32"))
        return nnx.eval_shape(lambda: Llama(lcfg, dtype=dtype, rngs=nnx.Rngs(0))), bc.trainable_filter("lm")
    if cfg.stage == "vision":
        from biocoach_jax.models.vision import abstract_vision_cnn
        from biocoach_jax.training.vision_task import vision_config
        return abstract_vision_cnn(vision_config(cfg)), nnx.Param
    return bc.abstract_model(bc.ModelConfig.from_config(cfg)), bc.trainable_filter(cfg.train.trainable)


def config_memory_report(cfg, num_devices: int | None = None) -> MemoryReport:
    from biocoach_jax.training.mesh import mesh_shape

    m = cfg.mesh
    if num_devices is None:  # the mesh's own size; a -1 axis then counts as 1
        num_devices = int(np.prod([max(int(v), 1) for v in (m.data, m.fsdp, m.tensor)]))
    shape = mesh_shape(m.data, m.fsdp, m.tensor, num_devices)
    model, trainable = abstract_for_config(cfg)
    return memory_report(model, trainable, shape)

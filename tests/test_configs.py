"""Every config loads and documents its run command; the paper config's 7B memory footprint
from shapes only; mesh sizes and the LR schedule against hand-computed values."""
from __future__ import annotations

import importlib.util
import math
import pathlib

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from biocoach_jax.training.memory import config_memory_report
from biocoach_jax.training.mesh import mesh_shape
from biocoach_jax.training.optim import make_schedule

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.py") if not p.name.startswith("_"))


def load(path: pathlib.Path) -> ConfigDict:
    spec = importlib.util.spec_from_file_location(f"cfg_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.get_config()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_loads_and_documents_its_command(path):
    mod, cfg = load(path)
    rel = path.relative_to(REPO).as_posix()
    assert mod.__doc__ and f"python -m biocoach_jax.train --config={rel}" in mod.__doc__
    assert cfg.stage in ("lm", "vision", "streamvlm", "biocoach")
    assert cfg.train.steps > 0 and cfg.optimizer.lr > 0
    make_schedule(cfg.optimizer, cfg.train.steps)  # valid optimizer settings


def test_full_config_is_the_paper():
    _, c = load(REPO / "configs/full.py")
    assert (c.data.window_s, c.model.dof_k, c.data.alpha, c.optimizer.lr) == (3.0, 12, 0.1, 2e-5)
    assert tuple(c.llm.vision_layers) == tuple(range(6, 23, 2)) and c.llm.dtype == "bfloat16"
    assert tuple(c.vision.frame_size) == (224, 160) and c.vision.out_channels == 1280
    assert c.train.trainable == "biocoach" and c.init.checkpoint
    for name, change in [("no_dof_selection", lambda a: not a.model.use_dof_selection),
                         ("no_motion_context", lambda a: not a.data.use_motion_context),
                         ("no_morphology", lambda a: not a.data.use_morphology),
                         ("window_2s", lambda a: a.data.window_s == 2.0)]:
        _, a = load(REPO / f"configs/ablations/{name}.py")
        assert change(a), name
        assert a.optimizer.lr == c.optimizer.lr and a.stage == c.stage


def test_full_config_memory_from_shapes_only():
    _, c = load(REPO / "configs/full.py")
    before = {id(a) for a in jax.live_arrays()}
    r = config_memory_report(c)
    new = [a for a in jax.live_arrays() if id(a) not in before]
    assert sum(a.nbytes for a in new) < 2**20  # nothing model-sized was allocated (7B: 13 GiB)
    # LLaMA-2-7B by hand: embeddings + head 2*V*E, per layer 4*E^2 (attention) + 3*E*F (MLP) + 2E
    V, E, F, layers = 32064, 4096, 11008, 32
    llama = 2 * V * E + layers * (4 * E * E + 3 * E * F + 2 * E) + E
    assert r.param_count > llama and (r.param_count - llama) / llama < 0.1  # + LoRA, x-attn, fusion
    # 9 cross-attention blocks dominate the trainable set: q, out (E^2 each), k, v2 (C*E), v1 (C^2)
    xattn = 9 * (2 * E * E + 2 * 1280 * E + 1280 * 1280)
    assert xattn < r.trainable_count < 1.1 * xattn
    assert r.num_devices == 8
    bf16 = 2
    assert r.param_bytes_total == pytest.approx(r.param_count * bf16)
    # the frozen 7B is split 8 ways (fsdp); small replicated arrays add a little
    assert r.param_bytes_total / 8 <= r.param_bytes_per_device < 1.25 * r.param_bytes_total / 8
    # AdamW: two bf16 moments per trainable parameter, sharded at most 8 ways
    assert 2 * r.trainable_count * bf16 / 8 <= r.opt_bytes_per_device <= 2 * r.trainable_count * bf16


def test_mesh_shape_fill_and_errors():
    assert mesh_shape(-1, 1, 1, 8) == (8, 1, 1)
    assert mesh_shape(2, -1, 2, 8) == (2, 2, 2)
    with pytest.raises(ValueError, match="not divisible"):
        mesh_shape(3, -1, 1, 8)
    with pytest.raises(ValueError, match="16 devices, but 8"):
        mesh_shape(2, 8, 1, 8)
    with pytest.raises(ValueError, match="at most one -1"):
        mesh_shape(-1, -1, 1, 8)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_schedule_against_formula(kind, rng):
    lr, warm, total = float(rng.uniform(1e-4, 1e-2)), int(rng.integers(1, 20)), int(rng.integers(40, 200))
    c = ConfigDict(dict(lr=lr, warmup_steps=warm, schedule=kind, end_lr_factor=0.1))
    f = make_schedule(c, total)
    end = 0.1 * lr
    for s in [0, warm // 2, warm, warm + 7, total - 1, total]:
        if s < warm:
            want = lr * s / warm
        else:
            u = (s - warm) / (total - warm)
            want = {"cosine": end + (lr - end) * 0.5 * (1 + math.cos(math.pi * u)),
                    "linear": lr + (end - lr) * u, "constant": lr}[kind]
        assert float(f(s)) == pytest.approx(want, rel=1e-5), s
    with pytest.raises(ValueError, match="schedule"):
        make_schedule(ConfigDict(dict(lr=lr, warmup_steps=0, schedule="step")), total)

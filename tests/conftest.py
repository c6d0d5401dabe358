"""Test setup: 8 fake CPU devices (set before jax is imported) and a persistent compile cache."""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

_CACHE = pathlib.Path(__file__).resolve().parent.parent / ".jax_cache"
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

DATA = pathlib.Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_dir() -> pathlib.Path:
    """Folder of bundled test recordings (each with its provenance note)."""
    return DATA


@pytest.fixture
def rng(request):
    """A fresh numpy Generator per test; the seed is printed so a failure can be replayed."""
    import numpy as np

    seed = int.from_bytes(os.urandom(4), "little")
    print(f"[rng seed {seed} for {request.node.name}]")
    return np.random.default_rng(seed)

"""io_utils: the restricted unpickler (refusals, HSMR-like object npy, chumpy stand-in) and
atomic writes (nothing half-written, nothing left behind)."""
import os
import pathlib
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

from biocoach_jax.io_utils import (
    UnsafePickleError, atomic_path, atomic_save_npy, atomic_write_text, pickle_bytes,
    safe_load_npy, safe_load_pickle)


class _Gadget:
    """Not data: unpickling it would run `os.system`."""

    def __reduce__(self):
        return (os.system, ("echo unsafe",))


class _Custom:
    pass


def test_refuses_code_and_foreign_objects_naming_the_file(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle_bytes({"a": np.zeros(3), "b": _Gadget()}))
    with pytest.raises(UnsafePickleError, match=r"evil.pkl.*refusing to unpickle (posix|os|nt)\.system"):
        safe_load_pickle(p)
    q = tmp_path / "custom.pkl"
    q.write_bytes(pickle_bytes([_Custom()]))
    with pytest.raises(UnsafePickleError, match=r"custom.pkl.*test_io_utils._Custom"):
        safe_load_pickle(q)
    # the same object inside an object .npy
    arr = np.empty(1, dtype=object)
    arr[0] = _Custom()
    np.save(tmp_path / "custom.npy", arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=r"custom.npy"):
        safe_load_npy(tmp_path / "custom.npy")


def test_reads_hsmr_like_object_npy(tmp_path, rng):
    frames = [{"poses": rng.normal(size=(k, 46)).astype(np.float32), "betas": rng.normal(size=(k, 10)),
               "bbx_cs": rng.uniform(size=(k, 3)), "note": ("x", 1, None)} for k in (1, 0, 2)]
    arr = np.empty(len(frames), dtype=object)
    arr[:] = frames
    np.save(tmp_path / "HSMR-x.npy", arr, allow_pickle=True)
    loaded = safe_load_npy(tmp_path / "HSMR-x.npy")
    assert len(loaded) == 3
    for got, want in zip(loaded, frames):
        assert set(got) == set(want)
        for key in ("poses", "betas", "bbx_cs"):
            np.testing.assert_array_equal(got[key], want[key])
            assert got[key].dtype == want[key].dtype
        assert got["note"] == want["note"]
    # plain numeric npy goes through np.load without pickle
    x = rng.normal(size=(4, 5))
    np.save(tmp_path / "plain.npy", x)
    np.testing.assert_array_equal(safe_load_npy(tmp_path / "plain.npy"), x)


def test_truncated_pickle_is_a_clear_error(tmp_path, rng):
    data = pickle_bytes({"v": rng.normal(size=50)})
    p = tmp_path / "cut.pkl"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.pkl: corrupt or truncated pickle"):
        safe_load_pickle(p)
    q = tmp_path / "cut.npy"
    q.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"cut.npy"):
        safe_load_npy(q)


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A stand-in `chumpy.ch.Ch` class so a test can write a chumpy-style pickle."""
    pkg = types.ModuleType("chumpy")
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._cache = {"irrelevant": 1}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch = Ch
    pkg.ch = mod
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    return Ch


@pytest.mark.parametrize("protocol", [0, 1, 2])  # 0/1: Python-2 style (copy_reg names)
def test_chumpy_objects_become_arrays(tmp_path, rng, fake_chumpy, protocol):
    shapedirs = rng.normal(size=(7, 3, 4))
    p = tmp_path / "smpl_like.pkl"
    p.write_bytes(pickle.dumps({"shapedirs": fake_chumpy(shapedirs), "f": np.arange(6).reshape(2, 3)},
                               protocol=protocol))
    sys.modules.pop("chumpy.ch")  # the loader must not need chumpy
    sys.modules.pop("chumpy")
    out = safe_load_pickle(p, allow_chumpy=True)
    assert isinstance(out["shapedirs"], np.ndarray)
    np.testing.assert_array_equal(out["shapedirs"], shapedirs)
    with pytest.raises(UnsafePickleError, match=r"smpl_like.pkl.*chumpy.ch.Ch"):
        safe_load_pickle(p)


def test_atomic_write_leaves_nothing_behind_on_error(tmp_path):
    target = tmp_path / "out" / "poses.npy"
    atomic_save_npy(target, np.arange(3.0))
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target, suffix=".npy") as tmp:
            np.save(tmp, np.arange(100.0))
            assert tmp.exists() and tmp != target
            raise RuntimeError("boom")
    assert target.read_bytes() == before
    assert sorted(os.listdir(target.parent)) == ["poses.npy"]
    # a new file that fails is never created
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out" / "new.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("fail")
    assert sorted(os.listdir(target.parent)) == ["poses.npy"]
    atomic_write_text(tmp_path / "out" / "ok.txt", "done")
    assert (tmp_path / "out" / "ok.txt").read_text() == "done"
    assert sorted(os.listdir(target.parent)) == ["ok.txt", "poses.npy"]


def test_killed_writer_never_exposes_a_partial_file(tmp_path):
    """A writer killed mid-write (no Python cleanup) leaves the old file intact."""
    target = tmp_path / "data.txt"
    atomic_write_text(target, "old")
    code = ("import os, sys; sys.path.insert(0, %r)\n"
            "from biocoach_jax.io_utils import atomic_path\n"
            "with atomic_path(%r) as tmp:\n"
            "    tmp.write_text('partial')\n"
            "    os._exit(3)\n") % (str(pathlib.Path(__file__).resolve().parents[1]), str(target))
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert target.read_text() == "old"

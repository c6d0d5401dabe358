"""Small I/O helpers every layer may use: a restricted unpickler and atomic writes.

Pose files from HSMR (`np.save` of a list of dicts) and official SMPL model files are pickles,
i.e. untrusted code. `safe_load_pickle` / `safe_load_npy` admit only numpy arrays, numpy
dtypes/scalars and plain containers (optionally scipy sparse matrices and chumpy arrays, which
are turned into plain numpy arrays without importing chumpy). Anything else is refused with an
error naming the file and the offending class.
"""
from __future__ import annotations

import _compat_pickle
import contextlib
import copyreg
import io
import os
import pathlib
import pickle
import tempfile
from typing import Any, BinaryIO, Iterator

import numpy as np


class UnsafePickleError(ValueError):
    """A pickle asked for a class outside the allow-list."""


class _ChumpyStandIn:
    """Receives a chumpy object's pickled state; replaced by its array after loading."""

    def __setstate__(self, state):
        self.state = state


# (module, name) pairs that are data, not code.
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "object"),  # the base argument of copyreg._reconstructor in protocol 0/1
    ("builtins", "slice"), ("builtins", "complex"), ("builtins", "set"), ("builtins", "frozenset"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}
_SPARSE_CLASSES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}


def _is_numpy_dtype_class(module: str, name: str) -> bool:
    # numpy >= 1.25 pickles dtypes as e.g. numpy.dtypes.Float64DType
    return module in ("numpy.dtypes", "numpy._core.dtypes") and name.endswith("DType")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str, allow_chumpy: bool, allow_sparse: bool):
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allow_chumpy = allow_chumpy
        self._allow_sparse = allow_sparse

    def find_class(self, module: str, name: str) -> Any:
        # Python-2 pickles (protocol 0/1, e.g. official SMPL files) use old module names such
        # as copy_reg; map them to Python 3 names first, as pickle's own find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _NUMPY_ALLOWED or _is_numpy_dtype_class(module, name):
            return super().find_class(module, name)
        if module == "copyreg" and name == "_reconstructor":
            return self._safe_reconstructor
        if self._allow_chumpy and module.startswith("chumpy"):
            return _ChumpyStandIn
        if self._allow_sparse and module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refusing to unpickle {module}.{name}: only numpy arrays, dtypes and "
            "plain containers are allowed in this file")

    def _safe_reconstructor(self, cls, base, state):
        # copyreg._reconstructor(cls, object, None) is how old-style objects (chumpy, sparse)
        # are rebuilt; allow it only for classes that find_class already admitted.
        if cls is _ChumpyStandIn or (self._allow_sparse and cls.__module__.startswith("scipy.sparse")):
            return copyreg._reconstructor(cls, base, state)
        raise UnsafePickleError(f"{self._source}: refusing to reconstruct {cls!r}")


def _replace_chumpy(obj: Any) -> Any:
    if isinstance(obj, _ChumpyStandIn):
        state = getattr(obj, "state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise ValueError("chumpy object without an 'x' array in its state")
    if isinstance(obj, dict):
        return {k: _replace_chumpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_chumpy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_replace_chumpy(v) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        flat = [_replace_chumpy(v) for v in obj.ravel()]
        out = np.empty(obj.shape, dtype=object)
        for i, v in enumerate(flat):
            out.flat[i] = v
        return out
    return obj


def safe_load_pickle(path, *, allow_chumpy: bool = False, allow_sparse: bool = False) -> Any:
    """Unpickle `path` admitting only data classes (see module doc)."""
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        return _loads_restricted(f, str(path), allow_chumpy, allow_sparse)


def _loads_restricted(f: BinaryIO, source: str, allow_chumpy: bool, allow_sparse: bool) -> Any:
    try:
        obj = _RestrictedUnpickler(f, source, allow_chumpy, allow_sparse).load()
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as e:
        raise ValueError(f"{source}: corrupt or truncated pickle ({type(e).__name__}: {e})") from None
    return _replace_chumpy(obj) if allow_chumpy else obj


def safe_load_npy(path) -> Any:
    """Load a `.npy` file; object arrays (np.save of Python lists/dicts) go through the
    restricted unpickler instead of `np.load(allow_pickle=True)`."""
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject:
                return _loads_restricted(f, str(path), False, False)
    except ValueError as e:
        if isinstance(e, UnsafePickleError) or str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a valid .npy file ({e})") from None
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: corrupt or truncated .npy file ({e})") from None


@contextlib.contextmanager
def atomic_path(path, *, suffix: str | None = None) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`.

    On an exception the temporary file is removed and `path` is left as it was, so readers
    never see a half-written file. `suffix` keeps an extension that writers may require
    (np.save appends '.npy' otherwise).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = pathlib.Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the usual umask-based mode
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npy(path, array) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def pickle_bytes(obj: Any) -> bytes:
    """Pickle to bytes (used by writers of HSMR-format files and by tests)."""
    buf = io.BytesIO()
    pickle.dump(obj, buf, protocol=4)
    return buf.getvalue()

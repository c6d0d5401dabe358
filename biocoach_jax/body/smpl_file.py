"""SMPL-format body model files (`.pkl` as released, or `.npz`) as a ShapeModel.

Keys (REFERENCE.md §6): v_template (V,3), shapedirs (V,3,B), f (F,3); optional J_regressor
(J,V) dense or scipy sparse, weights (V,J), kintree_table (2,J), posedirs (V,3,P). Official
pickles hold chumpy arrays and a sparse J_regressor: they are read through the restricted
unpickler in `io_utils`, never with plain `pickle.load` (model files are untrusted input).
SKEL's skin mesh shares SMPL's topology, so the SMPL landmarks apply to it as well.
"""
from __future__ import annotations

import pathlib
import zipfile
from typing import Mapping

import numpy as np

from biocoach_jax.body.measurements import check_landmarks, check_mesh
from biocoach_jax.body.shape_model import MeshShapeModel, as_betas
from biocoach_jax.io_utils import safe_load_pickle

# SHAPY's measurement vertices on the SMPL mesh (REFERENCE.md §5).
SMPL_LANDMARKS: dict[str, int] = {
    "head_top": 411, "heel": 3466, "chest": 6489, "waist": 3501, "hips": 1210}
SMPL_NUM_VERTICES = 6890
_PICKLED = object()  # marks an .npz entry that would need pickle to load


def _load_dict(path: pathlib.Path) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        data = safe_load_pickle(path, allow_chumpy=True, allow_sparse=True)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a pickled dict of arrays, "
                             f"got {type(data).__name__}")
        return data
    if suffix == ".npz":
        data = {}
        try:
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    try:
                        data[k] = z[k]
                    except ValueError:
                        # An object array needs pickle, which we refuse; SMPL-X files carry
                        # a few (name tables) that are not needed here, so only mark them.
                        data[k] = _PICKLED
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: corrupt or truncated .npz ({e})") from None
        return data
    raise ValueError(f"{path}: unsupported model file type {suffix!r} (use .pkl or .npz)")


def _array(data: dict, key: str, path: pathlib.Path, ndim: int) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{path}: missing key {key!r} (keys present: {sorted(data)})")
    value = data[key]
    if value is _PICKLED:
        raise ValueError(f"{path}: key {key!r} holds pickled Python objects, not a numeric array")
    if hasattr(value, "toarray"):  # scipy sparse J_regressor
        value = value.toarray()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: key {key!r} is not a numeric array "
                         f"({type(value).__name__})") from None
    if arr.ndim != ndim:
        raise ValueError(f"{path}: key {key!r} must be {ndim}-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: key {key!r} contains NaN or inf")
    return arr


def _expect(arr: np.ndarray, shape: tuple, key: str, path: pathlib.Path) -> None:
    """`shape` entries of None are free; anything else must match."""
    fits = len(arr.shape) == len(shape) and all(
        s is None or a == s for a, s in zip(arr.shape, shape))
    if not fits:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{path}: key {key!r} has shape {arr.shape}, expected {want}")


class SMPLFileModel(MeshShapeModel):
    """v_shaped(betas) = v_template + shapedirs[..., :n] @ betas[:n] from an SMPL-format file."""

    def __init__(self, path, *, landmarks: Mapping[str, int] | None = None,
                 num_betas: int | None = None):
        self.path = pathlib.Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        data = _load_dict(self.path)
        p = self.path

        self.v_template = _array(data, "v_template", p, 2)
        _expect(self.v_template, (None, 3), "v_template", p)
        n_v = self.v_template.shape[0]
        shapedirs = _array(data, "shapedirs", p, 3)
        _expect(shapedirs, (n_v, 3, None), "shapedirs", p)
        faces = _array(data, "f", p, 2)
        _, self._faces = check_mesh(self.v_template, faces, source=f"{p} (key 'f')")

        available = shapedirs.shape[2]
        if num_betas is None:
            num_betas = available
        if not 0 < num_betas <= available:
            raise ValueError(f"{p}: num_betas={num_betas} but the file has {available} shape "
                             "components")
        self.shapedirs = shapedirs[:, :, :num_betas]
        self._num_betas = int(num_betas)

        # Optional skinning data, kept for later use (posing) and checked against V now.
        self.J_regressor = self.weights = self.kintree_table = self.posedirs = None
        if "J_regressor" in data:
            self.J_regressor = _array(data, "J_regressor", p, 2)
            _expect(self.J_regressor, (None, n_v), "J_regressor", p)
        if "weights" in data:
            self.weights = _array(data, "weights", p, 2)
            _expect(self.weights, (n_v, None), "weights", p)
        if "kintree_table" in data:
            # uint32 in official files (the root's parent is 2**32 - 1); keep integers exact.
            self.kintree_table = _array(data, "kintree_table", p, 2).astype(np.int64)
            _expect(self.kintree_table, (2, None), "kintree_table", p)
        if "posedirs" in data:
            self.posedirs = _array(data, "posedirs", p, 3)
            _expect(self.posedirs, (n_v, 3, None), "posedirs", p)

        if landmarks is None:
            if n_v != SMPL_NUM_VERTICES:
                raise ValueError(f"{p}: mesh has {n_v} vertices, not SMPL's {SMPL_NUM_VERTICES}; "
                                 "pass landmarks= explicitly")
            landmarks = SMPL_LANDMARKS
        self._landmarks = check_landmarks(landmarks, n_v, source=str(p))


    def v_shaped(self, betas) -> np.ndarray:
        b = as_betas(betas, self._num_betas, source=self.source)
        return self.v_template + self.shapedirs @ b

    def joints(self, betas) -> np.ndarray:
        """Rest-pose joint locations J_regressor @ v_shaped, (J, 3)."""
        if self.J_regressor is None:
            raise ValueError(f"{self.source}: the file has no J_regressor")
        return self.J_regressor @ self.v_shaped(betas)

"""The one interface every body shape model offers, and measurement of a model at given betas."""
from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from biocoach_jax.body.measurements import Measurements, measure


@runtime_checkable
class ShapeModel(Protocol):
    """A template mesh deformed by shape coefficients (betas), in the zero pose, y up, metres."""

    @property
    def faces(self) -> np.ndarray:  # (F, 3) int64, fixed for every betas
        ...

    @property
    def landmarks(self) -> Mapping[str, int]:  # head_top, heel, chest, waist, hips -> vertex id
        ...

    @property
    def num_betas(self) -> int:
        ...

    def v_shaped(self, betas) -> np.ndarray:  # (V, 3) float64
        ...


class MeshShapeModel:
    """Shared accessors for models that store `_faces`, `_landmarks` and `_num_betas`."""

    _faces: np.ndarray
    _landmarks: Mapping[str, int]
    _num_betas: int

    @property
    def faces(self) -> np.ndarray:
        return self._faces

    @property
    def landmarks(self) -> dict[str, int]:
        return dict(self._landmarks)

    @property
    def num_betas(self) -> int:
        return self._num_betas


def as_betas(betas, num_betas: int, *, source: str = "model") -> np.ndarray:
    """Betas as float64 (num_betas,); a shorter vector is zero-padded (as smplx does)."""
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim == 2 and b.shape[0] == 1:  # a batch of one, the smplx habit
        b = b[0]
    if b.ndim != 1:
        raise ValueError(f"{source}: betas must be a 1-D vector, got shape {b.shape}")
    if b.shape[0] > num_betas:
        raise ValueError(f"{source}: got {b.shape[0]} betas but the model has {num_betas}")
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{source}: betas contain NaN or inf")
    return np.pad(b, (0, num_betas - b.shape[0]))


def measure_body(model: ShapeModel, betas) -> Measurements:
    """SHAPY measurements of `model`'s shaped zero-pose mesh."""
    source = getattr(model, "source", type(model).__name__)
    return measure(model.v_shaped(betas), model.faces, model.landmarks, source=str(source))

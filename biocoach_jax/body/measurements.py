"""SHAPY-style virtual body measurements on any triangle mesh (REFERENCE.md §5).

Conventions: y is up, metres, the mesh in its shaped zero pose (`v_shaped`).
- mass   = |signed volume| x 985 kg/m^3, the volume summed over triangles as det[v0,v1,v2]/6;
- height = |y(head top) - y(heel)|;
- chest / waist / hip circumference: cut the whole mesh with the horizontal plane through the
  landmark, project the cut points to the xz plane and take the perimeter of their convex hull
  (a tape measure spans concavities, hence the hull).
Plain numpy (host side): this runs once per subject, not in a training loop.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from scipy.spatial import ConvexHull, QhullError

BODY_DENSITY_KG_M3 = 985.0
LANDMARK_NAMES: tuple[str, ...] = ("head_top", "heel", "chest", "waist", "hips")


class MeshError(ValueError):
    """A mesh, its landmarks or a measurement plane is unusable; the message says why."""


@dataclasses.dataclass(frozen=True)
class Measurements:
    height_m: float
    mass_kg: float
    chest_m: float
    waist_m: float
    hip_m: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def check_mesh(vertices, faces, *, source: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Return (vertices float64 (V,3), faces int64 (F,3)) or raise MeshError naming `source`."""
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise MeshError(f"{source}: vertices must have shape (V, 3), got {v.shape}")
    if not np.issubdtype(v.dtype, np.number):
        raise MeshError(f"{source}: vertices must be numeric, got dtype {v.dtype}")
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise MeshError(f"{source}: vertices contain NaN or inf")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise MeshError(f"{source}: faces must be triangles with shape (F, 3), got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        if not (np.issubdtype(f.dtype, np.floating) and np.all(f == np.round(f))):
            raise MeshError(f"{source}: faces must hold integer vertex indices, "
                            f"got dtype {f.dtype}")
    f = f.astype(np.int64)
    bad = (f < 0) | (f >= v.shape[0])
    if bad.any():
        raise MeshError(f"{source}: face index {int(f[bad][0])} is out of range for "
                        f"{v.shape[0]} vertices")
    return v, f


def check_landmarks(landmarks: Mapping[str, int], num_vertices: int, *,
                    source: str = "mesh") -> dict[str, int]:
    """Validate a {name: vertex index} dict holding every name in LANDMARK_NAMES."""
    if not isinstance(landmarks, Mapping):
        raise MeshError(f"{source}: landmarks must be a dict of vertex indices, "
                        f"got {type(landmarks).__name__}")
    missing = [k for k in LANDMARK_NAMES if k not in landmarks]
    if missing:
        raise MeshError(f"{source}: landmarks lack {missing} (need {list(LANDMARK_NAMES)})")
    out = {}
    for name, idx in landmarks.items():
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise MeshError(f"{source}: landmark {name!r} must be an integer vertex index, "
                            f"got {idx!r}")
        if not 0 <= int(idx) < num_vertices:
            raise MeshError(f"{source}: landmark {name!r} = {int(idx)} is out of range for "
                            f"{num_vertices} vertices")
        out[name] = int(idx)
    return out


def signed_volume(vertices, faces) -> float:
    """Sum over triangles of det[v0, v1, v2] / 6 (positive for outward-facing winding)."""
    v, f = check_mesh(vertices, faces)
    # Centring changes nothing for a closed mesh but keeps the determinants small, so a body
    # far from the origin does not lose digits to cancellation.
    v = v - v.mean(axis=0)
    v0, v1, v2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->", v0, np.cross(v1, v2)) / 6.0)


def mass_kg(vertices, faces, density: float = BODY_DENSITY_KG_M3) -> float:
    return abs(signed_volume(vertices, faces)) * density


def section_points(vertices, faces, y: float) -> np.ndarray:
    """xz points where the plane at height `y` cuts the mesh: (P, 2), possibly empty.

    Every triangle edge whose ends lie strictly on opposite sides gives one interpolated point;
    vertices lying exactly on the plane are added as they are (a landmark plane always passes
    through its own vertex). Edges shared by two faces appear twice, which the hull ignores.
    """
    v, f = check_mesh(vertices, faces)
    d = v[:, 1] - float(y)
    edges = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    da, db = d[edges[:, 0]], d[edges[:, 1]]
    crossing = da * db < 0
    a, b = edges[crossing, 0], edges[crossing, 1]
    t = (da[crossing] / (da[crossing] - db[crossing]))[:, None]
    cut = v[a] + t * (v[b] - v[a])
    used = np.zeros(v.shape[0], bool)
    used[f.ravel()] = True
    on_plane = v[used & (d == 0.0)]
    return np.concatenate([cut, on_plane])[:, [0, 2]]


def convex_hull_perimeter(points_2d, *, what: str = "points") -> float:
    """Perimeter of the 2-D convex hull; MeshError if the points span no area."""
    p = np.asarray(points_2d, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise MeshError(f"{what}: expected (N, 2) points, got {p.shape}")
    if p.shape[0] < 3:
        raise MeshError(f"{what}: {p.shape[0]} point(s) cannot enclose an area")
    try:
        hull = ConvexHull(p)
    except QhullError:
        raise MeshError(f"{what}: the points are collinear, the section has no area") from None
    return float(hull.area)  # in 2-D, scipy's `area` is the perimeter (`volume` is the area)


def circumference_at(vertices, faces, y: float, *, source: str = "mesh") -> float:
    """Convex-hull perimeter of the mesh's section by the horizontal plane at height `y`."""
    pts = section_points(vertices, faces, y)
    if pts.shape[0] == 0:
        raise MeshError(f"{source}: the plane y={y:.6g} misses the mesh")
    return convex_hull_perimeter(pts, what=f"{source}: section at y={y:.6g}")


def measure(vertices, faces, landmarks: Mapping[str, int], *,
            source: str = "mesh") -> Measurements:
    """Height, mass and chest/waist/hip circumferences of a shaped zero-pose mesh."""
    v, f = check_mesh(vertices, faces, source=source)
    lm = check_landmarks(landmarks, v.shape[0], source=source)

    def girth(name: str) -> float:
        return circumference_at(v, f, v[lm[name], 1], source=f"{source} ({name})")

    return Measurements(
        height_m=float(abs(v[lm["head_top"], 1] - v[lm["heel"], 1])),
        mass_kg=mass_kg(v, f),
        chest_m=girth("chest"),
        waist_m=girth("waist"),
        hip_m=girth("hips"),
    )

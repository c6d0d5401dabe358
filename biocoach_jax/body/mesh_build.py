"""Closed triangle meshes lofted through cross-section rings (for the procedural body).

A part is a stack of K rings of n points each, swept along an axis, closed at both ends by a
fan around an end point (the ring's centroid for a flat cap, or a given pole such as the top of
the head). Rings are laid out counter-clockwise seen from the +axis side, i.e. the in-plane
basis is (u, axis x u); with that convention the triangle winding below faces outward, so every
part has positive signed volume without any flipping that could depend on the shape.
"""
from __future__ import annotations

import dataclasses

import numpy as np

# A square seen as 8 points (corners and edge midpoints) in the ring's (u, w) coordinates,
# counter-clockwise from +u: gives exactly flat sides (a foot sole at y = 0, a flat instep).
SQUARE_8 = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)],
                    dtype=np.float64)


def circle_coords(n: int) -> np.ndarray:
    """(n, 2) unit-circle coordinates, counter-clockwise from +u."""
    t = 2.0 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def ring(center, axis, u, radius_u: float, radius_w: float, coords: np.ndarray) -> np.ndarray:
    """Ring points center + ru*cu*u + rw*cw*(axis x u); `axis` and `u` are orthonormal."""
    axis, u = np.asarray(axis, np.float64), np.asarray(u, np.float64)
    w = np.cross(axis, u)
    return (np.asarray(center, np.float64)
            + (radius_u * coords[:, :1]) * u + (radius_w * coords[:, 1:]) * w)


@dataclasses.dataclass(frozen=True)
class Part:
    """One closed part: rings (K, n, 3) ordered along the loft axis, optional end poles."""
    name: str
    rings: np.ndarray
    start: np.ndarray | None = None  # None: flat cap at the first ring's centroid
    end: np.ndarray | None = None    # None: flat cap at the last ring's centroid


def loft_faces(num_rings: int, n: int) -> np.ndarray:
    """Faces of a lofted part whose vertices are the rings (row-major) then start, end point."""
    k, j = np.meshgrid(np.arange(num_rings - 1), np.arange(n), indexing="ij")
    a = k * n + j
    b = k * n + (j + 1) % n
    c = (k + 1) * n + (j + 1) % n
    d = (k + 1) * n + j
    sides = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                            np.stack([a, c, d], -1).reshape(-1, 3)])
    start, end = num_rings * n, num_rings * n + 1
    jj = np.arange(n)
    last = (num_rings - 1) * n
    start_cap = np.stack([np.full(n, start), (jj + 1) % n, jj], -1)
    end_cap = np.stack([np.full(n, end), last + jj, last + (jj + 1) % n], -1)
    return np.concatenate([sides, start_cap, end_cap]).astype(np.int64)


def loft_vertices(part: Part) -> np.ndarray:
    rings = part.rings
    start = rings[0].mean(axis=0) if part.start is None else np.asarray(part.start, np.float64)
    end = rings[-1].mean(axis=0) if part.end is None else np.asarray(part.end, np.float64)
    return np.concatenate([rings.reshape(-1, 3), start[None], end[None]])


def assemble(parts: list[Part]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Concatenate parts into one mesh: (vertices, faces, first vertex index of each part)."""
    verts, faces, offsets, base = [], [], {}, 0
    for part in parts:
        v = loft_vertices(part)
        offsets[part.name] = base
        verts.append(v)
        faces.append(loft_faces(part.rings.shape[0], part.rings.shape[1]) + base)
        base += v.shape[0]
    return np.concatenate(verts), np.concatenate(faces), offsets

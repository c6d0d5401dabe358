"""Closed test meshes lofted through horizontal rings (shared by the body tests)."""
import numpy as np


def capped_loft(rings, bottom, top):
    """Rings (k, n, 3) of n points each (counter-clockwise seen from +y, bottom to top) joined
    by quads, plus a fan to a `bottom` and a `top` pole: a closed, outward-facing mesh."""
    rings = np.asarray(rings, dtype=np.float64)
    k, n = rings.shape[:2]
    v = np.concatenate([rings.reshape(-1, 3), [bottom], [top]])
    f = []
    for i in range(k - 1):
        for j in range(n):
            a, b = i * n + j, i * n + (j + 1) % n
            f += [[a, b, b + n], [a, b + n, a + n]]
    s, t, last = k * n, k * n + 1, (k - 1) * n
    for j in range(n):
        f += [[s, (j + 1) % n, j], [t, last + j, last + (j + 1) % n]]
    return v, np.array(f)

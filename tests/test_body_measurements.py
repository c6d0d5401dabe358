"""SHAPY measurements on analytic meshes: box, many-sided cylinder, icosphere, two-cylinder hull.

Oracles: exact polygon / polyhedron formulas, scipy's 3-D convex hull volume, and an
independent per-triangle section-length sum (for convex meshes it equals the hull perimeter).
"""
import numpy as np
import pytest
from scipy.spatial import ConvexHull

from mesh_helpers import capped_loft

from biocoach_jax.body import (
    BODY_DENSITY_KG_M3, MeshError, circumference_at, convex_hull_perimeter, mass_kg, measure,
    signed_volume)


# ---------------------------------------------------------------- analytic meshes (outward)
def box_mesh(sx, sy, sz):
    """Axis-aligned box with its bottom face at y = 0, centred on the y axis."""
    x, z = sx / 2, sz / 2
    v = np.array([[-x, 0, -z], [x, 0, -z], [x, 0, z], [-x, 0, z],
                  [-x, sy, -z], [x, sy, -z], [x, sy, z], [-x, sy, z]], float)
    f = np.array([[0, 1, 2], [0, 2, 3],            # bottom (normal -y)
                  [4, 6, 5], [4, 7, 6],            # top (+y)
                  [0, 4, 5], [0, 5, 1],            # back (-z)
                  [3, 2, 6], [3, 6, 7],            # front (+z)
                  [0, 3, 7], [0, 7, 4],            # left (-x)
                  [1, 5, 6], [1, 6, 2]])           # right (+x)
    return v, f


def cylinder_mesh(r, h, n, levels):
    """n-gon prism along y from 0 to h with `levels` rings and centre-fan caps."""
    t = 2 * np.pi * np.arange(n) / n
    ring = np.stack([r * np.cos(t), np.zeros(n), -r * np.sin(t)], 1)  # ccw seen from +y
    return capped_loft([ring + [0, y, 0] for y in np.linspace(0, h, levels)], [0, 0, 0], [0, h, 0])


def icosphere(level):
    p = (1 + 5 ** 0.5) / 2
    v = [[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p], [0, -1, -p],
         [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    v = [np.array(x, float) / np.linalg.norm(x) for x in v]
    for _ in range(level):
        mid, new_f = {}, []

        def midpoint(a, b):
            key = (min(a, b), max(a, b))
            if key not in mid:
                m = v[a] + v[b]
                v.append(m / np.linalg.norm(m))
                mid[key] = len(v) - 1
            return mid[key]

        for a, b, c in f:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_f += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = new_f
    return np.array(v), np.array(f)


@pytest.fixture(scope="module")
def unit_icosphere():
    return icosphere(5)  # 10242 vertices: within 1e-3 of the round sphere


def yaw_and_shift(v, rng):
    """Random rotation about y plus a random translation: measurements must not change."""
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return v @ rot.T + rng.uniform(-3, 3, size=3)


def section_length_sum(v, f, y):
    """Independent oracle: sum of the per-triangle cut segments (convex mesh, general position)."""
    total = 0.0
    tris = v[f]
    ys = tris[..., 1]
    for tri in tris[(ys.min(axis=1) < y) & (ys.max(axis=1) > y)]:
        d = tri[:, 1] - y
        pts = [tri[i] + d[i] / (d[i] - d[j]) * (tri[j] - tri[i])
               for i, j in ((0, 1), (1, 2), (2, 0)) if d[i] * d[j] < 0]
        if len(pts) == 2:
            total += np.hypot(*(pts[0] - pts[1])[[0, 2]])
    return total


# ---------------------------------------------------------------- tests
def test_box_volume_and_girths(rng):
    sx, sy, sz = rng.uniform(0.2, 2.0, size=3)
    v, f = box_mesh(sx, sy, sz)
    v = yaw_and_shift(v, rng)
    np.testing.assert_allclose(signed_volume(v, f), sx * sy * sz, rtol=1e-10)
    np.testing.assert_allclose(mass_kg(v, f), sx * sy * sz * BODY_DENSITY_KG_M3, rtol=1e-10)
    # Inside the box the cut interpolates edges; at the top face it is made of on-plane vertices.
    y_mid = v[:, 1].min() + rng.uniform(0.05, 0.95) * sy
    np.testing.assert_allclose(circumference_at(v, f, y_mid), 2 * (sx + sz), rtol=1e-10)
    lm = dict(head_top=6, heel=0, chest=5, waist=7, hips=1)
    m = measure(v, f, lm)
    np.testing.assert_allclose([m.height_m, m.chest_m, m.waist_m, m.hip_m],
                               [sy, 2 * (sx + sz), 2 * (sx + sz), 2 * (sx + sz)], rtol=1e-10)
    assert set(m.as_dict()) == {"height_m", "mass_kg", "chest_m", "waist_m", "hip_m"}


def test_flipped_winding_gives_negative_volume_same_mass(rng):
    v, f = box_mesh(*rng.uniform(0.3, 1.0, size=3))
    assert signed_volume(v, f[:, ::-1]) < 0
    np.testing.assert_allclose(mass_kg(v, f[:, ::-1]), mass_kg(v, f), rtol=1e-12)


def test_cylinder_exact_polygon_and_circle(rng):
    n = int(rng.integers(101, 302)) | 1  # odd number of sides
    r, h = rng.uniform(0.1, 0.5), rng.uniform(0.5, 2.0)
    v, f = cylinder_mesh(r, h, n, levels=5)
    v = yaw_and_shift(v, rng)
    polygon_area = 0.5 * n * r * r * np.sin(2 * np.pi / n)
    polygon_perimeter = 2 * n * r * np.sin(np.pi / n)
    np.testing.assert_allclose(signed_volume(v, f), polygon_area * h, rtol=1e-9)
    np.testing.assert_allclose(mass_kg(v, f), np.pi * r * r * h * 985, rtol=1e-3)
    y = v[:, 1].min() + rng.uniform(0.01, 0.99) * h
    np.testing.assert_allclose(circumference_at(v, f, y), polygon_perimeter, rtol=1e-9)
    np.testing.assert_allclose(circumference_at(v, f, y), 2 * np.pi * r, rtol=1e-3)
    # Landmarks on rings: bottom ring (hips), middle ring (waist), top ring (chest).
    lm = dict(head_top=5 * n + 1, heel=5 * n, chest=4 * n + 3, waist=2 * n, hips=7)
    m = measure(v, f, lm)
    np.testing.assert_allclose(m.height_m, h, rtol=1e-12)
    np.testing.assert_allclose([m.chest_m, m.waist_m, m.hip_m], [polygon_perimeter] * 3,
                               rtol=1e-9)


def test_icosphere_against_scipy_hull_and_sphere(rng, unit_icosphere):
    v0, f = unit_icosphere
    r = rng.uniform(0.1, 1.0)
    v = yaw_and_shift(r * v0, rng)
    np.testing.assert_allclose(signed_volume(v, f), ConvexHull(v).volume, rtol=1e-9)
    np.testing.assert_allclose(mass_kg(v, f), 4 / 3 * np.pi * r ** 3 * 985, rtol=1e-3)
    centre_y = v.mean(axis=0)[1]
    for frac in rng.uniform(-0.8, 0.8, size=3):
        y = centre_y + frac * r
        got = circumference_at(v, f, y)
        np.testing.assert_allclose(got, section_length_sum(v, f, y), rtol=1e-9)
        np.testing.assert_allclose(got, 2 * np.pi * r * np.sqrt(1 - frac ** 2), rtol=1e-3)


def test_hull_spans_two_legs(rng):
    """Two identical prisms side by side: the hull is the n-gon swept along the offset,
    whose perimeter is the n-gon's plus twice the offset."""
    n, r, h = 63, rng.uniform(0.05, 0.1), 1.0
    d = rng.uniform(2.5 * r, 6 * r)
    v1, f1 = cylinder_mesh(r, h, n, levels=3)
    v2 = v1 + [d, 0.0, 0.0]
    v, f = np.concatenate([v1, v2]), np.concatenate([f1, f1 + len(v1)])
    yaw = yaw_and_shift(v, rng)
    y = yaw[:, 1].min() + rng.uniform(0.1, 0.9)
    expected = 2 * n * r * np.sin(np.pi / n) + 2 * d
    np.testing.assert_allclose(circumference_at(yaw, f, y), expected, rtol=1e-9)
    np.testing.assert_allclose(signed_volume(yaw, f), 2 * 0.5 * n * r * r * np.sin(2 * np.pi / n),
                               rtol=1e-9)


def test_volume_survives_far_offset(rng):
    v, f = box_mesh(0.3, 1.7, 0.2)
    far = v + rng.uniform(1e4, 2e4, size=3)
    np.testing.assert_allclose(signed_volume(far, f), 0.3 * 1.7 * 0.2, rtol=1e-8)


def test_hull_perimeter_ignores_interior_and_duplicates(rng):
    sq = np.array([[0, 0], [2, 0], [2, 1], [0, 1]], float)
    pts = np.concatenate([sq, sq, rng.uniform(0.01, 0.99, size=(50, 2)) * [2, 1]])
    np.testing.assert_allclose(convex_hull_perimeter(rng.permutation(pts)), 6.0, rtol=1e-12)


# ---------------------------------------------------------------- errors
@pytest.fixture
def box():
    return box_mesh(1.0, 2.0, 0.5)


GOOD_LM = dict(head_top=6, heel=0, chest=5, waist=7, hips=1)


def test_non_triangle_faces(box):
    v, _ = box
    quads = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    with pytest.raises(MeshError, match="triangles"):
        measure(v, quads, GOOD_LM)


def test_face_index_out_of_range(box):
    v, f = box
    bad = f.copy()
    bad[3, 1] = 8
    with pytest.raises(MeshError, match="face index 8 is out of range for 8 vertices"):
        signed_volume(v, bad)
    with pytest.raises(MeshError, match="out of range"):
        measure(v, f - 1, GOOD_LM)


def test_bad_vertices(box):
    v, f = box
    with pytest.raises(MeshError, match=r"shape \(V, 3\)"):
        measure(v[:, :2], f, GOOD_LM)
    nan = v.copy()
    nan[2, 0] = np.nan
    with pytest.raises(MeshError, match="subject7.npz: vertices contain NaN"):
        measure(nan, f, GOOD_LM, source="subject7.npz")


def test_bad_landmarks(box):
    v, f = box
    with pytest.raises(MeshError, match=r"'chest' = 8 is out of range"):
        measure(v, f, {**GOOD_LM, "chest": 8})
    with pytest.raises(MeshError, match="lack.*waist"):
        measure(v, f, {k: i for k, i in GOOD_LM.items() if k != "waist"})
    with pytest.raises(MeshError, match="integer vertex index"):
        measure(v, f, {**GOOD_LM, "hips": 1.5})


def test_plane_missing_or_touching(box):
    v, f = box
    with pytest.raises(MeshError, match="misses the mesh"):
        circumference_at(v, f, 2.5, source="box")
    # A pyramid's apex plane touches a single vertex: no area to measure.
    pv = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [0.3, 1, 0.3]], float)
    pf = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]])
    with pytest.raises(MeshError, match="cannot enclose"):
        circumference_at(pv, pf, 1.0)
    with pytest.raises(MeshError, match="collinear"):
        convex_hull_perimeter(np.array([[0, 0], [1, 1], [2, 2], [3, 3.0]]))

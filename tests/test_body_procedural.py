"""The built-in procedural body: closed and consistently oriented, plausible adults over the
betas cube, each measurement monotone in the betas that drive it and blind to the others."""
import numpy as np
import pytest

from biocoach_jax.body import ProceduralBody, ShapeModel, measure_body, signed_volume
from biocoach_jax.body.mesh_build import assemble

# (measurement, beta index, direction): the documented drivers (module doc of procedural.py)
DRIVERS = [
    ("height_m", 0, +1), ("height_m", 3, +1), ("height_m", 7, +1),
    ("mass_kg", 0, +1), ("mass_kg", 1, +1), ("mass_kg", 3, +1), ("mass_kg", 4, +1),
    ("mass_kg", 8, +1), ("mass_kg", 9, +1),
    ("chest_m", 0, +1), ("chest_m", 1, +1), ("chest_m", 2, +1),
    ("waist_m", 1, +1), ("waist_m", 2, -1), ("waist_m", 8, +1),
    ("hip_m", 1, +1), ("hip_m", 4, +1),
]
# (measurement, betas that must leave it unchanged)
BLIND = [("chest_m", (3, 4, 5, 6, 7, 8, 9)), ("waist_m", (3, 4, 5, 6, 7, 9)),
         ("hip_m", (2, 3, 5, 6, 7, 8, 9)), ("height_m", (1, 2, 4, 5, 6, 8, 9))]


@pytest.fixture(scope="module")
def body():
    return ProceduralBody()


def random_betas(rng, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=10)


def edge_report(faces):
    """Independent watertightness check: each directed edge once, its reverse exactly once."""
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    uniq, counts = np.unique(directed, axis=0, return_counts=True)
    as_set = {tuple(e) for e in uniq}
    missing_twin = [e for e in as_set if (e[1], e[0]) not in as_set]
    return int((counts > 1).sum()), len(missing_twin)


def test_closed_oriented_positive_volume(body, rng):
    assert isinstance(body, ShapeModel) and body.num_betas == 10
    repeated, unpaired = edge_report(body.faces)
    assert repeated == 0 and unpaired == 0
    assert len(np.unique(body.faces)) == len(body.v_shaped(np.zeros(10)))  # no stray vertices
    for betas in (np.zeros(10), random_betas(rng), random_betas(rng, -3, 3)):
        v = body.v_shaped(betas)
        tri = v[body.faces]
        areas = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        assert areas.min() > 1e-8, "degenerate triangle"
        parts = body.parts(betas)
        assert [p.name for p in parts] == ["trunk", "leg_l", "leg_r", "foot_l", "foot_r",
                                           "arm_l", "arm_r"]
        total = 0.0
        for part in parts:
            pv, pf, _ = assemble([part])
            vol = signed_volume(pv, pf)
            assert vol > 0, part.name
            total += vol
        np.testing.assert_allclose(signed_volume(v, body.faces), total, rtol=1e-10)


def test_parts_do_not_overlap_and_rings_advance(body, rng):
    """Lofted rings move monotonically along each part's axis (no folding), and the parts only
    touch: left/right of the midline, legs between feet and trunk, arms outside the trunk."""
    for betas in (random_betas(rng), random_betas(rng, -3, 3), np.full(10, 2.0), np.full(10, -2.0)):
        parts = {p.name: p.rings for p in body.parts(betas)}
        axis_coord = {"trunk": (1, 1), "leg_l": (1, 1), "leg_r": (1, 1), "foot_l": (2, 1),
                      "foot_r": (2, 1), "arm_l": (0, 1), "arm_r": (0, -1)}
        for name, (ax, sign) in axis_coord.items():
            centre = parts[name].mean(axis=1)[:, ax] * sign
            assert np.all(np.diff(centre) > 0), name
        for side, sign in (("l", 1), ("r", -1)):
            leg, foot, arm = parts[f"leg_{side}"], parts[f"foot_{side}"], parts[f"arm_{side}"]
            assert np.all(sign * leg[..., 0] > 0) and np.all(sign * foot[..., 0] > 0)
            assert np.isclose(leg[..., 1].min(), foot[..., 1].max())     # leg stands on the foot
            assert np.isclose(leg[..., 1].max(), parts["trunk"][..., 1].min())  # under the trunk
            # the trunk's width at the arm's height is bounded by the bracketing rings
            trunk = parts["trunk"]
            ring_y = trunk[:, 0, 1]
            lowest = np.searchsorted(ring_y, arm[..., 1].min()) - 1
            trunk_half_width = np.abs(trunk[lowest:, :, 0]).max()
            assert np.all(sign * arm[..., 0] > trunk_half_width)


def test_landmarks_and_height_identity(body, rng):
    betas = random_betas(rng)
    v = body.v_shaped(betas)
    lm = body.landmarks
    assert v[lm["heel"], 1] == 0.0 and v[:, 1].min() == 0.0
    assert v[lm["head_top"], 1] == v[:, 1].max()
    assert v[lm["hips"], 1] < v[lm["waist"], 1] < v[lm["chest"], 1]
    assert v[lm["chest"], 2] > 0 and v[lm["heel"], 0] > 0  # chest at the front, left heel
    seg = body.segment_lengths(betas).as_dict()
    assert all(x > 0 for x in seg.values())
    m = measure_body(body, betas)
    np.testing.assert_allclose(m.height_m, sum(seg[k] for k in (
        "ankle_height", "shank", "thigh", "trunk", "neck", "head")), rtol=1e-12)


def test_girths_cut_only_the_trunk(body, rng):
    """Each girth equals the perimeter of its own trunk ring: the arms and legs stay out of
    the chest, waist and hip planes."""
    betas = random_betas(rng)
    v = body.v_shaped(betas)
    m = measure_body(body, betas)
    for name, value in (("chest", m.chest_m), ("waist", m.waist_m), ("hips", m.hip_m)):
        ring_start = body.landmarks[name] - 3 * 48 // 4
        ring = v[ring_start:ring_start + 48][:, [0, 2]]
        perimeter = np.linalg.norm(np.roll(ring, -1, axis=0) - ring, axis=1).sum()
        np.testing.assert_allclose(value, perimeter, rtol=1e-10)


def test_plausible_adults_over_the_cube(body, rng):
    corners = rng.choice([-2.0, 2.0], size=(48, 10))
    inside = rng.uniform(-2, 2, size=(16, 10))
    for betas in np.concatenate([corners, inside, np.zeros((1, 10))]):
        m = measure_body(body, betas)
        bmi = m.mass_kg / m.height_m ** 2
        assert 1.50 <= m.height_m <= 2.00, (betas, m)
        assert 17.0 <= bmi <= 35.0, (betas, m)
        assert 0.6 < m.waist_m < 1.4 and 0.7 < m.chest_m < 1.4 and 0.75 < m.hip_m < 1.4
    mean = measure_body(body, np.zeros(10))
    assert 1.65 < mean.height_m < 1.85 and 60 < mean.mass_kg < 85


def test_measurements_monotone_in_their_drivers(body, rng):
    base = rng.uniform(-1, 1, size=10)
    sweep = np.linspace(-2, 2, 5)
    cache = {}

    def measured(i, value):
        if (i, value) not in cache:
            b = base.copy()
            b[i] = value
            cache[i, value] = measure_body(body, b).as_dict()
        return cache[i, value]

    for name, i, sign in DRIVERS:
        values = np.array([measured(i, x)[name] for x in sweep])
        assert np.all(sign * np.diff(values) > 0), (name, i, values)
    for name, idx in BLIND:
        for i in idx:
            values = [measured(i, x)[name] for x in (-2.0, 2.0)]
            np.testing.assert_allclose(values[0], values[1], rtol=1e-12, err_msg=f"{name} {i}")


def test_segment_lengths_follow_their_betas(body, rng):
    base = random_betas(rng, -1, 1)

    def seg(i, value):
        b = base.copy()
        b[i] = value
        return body.segment_lengths(b).as_dict()

    lo, hi = seg(0, -1.5), seg(0, 1.5)
    ratios = [hi[k] / lo[k] for k in lo]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)  # stature is isometric
    assert ratios[0] > 1
    for i, grows in ((3, ("thigh", "shank")), (4, ("pelvis_width",)), (5, ("shoulder_width",)),
                     (6, ("upper_arm", "forearm")), (7, ("head", "neck"))):
        lo, hi = seg(i, -1.5), seg(i, 1.5)
        for k in lo:
            assert (hi[k] > lo[k]) if k in grows else np.isclose(hi[k], lo[k]), (i, k)


def test_short_betas_are_zero_padded_and_errors(body, rng):
    b = rng.normal(size=3)
    np.testing.assert_array_equal(body.v_shaped(b), body.v_shaped(np.r_[b, np.zeros(7)]))
    with pytest.raises(ValueError, match="got 11 betas but the model has 10"):
        body.v_shaped(np.zeros(11))
    with pytest.raises(ValueError, match="NaN"):
        measure_body(body, np.r_[np.nan, np.zeros(9)])
    with pytest.raises(ValueError, match="1-D"):
        body.segment_lengths(np.zeros((2, 10)))

"""Synthetic renderer: SKEL forward kinematics (fk.py) and the capsule video renderer."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from biocoach_jax import skel
from biocoach_jax.body import ProceduralBody
from biocoach_jax.data.synth import fk, render
from biocoach_jax.data.synth.render_raster import NO_PART, Canvas

J = skel.joint_index
D = skel.dof_index
SIZE = (224, 160)


def random_poses(rng, n):
    """Poses inside SKEL/HSMR limits; the pelvis orientation anywhere in +-pi."""
    lim = np.where(np.isfinite(skel.limits()), skel.limits(), [[-np.pi, np.pi]])
    return rng.uniform(lim[:, 0], lim[:, 1], size=(n, skel.NUM_DOFS))


def random_segments(rng):
    return ProceduralBody().segment_lengths(rng.uniform(-2, 2, 10)).as_dict()


def pose(**deg):
    q = np.zeros((1, skel.NUM_DOFS))
    for name, v in deg.items():
        q[0, D(name)] = np.radians(v)
    return q


def squat(num_frames, speed_profile):
    """Squat-like poses whose phase advances by `speed_profile` (>= 0) per frame."""
    phase = np.cumsum(speed_profile)
    depth = (1 - np.cos(phase)) / 2
    q = np.zeros((num_frames, skel.NUM_DOFS))
    for s in "rl":
        q[:, D(f"hip_flexion_{s}")] = np.radians(95) * depth
        q[:, D(f"knee_angle_{s}")] = np.radians(110) * depth
        q[:, D(f"ankle_angle_{s}")] = np.radians(15) * depth
        q[:, D(f"shoulder_{s}_z")] = np.radians(70) * depth
    q[:, D("lumbar_extension")] = -np.radians(15) * depth
    return q


# ---- forward kinematics -------------------------------------------------------------------------
def test_segment_lengths_preserved_under_any_pose(rng):
    seg = random_segments(rng)
    q = random_poses(rng, 7)
    root = rng.normal(size=(7, 3))
    p, rot = fk.forward_kinematics(q, seg, root)
    assert p.shape == (7, 24, 3) and rot.shape == (7, 24, 3, 3)
    dist = lambda a, b: np.linalg.norm(p[:, J(a)] - p[:, J(b)], axis=-1)  # noqa: E731
    for s in "rl":
        np.testing.assert_allclose(dist(f"femur_{s}", f"tibia_{s}"), seg["thigh"], rtol=1e-9)
        np.testing.assert_allclose(dist(f"tibia_{s}", f"talus_{s}"), seg["shank"], rtol=1e-9)
        np.testing.assert_allclose(dist(f"humerus_{s}", f"ulna_{s}"), seg["upper_arm"], rtol=1e-9)
        np.testing.assert_allclose(dist(f"radius_{s}", f"hand_{s}"), seg["forearm"], rtol=1e-9)
    np.testing.assert_allclose(dist("femur_r", "femur_l"), seg["pelvis_width"], rtol=1e-9)
    # every bone is rigid: parent -> child distance equals the rest one; rotations orthonormal
    rest = fk.joint_positions(np.zeros((1, skel.NUM_DOFS)), seg)[0]
    for j, par in enumerate(skel.JOINT_PARENTS):
        if par >= 0:
            np.testing.assert_allclose(np.linalg.norm(p[:, j] - p[:, par], axis=-1),
                                       np.linalg.norm(rest[j] - rest[par]), atol=1e-12)
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_leg_chain_matches_scipy_composition(rng):
    """Pelvis -> hip -> knee -> ankle rebuilt with scipy rotations about the documented axes."""
    seg = random_segments(rng)
    q = random_poses(rng, 5)
    root = rng.normal(size=3)
    p = fk.joint_positions(q, seg, root)
    right, fwd, up = np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, 1.0, 0])

    def rot(*pairs):
        out = Rotation.identity()
        for axis, angle in pairs:
            out = out * Rotation.from_rotvec(axis * angle)
        return out

    for t in range(5):
        qt = q[t]
        # SKEL composes a joint's DoFs with the last one outermost (osim_rot.CustomJoint)
        r_pelvis = rot((up, qt[D("pelvis_rotation")]), (fwd, qt[D("pelvis_list")]),
                       (right, qt[D("pelvis_tilt")]))
        pelvis = root + [0, seg["ankle_height"] + seg["shank"] + seg["thigh"], 0]
        for s, x in (("r", -1.0), ("l", 1.0)):
            r_hip = r_pelvis * rot((-x * up, qt[D(f"hip_rotation_{s}")]),
                                   (-x * fwd, qt[D(f"hip_adduction_{s}")]),
                                   (right, qt[D(f"hip_flexion_{s}")]))
            hip = pelvis + r_pelvis.apply([x * seg["pelvis_width"] / 2, 0, 0])
            knee = hip + r_hip.apply([0, -seg["thigh"], 0])
            r_knee = r_hip * rot((-right, qt[D(f"knee_angle_{s}")]))
            ankle = knee + r_knee.apply([0, -seg["shank"], 0])
            np.testing.assert_allclose(p[t, J(f"femur_{s}")], hip, atol=1e-12)
            np.testing.assert_allclose(p[t, J(f"tibia_{s}")], knee, atol=1e-12)
            np.testing.assert_allclose(p[t, J(f"talus_{s}")], ankle, atol=1e-12)
    # shoulder alone: R = Rz Ry Rx about flexion (right), axial (up), abduction (backward) axes
    arm = np.zeros((1, skel.NUM_DOFS))
    for s in "rl":
        for k in "xyz":
            arm[0, D(f"shoulder_{s}_{k}")] = q[0, D(f"shoulder_{s}_{k}")]
    p = fk.joint_positions(arm, seg)[0]
    for s in "rl":
        r_sh = rot((right, arm[0, D(f"shoulder_{s}_z")]), (up, arm[0, D(f"shoulder_{s}_y")]),
                   (-fwd, arm[0, D(f"shoulder_{s}_x")]))
        np.testing.assert_allclose(p[J(f"ulna_{s}")] - p[J(f"humerus_{s}")],
                                   r_sh.apply([0, -seg["upper_arm"], 0]), atol=1e-12)


def test_zero_pose_stands_on_the_floor(rng):
    seg = random_segments(rng)
    p = fk.joint_positions(np.zeros((3, skel.NUM_DOFS)), seg)[0]
    for s in "rl":  # heel and ball of each foot on the floor, everything else above it
        assert abs(p[J(f"calcn_{s}"), 1]) < 1e-12 and abs(p[J(f"toes_{s}"), 1]) < 1e-12
        assert p[J(f"hand_{s}"), 1] < p[J(f"ulna_{s}"), 1] < p[J(f"humerus_{s}"), 1]  # arms hang
    assert p[:, 1].min() > -1e-12
    assert p[J("head"), 1] > p[J("thorax"), 1] > p[J("lumbar_body"), 1] > p[J("pelvis"), 1]
    np.testing.assert_allclose(p[J("head"), 1] + seg["neck"] + seg["head"],
                               fk.stature(seg), rtol=1e-12)
    mirror = [J(skel.mirror_name(n)) for n in skel.JOINT_NAMES]
    np.testing.assert_allclose(p[mirror] * [-1, 1, 1], p, atol=1e-12)  # left-right symmetric


@pytest.mark.parametrize("side", ["r", "l"])
def test_anatomical_directions(side):
    seg = fk.default_segment_lengths()
    rest = fk.joint_positions(pose(), seg)[0]
    lateral = -1.0 if side == "r" else 1.0  # the subject's right is -x

    def moved(joint, **deg):
        return fk.joint_positions(pose(**deg), seg)[0, J(joint)] - rest[J(joint)]

    # knee flexion 90 deg: the ankle swings backward and up by one shank
    knee, ankle = rest[J(f"tibia_{side}")], fk.joint_positions(
        pose(**{f"knee_angle_{side}": 90}), seg)[0, J(f"talus_{side}")]
    np.testing.assert_allclose(ankle - knee, [0, 0, -seg["shank"]], atol=1e-12)
    assert moved(f"tibia_{side}", **{f"hip_flexion_{side}": 30})[2] > 0.1  # thigh forward
    assert moved(f"tibia_{side}", **{f"hip_adduction_{side}": 20})[0] * lateral < -0.05
    assert moved(f"toes_{side}", **{f"ankle_angle_{side}": 20})[1] > 0.02  # dorsiflexion
    assert moved(f"ulna_{side}", **{f"shoulder_{side}_z": 90})[2] > 0.9 * seg["upper_arm"]
    abduct = {f"shoulder_{side}_x": 90 if side == "r" else -90}  # left x is mirrored
    np.testing.assert_allclose(moved(f"ulna_{side}", **abduct),
                               [lateral * seg["upper_arm"], seg["upper_arm"], 0], atol=1e-12)
    assert moved(f"hand_{side}", **{f"elbow_flexion_{side}": 90})[2] > 0.9 * seg["forearm"]
    assert moved("head", lumbar_extension=-30)[2] > 0.1  # trunk flexion leans forward
    assert moved("head", pelvis_tilt=30)[2] < -0.1  # + tilt: like hip flexion, top goes back


def test_real_opencap_squat_keeps_the_feet_flat(data_dir):
    """Real squats (OpenCap, OpenSim conventions): with SKEL's pelvis_tilt sign (+ posterior,
    like hip flexion) the grounded feet stay flat while the pelvis drops; the other sign
    would tip the feet by the pelvis tilt (~40 deg at the bottom)."""
    from biocoach_jax.data.opensim import read_opensim

    q = read_opensim(data_dir / "opencap_squats1_videoAndMocap.mot").poses[::4]

    def feet_and_pelvis(poses):
        p = fk.joint_positions(poses)
        p = p + fk.ground_root(p)[:, None, :]
        foot = p[:, [J("toes_r"), J("toes_l")]] - p[:, [J("calcn_r"), J("calcn_l")]]
        pitch = np.degrees(np.arctan2(foot[..., 1], foot[..., 2]))
        return pitch, p[:, J("pelvis"), 1]

    pitch, pelvis_y = feet_and_pelvis(q)
    assert np.abs(pitch).max() < 12.0
    assert pelvis_y.max() - pelvis_y.min() > 0.2  # the squat goes down
    flipped = q.copy()
    flipped[:, D("pelvis_tilt")] *= -1
    assert np.abs(feet_and_pelvis(flipped)[0]).max() > 45.0


def test_bad_input_raises_clear_errors(rng):
    with pytest.raises(ValueError, match="poses.*46"):
        fk.joint_positions(np.zeros((4, 45)))
    q = np.zeros((4, 46))
    q[2, D("knee_angle_l")] = np.nan
    with pytest.raises(ValueError, match="frame 2.*knee_angle_l"):
        fk.joint_positions(q)
    with pytest.raises(ValueError, match="missing keys.*thigh"):
        fk.joint_positions(np.zeros((1, 46)), {"shank": 0.4})
    bad = dict(fk.default_segment_lengths(), foot=-0.1)
    with pytest.raises(ValueError, match="positive"):
        fk.joint_positions(np.zeros((1, 46)), bad)
    with pytest.raises(ValueError, match="root"):
        fk.joint_positions(np.zeros((3, 46)), None, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="size"):
        render.render_frames(np.zeros((1, 46)), size=(224,))
    with pytest.raises(ValueError, match="Appearance"):
        render.Appearance(top=(1.2, 0, 0))
    with pytest.raises(ValueError, match="Camera"):
        render.Camera(distance_m=-1.0)


# ---- camera and rasteriser ----------------------------------------------------------------------
def test_camera_projection_against_pinhole_formula(rng):
    ty, d, f = rng.uniform(0.5, 1.5), rng.uniform(2, 5), rng.uniform(150, 400)
    cam = render.Camera(azimuth_deg=0.0, elevation_deg=0.0, distance_m=d, focal_px=f,
                        target=(0.0, ty, 0.0))
    pts = rng.uniform(-0.8, 0.8, size=(11, 3)) + [0, ty, 0]
    uv, z = cam.project(pts, (101, 73))
    depth = d - pts[:, 2]  # camera on +z looking toward -z; the subject's left (+x) is image right
    np.testing.assert_allclose(z, depth, rtol=1e-12)
    np.testing.assert_allclose(uv[:, 0], 73 / 2 + f * pts[:, 0] / depth, rtol=1e-12)
    np.testing.assert_allclose(uv[:, 1], 101 / 2 - f * (pts[:, 1] - ty) / depth, rtol=1e-12)
    # any view: the target is at the image centre at depth = distance
    cam = render.Camera.sample(rng)
    uv, z = cam.project(np.asarray(cam.target), SIZE)
    np.testing.assert_allclose(uv, [SIZE[1] / 2, SIZE[0] / 2], atol=1e-9)
    np.testing.assert_allclose(z, cam.distance_m, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(cam.position() - cam.target), cam.distance_m)


def test_canvas_matches_brute_force_capsule_and_depth_order(rng):
    """Windowed, frame-vectorised drawing == per-pixel loop; the nearer capsule wins."""
    h, w = 37, 29  # odd sizes; capsules cross the borders
    n = 5
    a = rng.uniform(-5, [w + 5, h + 5], size=(n, 2))
    b = rng.uniform(-5, [w + 5, h + 5], size=(n, 2))
    ra_px, rb_px = rng.uniform(1, 6, n), rng.uniform(1, 6, n)
    canvas = Canvas(n, (h, w))
    canvas.draw(0, a, b, np.full(n, 3.0), np.full(n, 3.0), ra_px, rb_px, 0.05, 0.05,
                np.array([0, 0, -1.0]), 0.3)
    got = canvas.part.reshape(n, h, w) == 0
    for t in range(n):
        for y in range(h):
            for x in range(w):
                p = np.array([x + 0.5, y + 0.5])
                e = b[t] - a[t]
                s = np.clip((p - a[t]) @ e / max(e @ e, 1e-6), 0, 1)
                r = ra_px[t] + s * (rb_px[t] - ra_px[t])
                dist = np.linalg.norm(p - a[t] - s * e)
                if abs(dist - r) > 1e-3:  # skip pixels exactly on the rim (float32 rounding)
                    assert got[t, y, x] == (dist < r), (t, y, x)
    # a second, nearer, fat capsule through the middle wins wherever it covers, in any order
    for order in ((0, 1), (1, 0)):
        c = Canvas(1, (h, w))
        specs = {0: (4.0, 3.0), 1: (2.0, 8.0)}  # part -> (depth, pixel radius)
        for pid in order:
            z, r = specs[pid]
            c.draw(pid, np.array([[3.0, h / 2]]), np.array([[w - 3.0, h / 2]]), np.array([z]),
                   np.array([z]), np.array([r]), np.array([r]), 0.05, 0.05,
                   np.array([0, 0, -1.0]), 0.3)
        part = c.part.reshape(h, w)
        assert np.all(part[int(h / 2) - 2:int(h / 2) + 3, 5:w - 5] == 1)
        assert (part == 0).sum() == 0 and (part == NO_PART).sum() > 0


# ---- rendered frames ----------------------------------------------------------------------------
def foreground_fraction(frames, camera, appearance):
    bg = np.clip(render.background(camera, appearance, SIZE) * 255 + 0.5, 0, 255).astype(np.uint8)
    return (np.abs(frames.astype(int) - bg).max(axis=-1) > 0).mean(axis=(1, 2))


def test_frames_show_the_body_inside_the_image(rng):
    q = squat(12, np.full(12, 0.5))
    seg = random_segments(rng)
    for _ in range(3):
        cam = render.Camera.sample(rng, render.body_points(q, seg), seg, SIZE)
        app = render.Appearance.sample(rng)
        assert -60 <= cam.azimuth_deg <= 60 and 0 <= cam.elevation_deg <= 25
        frames = render.render_frames(q, seg, cam, app, SIZE)
        assert frames.shape == (12, *SIZE, 3) and frames.dtype == np.uint8
        frac = foreground_fraction(frames, cam, app)
        assert np.all((frac > 0.03) & (frac < 0.6)), frac
        # framing: no body pixel on the image border
        bg = np.clip(render.background(cam, app, SIZE) * 255 + 0.5, 0, 255).astype(np.uint8)
        fg = np.abs(frames.astype(int) - bg).max(axis=-1) > 0
        assert not fg[:, [0, -1]].any() and not fg[:, :, [0, -1]].any()


def test_motion_energy_tracks_joint_speed(rng, data_dir):
    seg = random_segments(rng)
    cam, app = render.Camera.sample(rng, segment_lengths=seg), render.Appearance.sample(rng)
    still = render.render_frames(np.repeat(pose(knee_angle_r=20), 6, axis=0), seg, cam, app)
    assert np.array_equal(still[1:], still[:-1])  # a still pose gives no differences
    n = 64
    speed = np.abs(np.sin(np.linspace(0, rng.uniform(2, 4) * np.pi, n))) * rng.uniform(0.2, 0.35)
    speed[rng.integers(0, n - 8):][:8] = 0.0  # a pause
    q = squat(n, speed)
    frames = render.render_frames(q, seg, cam, app).astype(np.float64)
    motion = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    joint_speed = np.abs(np.diff(q, axis=0)).sum(axis=1)
    assert np.corrcoef(motion, joint_speed)[0, 1] > 0.7
    # real squats (OpenCap, 100 Hz -> 16.7 Hz): legs and trunk move, arms are still
    from biocoach_jax.data.opensim import read_opensim

    real = read_opensim(data_dir / "opencap_squats1_videoAndMocap.mot").poses[::6][:96]
    frames = render.render_frames(real, seg, cam, app).astype(np.float64)
    motion = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert np.corrcoef(motion, np.abs(np.diff(real, axis=0)).sum(axis=1))[0, 1] > 0.7
    fast = render.render_frames(squat(8, np.full(8, 0.6)), seg, cam, app).astype(np.float64)
    slow = render.render_frames(squat(8, np.full(8, 0.1)), seg, cam, app).astype(np.float64)
    assert np.abs(np.diff(fast, axis=0)).mean() > 2 * np.abs(np.diff(slow, axis=0)).mean() > 0


def test_camera_and_appearance_change_the_image_deterministically(rng):
    seed = int(rng.integers(1 << 31))
    q = squat(3, np.full(3, 0.7))

    def make(s):
        r = np.random.default_rng(s)
        cam, app = render.Camera.sample(r), render.Appearance.sample(r)
        return cam, app, render.render_frames(q, None, cam, app)

    cam1, app1, f1 = make(seed)
    cam2, app2, f2 = make(seed)
    assert cam1 == cam2 and app1 == app2 and f1.tobytes() == f2.tobytes()
    turned = render.render_frames(q, None, render.Camera(azimuth_deg=cam1.azimuth_deg + 40,
                                                          elevation_deg=cam1.elevation_deg,
                                                          distance_m=cam1.distance_m,
                                                          focal_px=cam1.focal_px,
                                                          target=cam1.target), app1)
    assert np.abs(turned.astype(int) - f1).mean() > 1.0
    cam3, app3, f3 = make(seed + 1)
    assert cam3 != cam1 and np.abs(f3.astype(int) - f1).mean() > 1.0

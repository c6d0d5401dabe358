"""Pose readers: the four real OpenSim files, synthetic HSMR and .npz files, resampling against
np.interp, and every bad-input case (each error names the file and the problem)."""
import math

import numpy as np
import pytest

from biocoach_jax import skel
from biocoach_jax.data.poses import (
    PoseFileError, PoseRecording, read_poses, resample, write_npz)

THORACOSCAPULAR = ("scapula_abduction_r", "scapula_elevation_r", "scapula_upward_rot_r",
                   "elbow_flexion_r", "pro_sup_r")


def _raw_mot(path):
    """Independent parse of a .mot table (degrees as in the file)."""
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "endheader") + 1
    names = lines[start].split()
    return names, np.loadtxt(lines[start + 1:])


def test_opencap_squat(data_dir):
    path = data_dir / "opencap_squats1_videoAndMocap.mot"
    rec = read_poses(path)
    names, raw = _raw_mot(path)
    assert rec.format == "opensim" and rec.poses.shape == (801, 46) and rec.poses.dtype == np.float64
    assert rec.fps == pytest.approx(100.0) and rec.timestamps[-1] == pytest.approx(8.0)
    assert 77 < np.degrees(rec.dof("knee_angle_r").max()) < 88
    np.testing.assert_allclose(rec.dof("knee_angle_r"), np.radians(raw[:, names.index("knee_angle_r")]))
    # aliases
    np.testing.assert_allclose(rec.dof("lumbar_twist"), np.radians(raw[:, names.index("lumbar_rotation")]))
    np.testing.assert_allclose(rec.dof("elbow_flexion_l"), np.radians(raw[:, names.index("elbow_flex_l")]))
    assert -48 < np.degrees(rec.dof("lumbar_extension").min()) < -43
    expected = {"pelvis_tilt", "pelvis_list", "pelvis_rotation", "lumbar_bending", "lumbar_extension",
                "lumbar_twist", "elbow_flexion_r", "pro_sup_r", "elbow_flexion_l", "pro_sup_l"}
    for s in "rl":
        expected |= {f"{b}_{s}" for b in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle",
                                           "ankle_angle", "subtalar_angle", "mtp_angle")}
    assert {n for n, p in zip(skel.DOF_NAMES, rec.present) if p} == expected
    assert not rec.poses[:, ~rec.present].any()
    # unmapped arm columns are reported and kept (file units); couplers/translations noted
    assert {"arm_flex_r", "arm_add_l", "knee_angle_r_beta", "pelvis_tx"} <= set(rec.extra)
    assert any("arm_flex_r" in w for w in rec.warnings)
    np.testing.assert_allclose(rec.extra["arm_flex_r"], raw[:, names.index("arm_flex_r")])
    assert rec.betas is None


@pytest.mark.parametrize("stem,frames", [("ABD01", 1091), ("ABD02", 846), ("FLX01", 794)])
def test_thoracoscapular_files(data_dir, stem, frames):
    rec = read_poses(data_dir / f"rmr_thoracoscapular_{stem}.mot")
    assert rec.poses.shape == (frames, 46) and rec.fps == pytest.approx(100.0)
    assert {n for n, p in zip(skel.DOF_NAMES, rec.present) if p} == set(THORACOSCAPULAR)
    assert any("right arm" in w for w in rec.warnings)
    np.testing.assert_allclose(np.degrees(rec.dof("pro_sup_r")), 34.32)
    assert not rec.dof("elbow_flexion_r").any()
    elv = rec.extra["shoulder_elv"]  # unmapped, kept in degrees as in the file
    assert 95 < elv.max() < 105 and elv.min() < 25
    assert "plane_elv" in rec.extra and "ground_thorax_tx" in rec.extra


def _write_mot(path, names, values, *, in_degrees="yes", endheader=True, extra_line=None):
    head = ["Coordinates", "version=1", f"nRows={len(values)}", f"nColumns={len(names)}"]
    if in_degrees is not None:
        head.append(f"inDegrees={in_degrees}")
    if endheader:
        head.append("endheader")
    rows = ["\t".join(f"{v:.8f}" for v in row) for row in values]
    if extra_line is not None:
        rows.append(extra_line)
    path.write_text("\n".join(head + ["\t".join(names)] + rows) + "\n")
    return path


def test_negative_knee_model_is_flipped_and_radians_read(tmp_path, rng):
    t = np.arange(37) / 50.0
    knee = -60 * np.sin(np.pi * t / t[-1]) ** 2 - rng.uniform(0.5, 2)  # Hamner-style, negative
    hip = rng.uniform(-0.3, 0.3, size=t.size)
    p = _write_mot(tmp_path / "hamner.mot", ["time", "knee_angle_r", "hip_flexion_r"],
                   np.stack([t, knee, np.degrees(hip)], 1))
    rec = read_poses(p)
    np.testing.assert_allclose(rec.dof("knee_angle_r"), -np.radians(knee), atol=1e-9)
    assert any("flipped" in w for w in rec.warnings)
    np.testing.assert_allclose(rec.dof("hip_flexion_r"), hip, atol=1e-9)
    p2 = _write_mot(tmp_path / "rad.sto", ["time", "hip_flexion_r"], np.stack([t, hip], 1), in_degrees="no")
    rec2 = read_poses(p2)
    np.testing.assert_allclose(rec2.dof("hip_flexion_r"), hip, atol=1e-8)
    assert rec2.fps == pytest.approx(50.0) and not any("flipped" in w for w in rec2.warnings)


def _hsmr_frame(people, rng, size=None):
    size = rng.uniform(50, 100, size=people) if size is None else np.asarray(size, float)
    return {"poses": rng.normal(0, 0.3, size=(people, 46)).astype(np.float32),
            "betas": rng.normal(size=(people, 10)).astype(np.float32),
            "bbx_cs": np.stack([rng.uniform(0, 500, people), rng.uniform(0, 500, people), size], 1),
            "patch_cam_t": np.zeros((people, 3)), "full_cam_t": np.zeros((people, 3))}


def _save_hsmr(path, frames):
    arr = np.empty(len(frames), dtype=object)
    arr[:] = frames
    np.save(path, arr, allow_pickle=True)
    return path


def test_hsmr_gaps_and_several_people(tmp_path, rng):
    n = int(rng.integers(9, 15))
    counts = [1] * n
    counts[0] = counts[1] = 0          # leading gap
    counts[5] = counts[6] = 0          # inner gap
    counts[3] = 2                      # two people: the larger box must win
    frames = [_hsmr_frame(c, rng) for c in counts]
    frames[3] = _hsmr_frame(2, rng, size=[40.0, 90.0])
    path = _save_hsmr(tmp_path / "HSMR-test.npy", frames)
    rec = read_poses(path)
    assert rec.format == "hsmr" and rec.poses.shape == (n, 46) and rec.fps == 16.0
    np.testing.assert_allclose(rec.timestamps, np.arange(n) / 16.0)
    first_valid = frames[2]["poses"][0]
    for k in (0, 1, 2):
        np.testing.assert_allclose(rec.poses[k], first_valid)
    np.testing.assert_allclose(rec.poses[3], frames[3]["poses"][1])
    for k in (5, 6):
        np.testing.assert_allclose(rec.poses[k], frames[4]["poses"][0])
    assert rec.extra["valid"].tolist() == [c > 0 for c in counts]
    gap = next(w for w in rec.warnings if "without a person" in w)
    assert "4 of" in gap and "frames 0-1 (0.00-0.06 s)" in gap and "frames 5-6 (0.31-0.38 s)" in gap
    assert any("several people" in w for w in rec.warnings)
    valid_betas = np.stack([frames[k]["betas"][1 if k == 3 else 0] for k in range(n) if counts[k]])
    np.testing.assert_allclose(rec.betas, valid_betas.astype(np.float64).mean(0), rtol=1e-12)


def test_hsmr_timestamps_in_nanoseconds(tmp_path, rng):
    frames = [_hsmr_frame(1, rng) for _ in range(7)]
    path = _save_hsmr(tmp_path / "HSMR-ts.npy", frames)
    ns = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(30_000_000, 36_000_000, size=7))
    rec = read_poses(path, timestamps_ns=ns)
    np.testing.assert_allclose(rec.timestamps, (ns - ns[0]) / 1e9)
    np.save(tmp_path / "ts.npy", ns)
    rec2 = read_poses(path, timestamps_ns=tmp_path / "ts.npy")
    np.testing.assert_allclose(rec2.timestamps, rec.timestamps)
    with pytest.raises(PoseFileError, match="7 frames but"):
        read_poses(path, timestamps_ns=ns[:-1])


def test_npz_round_trip(tmp_path, rng):
    n = int(rng.integers(5, 40))
    t = np.cumsum(rng.uniform(0.02, 0.08, size=n))
    present = rng.random(46) < 0.7
    rec = PoseRecording(poses=rng.normal(size=(n, 46)) * present, present=present, timestamps=t,
                        fps=20.0, betas=rng.normal(size=10), source="mem", format="npz")
    write_npz(rec, tmp_path / "r.npz")
    back = read_poses(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.poses, rec.poses)
    np.testing.assert_array_equal(back.timestamps, rec.timestamps)
    np.testing.assert_array_equal(back.present, present)
    np.testing.assert_array_equal(back.betas, rec.betas)
    np.savez(tmp_path / "fps.npz", poses=rec.poses, fps=25.0)
    assert read_poses(tmp_path / "fps.npz").timestamps[-1] == pytest.approx((n - 1) / 25.0)


def test_resample_matches_np_interp(rng):
    n = int(rng.integers(7, 31))
    t = 0.3 + np.cumsum(rng.uniform(0.01, 0.05, size=n))
    poses = rng.normal(size=(n, 46))
    rec = PoseRecording(poses=poses, present=np.ones(46, bool), timestamps=t, fps=30.0, betas=None,
                        source="mem", format="npz", extra={"ch": rng.normal(size=n),
                                                           "valid": np.ones(n, bool)})
    fps = float(rng.uniform(10, 40))
    out = resample(rec, fps)
    new_t = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * fps + 1e-9)) + 1) / fps
    np.testing.assert_allclose(out.timestamps, new_t)
    assert out.timestamps[-1] <= t[-1] + 1e-12 and out.fps == fps
    for j in rng.choice(46, size=5, replace=False):
        np.testing.assert_allclose(out.poses[:, j], np.interp(new_t, t, poses[:, j]))
    np.testing.assert_allclose(out.extra["ch"], np.interp(new_t, t, rec.extra["ch"]))
    assert out.extra["valid"].dtype == bool and out.extra["valid"].all()


# ----- bad input: each error names the file and the problem -----

def test_bad_opensim_inputs(tmp_path):
    t = np.arange(6) / 100.0
    good = np.stack([t, np.linspace(0, 30, 6)], 1)
    cases = {
        "noend.mot": (dict(endheader=False), "endheader"),
        "ragged.mot": (dict(extra_line="0.06000000\t1.0\t2.0"), "line 14 has 3 values"),
        "short.mot": (dict(extra_line="0.06000000"), "truncated"),
    }
    for name, (kw, msg) in cases.items():
        p = _write_mot(tmp_path / name, ["time", "knee_angle_r"], good, **kw)
        with pytest.raises(PoseFileError, match=msg) as err:
            read_poses(p)
        assert str(p) in str(err.value)
    nan = good.copy()
    nan[2:4, 1] = np.nan
    p = _write_mot(tmp_path / "nan.mot", ["time", "knee_angle_r"], nan)
    with pytest.raises(PoseFileError, match=r"'knee_angle_r' at frames 2-3"):
        read_poses(p)
    back = good.copy()
    back[4, 0] = back[2, 0]
    p = _write_mot(tmp_path / "time.mot", ["time", "knee_angle_r"], back)
    with pytest.raises(PoseFileError, match="not strictly increasing at frame 4"):
        read_poses(p)
    p = _write_mot(tmp_path / "empty.mot", ["time", "knee_angle_r"], good[:0])
    with pytest.raises(PoseFileError, match="no data rows"):
        read_poses(p)
    (tmp_path / "void.mot").write_text("")
    with pytest.raises(PoseFileError, match="empty file"):
        read_poses(tmp_path / "void.mot")
    with pytest.raises(PoseFileError, match="unknown pose file extension"):
        (tmp_path / "x.csv").write_text("a")
        read_poses(tmp_path / "x.csv")


def test_bad_npz_and_hsmr_inputs(tmp_path, rng):
    np.savez(tmp_path / "dof.npz", poses=np.zeros((5, 45)), fps=16.0)
    with pytest.raises(PoseFileError, match=r"dof.npz.*shape \(T, 46\)"):
        read_poses(tmp_path / "dof.npz")
    poses = np.zeros((6, 46))
    poses[1:3, skel.dof_index("elbow_flexion_l")] = np.nan
    np.savez(tmp_path / "nan.npz", poses=poses, fps=16.0)
    with pytest.raises(PoseFileError, match="'elbow_flexion_l' at frames 1-2"):
        read_poses(tmp_path / "nan.npz")
    np.savez(tmp_path / "nofps.npz", poses=np.zeros((3, 46)))
    with pytest.raises(PoseFileError, match="timestamps"):
        read_poses(tmp_path / "nofps.npz")
    np.savez(tmp_path / "empty.npz", poses=np.zeros((0, 46)), fps=16.0)
    with pytest.raises(PoseFileError, match="no frames"):
        read_poses(tmp_path / "empty.npz")

    bad = [_hsmr_frame(1, rng) for _ in range(3)]
    bad[1]["poses"] = np.zeros((1, 24))
    with pytest.raises(PoseFileError, match=r"frame 1: poses must have shape \(N, 46\)"):
        read_poses(_save_hsmr(tmp_path / "HSMR-dof.npy", bad))
    nobody = [_hsmr_frame(0, rng) for _ in range(4)]
    with pytest.raises(PoseFileError, match="no person detected in any of the 4 frames"):
        read_poses(_save_hsmr(tmp_path / "HSMR-empty.npy", nobody))
    with pytest.raises(PoseFileError, match="no frames"):
        read_poses(_save_hsmr(tmp_path / "HSMR-none.npy", []))

    class Evil:  # an object that is not data
        def __reduce__(self):
            return (print, ("pwned",))
    p = tmp_path / "HSMR-evil.npy"
    arr = np.empty(1, dtype=object)
    arr[0] = {"poses": Evil()}
    np.save(p, arr, allow_pickle=True)
    with pytest.raises(PoseFileError, match=r"HSMR-evil.npy.*refusing to unpickle builtins.print"):
        read_poses(p)

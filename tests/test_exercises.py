"""Exercise library: shipped files, the array view against an independent TOML read, the
facts the analysis relies on (real OpenCap squat), and the validator's error messages."""
import math
import re
import tomllib

import numpy as np
import pytest
from scipy.signal import find_peaks

from biocoach_jax import skel
from biocoach_jax.data.poses import read_poses
from biocoach_jax.exercises import (
    VIOLATION_KINDS, ExerciseError, list_exercises, load_exercise, load_exercise_file)
from biocoach_jax.exercises.conventions import mirror_sign
from biocoach_jax.exercises.library import DATA_DIR

REQUIRED = ("squat", "lunge", "push_up", "jumping_jack", "shoulder_press", "bicep_curl",
            "lateral_raise", "high_knees", "glute_bridge", "sit_to_stand")


def test_library_ships_required_exercises():
    assert set(REQUIRED) <= set(list_exercises())


@pytest.mark.parametrize("name", REQUIRED)
def test_arrays_match_raw_toml(name):
    """Array view vs. an independent read of the same file with tomllib (degrees -> radians)."""
    ex = load_exercise(name)
    raw = tomllib.loads((DATA_DIR / f"{name}.toml").read_text())
    arr = ex.arrays()
    kf = raw["keyframes"][0]["name"]
    expected_lo = np.full(46, np.nan)
    expected_hi = np.full(46, np.nan)
    expected_ref = np.zeros((46, len(next(iter(raw["dofs"].values()))["reference_deg"])))
    for dof, entry in raw["dofs"].items():
        sides = [(dof, 1.0)]
        if raw["bilateral"] and skel.side(dof) == "r":
            sides.append((skel.mirror_name(dof), mirror_sign(dof)))
        for target, sign in sides:
            i = skel.dof_index(target)
            expected_ref[i] = np.radians(entry["reference_deg"]) * sign
            for iv in entry.get("intervals", []):
                if iv["keyframe"] == kf:
                    a, b = sorted((iv["lo"] * sign, iv["hi"] * sign))
                    expected_lo[i], expected_hi[i] = np.radians(a), np.radians(b)
            if "tolerance" in entry:
                assert arr.static_tol[i] == pytest.approx(math.radians(entry["tolerance"]["deg"]))
    np.testing.assert_allclose(arr.interval_lo, expected_lo, equal_nan=True)
    np.testing.assert_allclose(arr.interval_hi, expected_hi, equal_nan=True)
    np.testing.assert_allclose(arr.reference, expected_ref)
    assert arr.reference.shape == (46, ex.reference_length)
    assert not (arr.dynamic_mask & arr.static_mask).any()
    np.testing.assert_array_equal(arr.reference_mask, arr.dynamic_mask | arr.static_mask)
    assert np.isnan(arr.static_tol[~arr.static_mask]).all()
    assert np.isnan(arr.interval_lo[~arr.dynamic_mask]).all()
    assert np.all(arr.interval_lo[~np.isnan(arr.interval_lo)] <= arr.interval_hi[~np.isnan(arr.interval_hi)])
    # key joints: the file's list, and every involved DoF's joint is a key joint
    assert set(np.flatnonzero(arr.key_joint_mask)) == {skel.joint_index(j) for j in raw["key_joints"]}
    assert arr.key_joint_mask[np.array(skel.DOF_JOINT)[arr.reference_mask]].all()
    # driving DoF: its reference reaches the keyframe extremum strictly inside the cycle
    d = raw["driving"][0]
    assert arr.driving_index == skel.dof_index(d["dof"]) and arr.driving_polarity == d["polarity"]
    peak = np.argmax(arr.driving_polarity * arr.reference[arr.driving_index])
    assert 0 < peak < ex.reference_length - 1
    assert arr.tempo_range[0] == raw["tempo"]["min_s"] and arr.tempo_range[1] == raw["tempo"]["max_s"]
    if raw["bilateral"]:
        assert arr.asymmetry_threshold == pytest.approx(math.radians(raw["asymmetry"]["threshold_deg"]))
    else:
        assert math.isnan(arr.asymmetry_threshold)


@pytest.mark.parametrize("name", REQUIRED)
def test_reference_cycles_are_smooth_and_within_limits(name):
    ex = load_exercise(name)
    ref = ex.arrays().reference
    lim = skel.limits()
    for spec in ex.dofs:
        r = ref[skel.dof_index(spec.dof)]
        assert abs(r[0] - r[-1]) <= math.radians(1.0)
        # smooth: no sample jumps more than 12 deg, curvature bounded
        assert np.abs(np.diff(r)).max() < math.radians(12)
        assert np.abs(np.diff(r, 2)).max() < math.radians(3)
        lo, hi = lim[skel.dof_index(spec.dof)]
        assert lo - 1e-9 <= r.min() and r.max() <= hi + 1e-9, spec.dof
        for iv in spec.intervals:  # every bound is justified
            assert iv.reason.strip() and iv.source.strip()
    for kind in VIOLATION_KINDS:
        assert ex.cue(kind)


def _squat_extrema(data_dir):
    rec = read_poses(data_dir / "opencap_squats1_videoAndMocap.mot")
    knee = np.degrees(rec.dof("knee_angle_r"))
    lumbar = np.degrees(rec.dof("lumbar_extension"))
    peaks, _ = find_peaks(knee, prominence=30)
    return knee[peaks], lumbar[peaks]


def test_opencap_squat_is_too_shallow_and_too_rounded(data_dir):
    """The real squat (knee peaks 77-87 deg, lumbar ~-45 deg) violates the squat's intervals."""
    ex = load_exercise("squat")
    knee_iv = ex.dof("knee_angle_r").interval("bottom")
    lumbar_iv = ex.dof("lumbar_extension").interval("bottom")
    assert knee_iv.lo_deg == 90
    assert -30 <= lumbar_iv.lo_deg <= -25
    knee_peaks, lumbar_at_peaks = _squat_extrema(data_dir)
    assert len(knee_peaks) == 5
    assert (knee_peaks < knee_iv.lo_deg).all() and (knee_peaks > 75).all()
    assert (lumbar_at_peaks < lumbar_iv.lo_deg).all()
    # cue for lumbar flexion differs from the knee depth cue (per-DoF override)
    assert ex.cue("below_interval", "lumbar_extension") != ex.cue("below_interval", "knee_angle_r")


def test_bilateral_mirror_uses_shoulder_signs():
    ex = load_exercise("lateral_raise")
    right = ex.dof("shoulder_r_x").interval("top")
    left = ex.dof("shoulder_l_x").interval("top")
    assert (left.lo_deg, left.hi_deg) == (-right.hi_deg, -right.lo_deg)
    knee_r, knee_l = load_exercise("squat").dof("knee_angle_r"), load_exercise("squat").dof("knee_angle_l")
    assert knee_l.reference_deg == knee_r.reference_deg and knee_l.mirrored_from == "knee_angle_r"


def test_unknown_exercise_lists_known():
    with pytest.raises(ExerciseError, match=r"unknown exercise 'burpee'.*squat"):
        load_exercise("burpee")


def test_shoulder_press_has_two_keyframes():
    ex = load_exercise("shoulder_press")
    top, bottom = ex.arrays("top"), ex.arrays("bottom")
    i = skel.dof_index("elbow_flexion_r")
    assert top.interval_hi[i] < bottom.interval_lo[i]
    with pytest.raises(KeyError, match="no keyframe"):
        ex.arrays("middle")


SQUAT = (DATA_DIR / "squat.toml").read_text()

# (replace this, with this, the field the error must name)
CORRUPTIONS = [
    ("[dofs.knee_angle_r]", "[dofs.knee_angle_x]", "dofs.knee_angle_x"),
    ("lo = 90\n", "lo = 140\n", "dofs.knee_angle_r.intervals[0]"),
    ("reference_deg = [3, ", "reference_deg = [nan, ", "dofs.knee_angle_r.reference_deg[0]"),
    ("reference_deg = [3, ", "reference_deg = [", "reference_deg"),
    ('incomplete = "Finish', 'incompleat = "Finish', "cues"),
    ('driving = [{ dof = "knee_angle_r"', 'driving = [{ dof = "pro_sup_r"', "driving[0].dof"),
    ("polarity = 1 }", "polarity = 2 }", "driving[0].polarity"),
    ("polarity = 1 }", "polarity = -1 }", "driving[0].polarity"),
    ('tempo_fast = "Slow down:', 'tempo_fast = "{speed} Slow down:', "cues.tempo_fast"),
    ('bilateral = true', 'colour = "red"\nbilateral = true', "top level"),
    ("[dofs.lumbar_twist]", "[dofs.knee_angle_l]", "dofs.knee_angle_l"),
    ('keyframe = "bottom"\nlo = 90', 'keyframe = "deepest"\nlo = 90', "dofs.knee_angle_r.intervals"),
    ("tolerance = { deg = 15", "tolerance = { deg = -3", "dofs.lumbar_twist.tolerance.deg"),
    ('"lumbar_body"]', '"lumbar_body", "hand_x"]', "key_joints[8]"),
    ('"talus_l", "lumbar_body"]', '"talus_l"]', "key_joints"),
    ("min_s = 1.2", "min_s = 9.5", "tempo"),
    ('[asymmetry]\nthreshold_deg = 15', '[asymmetry]\nthreshold_deg = "15"', "asymmetry.threshold_deg"),
    ('name = "squat"', 'name = "squat', "not valid TOML"),
]


@pytest.mark.parametrize("old,new,field", CORRUPTIONS)
def test_validator_names_file_and_field(tmp_path, old, new, field):
    assert old in SQUAT, old
    path = tmp_path / "squat.toml"
    path.write_text(SQUAT.replace(old, new, 1))
    with pytest.raises(ExerciseError) as err:
        load_exercise_file(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and field in msg, msg


def test_validator_accepts_the_original_and_checks_name(tmp_path):
    good = tmp_path / "squat.toml"
    good.write_text(SQUAT)
    assert load_exercise_file(good).name == "squat"
    other = tmp_path / "deep_squat.toml"
    other.write_text(SQUAT)
    with pytest.raises(ExerciseError, match=re.escape(str(other)) + ".*name"):
        load_exercise_file(other)
    with pytest.raises(ExerciseError, match="file not found"):
        load_exercise_file(tmp_path / "missing.toml")


def test_unequal_reference_lengths_rejected(tmp_path, rng):
    """Drop a random number of samples from one random DoF's reference."""
    raw_lines = SQUAT.splitlines()
    ref_lines = [i for i, ln in enumerate(raw_lines) if ln.startswith("reference_deg")]
    i = int(rng.choice(ref_lines))
    values = raw_lines[i][len("reference_deg = ["):-1].split(", ")
    k = int(rng.integers(1, 5))
    kept = values[:16] + values[16 + k:]  # keep the ends (rest) intact
    raw_lines[i] = "reference_deg = [" + ", ".join(kept) + "]"
    path = tmp_path / "squat.toml"
    path.write_text("\n".join(raw_lines) + "\n")
    with pytest.raises(ExerciseError, match="same length"):
        load_exercise_file(path)

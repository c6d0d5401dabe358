"""`analyze` on real recordings (OpenCap squat, thoracoscapular shoulder trials), on all three
input formats, on edited recordings (incomplete rep, asymmetry), and the JSON contract."""
import json

import numpy as np
import pytest

from biocoach_jax import skel
from biocoach_jax.analysis import analyze_recording
from biocoach_jax.analyze import main
from biocoach_jax.data.poses import PoseRecording, read_poses
from biocoach_jax.exercises import list_exercises, load_exercise

SQUAT = "opencap_squats1_videoAndMocap.mot"
SHOULDERS = ["rmr_thoracoscapular_ABD01.mot", "rmr_thoracoscapular_ABD02.mot",
             "rmr_thoracoscapular_FLX01.mot"]
KNEE = skel.dof_index("knee_angle_r")


@pytest.fixture(scope="module")
def squat_rec(request):
    from conftest import DATA
    return read_poses(DATA / SQUAT)


def _run_json(capsys, *argv):
    assert main([*map(str, argv), "--format", "json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)          # exactly one JSON object: json.loads rejects trailing data


@pytest.mark.parametrize("exercise", ["squat", "auto"])
def test_opencap_squat(squat_rec, exercise):
    r = analyze_recording(squat_rec, exercise)
    assert r.exercise == "squat" and r.driving_dof == "knee_angle_r"
    assert r.reps == 5 and all(c.complete for c in r.cycles)
    knees = [c.key_values_deg["knee_angle_r"] for c in r.cycles]
    assert all(77.0 <= k <= 86.0 for k in knees), knees
    kinds = {(v.dof, v.kind) for v in r.violations}
    assert ("lumbar_extension", "below_interval") in kinds       # ~45° lumbar flexion at the bottom
    assert ("knee_angle_r", "below_interval") in kinds           # 77-86° < 90° required
    # each rep's keyframe is the knee peak of the raw recording (within one 16 Hz frame)
    raw_t = squat_rec.timestamps
    for c in r.cycles:
        win = (raw_t >= c.start_s) & (raw_t <= c.end_s)
        t_peak = raw_t[win][np.argmax(squat_rec.poses[win, KNEE])]
        assert abs(t_peak - c.keyframe_s) <= 1.5 / 16
    assert "insufficient right knee flexion" in r.context and "lower back flexion" in r.context


@pytest.mark.parametrize("name", SHOULDERS)
def test_shoulder_trials_have_one_cycle(data_dir, name):
    r = analyze_recording(read_poses(data_dir / name), "auto")
    assert r.reps == 1
    c = r.cycles[0]
    assert c.start_s > 1.0            # the ~4 s rest at the start is not part of the cycle
    assert c.end_s - c.start_s > 2.0


def test_json_contract_and_plot(data_dir, tmp_path, capsys):
    png = tmp_path / "squat.png"
    d = _run_json(capsys, data_dir / SQUAT, "--plot", png)
    assert png.stat().st_size > 10_000
    expected = {"source": str, "format": str, "fps": float, "duration_s": float, "exercise": str,
                "driving_dof": str, "selected_joints": list, "selected_dofs": list, "reps": int,
                "cycles": list, "violations": list, "warnings": list, "context": str}
    for key, typ in expected.items():
        assert isinstance(d[key], typ), key
    assert d["format"] == "opensim" and d["fps"] == pytest.approx(100.0)
    assert d["duration_s"] == pytest.approx(8.0, abs=0.1)
    assert d["reps"] == len(d["cycles"]) == 5
    assert set(d["selected_dofs"]) <= set(skel.DOF_NAMES)
    assert set(d["selected_joints"]) <= set(skel.JOINT_NAMES)
    for c in d["cycles"]:
        assert set(c) >= {"index", "start_s", "end_s", "keyframe_s", "complete", "score",
                          "key_values_deg", "rom_deg"}
        assert c["start_s"] <= c["keyframe_s"] <= c["end_s"] and 0.0 <= c["score"] <= 1.0
    kinds = {"below_interval", "above_interval", "asymmetry", "instability", "anatomical_limit",
             "tempo_fast", "tempo_slow", "incomplete"}
    for v in d["violations"]:
        assert set(v) >= {"cycle", "dof", "kind", "value_deg", "lo_deg", "hi_deg", "time_s", "message"}
        assert v["kind"] in kinds and v["message"]
    lumbar = [v for v in d["violations"] if v["dof"] == "lumbar_extension" and v["kind"] == "below_interval"]
    assert lumbar and all(v["value_deg"] < v["lo_deg"] for v in lumbar)


def test_npz_and_hsmr_formats_agree_with_opensim(squat_rec, tmp_path, capsys):
    # The same motion written as .npz (radians, 100 Hz timestamps) and as an HSMR .npy at 16 fps
    # with two dropped frames and a second, smaller person.
    np.savez(tmp_path / "squat.npz", poses=squat_rec.poses, timestamps=squat_rec.timestamps)
    d_npz = _run_json(capsys, tmp_path / "squat.npz", "--exercise", "squat")
    t16 = np.arange(0, squat_rec.timestamps[-1], 1 / 16)
    q16 = np.stack([np.interp(t16, squat_rec.timestamps, squat_rec.poses[:, i]) for i in range(46)], 1)
    frames = []
    for i, q in enumerate(q16):
        if i in (30, 31):
            frames.append({"poses": np.zeros((0, 46), np.float32), "betas": np.zeros((0, 10), np.float32),
                           "bbx_cs": np.zeros((0, 3), np.float32)})
            continue
        other = np.zeros(46, np.float32)
        frames.append({"poses": np.stack([other, q]).astype(np.float32),
                       "betas": np.zeros((2, 10), np.float32),
                       "bbx_cs": np.array([[10, 10, 50], [80, 60, 200]], np.float32)})
    np.save(tmp_path / "HSMR-squat.npy", np.array(frames, dtype=object), allow_pickle=True)
    d_hsmr = _run_json(capsys, tmp_path / "HSMR-squat.npy", "--exercise", "squat")
    assert d_npz["format"] == "npz" and d_hsmr["format"] == "hsmr"
    assert d_npz["reps"] == d_hsmr["reps"] == 5
    assert any("30" in w or "dropped" in w or "no person" in w for w in d_hsmr["warnings"])
    for a, b in zip(d_npz["cycles"], d_hsmr["cycles"]):
        assert abs(a["keyframe_s"] - b["keyframe_s"]) <= 2 / 16


def test_incomplete_last_rep_is_marked(squat_rec):
    # cut the recording shortly after the 5th bottom: the last rep never returns to standing
    keep = squat_rec.timestamps <= 7.45
    rec = squat_rec.__class__(**{**squat_rec.__dict__, "poses": squat_rec.poses[keep],
                                 "timestamps": squat_rec.timestamps[keep]})
    r = analyze_recording(rec, "squat")
    assert r.reps == 5
    assert [c.complete for c in r.cycles] == [True] * 4 + [False]
    assert any(v.kind == "incomplete" and v.cycle == 4 for v in r.violations)


def test_asymmetry_is_flagged(squat_rec):
    poses = squat_rec.poses.copy()
    left = skel.dof_index("knee_angle_l")
    poses[:, left] *= 0.6          # the left knee bends ~30° less than the right
    rec = squat_rec.__class__(**{**squat_rec.__dict__, "poses": poses})
    r = analyze_recording(rec, "squat")
    asym = [v for v in r.violations if v.kind == "asymmetry"]
    assert {v.cycle for v in asym} == set(range(5))
    assert not any(v.kind == "asymmetry" for v in analyze_recording(squat_rec, "squat").violations)


def test_bad_input_gives_clear_errors(data_dir, tmp_path, capsys):
    assert main([str(data_dir / SQUAT), "--exercise", "deadlift_9000"]) == 2
    err = capsys.readouterr().err
    assert "deadlift_9000" in err and "squat" in err
    assert main([str(tmp_path / "missing.mot")]) == 2
    assert "missing.mot" in capsys.readouterr().err
    bad = tmp_path / "noheader.mot"
    bad.write_text("time\tknee_angle_r\n0\t1\n")
    assert main([str(bad)]) == 2
    assert "noheader.mot" in capsys.readouterr().err
    # the shoulder trials have no knee: asking for a squat names the missing driving DoF
    assert main([str(data_dir / SHOULDERS[0]), "--exercise", "squat"]) == 2
    assert "knee_angle_r" in capsys.readouterr().err


def _gait(rng, cadence_hz: float, hip_deg: float, knee_deg: float, seconds: float = 10.0):
    """Walking / running joint angles (100 Hz npz poses): the legs move in opposition."""
    fps = 100.0
    t = np.arange(int(seconds * fps)) / fps
    p = np.zeros((len(t), skel.NUM_DOFS))
    for side, shift in (("r", 0.0), ("l", np.pi)):
        w = 2 * np.pi * cadence_hz * t + shift
        p[:, skel.dof_index(f"hip_flexion_{side}")] = np.radians(hip_deg * np.sin(w) + 10)
        p[:, skel.dof_index(f"knee_angle_{side}")] = np.radians(knee_deg * (1 + np.sin(w - 1.2)) / 2 + 5)
        p[:, skel.dof_index(f"ankle_angle_{side}")] = np.radians(10 * np.sin(w + 0.5))
    return p + np.radians(0.3) * rng.normal(size=p.shape), fps


@pytest.mark.parametrize("kind", ["walking", "running"])
def test_gait_is_not_taken_for_a_library_exercise(kind, rng, tmp_path, capsys):
    """Squats move both knees together, gait moves them in opposition: `auto` analyses walking
    and running as unknown, with one cycle per stride (a partial stride at either end counts)."""
    cadence, hip, knee = ((rng.uniform(0.8, 1.0), 20, 60) if kind == "walking"
                          else (rng.uniform(1.3, 1.6), 35, 100))
    poses, fps = _gait(rng, cadence, hip, knee)
    f = tmp_path / f"{kind}.npz"
    np.savez(f, poses=poses, fps=fps)
    out = _run_json(capsys, f)
    assert out["exercise"] == "unknown"
    strides = len(poses) / fps * cadence
    assert int(np.floor(strides)) - 1 <= out["reps"] <= int(np.ceil(strides)) + 1, (out["reps"], strides)
    assert not [v for v in out["violations"] if v["kind"] in ("below_interval", "above_interval")]


@pytest.mark.parametrize("name", list_exercises())
def test_auto_recognises_every_library_exercise(name, rng):
    """Reps of an exercise's own reference cycle (random count, length and noise) between rests
    are recognised as that exercise by `auto` (a jumping jack's hips move far less than its
    arms, yet drive it) and give one cycle per rep."""
    ref = load_exercise(name).arrays().reference                      # (46, R) radians
    n, frames, fps = int(rng.integers(3, 7)), int(rng.integers(25, 45)), 16.0
    u = np.linspace(0, ref.shape[1] - 1, frames)
    rep = np.stack([np.interp(u, np.arange(ref.shape[1]), r) for r in ref], 1)
    rest = np.tile(ref[:, 0], (int(rng.integers(8, 16)), 1))
    poses = np.concatenate([rest] + [rep] * n + [rest])
    poses += np.radians(0.2) * rng.normal(size=poses.shape)
    rec = PoseRecording(poses=poses, present=np.ones(skel.NUM_DOFS, bool),
                        timestamps=np.arange(len(poses)) / fps, fps=fps, betas=None,
                        source=f"{name}.npz", format="npz")
    r = analyze_recording(rec, "auto")
    assert r.exercise == name, r.warnings
    assert sum(c.complete for c in r.cycles) == n

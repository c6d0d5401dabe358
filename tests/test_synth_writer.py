"""The synthetic QEVD writer: CLI end to end, determinism (bytes), resume after an
interruption, ground truth vs feedbacks_long_range.json, HSMR file readable and close to truth."""
import hashlib
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from biocoach_jax import skel
from biocoach_jax.data import qevd
from biocoach_jax.data.hsmr import read_hsmr
from biocoach_jax.data.synth.templates import SPOKEN_NAMES
from biocoach_jax.data.synth.writer import SynthConfig, build_session, write_split

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _digests(root: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "biocoach_jax.data.synth", *args, "--quiet"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    seed = int.from_bytes(os.urandom(3), "little")
    out = tmp_path_factory.mktemp("synth_cli")
    r = _cli("--out", str(out), "--split", "benchmark", "--sessions", "2", "--seed", str(seed),
             "--workers", "2", "--no-video")
    assert r.returncode == 0, r.stderr
    return out / qevd.BENCHMARK_DIR, seed


def test_cli_writes_qevd_layout_and_gt_agrees(cli_run):
    root, _ = cli_run
    workouts = qevd.read_feedbacks_json(root / qevd.RECORDS_FILE, check_files=False)
    assert [w.workout_id for w in workouts] == ["0000", "0001"]
    # the colloquial index: the same lines at the same frames, other words, no angles
    plain = qevd.read_feedbacks_json(root / qevd.COLLOQUIAL_RECORDS_FILE, check_files=False)
    assert [w.workout_id for w in plain] == ["0000", "0001"]
    for w, p in zip(workouts, plain):
        assert [(s.start_frame, s.end_frame, s.time_s, s.is_transition) for s in w.spans] == \
            [(s.start_frame, s.end_frame, s.time_s, s.is_transition) for s in p.spans]
        assert all(a.text == b.text for a, b in zip(w.spans, p.spans) if a.is_transition)
        assert all("°" not in s.text for s in p.spans)
        assert sum("°" in s.text for s in w.spans) >= 3
    for w in workouts:
        gt = json.loads((root / "ground_truth" / f"{w.workout_id}.json").read_text())
        t = qevd.read_video_timestamps(root / w.timestamps_file)
        assert len(t) == w.n_frames == gt["n_frames"]
        assert np.allclose(np.diff(t), 1 / 16)
        # same spans, times and transition flags in both files
        assert len(w.spans) == len(gt["feedbacks"])
        same = next(p for p in plain if p.workout_id == w.workout_id)
        colloquial = {p.start_frame: p.text for p in same.spans}
        for s, f in zip(w.spans, gt["feedbacks"]):
            assert (s.start_frame, s.end_frame, s.text, s.is_transition) == \
                (f["start_frame"], f["end_frame"], f["text"], f["is_transition"])
            assert f["colloquial_text"] == colloquial[s.start_frame]
            assert s.time_s == pytest.approx(f["time_qevd_s"], abs=1e-6)
            assert s.time_s == pytest.approx(t[s.start_frame], abs=1e-6)
        # one segment per exercise, named by its transition, reps counted in GT
        segs = qevd.segment_workout(w, t)
        spoken = [SPOKEN_NAMES[e] for e in gt["exercises"]]
        assert [s.exercise for s in segs] == [n for n in spoken if n in {x.exercise for x in segs}]
        assert len(segs) >= len(spoken) - 1   # an exercise without any line is skipped
        assert len([s for s in w.spans if s.is_transition]) == len(gt["exercises"]) + 1
        errs = [e for seg in gt["segments"] for e in seg["injected_errors"]]
        assert errs == gt["injected_errors"]
        for seg in gt["segments"]:
            assert seg["num_reps"] == len(seg["reps"]) >= 3
            assert seg["start_frame"] <= seg["active_start_frame"] < seg["active_end_frame"] <= seg["end_frame"]
        morph = qevd.read_morphometrics(root / "morphometrics" / f"{w.workout_id}.json")
        assert morph == pytest.approx(gt["measurements"])


def test_hsmr_output_readable_and_close_to_truth(cli_run):
    root, _ = cli_run
    gt = json.loads((root / "ground_truth" / "0000.json").read_text())
    rec = read_hsmr(root / "HSMR_outputs" / "HSMR-0000.npy",
                    timestamps_ns=root / "long_range_videos" / "0000_timestamps.npy")
    assert rec.num_frames == gt["n_frames"]
    assert np.all(rec.poses >= skel.limits()[:, 0]) and np.all(rec.poses <= skel.limits()[:, 1])
    assert rec.betas == pytest.approx(np.asarray(gt["subject"]["betas"]), abs=0.05)
    dropped = gt["hsmr"]["dropped_frames"]
    assert (~rec.extra["valid"]).sum() == len(dropped)
    diffs = []
    for seg in gt["segments"]:
        for rep, kv in zip(seg["reps"], seg["key_values_deg"]):
            for dof, v in kv.items():
                if rep["key_frame"] not in dropped:
                    diffs.append(math.degrees(rec.poses[rep["key_frame"], skel.dof_index(dof)]) - v)
    diffs = np.abs(diffs)
    # realistic but not destructive: a few degrees
    assert 0.3 < np.median(diffs) < 3.0 and np.percentile(diffs, 99) < 8.0


def test_determinism_and_resume(cli_run, tmp_path):
    """Same arguments -> same bytes, whatever --workers; an interrupted run resumes."""
    root, seed = cli_run
    cfg = SynthConfig(tmp_path, "benchmark", 2, seed, (224, 160), video=False)
    write_split(cfg, workers=1, progress=False)
    assert _digests(cfg.root) == _digests(root)
    # simulate an interruption: session 1 half-written (no GT), index missing
    (cfg.root / "ground_truth" / "0001.json").unlink()
    (cfg.root / qevd.RECORDS_FILE).unlink()
    before = (cfg.root / "HSMR_outputs" / "HSMR-0000.npy").stat().st_mtime_ns
    _, wrote0 = build_session(cfg, 0)
    assert not wrote0                     # complete sessions are skipped
    write_split(cfg, workers=1, progress=False)
    assert (cfg.root / "HSMR_outputs" / "HSMR-0000.npy").stat().st_mtime_ns == before
    assert _digests(cfg.root) == _digests(root)


def test_bad_arguments_are_clear(tmp_path):
    r = _cli("--out", str(tmp_path), "--size", "31x20", "--no-video")
    assert r.returncode == 2 and "--size" in r.stderr
    with pytest.raises(ValueError, match="split"):
        SynthConfig(tmp_path, "val")


def _write_tiny_video(root: pathlib.Path) -> SynthConfig:
    pytest.importorskip("av")
    try:
        import biocoach_jax.data.synth.render  # noqa: F401
    except ImportError:
        pytest.skip("renderer not available")
    cfg = SynthConfig(root, "train", 1, 11, (32, 24), video=True)
    write_split(cfg, progress=False)
    return cfg


def test_video_tiny_decodes_one_frame_per_pose(tmp_path):
    from biocoach_jax.data.video import read_video
    a, b = _write_tiny_video(tmp_path / "a"), _write_tiny_video(tmp_path / "b")
    da, db = _digests(a.root), _digests(b.root)
    video = "long_range_videos/0000.mp4"
    # every file but the mp4 is byte-identical (the mp4: see the xfail test below)
    assert {k: v for k, v in da.items() if k != video} == {k: v for k, v in db.items() if k != video}
    gt = json.loads((a.root / "ground_truth" / "0000.json").read_text())
    frames, times = read_video(a.root / video)
    assert frames.shape == (gt["n_frames"], 32, 24, 3)
    assert np.allclose(times, np.arange(gt["n_frames"]) / 16.0, atol=1e-6)
    assert frames.std() > 5  # not a blank video


@pytest.mark.xfail(strict=False, reason=(
    "libx264 via PyAV occasionally encodes identical frames (rgb24 or yuv420p input, any size) "
    "to different bytes on this machine even with one encoder thread; rendered frames, poses, "
    "HSMR files and json are byte-identical"))
def test_video_bytes_deterministic_across_processes(tmp_path):
    # two separate interpreter processes must encode the same session to the same bytes
    import subprocess
    import sys
    roots = [tmp_path / k for k in "ab"]
    for root in roots:
        subprocess.run([sys.executable, "-m", "biocoach_jax.data.synth", "--out", str(root),
                        "--split", "train", "--sessions", "1", "--seed", "3", "--size", "32x24",
                        "--quiet"], check=True, capture_output=True)
    digests = [_digests(r / "QEVD-FIT-COACH") for r in roots]
    assert digests[0] == digests[1] and any(k.endswith(".mp4") for k in digests[0])

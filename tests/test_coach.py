"""Streaming coach: Stream-VLM rules, causal pose buffer, rule-based coach (shallow rep, causality),
broken pose / video files mid-stream, and the LLM coach's causality with a tiny random model."""
import math

import numpy as np
import pytest

from biocoach_jax import skel
from biocoach_jax.coaching import RuleBasedCoach, StreamError, merge_events, pose_events, run_coach
from biocoach_jax.coaching.state_machine import (Ids, Speaker, next_token,
                                                 skipped_steps)
from biocoach_jax.coaching.stream import CausalPoseBuffer, video_events
from biocoach_jax.exercises import load_exercise

SQUAT = load_exercise("squat")
KNEE_REST, KNEE_PEAK = SQUAT.dof("knee_angle_r").reference_deg[0], max(SQUAT.dof("knee_angle_r").reference_deg)


def squat_stream(rng, n_reps, shallow, fps, scale=0.55, rep_s=2.4, rest_s=0.8, lead_s=1.0):
    """Poses of n_reps squats (the exercise's reference cycle); rep `shallow` has its knee
    excursion scaled by `scale`. Returns poses (T, 46), times (T,), rep end times."""
    rest = np.zeros(skel.NUM_DOFS)
    for d in SQUAT.dofs:
        rest[skel.dof_index(d.dof)] = math.radians(d.reference_deg[0])
    frames, ends, t = [rest] * int(round(lead_s * fps)), [], lead_s
    for r in range(n_reps):
        n = int(round(rep_s * fps))
        for i in range(n):
            q = rest.copy()
            for d in SQUAT.dofs:
                ref = np.radians(d.reference_deg)
                v = np.interp(i / n * (len(ref) - 1), np.arange(len(ref)), ref)
                s = scale if (r == shallow and d.dof.startswith("knee")) else 1.0
                q[skel.dof_index(d.dof)] = ref[0] + s * (v - ref[0])
            frames.append(q)
        t += rep_s
        ends.append(t)
        frames += [rest] * int(round(rest_s * fps))
        t += rest_s
    poses = np.asarray(frames) + rng.normal(0, math.radians(0.3), (len(frames), skel.NUM_DOFS))
    return poses, np.arange(len(poses)) / fps, ends


# ---- Stream-VLM rules ------------------------------------------------------------------------
IDS = Ids(vision=3, answer=4, answer_end=5)


def test_grammar_matches_reference_rules(rng):
    for top in rng.integers(0, 40, 30):
        top = int(top)
        assert next_token(top, False, 0, IDS) == (top if top in (3, 4) else 3)
        n = int(rng.integers(0, 128))
        assert next_token(top, True, n, IDS) == (5 if top in (3, 4) else top)
    assert next_token(17, True, 128, IDS) == 5          # over-length closes the feedback
    assert [skipped_steps(n) for n in (0, 2, 3, 5, 6, 11, 12, 40)] == [0, 0, 1, 1, 2, 3, 4, 13]


def test_speaker_never_overlaps_and_prefers_corrections():
    sp = Speaker(count_tokens=lambda s: len(s.split()), max_delay_s=2.0)
    sp.offer(0.0, "a b c d e f g h i j k l", 0)          # 12 tokens: busy for 1 s
    assert sp.speak(0.0).text.startswith("a")
    sp.offer(0.25, "count", 0)
    sp.offer(0.5, "fix it", 1)
    sp.offer(0.75, "count again", 0)                      # lower priority: does not replace
    assert sp.speak(0.75) is None                         # still speaking
    assert sp.speak(1.0).text == "fix it"
    sp.offer(1.25, "late", 1)
    assert sp.speak(3.5) is None                          # waited too long: dropped


def test_causal_pose_buffer_is_zero_order_hold(rng):
    from biocoach_jax.data.sequence import grid_poses
    from biocoach_jax.data.poses import PoseRecording

    n = int(rng.integers(20, 40))
    t = np.cumsum(rng.uniform(0.02, 0.09, n)) + rng.uniform(0, 0.1)
    q = rng.normal(size=(n, skel.NUM_DOFS))
    buf = CausalPoseBuffer(fps=16.0)
    for ti, qi in zip(t, q):
        buf.push(ti, qi)
    buf.fill_until(t[-1])
    rec = PoseRecording(q, np.ones(46, bool), t - 0.0, 16.0, None, "x", "npz")
    # oracle: the training sequences' grid (last pose at or before each grid time)
    want = grid_poses(rec, 16.0)
    np.testing.assert_allclose(buf.poses, want, atol=1e-6)


# ---- rule-based coach ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stream(request):
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % 2**32))
    n_reps = int(rng.integers(4, 6))
    shallow = int(rng.integers(1, n_reps - 1))
    scale = float(rng.uniform(0.6, 0.8))   # >= 0.5: still a complete rep (kernel amp_frac)
    fps = float(rng.choice([25.0, 30.0, 24.0]))
    poses, times, ends = squat_stream(rng, n_reps, shallow, fps, scale=scale)
    print("stream:", n_reps, shallow, scale, fps)
    return dict(poses=poses, times=times, ends=ends, shallow=shallow, scale=scale, rng=rng)


def test_rule_based_speaks_about_the_shallow_rep(stream):
    coach = RuleBasedCoach(SQUAT)
    run = run_coach(coach, pose_events(stream["poses"], stream["times"]))
    end = stream["ends"][stream["shallow"]]
    near = [f for f in run.feedbacks if end <= f.time_s <= end + 1.5]
    assert len(near) == 1, run.feedbacks
    text = near[0].text
    assert "deeper" in text and "at least 90°" in text, text
    true_peak = KNEE_REST + stream["scale"] * (KNEE_PEAK - KNEE_REST)
    said = float(text.split("(now ")[1].split("°")[0])
    assert abs(said - true_peak) <= 3.0, (said, true_peak)
    # every other rep is clean: counted, never corrected
    others = [f for f in run.feedbacks if f is not near[0]]
    assert len(others) == len(stream["ends"]) - 1
    assert all("good form" in f.text for f in others)
    assert [int(f.text.split()[1].rstrip(",")) for f in others] == [
        i + 1 for i in range(len(stream["ends"])) if i != stream["shallow"]]
    # ... quoting the knee at the bottom of that rep (the kernel's smoothed keyframe value)
    for f in others:
        assert "right knee flexion" in f.text, f.text
        assert abs(float(f.text.split("flexion ")[1].split("°")[0]) - KNEE_PEAK) <= 3.0, f.text
    assert 0 < run.real_time_factor < math.inf


def test_rule_based_is_causal(stream):
    poses, times, rng = stream["poses"], stream["times"], stream["rng"]
    cut = float(rng.uniform(0.35, 0.65) * times[-1])
    other = poses.copy()
    later = times > cut
    other[later] += rng.normal(0, 0.4, (later.sum(), skel.NUM_DOFS))   # a different future
    a = run_coach(RuleBasedCoach(SQUAT), pose_events(poses, times)).feedbacks
    b = run_coach(RuleBasedCoach(SQUAT), pose_events(other, times)).feedbacks
    upto = lambda fbs: [f for f in fbs if f.time_s <= cut]  # noqa: E731
    assert upto(a) and upto(a) == upto(b)
    assert a != b      # the change after the cut does change what is said later


# ---- broken files mid-stream ------------------------------------------------------------------
def _write_hsmr(path, poses, broken_at=None):
    frames = []
    for k, q in enumerate(poses):
        p = q[None] if k != broken_at else q[None, :40]       # a frame with the wrong DoF count
        frames.append({"poses": p, "betas": np.zeros((1, 10)), "bbx_cs": np.array([[5.0, 5.0, 50.0]])})
    np.save(path, np.array(frames, dtype=object), allow_pickle=True)


def test_broken_pose_file_mid_stream_keeps_what_was_said(stream, tmp_path, capsys):
    from biocoach_jax.coach import main

    poses16 = stream["poses"][::2]      # one pose per 16 fps frame is what HSMR would give
    k = int(len(poses16) * 0.8)
    path = tmp_path / "HSMR-0001.npy"
    _write_hsmr(path, poses16, broken_at=k)
    rc = main(["--rule_based", "--poses", str(path), "--exercise", "squats"])
    out, err = capsys.readouterr()
    assert rc == 2
    said = [line for line in out.splitlines() if line.startswith("[")]
    assert said, out                                     # reps before the break were coached
    assert all(float(line[1:].split("s]")[0]) <= k / 16 for line in said)
    assert str(path) in err and f"frame {k}" in err and "shape" in err
    assert "real-time factor" not in out
    # the same file without the broken frame streams to the end
    _write_hsmr(path, poses16)
    assert main(["--rule_based", "--poses", str(path), "--exercise", "squat"]) == 0
    out, _ = capsys.readouterr()
    assert "real-time factor:" in out.splitlines()[-1]
    assert len([x for x in out.splitlines() if x.startswith("[")]) > len(said)


def test_broken_video_mid_stream(stream, tmp_path):
    from biocoach_jax.data.video import write_video

    n = 16 * 8
    frames = (np.random.default_rng(1).integers(0, 255, (n, 32, 24, 3))).astype(np.uint8)
    path = tmp_path / "clip.mp4"
    write_video(path, frames, 16.0)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.7)])        # cut: the tail of the stream is gone
    t16 = np.arange(n) / 16.0
    poses = stream["poses"][np.searchsorted(stream["times"], t16)]
    events = merge_events(pose_events(poses, t16), video_events(path))
    run = run_coach(RuleBasedCoach(SQUAT), events)
    assert isinstance(run.error, StreamError)
    assert str(path) in str(run.error) and run.error.time_s is not None
    assert 0 < run.error.time_s < 8.0
    assert all(f.time_s <= run.error.time_s for f in run.feedbacks)
    assert run.feedbacks                                 # squats before the break were coached

"""QEVD-FIT-COACH json: clock, dense<->spans, read/write, validation, segmentation, morphometrics."""
import importlib.util
import itertools
import json

import numpy as np
import pytest

from biocoach_jax.data import qevd

TEXTS = ["Keep your back straight!", "Nice depth.", "Lower your hips.", "Great pace, keep going!"]
EXERCISES = ["squats", "lunges", "jumping jacks", "armcrosschest"]


def random_dense(rng, n):
    """Per-frame strings with runs of random length, gaps and touching different texts."""
    out = []
    while len(out) < n:
        text = "" if rng.random() < 0.4 else str(rng.choice(TEXTS))
        out += [text] * int(rng.integers(1, 6))
    return out[:n]


def test_clock_matches_stream_vlm_formula(rng):
    ns = rng.integers(1_600_000_000 * 10**9, 1_800_000_000 * 10**9, size=37, dtype=np.int64)
    ours = qevd.ns_to_qevd_seconds(ns)
    # the loader's expression, element by element in plain Python
    ref = [int(x / 1e9) + (x / 1e9) % 1 + 28800.0 for x in ns.astype(np.double)]
    np.testing.assert_array_equal(ours, np.array(ref))
    back = qevd.qevd_seconds_to_ns(ours)
    assert back.dtype == np.int64
    assert np.max(np.abs(back - ns)) < 1000  # float64 seconds near 1.7e9 carry ~0.24 µs


def test_timestamps_file_roundtrip(tmp_path, rng):
    t = 1.7e9 + np.cumsum(rng.uniform(0.02, 0.05, size=23))
    qevd.write_video_timestamps(tmp_path / "v_timestamps.npy", t)
    raw = np.load(tmp_path / "v_timestamps.npy")
    assert raw.dtype == np.int64
    np.testing.assert_allclose(qevd.read_video_timestamps(tmp_path / "v_timestamps.npy"), t,
                               rtol=0, atol=1e-6)


def test_dense_spans_are_exact_inverses(rng):
    for _ in range(50):
        n = int(rng.integers(0, 60))
        dense = random_dense(rng, n)
        spans = qevd.dense_to_spans(dense)
        # independent oracle: runs of equal strings via itertools.groupby
        runs, pos = [], 0
        for text, grp in itertools.groupby(dense):
            k = len(list(grp))
            if text:
                runs.append((pos, pos + k - 1, text))
            pos += k
        assert spans == runs
        assert qevd.spans_to_dense(spans, n) == dense


@pytest.mark.parametrize("spans, n, msg", [
    ([(0, 3, "a"), (3, 5, "b")], 8, "overlap"),
    ([(0, 3, "a"), (4, 5, "a")], 8, "same text"),
    ([(0, 3, "")], 8, "non-empty"),
    ([(2, 9, "a")], 8, "leave"),
    ([(5, 4, "a")], 8, "leave"),
])
def test_spans_to_dense_rejects(spans, n, msg):
    with pytest.raises(ValueError, match=msg):
        qevd.spans_to_dense(spans, n)


def make_workout(rng, wid, exercises, fps=30.0):
    """A workout with a transition per exercise plus a closing one; returns (Workout, times)."""
    spans, frame = [], int(rng.integers(0, 5))
    texts = [("First up are " if i == 0 else "Moving on to ") + e + "!" for i, e in enumerate(exercises)]
    texts.append("That's the end of the workout!")
    for i, tr in enumerate(texts):
        spans.append([frame, frame + int(rng.integers(8, 20)), tr, True])
        frame = spans[-1][1] + 1 + int(rng.integers(1, 4))  # repeated exercises must not touch
        if i == len(exercises):
            break
        for _ in range(int(rng.integers(0 if i == 1 else 1, 4))):  # exercise 1 may get none
            spans.append([frame, frame + int(rng.integers(3, 12)), str(rng.choice(TEXTS)), False])
            frame = spans[-1][1] + 1 + int(rng.integers(1, 6))  # same texts must not touch
    n = frame + int(rng.integers(1, 5))
    t0 = 1.7e9 + rng.uniform(0, 1e5)
    times = t0 + np.arange(n) / fps + rng.uniform(0, 0.004, size=n)
    sp = [qevd.Span(a, b, txt, float(times[a]) + 0.01, tr) for a, b, txt, tr in spans]
    return qevd.Workout(wid, f"long_range_videos/{wid}.mp4", f"long_range_videos/{wid}_timestamps.npy",
                        n, sp), times


def write_split(root, workouts_times):
    for w, times in workouts_times:
        (root / w.video_file).parent.mkdir(parents=True, exist_ok=True)
        (root / w.video_file).write_bytes(b"not decoded here")
        qevd.write_video_timestamps(root / w.timestamps_file, times)
    qevd.write_feedbacks_json(root / qevd.RECORDS_FILE, [w for w, _ in workouts_times])


def test_read_write_roundtrip(tmp_path, rng):
    wts = [make_workout(rng, f"{i:04d}", list(rng.choice(EXERCISES, size=int(rng.integers(1, 4)))))
           for i in range(3)]
    write_split(tmp_path, wts)
    raw = json.loads((tmp_path / qevd.RECORDS_FILE).read_text())
    assert set(raw[0]) == set(qevd._RECORD_KEYS) and len(raw[0]["feedbacks"]) == wts[0][0].n_frames
    back = qevd.read_feedbacks_json(tmp_path / qevd.RECORDS_FILE)
    assert back == [w for w, _ in wts]


def test_segmentation_hand_worked():
    # frames: 0-3 transition squats, 5-6 fb A, 8-9 fb B, 10-13 transition lunges (no feedback
    # follows), 14-17 transition armcrosschest, 18 fb C, 20-23 end transition
    spans = [qevd.Span(0, 3, "First up are squats!", 100.0, True),
             qevd.Span(5, 6, "A", 100.5, False), qevd.Span(8, 9, "B", 100.9, False),
             qevd.Span(10, 13, "Moving on to lunges!", 101.0, True),
             qevd.Span(14, 17, "Moving on to armcrosschest!", 101.4, True),
             qevd.Span(18, 18, "Stretch the armcrosschest side", 101.8, False),
             qevd.Span(20, 23, "Well done!", 102.0, True)]
    w = qevd.Workout("7", "v/7.mp4", "v/7_timestamps.npy", 25, spans)
    times = 100.0 + 0.1 * np.arange(25)
    segs = qevd.segment_workout(w, times)
    assert [s.exercise for s in segs] == ["squats", "deltoid stretch"]  # lunges had no feedback
    s0, s1 = segs
    assert (s0.start_frame, s0.end_frame) == (0, 10 + (13 - 10) // 2)
    assert s0.start_s == pytest.approx(100.0) and s0.end_s == pytest.approx(101.1)
    assert [t for t, _ in s0.feedbacks] == pytest.approx([0.5, 0.9])
    assert [x for _, x in s0.feedbacks] == ["A", "B"]
    assert (s1.start_frame, s1.end_frame) == (14, 21)
    assert s1.feedbacks == [(pytest.approx(101.8 - 101.4), "Stretch the deltoid stretch side")]
    mask = s1.frame_mask(times)
    assert np.flatnonzero(mask).tolist() == list(range(15, 22))  # start < t <= end


def test_segmentation_random_workouts(rng):
    for _ in range(10):
        ex = list(rng.choice(EXERCISES[:3], size=int(rng.integers(1, 5))))
        w, times = make_workout(rng, "x", ex)
        segs = qevd.segment_workout(w, times)
        non_trans = [s for s in w.spans if not s.is_transition]
        assert sum(len(s.feedbacks) for s in segs) == len(non_trans)
        for seg in segs:
            assert ex.count(seg.exercise) >= 1 and seg.start_s < seg.end_s
            assert all(0 < t < seg.end_s - seg.start_s + 1 for t, _ in seg.feedbacks)


def test_trailing_span_without_time_is_dropped(tmp_path, rng):
    w, times = make_workout(rng, "0001", ["squats"])
    write_split(tmp_path, [(w, times)])
    rec = json.loads((tmp_path / qevd.RECORDS_FILE).read_text())
    rec[0]["feedbacks"][-1] = "Bye"  # shown on the last frame, never listed
    (tmp_path / qevd.RECORDS_FILE).write_text(json.dumps(rec))
    assert qevd.read_feedbacks_json(tmp_path / qevd.RECORDS_FILE)[0].spans == w.spans


def _corrupt(tmp_path, rng, edit):
    w, times = make_workout(rng, "0003", ["squats", "lunges"])
    write_split(tmp_path, [(w, times)])
    path = tmp_path / qevd.RECORDS_FILE
    rec = json.loads(path.read_text())
    edit(rec[0], tmp_path, w)
    path.write_text(json.dumps(rec))
    return path


@pytest.mark.parametrize("edit, msg", [
    (lambda r, d, w: r.pop("is_transition"), "missing keys"),
    (lambda r, d, w: r["feedback_timestamps"].pop(), "feedback_timestamps"),
    (lambda r, d, w: r["is_transition"].append(False), "is_transition"),
    (lambda r, d, w: r["feedbacks"].append(""), "per-frame entries"),
    (lambda r, d, w: (d / w.video_file).unlink(), "video file"),
    (lambda r, d, w: (d / w.timestamps_file).unlink(), "timestamps file not found"),
    (lambda r, d, w: r.update(feedbacks="oops"), "list of strings"),
    (lambda r, d, w: r["feedback_timestamps"].__setitem__(0, "x"), "finite numbers"),
])
def test_validation_errors(tmp_path, rng, edit, msg):
    path = _corrupt(tmp_path, rng, edit)
    with pytest.raises(qevd.QEVDFormatError, match=msg) as e:
        qevd.read_feedbacks_json(path)
    assert str(path) in str(e.value)


def test_truncated_and_missing_json(tmp_path, rng):
    w, times = make_workout(rng, "0002", ["squats"])
    write_split(tmp_path, [(w, times)])
    path = tmp_path / qevd.RECORDS_FILE
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(qevd.QEVDFormatError, match="truncated") as e:
        qevd.read_feedbacks_json(path)
    assert str(path) in str(e.value)
    with pytest.raises(qevd.QEVDFormatError, match="not found"):
        qevd.read_feedbacks_json(tmp_path / "nope.json")


def test_morphometrics_roundtrip_and_errors(tmp_path, rng):
    m = {"height_m": rng.uniform(1.5, 2.0), "mass_kg": rng.uniform(50, 110),
         "chest_m": rng.uniform(0.8, 1.2), "waist_m": rng.uniform(0.6, 1.1), "hip_m": rng.uniform(0.8, 1.2)}
    qevd.write_morphometrics(tmp_path / "morphometrics/0001.json", m)
    assert qevd.read_morphometrics(tmp_path / "morphometrics/0001.json") == m
    bad = dict(m, height_m=m["height_m"] * 100)
    with pytest.raises(qevd.QEVDFormatError, match="wrong unit"):
        qevd.write_morphometrics(tmp_path / "b.json", bad)
    assert not (tmp_path / "b.json").exists()
    (tmp_path / "c.json").write_text(json.dumps({k: v for k, v in m.items() if k != "hip_m"}))
    with pytest.raises(qevd.QEVDFormatError, match="c.json: missing measurements"):
        qevd.read_morphometrics(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps(dict(m, waist_m=float("nan"))))
    with pytest.raises(qevd.QEVDFormatError, match="finite"):
        qevd.read_morphometrics(tmp_path / "d.json")


# ---- Session / load_split / load_segments over a tiny QEVD-layout directory -------------------
HAVE_POSES = importlib.util.find_spec("biocoach_jax.data.poses") is not None


def write_hsmr(path, rng, n):
    """HSMR output format: np.save of a list of per-frame dicts, first dim = people."""
    frames, poses = [], rng.normal(0, 0.3, size=(n, 46))
    for k in range(n):
        people = 2 if k == 3 else 1  # one frame with a second, smaller person
        p = np.concatenate([poses[k:k + 1], rng.normal(size=(people - 1, 46))])
        box = np.array([[50.0, 60.0, 120.0]] + [[10.0, 10.0, 30.0]] * (people - 1))
        frames.append({"poses": p, "betas": np.tile(np.linspace(-1, 1, 10), (people, 1)),
                       "patch_cam_t": np.zeros((people, 3)), "full_cam_t": np.zeros((people, 3)),
                       "bbx_cs": box})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array(frames, dtype=object), allow_pickle=True)
    return poses


@pytest.fixture
def tiny_split(tmp_path, rng):
    from biocoach_jax.data import video

    root = tmp_path / qevd.TRAIN_DIR
    wts = [make_workout(rng, "0007", ["squats", "lunges"], fps=16.0),
           make_workout(rng, "0011", ["jumping jacks"], fps=16.0)]
    write_split(root, wts)
    for w, _ in wts:  # real (tiny) videos with one frame per annotated frame
        frames = np.zeros((w.n_frames, 16, 12, 3), np.uint8)
        frames[:, :, :, 0] = (np.arange(w.n_frames) * 3 % 256)[:, None, None]
        video.write_video(root / w.video_file, frames, 16.0)
    poses = write_hsmr(root / "HSMR_outputs/HSMR-0007.npy", rng, wts[0][0].n_frames)
    morph = {"height_m": 1.8, "mass_kg": 80.0, "chest_m": 1.0, "waist_m": 0.85, "hip_m": 1.0}
    qevd.write_morphometrics(root / "morphometrics/0007.json", morph)
    (root / "ground_truth").mkdir()
    (root / "ground_truth/0007.json").write_text(json.dumps({"injected_errors": [
        {"t_s": 3.0, "dof": "knee_angle_r", "kind": "shallow"}]}))
    return tmp_path, wts, poses, morph


def test_load_split(tiny_split):
    from biocoach_jax.data import session, video

    data_dir, wts, poses, morph = tiny_split
    sessions = session.load_split(data_dir, "train", load_poses=HAVE_POSES)
    assert [s.session_id for s in sessions] == ["0007", "0011"]
    s0, s1 = sessions
    w0, t0 = wts[0]
    assert s0.frame_times_s[0] == 0 and s0.clock_origin_s == pytest.approx(t0[0], abs=1e-6)
    np.testing.assert_allclose(s0.frame_times_s, t0 - t0[0], atol=1e-6)
    assert s0.feedbacks[1][1] == w0.spans[1].text
    assert s0.feedbacks[1][0] == pytest.approx(w0.spans[1].time_s - t0[0], abs=1e-6)
    assert s0.exercises == [seg.exercise for seg in qevd.segment_workout(w0, t0)]
    assert s0.measurements == morph and s1.measurements is None
    assert s0.injected_errors[0]["dof"] == "knee_angle_r" and s1.injected_errors is None
    assert s0.features_path is None and s1.poses is None
    frames, _ = video.read_video(s0.video_path, fps=None)
    assert len(frames) == len(s0.frame_times_s)
    if HAVE_POSES:
        np.testing.assert_allclose(s0.poses.poses, poses)  # largest box picked in frame 3
        np.testing.assert_allclose(s0.poses.timestamps, s0.frame_times_s, atol=1e-5)
        np.testing.assert_allclose(s0.poses.betas, np.linspace(-1, 1, 10))


def test_load_segments(tiny_split):
    from biocoach_jax.data import session

    data_dir, wts, poses, _ = tiny_split
    segs = session.load_segments(data_dir, "train", load_poses=HAVE_POSES)
    w0, t0 = wts[0]
    ref = qevd.segment_workout(w0, t0)
    mine = [s for s in segs if s.session_id == "0007"]
    assert [s.exercise for s in mine] == [r.exercise for r in ref]
    for s, r in zip(mine, ref):
        expect = np.flatnonzero((t0 > r.start_s) & (t0 <= r.end_s))
        np.testing.assert_array_equal(s.frame_indices, expect)
        assert s.frame_indices[0] == r.start_frame + 1 and s.frame_indices[-1] == r.end_frame
        assert s.end_s - s.start_s == pytest.approx(r.end_s - r.start_s, abs=1e-6)
        assert [x for _, x in s.feedbacks] == [x for _, x in r.feedbacks]
        # ref uses the float times written; the session reads them back from nanoseconds
        np.testing.assert_allclose([t for t, _ in s.feedbacks], [t for t, _ in r.feedbacks], atol=1e-6)
        if HAVE_POSES:
            np.testing.assert_allclose(s.poses.poses, poses[expect])
            assert s.poses.timestamps[0] > 0
            np.testing.assert_allclose(s.poses.timestamps, t0[expect] - r.start_s, atol=1e-5)
    if not HAVE_POSES:
        pytest.skip("biocoach_jax.data.poses not present: pose slices untested")


def test_session_errors(tiny_split):
    from biocoach_jax.data import session

    data_dir, wts, _, _ = tiny_split
    with pytest.raises(qevd.QEVDFormatError, match="QEVD-FIT-COACH-Benchmark"):
        session.load_split(data_dir, "benchmark")
    with pytest.raises(ValueError, match="unknown split"):
        session.load_split(data_dir, "val")
    root = data_dir / qevd.TRAIN_DIR
    (root / "ground_truth/0011.json").write_text("{broken")
    with pytest.raises(qevd.QEVDFormatError, match="0011.json: invalid"):
        session.load_split(data_dir, "train", load_poses=False)
    (root / "ground_truth/0011.json").unlink()
    if HAVE_POSES:
        rng = np.random.default_rng(0)
        write_hsmr(root / "HSMR_outputs/HSMR-0011.npy", rng, wts[1][0].n_frames - 2)
        with pytest.raises(ValueError, match="HSMR-0011.npy"):
            session.load_split(data_dir, "train")

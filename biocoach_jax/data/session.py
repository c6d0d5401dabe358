"""One recorded workout in memory (DESIGN §7) and the loaders over the QEVD-FIT-COACH layout.

    DIR/QEVD-FIT-COACH/ (train) or DIR/QEVD-FIT-COACH-Benchmark/ (benchmark)
      feedbacks_long_range.json
      long_range_videos/<id>.mp4, <id>_timestamps.npy   (as named in the json)
      [long_range_videos/<id>_features.npy | efficientnet_features/long_range_videos/<id>_features.npy]
      HSMR_outputs/HSMR-<id>.npy      optional: SKEL poses, one entry per video frame
      morphometrics/<id>.json         optional: body measurements
      ground_truth/<id>.json          optional, synthetic only: e.g. {"injected_errors": [...]}

Clock: session times are seconds since the workout's first video frame (`frame_times_s[0] ==
0`); `clock_origin_s` is that frame's time on the QEVD clock, so absolute times are
`clock_origin_s + t`. HSMR pose timestamps come from the same per-frame nanosecond file.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import numpy as np

from biocoach_jax.data import qevd

SPLITS = {"train": qevd.TRAIN_DIR, "benchmark": qevd.BENCHMARK_DIR, "test": qevd.BENCHMARK_DIR}
HSMR_DIR, MORPH_DIR, GT_DIR = "HSMR_outputs", "morphometrics", "ground_truth"
FEATURES_DIR = "efficientnet_features"  # Stream-VLM's cache folder


@dataclasses.dataclass
class Session:
    session_id: str
    split_dir: pathlib.Path
    video_path: pathlib.Path
    features_path: pathlib.Path | None  # cached (T, C, 7, 5) features, if present
    timestamps_path: pathlib.Path
    frame_times_s: np.ndarray  # (T,) per video frame, session clock
    clock_origin_s: float  # QEVD-clock time of frame 0
    workout: qevd.Workout  # raw annotation spans (frame indices, QEVD-clock times)
    segments: list[qevd.Segment]  # FitCoach single-exercise cuts (QEVD clock)
    feedbacks: list[tuple[float, str, bool]]  # (session time, text, is_transition)
    poses: Any | None = None  # PoseRecording (T, 46) + betas, same frames as the video
    measurements: dict[str, float] | None = None
    ground_truth: dict | None = None

    @property
    def exercises(self) -> list[str]:
        return [s.exercise for s in self.segments]

    @property
    def injected_errors(self) -> list | None:
        return None if self.ground_truth is None else self.ground_truth.get("injected_errors")


@dataclasses.dataclass
class SegmentSample:
    """One single-exercise segment with everything sliced to it; times from its start."""
    session_id: str
    exercise: str
    start_s: float  # session clock
    end_s: float
    feedbacks: list[tuple[float, str]]  # seconds after start_s
    frame_indices: np.ndarray  # video frames with start < t <= end (FitCoach's cut)
    video_path: pathlib.Path
    features_path: pathlib.Path | None
    poses: Any | None  # PoseRecording sliced to frame_indices, timestamps from start_s
    measurements: dict[str, float] | None
    ground_truth: dict | None


def split_dir(data_dir, split: str) -> pathlib.Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    path = pathlib.Path(data_dir) / SPLITS[split]
    if not (path / qevd.RECORDS_FILE).is_file():
        raise qevd.QEVDFormatError(f"{path}: no {qevd.RECORDS_FILE} (expected the QEVD-FIT-COACH "
                                   f"layout under {data_dir})")
    return path


def _features_path(root: pathlib.Path, video_file: str) -> pathlib.Path | None:
    name = video_file[:-4] if video_file.endswith(".mp4") else video_file
    for cand in (root / f"{name}_features.npy", root / FEATURES_DIR / f"{name}_features.npy"):
        if cand.is_file():
            return cand
    return None


def _read_json_object(path: pathlib.Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise qevd.QEVDFormatError(f"{path}: invalid or truncated JSON ({e})") from None
    if not isinstance(obj, dict):
        raise qevd.QEVDFormatError(f"{path}: expected a JSON object")
    return obj


def _read_hsmr(path: pathlib.Path, timestamps_path: pathlib.Path):
    # Imported here so this module loads without the pose readers (they are optional).
    try:
        from biocoach_jax.data.hsmr import read_hsmr
    except ImportError:
        from biocoach_jax.data.poses import read_hsmr
    return read_hsmr(path, timestamps_ns=timestamps_path)


def _session(root: pathlib.Path, w: qevd.Workout, load_poses: bool) -> Session:
    ts_path = root / w.timestamps_file
    t_abs = qevd.read_video_timestamps(ts_path)
    origin = float(t_abs[0])
    hsmr = root / HSMR_DIR / f"HSMR-{w.workout_id}.npy"
    morph = root / MORPH_DIR / f"{w.workout_id}.json"
    gt = root / GT_DIR / f"{w.workout_id}.json"
    poses = _read_hsmr(hsmr, ts_path) if load_poses and hsmr.is_file() else None
    if poses is not None and poses.num_frames != w.n_frames:
        raise qevd.QEVDFormatError(f"{hsmr}: {poses.num_frames} pose frames but the video "
                                   f"{w.video_file} has {w.n_frames} frames")
    return Session(
        session_id=w.workout_id, split_dir=root, video_path=root / w.video_file,
        features_path=_features_path(root, w.video_file), timestamps_path=ts_path,
        frame_times_s=t_abs - origin, clock_origin_s=origin, workout=w,
        segments=qevd.segment_workout(w, t_abs),
        feedbacks=[(s.time_s - origin, s.text, s.is_transition) for s in w.spans],
        poses=poses,
        measurements=qevd.read_morphometrics(morph) if morph.is_file() else None,
        ground_truth=_read_json_object(gt) if gt.is_file() else None)


def load_split(data_dir, split: str = "train", *, load_poses: bool = True,
               records_file: str = qevd.RECORDS_FILE) -> list[Session]:
    """All workouts of a split, validated (files exist, per-frame counts agree). records_file:
    the annotation index to read (the synthetic world also writes COLLOQUIAL_RECORDS_FILE)."""
    root = split_dir(data_dir, split)
    workouts = qevd.read_feedbacks_json(root / records_file, check_files=True)
    return [_session(root, w, load_poses) for w in workouts]


def _slice_poses(rec, idx: np.ndarray, t0: float):
    n = rec.num_frames
    extra = {k: (v[idx] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v)
             for k, v in rec.extra.items()}
    return dataclasses.replace(rec, poses=rec.poses[idx], timestamps=rec.timestamps[idx] - t0,
                               extra=extra)


def session_segments(session: Session) -> list[SegmentSample]:
    out = []
    for seg in session.segments:
        start, end = seg.start_s - session.clock_origin_s, seg.end_s - session.clock_origin_s
        # FitCoach's cut (start < t <= end); start/end are frame times minus the same origin,
        # so the comparison is exact at the boundary frames
        t = session.frame_times_s
        idx = np.flatnonzero((t > start) & (t <= end))
        poses = None if session.poses is None else _slice_poses(session.poses, idx, start)
        out.append(SegmentSample(
            session_id=session.session_id, exercise=seg.exercise, start_s=start, end_s=end,
            feedbacks=list(seg.feedbacks), frame_indices=idx, video_path=session.video_path,
            features_path=session.features_path, poses=poses,
            measurements=session.measurements, ground_truth=session.ground_truth))
    return out


def load_segments(data_dir, split: str = "train", *, load_poses: bool = True) -> list[SegmentSample]:
    """Single-exercise segments of every workout in a split, with their pose slices."""
    return [s for sess in load_split(data_dir, split, load_poses=load_poses)
            for s in session_segments(sess)]

"""QEVD-FIT-COACH annotations: `feedbacks_long_range.json`, its clock, single-exercise segments,
and the `morphometrics/<id>.json` files we keep beside it.

Record fields (one workout per record; paths relative to the json's folder):
  long_range_video_file  mp4 of the whole workout
  video_timestamps       .npy of per-video-frame capture times, int nanoseconds
  feedbacks              one string per video frame, '' = none; a feedback repeated over
                         consecutive frames is one span (its length = how long it is shown)
  feedback_timestamps    one time in seconds per span (QEVD clock, see `ns_to_qevd_seconds`)
  is_transition          one bool per span; transitions announce the next exercise
                         ("First up are squats!", "Moving on to lunges!"), the last one ends it
Segmentation follows FitCoach's evaluation: exercise i runs from the first frame of transition
i to halfway into transition i+1; transition feedbacks are dropped, the rest are timed relative
to the segment start; exercises without any feedback are skipped.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, NamedTuple, Sequence

import numpy as np

from biocoach_jax.io_utils import atomic_save_npy, atomic_write_text, safe_load_npy

RECORDS_FILE = "feedbacks_long_range.json"
# the synthetic world's colloquial wording of the same lines at the same times (QEVD-fit-coach
# style; RECORDS_FILE holds the anatomical QEVD-bio-fit-coach rewrite)
COLLOQUIAL_RECORDS_FILE = "feedbacks_long_range_colloquial.json"
TRAIN_DIR = "QEVD-FIT-COACH"
BENCHMARK_DIR = "QEVD-FIT-COACH-Benchmark"
# Stream-VLM's loader adds 8 h to the nanosecond capture times to reach the clock of
# `feedback_timestamps`.
QEVD_CLOCK_OFFSET_S = 28800.0
_RECORD_KEYS = ("long_range_video_file", "video_timestamps", "feedbacks",
                "feedback_timestamps", "is_transition")
_TRANSITION_PREFIXES = ("First up are ", "Moving on to ")
# Name fix FitCoach applies to every feedback string before evaluation.
NAME_FIXES = {"armcrosschest": "deltoid stretch"}
MORPH_KEYS = ("height_m", "mass_kg", "chest_m", "waist_m", "hip_m")


class QEVDFormatError(ValueError):
    """A QEVD file that does not follow the format; the message names the file."""


# ---- clock -------------------------------------------------------------------------------------
def ns_to_qevd_seconds(ns) -> np.ndarray:
    """Stream-VLM's conversion: x = ns as float64; int(x/1e9) + (x/1e9) % 1 + 28800."""
    y = np.asarray(ns).astype(np.float64) / 1e9
    return np.trunc(y) + np.mod(y, 1.0) + QEVD_CLOCK_OFFSET_S


def qevd_seconds_to_ns(t) -> np.ndarray:
    """Inverse of `ns_to_qevd_seconds` (to < 1 µs; float64 seconds near 1.7e9 carry ~0.24 µs).
    Whole seconds and the fraction are converted separately to keep integer precision."""
    t = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("qevd_seconds_to_ns: non-finite time")
    whole = np.floor(t)
    frac_ns = np.round((t - whole) * 1e9).astype(np.int64)
    return (whole.astype(np.int64) - int(QEVD_CLOCK_OFFSET_S)) * 1_000_000_000 + frac_ns


def read_video_timestamps(path) -> np.ndarray:
    """Per-frame times in seconds on the QEVD clock from a nanosecond `.npy`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise QEVDFormatError(f"{path}: video timestamps file not found")
    ns = safe_load_npy(path)
    if not isinstance(ns, np.ndarray) or ns.ndim != 1 or ns.dtype.kind not in "iuf":
        raise QEVDFormatError(f"{path}: expected a 1-D numeric array of nanosecond timestamps")
    if ns.size and np.any(np.diff(ns.astype(np.float64)) < 0):
        raise QEVDFormatError(f"{path}: timestamps are not non-decreasing")
    return ns_to_qevd_seconds(ns)


def write_video_timestamps(path, t_seconds) -> None:
    """Write QEVD-clock seconds as the int64 nanosecond `.npy` the dataset ships."""
    atomic_save_npy(path, qevd_seconds_to_ns(t_seconds))


# ---- dense per-frame list <-> spans -----------------------------------------------------------
def dense_to_spans(dense: Sequence[str]) -> list[tuple[int, int, str]]:
    """Runs of equal non-empty strings -> (start_frame, end_frame inclusive, text)."""
    spans: list[tuple[int, int, str]] = []
    start = None
    for i, text in enumerate(dense):
        if start is not None and text != dense[start]:
            spans.append((start, i - 1, dense[start]))
            start = None
        if text and start is None:
            start = i
    if start is not None:  # a span still shown on the last frame (FitCoach never closes it)
        spans.append((start, len(dense) - 1, dense[start]))
    return spans


def spans_to_dense(spans: Sequence[Sequence[Any]], n_frames: int) -> list[str]:
    """Inverse of `dense_to_spans`. Spans must be ordered, disjoint, inside [0, n_frames),
    non-empty, and two touching spans must differ in text (else they would read back as one)."""
    dense = [""] * n_frames
    prev_end, prev_text = -1, None
    for k, span in enumerate(spans):
        start, end, text = int(span[0]), int(span[1]), span[2]
        if not isinstance(text, str) or not text:
            raise ValueError(f"span {k}: text must be a non-empty string")
        if not prev_end < start <= end < n_frames:
            raise ValueError(f"span {k}: frames [{start}, {end}] overlap the previous span "
                             f"(ends {prev_end}) or leave [0, {n_frames})")
        if start == prev_end + 1 and text == prev_text:
            raise ValueError(f"span {k}: touches the previous span with the same text")
        dense[start:end + 1] = [text] * (end - start + 1)
        prev_end, prev_text = end, text
    return dense


# ---- workouts ----------------------------------------------------------------------------------
class Span(NamedTuple):
    start_frame: int
    end_frame: int  # inclusive
    text: str
    time_s: float  # QEVD clock
    is_transition: bool


@dataclasses.dataclass
class Workout:
    workout_id: str  # the video file's stem, e.g. "0042"
    video_file: str  # relative to the dataset split folder
    timestamps_file: str
    n_frames: int
    spans: list[Span]

    def to_record(self) -> dict:
        dense = spans_to_dense([(s.start_frame, s.end_frame, s.text) for s in self.spans],
                               self.n_frames)
        return {"long_range_video_file": self.video_file,
                "video_timestamps": self.timestamps_file,
                "feedbacks": dense,
                "feedback_timestamps": [float(s.time_s) for s in self.spans],
                "is_transition": [bool(s.is_transition) for s in self.spans]}


def workout_id_from_video(video_file: str) -> str:
    return pathlib.PurePosixPath(video_file).stem


def _record_to_workout(rec: Any, where: str) -> Workout:
    if not isinstance(rec, dict):
        raise QEVDFormatError(f"{where}: expected an object, got {type(rec).__name__}")
    missing = [k for k in _RECORD_KEYS if k not in rec]
    if missing:
        raise QEVDFormatError(f"{where}: missing keys {missing}")
    for key in ("long_range_video_file", "video_timestamps"):
        if not isinstance(rec[key], str) or not rec[key]:
            raise QEVDFormatError(f"{where}: '{key}' must be a non-empty path string")
    dense, times, trans = rec["feedbacks"], rec["feedback_timestamps"], rec["is_transition"]
    if not isinstance(dense, list) or not all(isinstance(x, str) for x in dense):
        raise QEVDFormatError(f"{where}: 'feedbacks' must be a list of strings (one per frame)")
    if not isinstance(times, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in times):
        raise QEVDFormatError(f"{where}: 'feedback_timestamps' must be a list of finite numbers")
    if not isinstance(trans, list) or not all(isinstance(x, bool) for x in trans):
        raise QEVDFormatError(f"{where}: 'is_transition' must be a list of booleans")
    spans = dense_to_spans(dense)
    if len(spans) == len(times) + 1 and spans[-1][1] == len(dense) - 1:
        # FitCoach's span reader never closes a feedback shown up to the last frame, so such a
        # record lists no time for it; drop it the same way.
        spans = spans[:-1]
    if not len(spans) == len(times) == len(trans):
        raise QEVDFormatError(
            f"{where}: {len(spans)} feedback spans in 'feedbacks' but {len(times)} "
            f"'feedback_timestamps' and {len(trans)} 'is_transition' entries")
    return Workout(
        workout_id=workout_id_from_video(rec["long_range_video_file"]),
        video_file=rec["long_range_video_file"], timestamps_file=rec["video_timestamps"],
        n_frames=len(dense),
        spans=[Span(a, b, txt, float(t), bool(tr)) for (a, b, txt), t, tr in zip(spans, times, trans)])


def _read_json(path: pathlib.Path, what: str):
    """Parsed JSON of `path`; a missing or unparsable file raises QEVDFormatError naming it."""
    if not path.is_file():
        raise QEVDFormatError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QEVDFormatError(f"{path}: invalid or truncated JSON ({e})") from None


def read_feedbacks_json(path, *, check_files: bool = True) -> list[Workout]:
    """Read and validate `feedbacks_long_range.json`. With `check_files`, every record's video
    and timestamps file must exist and the timestamps must count one per `feedbacks` entry."""
    path = pathlib.Path(path)
    records = _read_json(path, "annotation file")
    if not isinstance(records, list):
        raise QEVDFormatError(f"{path}: expected a JSON list of workout records")
    workouts = []
    for i, rec in enumerate(records):
        w = _record_to_workout(rec, f"{path}: record {i}")
        if check_files:
            _check_workout_files(w, path.parent, f"{path}: record {i} ({w.workout_id})")
        workouts.append(w)
    ids = [w.workout_id for w in workouts]
    if len(set(ids)) != len(ids):
        raise QEVDFormatError(f"{path}: duplicate workout ids (video file stems)")
    return workouts


def _check_workout_files(w: Workout, root: pathlib.Path, where: str) -> None:
    video = root / w.video_file
    if not video.is_file():
        raise QEVDFormatError(f"{where}: video file {video} not found")
    try:
        n_ts = len(read_video_timestamps(root / w.timestamps_file))
    except QEVDFormatError as e:
        raise QEVDFormatError(f"{where}: {e}") from None
    if n_ts != w.n_frames:
        raise QEVDFormatError(f"{where}: 'feedbacks' has {w.n_frames} per-frame entries but "
                              f"{root / w.timestamps_file} has {n_ts} timestamps")


def write_feedbacks_json(path, workouts: Sequence[Workout]) -> None:
    records = [w.to_record() for w in workouts]
    atomic_write_text(path, json.dumps(records, indent=1))


# ---- single-exercise segments -----------------------------------------------------------------
@dataclasses.dataclass
class Segment:
    workout_id: str
    exercise: str
    start_s: float  # QEVD clock
    end_s: float
    feedbacks: list[tuple[float, str]]  # (seconds after start_s, text), transitions dropped
    start_frame: int  # first frame of the opening transition
    end_frame: int  # frame halfway into the next transition

    def frame_mask(self, frame_times_s) -> np.ndarray:
        """Frames inside the segment, as FitCoach cuts features: start < t <= end."""
        t = np.asarray(frame_times_s, dtype=np.float64)
        return (t > self.start_s) & (t <= self.end_s)


def exercise_from_transition(text: str) -> str:
    """'First up are squats!' -> 'squats'; 'Moving on to lunges!' -> 'lunges'."""
    name = text
    for prefix in _TRANSITION_PREFIXES:
        name = name.replace(prefix, "")
    return name.replace("!", "").strip()


def fix_names(text: str) -> str:
    for old, new in NAME_FIXES.items():
        text = text.replace(old, new)
    return text


def segment_workout(workout: Workout, frame_times_s: np.ndarray) -> list[Segment]:
    """Cut a workout into single-exercise segments (module doc); `frame_times_s` are the
    per-frame QEVD-clock times from `read_video_timestamps`."""
    t = np.asarray(frame_times_s, dtype=np.float64)
    if len(t) != workout.n_frames:
        raise ValueError(f"workout {workout.workout_id}: {len(t)} frame times for "
                         f"{workout.n_frames} frames")
    trans = [k for k, s in enumerate(workout.spans) if s.is_transition]
    segments = []
    for a, b in zip(trans[:-1], trans[1:]):
        if b - a <= 1:  # no feedback during this exercise
            continue
        cur, nxt = workout.spans[a], workout.spans[b]
        start_frame = cur.start_frame
        end_frame = nxt.start_frame + (nxt.end_frame - nxt.start_frame) // 2
        start_s, end_s = float(t[start_frame]), float(t[end_frame])
        fbs = [(s.time_s - start_s, fix_names(s.text)) for s in workout.spans[a + 1:b]]
        segments.append(Segment(workout.workout_id, fix_names(exercise_from_transition(cur.text)),
                                start_s, end_s, fbs, start_frame, end_frame))
    return segments


# ---- morphometrics -----------------------------------------------------------------------------
# Plausible human ranges; values outside are almost always a unit mistake (cm, g, lb).
_MORPH_RANGES = {"height_m": (0.5, 2.6), "mass_kg": (10.0, 400.0), "chest_m": (0.3, 2.5),
                 "waist_m": (0.3, 2.5), "hip_m": (0.3, 2.5)}


def _check_morph(values: dict, where: str) -> dict[str, float]:
    if not isinstance(values, dict):
        raise QEVDFormatError(f"{where}: expected a JSON object of measurements")
    missing = [k for k in MORPH_KEYS if k not in values]
    if missing:
        raise QEVDFormatError(f"{where}: missing measurements {missing}")
    out = {}
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise QEVDFormatError(f"{where}: '{key}' must be a finite number, got {v!r}")
        lo, hi = _MORPH_RANGES.get(key, (-math.inf, math.inf))
        if not lo <= v <= hi:
            raise QEVDFormatError(f"{where}: '{key}' = {v} outside [{lo}, {hi}] (wrong unit?)")
        out[key] = float(v)
    return out


def read_morphometrics(path) -> dict[str, float]:
    """`morphometrics/<id>.json`: height_m, mass_kg, chest_m, waist_m, hip_m (+ extra numbers)."""
    path = pathlib.Path(path)
    values = _read_json(path, "morphometrics file")
    return _check_morph(values, str(path))


def write_morphometrics(path, values: dict) -> None:
    checked = _check_morph(dict(values), str(path))
    atomic_write_text(path, json.dumps(checked, indent=1))

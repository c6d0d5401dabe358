"""The media a coach consumes, as one time-ordered stream of events, and the causal pose buffer.

A coach sees the world only through `Event`s in time order: a video frame (`image`), a pose
(`pose`, 46 SKEL DoFs in radians) or, instead of frames, the CNN's cached feature of a step
(`feature`), each with its time in seconds from the start of the media.
Sources are read lazily, one item at a time, so a file that breaks half-way raises
`StreamError` naming the file and the frame/time reached, after everything before it has been
delivered (and coached).

`CausalPoseBuffer` resamples the poses seen so far onto the analysis grid k / fps. A grid time
is filled only once a pose at or after it has arrived (linear interpolation between the two
poses around it), so the buffer never uses a pose from the future of the stream position.
"""
from __future__ import annotations

import heapq
import itertools
import math
import pathlib
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from biocoach_jax import skel


class StreamError(ValueError):
    """A media file broke while being streamed; names the file and where it broke."""

    def __init__(self, message: str, *, source: str, time_s: float | None, index: int | None):
        super().__init__(message)
        self.source, self.time_s, self.index = source, time_s, index


class Event(NamedTuple):
    time_s: float
    kind: str                     # "frame" | "pose" | "feature"
    value: np.ndarray             # (H, W, 3) uint8 image, (46,) float64 pose in radians, or
                                  # (N, C) cached CNN feature tokens
    index: int                    # frame index in its source (a feature: its step k >= 1)


def pose_events(poses: np.ndarray, times_s: np.ndarray, source: str = "poses") -> Iterator[Event]:
    """Events from in-memory poses (T, 46) and times (T,), checked one frame at a time."""
    poses = np.asarray(poses, np.float64)
    times_s = np.asarray(times_s, np.float64)
    if poses.ndim != 2 or poses.shape[1] != skel.NUM_DOFS or times_s.shape != poses.shape[:1]:
        raise ValueError(f"{source}: poses must be (T, {skel.NUM_DOFS}) with (T,) times, got "
                         f"{poses.shape} and {times_s.shape}")
    last = -math.inf
    for k, (t, q) in enumerate(zip(times_s, poses)):
        yield Event(float(t), "pose", _checked_pose(source, k, float(t), q, last), k)
        last = float(t)


def _checked_pose(source: str, k: int, t: float, q: np.ndarray, last_t: float) -> np.ndarray:
    where = f"frame {k} (t = {t:.2f} s)" if math.isfinite(t) else f"frame {k}"
    if not math.isfinite(t) or t <= last_t:
        raise StreamError(f"{source}: {where}: time does not increase (previous {last_t:.3f} s)",
                          source=source, time_s=t if math.isfinite(t) else None, index=k)
    if not np.all(np.isfinite(q)):
        bad = [skel.DOF_NAMES[i] for i in np.flatnonzero(~np.isfinite(q))[:3]]
        raise StreamError(f"{source}: {where}: non-finite pose values in {', '.join(bad)}",
                          source=source, time_s=t, index=k)
    return q


def hsmr_events(path, times_s: np.ndarray | None = None, fps: float = 16.0) -> Iterator[Event]:
    """Events from an HSMR `.npy` (one dict per video frame), validated frame by frame.

    Frames with nobody detected repeat the last valid pose (REFERENCE §1; before the first valid
    one they are skipped). `times_s` gives one time per frame (default k / fps).
    """
    from biocoach_jax.data.hsmr import load_frames, select_person  # the reader's per-frame rules
    from biocoach_jax.data.poses import PoseFileError

    path = pathlib.Path(path)
    try:
        frames = load_frames(path)
    except PoseFileError as e:
        raise StreamError(str(e), source=str(path), time_s=None, index=None) from None
    if times_s is not None and len(times_s) != len(frames):
        raise StreamError(f"{path}: {len(frames)} pose frames but {len(times_s)} timestamps",
                          source=str(path), time_s=None, index=None)
    last_pose, last_t = None, -math.inf
    for k, frame in enumerate(frames):
        t = float(times_s[k]) if times_s is not None else k / fps
        try:
            person = select_person(path, k, frame)
        except PoseFileError as e:
            raise StreamError(f"{e} (t = {t:.2f} s)", source=str(path), time_s=t, index=k) from None
        if person is not None:
            last_pose = _checked_pose(str(path), k, t, person[0], last_t)
        if last_pose is not None:
            yield Event(t, "pose", last_pose, k)
            last_t = t


def video_events(path, fps: float = 16.0, size: tuple[int, int] | None = None) -> Iterator[Event]:
    """Decoded frames resampled to `fps` (see `data.video.iter_video_frames`)."""
    from biocoach_jax.data.video import VideoError, iter_video_frames

    k, t = 0, None
    try:
        for k, f in enumerate(iter_video_frames(path, fps=fps, size=size)):
            t = f.time_s
            yield Event(float(f.time_s), "frame", f.image, k)
    except VideoError as e:
        where = "before the first frame" if t is None else f"after frame {k} (t = {t:.2f} s)"
        raise StreamError(f"{e}; stream broke {where}", source=str(path), time_s=t,
                          index=None if t is None else k) from None


def merge_events(*sources: Iterable[Event]) -> Iterator[Event]:
    """One time-ordered stream from several ordered ones (frames before poses on equal times)."""
    order = {"frame": 0, "feature": 0, "pose": 1}
    keyed = [((e.time_s, order[e.kind], n, e) for n, e in zip(itertools.count(), s))
             for s in sources]
    for *_, e in heapq.merge(*keyed):
        yield e


class CausalPoseBuffer:
    """Poses on the grid t = k / fps (k = 0, 1, ...), zero-order hold: each grid time takes the
    last pose at or before it (the first pose for grid times before it), never a later one --
    the rule the training sequences use (`data.sequence.grid_poses`). Call `fill_until(t)` when
    every pose up to t has been pushed."""

    def __init__(self, fps: float = 16.0, capacity_s: float = 600.0):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self._grid = np.zeros((max(16, int(capacity_s * fps)), skel.NUM_DOFS), np.float32)
        self.count = 0                       # grid frames filled
        self._last: np.ndarray | None = None

    def push(self, t: float, q: np.ndarray) -> None:
        q = np.asarray(q, np.float64)
        self._fill(t, q if self._last is None else self._last, strict=True)
        self._last = q

    def fill_until(self, t: float) -> None:
        if self._last is not None:
            self._fill(t, self._last, strict=False)

    def _fill(self, t: float, q: np.ndarray, strict: bool) -> None:
        k_last = math.floor(t * self.fps + 1e-9)          # grid points k / fps <= t
        if strict and abs(k_last / self.fps - t) < 1e-9:  # ... or < t
            k_last -= 1
        while self.count <= k_last:
            self._append(q)

    @property
    def poses(self) -> np.ndarray:
        """(count, 46) the grid so far (a view)."""
        return self._grid[:self.count]

    def _append(self, q: np.ndarray) -> None:
        if self.count == len(self._grid):       # grow geometrically: amortised O(1)
            self._grid = np.concatenate([self._grid, np.zeros_like(self._grid)])
        self._grid[self.count] = q
        self.count += 1

    def window(self, frames: int) -> tuple[np.ndarray, int, int]:
        """The last `frames` grid poses, padded (repeating the last) to exactly `frames` rows:
        (poses (frames, 46) float32, valid length, index of the first row on the grid)."""
        n = min(self.count, frames)
        start = self.count - n
        out = np.empty((frames, skel.NUM_DOFS), np.float32)
        out[:n] = self._grid[start:self.count]
        out[n:] = self._grid[self.count - 1] if n else 0.0
        return out, n, start

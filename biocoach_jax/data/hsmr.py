"""HSMR output (`HSMR-<name>.npy`) -> `PoseRecording` (REFERENCE.md §4).

The file is `np.save` of a Python list with one dict per video frame; each array's first
dimension is the number of detected people (possibly 0): `poses (N,46)`, `betas (N,10)`,
`bbx_cs (N,3)` (centre x, centre y, box size), ... It is a pickle, so it is read only through
`io_utils.safe_load_npy`. With several people the largest box wins. Frames with nobody are
filled from the last valid pose (leading gaps from the first valid one) and reported.
"""
from __future__ import annotations

import pathlib

import numpy as np

from biocoach_jax import skel
from biocoach_jax.data.poses import (
    DEFAULT_ANALYSIS_FPS, PoseFileError, PoseRecording, check_betas, check_pose_array,
    check_timestamps, fps_from_timestamps)
from biocoach_jax.io_utils import safe_load_npy


def load_frames(path: pathlib.Path) -> list:
    try:
        obj = safe_load_npy(path)
    except FileNotFoundError:
        raise PoseFileError(f"{path}: no such file") from None
    except ValueError as e:  # io_utils' messages already name the file
        raise PoseFileError(str(e)) from None
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        obj = list(obj.ravel())
    if not isinstance(obj, list):
        raise PoseFileError(f"{path}: expected a list of per-frame dicts (HSMR output), got "
                            f"{type(obj).__name__}")
    if not obj:
        raise PoseFileError(f"{path}: the file holds no frames")
    return obj


def select_person(path, k: int, frame) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """(pose (46,), betas (10,) or None, box (3,) or None) of the largest person, None if nobody."""
    if not isinstance(frame, dict) or "poses" not in frame:
        raise PoseFileError(f"{path}: frame {k} is not a dict with a 'poses' array")
    poses = np.asarray(frame["poses"])
    if poses.ndim != 2 or poses.shape[1] != skel.NUM_DOFS:
        raise PoseFileError(f"{path}: frame {k}: poses must have shape (N, {skel.NUM_DOFS}), "
                            f"got {poses.shape}")
    n = poses.shape[0]
    if n == 0:
        return None
    pick = 0
    boxes = frame.get("bbx_cs")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (n, 3):
            raise PoseFileError(f"{path}: frame {k}: bbx_cs must have shape ({n}, 3), got {boxes.shape}")
        pick = int(np.argmax(boxes[:, 2]))
    betas = frame.get("betas")
    if betas is not None:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.shape != (n, 10):
            raise PoseFileError(f"{path}: frame {k}: betas must have shape ({n}, 10), got {betas.shape}")
        betas = betas[pick]
    return (poses[pick].astype(np.float64), betas,
            None if boxes is None else boxes[pick])


def _runs(idx: np.ndarray) -> list[tuple[int, int]]:
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def _timestamps(path, n: int, timestamps_ns, fps: float) -> tuple[np.ndarray, np.ndarray | None]:
    if timestamps_ns is None:
        if not fps > 0:
            raise PoseFileError(f"{path}: fps must be positive, got {fps}")
        return np.arange(n) / float(fps), None
    if isinstance(timestamps_ns, (str, pathlib.Path)):
        try:
            timestamps_ns = safe_load_npy(timestamps_ns)
        except (ValueError, OSError) as e:
            raise PoseFileError(f"{path}: cannot read timestamps {timestamps_ns}: {e}") from None
    ns = np.asarray(timestamps_ns)
    if ns.shape != (n,):
        raise PoseFileError(f"{path}: {n} frames but {ns.shape} timestamps")
    t = (ns - ns[0]).astype(np.float64) * 1e-9  # nanoseconds (QEVD) -> seconds from the start
    check_timestamps(path, t)
    return t, ns


def read_hsmr(path, *, fps: float = DEFAULT_ANALYSIS_FPS, timestamps_ns=None) -> PoseRecording:
    """Read an HSMR `.npy`; `timestamps_ns` (array or `.npy` path, one per frame, nanoseconds)
    overrides the constant `fps` (default 16, the video decoding rate)."""
    path = pathlib.Path(path)
    frames = load_frames(path)
    people = [select_person(path, k, f) for k, f in enumerate(frames)]
    valid = np.array([p is not None for p in people])
    if not valid.any():
        raise PoseFileError(f"{path}: no person detected in any of the {len(frames)} frames")
    t, ns = _timestamps(path, len(frames), timestamps_ns, fps)

    # forward fill: each frame takes the last valid frame at or before it (the first valid one
    # for a leading gap)
    idx = np.where(valid, np.arange(len(frames)), -1)
    src = np.maximum.accumulate(idx)
    src[src < 0] = int(np.flatnonzero(valid)[0])
    chosen = [people[s] for s in src]
    poses = check_pose_array(path, np.stack([p[0] for p in chosen]))
    warnings = []
    missing = np.flatnonzero(~valid)
    if missing.size:
        spans = ", ".join(f"frames {a}-{b} ({t[a]:.2f}-{t[b]:.2f} s)" if a != b else
                          f"frame {a} ({t[a]:.2f} s)" for a, b in _runs(missing)[:8])
        warnings.append(f"{path.name}: {missing.size} of {len(frames)} frame(s) without a person, "
                        f"filled from the last valid pose: {spans}")
    multi = sum(1 for f in frames if np.asarray(f["poses"]).shape[0] > 1)
    if multi:
        warnings.append(f"{path.name}: {multi} frame(s) with several people; took the largest box")

    extra: dict[str, np.ndarray] = {"valid": valid}
    betas_frames = [p[1] for p in chosen]
    betas = None
    if all(b is not None for b in betas_frames):
        extra["betas_per_frame"] = np.stack(betas_frames)
        betas = check_betas(path, np.stack([people[k][1] for k in np.flatnonzero(valid)]))
    if all(p[2] is not None for p in chosen):
        extra["bbx_cs"] = np.stack([p[2] for p in chosen])
    if ns is not None:
        extra["timestamps_ns"] = ns
    return PoseRecording(poses=poses, present=np.ones(skel.NUM_DOFS, bool), timestamps=t,
                         fps=fps_from_timestamps(t, fps), betas=betas, source=str(path),
                         format="hsmr", warnings=warnings, extra=extra)

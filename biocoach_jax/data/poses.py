"""Pose recordings in SKEL order: the common container, checks, `.npz` I/O, dispatch, resampling.

Readers for OpenSim `.mot`/`.sto` live in `opensim.py`, for HSMR `.npy` in `hsmr.py`. Every
reader returns a `PoseRecording` (radians, float64, SKEL DoF order, timestamps in seconds) and
raises `PoseFileError` naming the file and the problem for bad input.
"""
from __future__ import annotations

import dataclasses
import pathlib
import zipfile

import numpy as np

from biocoach_jax import skel
from biocoach_jax.io_utils import atomic_path

DEFAULT_ANALYSIS_FPS = 16.0
FORMATS = ("opensim", "hsmr", "npz")


class PoseFileError(ValueError):
    """A pose file is unreadable or inconsistent (the message names the file and the problem)."""


@dataclasses.dataclass
class PoseRecording:
    poses: np.ndarray            # (T, 46) radians, SKEL order; DoFs the file lacks are 0
    present: np.ndarray          # (46,) bool: which DoFs the file actually had
    timestamps: np.ndarray       # (T,) seconds, strictly increasing
    fps: float                   # nominal rate (1 / median frame interval)
    betas: np.ndarray | None     # (10,) SKEL/SMPL shape, or None
    source: str                  # path of the file read
    format: str                  # "opensim" | "hsmr" | "npz"
    warnings: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # unmapped channels

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration(self) -> float:
        return float(self.timestamps[-1] - self.timestamps[0]) if self.num_frames else 0.0

    def dof(self, name: str) -> np.ndarray:
        """(T,) trajectory of one DoF (radians)."""
        return self.poses[:, skel.dof_index(name)]


def nan_runs(column: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) frame ranges where `column` is not finite."""
    bad = ~np.isfinite(column)
    if not bad.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def check_finite(source, values: np.ndarray, names) -> None:
    """Raise naming the first column with NaN/inf values and its frame ranges."""
    for j, name in enumerate(names):
        runs = nan_runs(values[:, j])
        if runs:
            where = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:5])
            more = f" (+{len(runs) - 5} more runs)" if len(runs) > 5 else ""
            raise PoseFileError(f"{source}: non-finite values (NaN/inf) in {name!r} at frames "
                                f"{where}{more}")


def check_timestamps(source, t: np.ndarray) -> None:
    if t.ndim != 1 or t.size == 0:
        raise PoseFileError(f"{source}: timestamps must be a non-empty 1-D array, got shape {t.shape}")
    check_finite(source, t[:, None], ["time"])
    steps = np.diff(t)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise PoseFileError(f"{source}: time is not strictly increasing at frame {i + 1} "
                            f"({t[i]:.6g} s then {t[i + 1]:.6g} s)")


def fps_from_timestamps(t: np.ndarray, default: float = DEFAULT_ANALYSIS_FPS) -> float:
    return float(1.0 / np.median(np.diff(t))) if t.size > 1 else float(default)


def check_pose_array(source, poses, what: str = "poses") -> np.ndarray:
    poses = np.asarray(poses)
    if poses.ndim != 2 or poses.shape[1] != skel.NUM_DOFS:
        raise PoseFileError(f"{source}: {what} must have shape (T, {skel.NUM_DOFS}) (SKEL DoFs), "
                            f"got {poses.shape}")
    if poses.shape[0] == 0:
        raise PoseFileError(f"{source}: {what} has no frames")
    if not np.issubdtype(poses.dtype, np.number):
        raise PoseFileError(f"{source}: {what} must be numeric, got dtype {poses.dtype}")
    poses = poses.astype(np.float64)
    check_finite(source, poses, skel.DOF_NAMES)
    return poses


def check_betas(source, betas) -> np.ndarray | None:
    """(10,) or per-frame (T, 10) betas -> (10,) (per-frame ones are averaged)."""
    if betas is None:
        return None
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim == 2:
        betas = betas.mean(axis=0)
    if betas.shape != (10,):
        raise PoseFileError(f"{source}: betas must have shape (10,) or (T, 10), got {betas.shape}")
    check_finite(source, betas[None, :], ["betas"])
    return betas


def read_npz(path, *, fps: float | None = None) -> PoseRecording:
    """`.npz` with `poses (T,46)` radians, `timestamps (T,)` seconds or `fps`, optional `betas`
    and `present (46,)`."""
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise PoseFileError(f"{path}: not a readable .npz file ({e})") from None
    if "poses" not in data:
        raise PoseFileError(f"{path}: missing array 'poses'; found {sorted(data)}")
    poses = check_pose_array(path, data["poses"])
    n = poses.shape[0]
    if "timestamps" in data:
        t = np.asarray(data["timestamps"], dtype=np.float64)
        if t.shape != (n,):
            raise PoseFileError(f"{path}: timestamps have shape {t.shape}, expected ({n},)")
        check_timestamps(path, t)
    else:
        rate = fps if fps is not None else (float(data["fps"]) if "fps" in data else None)
        if rate is None or not rate > 0:
            raise PoseFileError(f"{path}: needs 'timestamps' or a positive 'fps'")
        t = np.arange(n) / rate
    present = np.ones(skel.NUM_DOFS, bool)
    if "present" in data:
        present = np.asarray(data["present"]).astype(bool)
        if present.shape != (skel.NUM_DOFS,):
            raise PoseFileError(f"{path}: present must have shape ({skel.NUM_DOFS},), got {present.shape}")
    return PoseRecording(poses=poses, present=present, timestamps=t,
                         fps=fps_from_timestamps(t, fps or DEFAULT_ANALYSIS_FPS),
                         betas=check_betas(path, data.get("betas")), source=str(path),
                         format="npz")


def write_npz(rec: PoseRecording, path) -> None:
    """Write a recording as `.npz` (atomically: a failed write leaves no partial file)."""
    arrays = {"poses": rec.poses, "timestamps": rec.timestamps, "present": rec.present,
              "fps": np.float64(rec.fps)}
    if rec.betas is not None:
        arrays["betas"] = rec.betas
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def read_poses(path, **kw) -> PoseRecording:
    """Read a pose file by extension: .mot/.sto (OpenSim), .npy (HSMR), .npz."""
    path = pathlib.Path(path)
    ext = path.suffix.lower()
    if not path.is_file():
        raise PoseFileError(f"{path}: no such file")
    if ext in (".mot", ".sto"):
        from biocoach_jax.data.opensim import read_opensim
        return read_opensim(path, **kw)
    if ext == ".npy":
        from biocoach_jax.data.hsmr import read_hsmr
        return read_hsmr(path, **kw)
    if ext == ".npz":
        return read_npz(path, **kw)
    raise PoseFileError(f"{path}: unknown pose file extension {ext!r}; "
                        "expected .mot, .sto (OpenSim), .npy (HSMR) or .npz")


def resample(rec: PoseRecording, fps: float = DEFAULT_ANALYSIS_FPS) -> PoseRecording:
    """Linear interpolation onto t0 + k / fps (k = 0.. while within the recording).

    Per-frame numeric `extra` arrays are interpolated too (bool ones thresholded at 0.5); other
    extras are kept as they are.
    """
    if not fps > 0:
        raise ValueError(f"resample: fps must be positive, got {fps}")
    t = rec.timestamps
    count = int(np.floor((t[-1] - t[0]) * fps + 1e-9)) + 1
    new_t = t[0] + np.arange(count) / fps

    def interp(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(a.shape[0], -1).astype(np.float64)
        out = np.stack([np.interp(new_t, t, flat[:, j]) for j in range(flat.shape[1])], axis=1)
        return out.reshape((count,) + a.shape[1:])

    extra = {}
    for k, v in rec.extra.items():
        per_frame = v.ndim >= 1 and v.shape[0] == t.size
        if per_frame and v.dtype == bool:
            extra[k] = interp(v) >= 0.5
        elif per_frame and np.issubdtype(v.dtype, np.number):
            extra[k] = interp(v)
        else:
            extra[k] = v
    return dataclasses.replace(rec, poses=interp(rec.poses), timestamps=new_t, fps=float(fps),
                               warnings=list(rec.warnings), extra=extra)

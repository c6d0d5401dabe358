"""OpenSim kinematics (`.mot` / `.sto`) -> `PoseRecording` in SKEL order (REFERENCE.md §7).

Layout: header lines up to `endheader` (with `inDegrees=yes|no`), then a whitespace/tab table
whose first column is `time`. Column names are mapped to SKEL DoFs: identical names directly,
a few known aliases, the thoracoscapular model's unsuffixed right-arm names to the `_r` DoFs
(with a warning, since the side is an assumption). Translations and couplers are not DoFs.
Every other column is reported in `warnings` and kept, in file units, in `extra`.
"""
from __future__ import annotations

import math
import pathlib
import re

import numpy as np

from biocoach_jax import skel
from biocoach_jax.data.poses import (
    PoseFileError, PoseRecording, check_finite, check_timestamps, fps_from_timestamps)

# Names used by common OpenSim models for SKEL DoFs.
ALIASES: dict[str, str] = {
    "lumbar_rotation": "lumbar_twist",
    "elbow_flex_r": "elbow_flexion_r", "elbow_flex_l": "elbow_flexion_l",
}
# Thoracoscapular shoulder model (Seth et al. 2019): right arm only, names without a side.
UNSIDED_RIGHT_ARM = ("scapula_abduction", "scapula_elevation", "scapula_upward_rot",
                     "elbow_flexion", "pro_sup")
# Not rotational DoFs: segment translations and the patella coupler coordinate.
_NON_DOF = re.compile(r"^(pelvis_t[xyz]|ground_thorax_t[xyz]|knee_angle_[rl]_beta)$")
# Knee flexion stored negative (e.g. Hamner 2010): most frames below zero and a clear bend.
_NEGATIVE_KNEE_FRACTION = 0.75
_NEGATIVE_KNEE_MIN_DEG = -10.0


def _split_header(path: pathlib.Path, lines: list[str]) -> tuple[dict[str, str], int]:
    """Header key=value pairs and the index of the line after `endheader`."""
    header: dict[str, str] = {}
    for i, line in enumerate(lines):
        s = line.strip()
        if s.lower() == "endheader":
            return header, i + 1
        if "=" in s:
            k, v = s.split("=", 1)
            header[k.strip().lower()] = v.strip()
    raise PoseFileError(f"{path}: header has no 'endheader' line (not an OpenSim .mot/.sto file?)")


def _table(path: pathlib.Path, lines: list[str], start: int) -> tuple[list[str], np.ndarray]:
    rows = [(i, ln.split()) for i, ln in enumerate(lines[start:], start + 1) if ln.strip()]
    if not rows:
        raise PoseFileError(f"{path}: no column header after 'endheader'")
    (_, names), body = rows[0], rows[1:]
    if names[0].lower() != "time":
        raise PoseFileError(f"{path}: first column must be 'time', got {names[0]!r}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PoseFileError(f"{path}: duplicate column names {dup}")
    if not body:
        raise PoseFileError(f"{path}: the table has no data rows")
    for lineno, fields in body:
        if len(fields) != len(names):
            raise PoseFileError(f"{path}: line {lineno} has {len(fields)} values but the header has "
                                f"{len(names)} columns (truncated or ragged table)")
    try:
        values = np.array([fields for _, fields in body], dtype=np.float64)
    except ValueError as e:
        raise PoseFileError(f"{path}: non-numeric value in the table ({e})") from None
    return names, values


def _in_degrees(path: pathlib.Path, header: dict[str, str], warnings: list[str]) -> bool:
    flag = header.get("indegrees")
    if flag is None:
        warnings.append(f"{path.name}: header has no inDegrees; assuming degrees")
        return True
    if flag.lower() not in ("yes", "no"):
        raise PoseFileError(f"{path}: inDegrees must be 'yes' or 'no', got {flag!r}")
    return flag.lower() == "yes"


def _target(name: str) -> str | None:
    """SKEL DoF for a column name, or None."""
    if name in skel.DOF_NAMES:
        return name
    if name in ALIASES:
        return ALIASES[name]
    if name in UNSIDED_RIGHT_ARM:
        return f"{name}_r"
    return None


def read_opensim(path) -> PoseRecording:
    """Read an OpenSim `.mot`/`.sto` kinematics file (see module doc)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise PoseFileError(f"{path}: not a text file ({e})") from None
    lines = text.splitlines()
    if not lines:
        raise PoseFileError(f"{path}: empty file")
    warnings: list[str] = []
    header, start = _split_header(path, lines)
    degrees = _in_degrees(path, header, warnings)
    names, values = _table(path, lines, start)
    check_finite(path, values, names)
    t = values[:, 0]
    check_timestamps(path, t)
    if "nrows" in header and header["nrows"].isdigit() and int(header["nrows"]) != len(t):
        warnings.append(f"{path.name}: header says nRows={header['nrows']} but the table has "
                        f"{len(t)} rows")

    poses = np.zeros((len(t), skel.NUM_DOFS))
    present = np.zeros(skel.NUM_DOFS, bool)
    extra: dict[str, np.ndarray] = {}
    unsided, skipped, unmapped = [], [], []
    scale = math.pi / 180.0 if degrees else 1.0
    for j, name in enumerate(names[1:], 1):
        dof = _target(name)
        if dof is None or _NON_DOF.match(name):
            extra[name] = values[:, j].copy()
            (skipped if _NON_DOF.match(name) else unmapped).append(name)
            continue
        i = skel.dof_index(dof)
        if present[i]:
            warnings.append(f"{path.name}: column {name!r} maps to {dof}, already read; kept in extra")
            extra[name] = values[:, j].copy()
            continue
        poses[:, i], present[i] = values[:, j] * scale, True
        if name in UNSIDED_RIGHT_ARM:
            unsided.append(name)

    if unsided:
        warnings.append(f"{path.name}: columns without a side ({', '.join(unsided)}) were taken as "
                        "the right arm (_r), as in the thoracoscapular shoulder model")
    if skipped:
        warnings.append(f"{path.name}: non-DoF columns (translations / couplers) kept in extra: "
                        f"{', '.join(skipped)}")
    if unmapped:
        warnings.append(f"{path.name}: columns with no SKEL DoF kept in extra (file units): "
                        f"{', '.join(unmapped)}")
    _flip_negative_knees(path, poses, present, warnings)
    return PoseRecording(poses=poses, present=present, timestamps=t, fps=fps_from_timestamps(t),
                         betas=None, source=str(path), format="opensim", warnings=warnings,
                         extra=extra)


def _flip_negative_knees(path, poses, present, warnings) -> None:
    """Models that store knee flexion as negative (Hamner 2010) -> SKEL's +flexion."""
    for name in ("knee_angle_r", "knee_angle_l"):
        i = skel.dof_index(name)
        k = poses[:, i]
        if (present[i] and np.mean(k < 0) >= _NEGATIVE_KNEE_FRACTION
                and k.min() < math.radians(_NEGATIVE_KNEE_MIN_DEG)):
            poses[:, i] = -k
            warnings.append(f"{path.name}: {name} is mostly negative (min {math.degrees(k.min()):.0f}°); "
                            "taken as a model storing knee flexion as negative and flipped to +flexion")

"""The SKEL body model's kinematic schema: 46 pose DoFs, 24 joints (bones), parents, limits.

Facts from the public SKEL release (`skel/kin_skel.py`) and HSMR's limit table
(`lib/body_models/skel_utils/limits.py`); see REFERENCE.md §3. Angles are radians.
Everything here is plain Python/numpy so any layer of the package can import it.
"""
from __future__ import annotations

import math

import numpy as np

DOF_NAMES: tuple[str, ...] = (
    "pelvis_tilt", "pelvis_list", "pelvis_rotation",
    "hip_flexion_r", "hip_adduction_r", "hip_rotation_r", "knee_angle_r", "ankle_angle_r",
    "subtalar_angle_r", "mtp_angle_r",
    "hip_flexion_l", "hip_adduction_l", "hip_rotation_l", "knee_angle_l", "ankle_angle_l",
    "subtalar_angle_l", "mtp_angle_l",
    "lumbar_bending", "lumbar_extension", "lumbar_twist",
    "thorax_bending", "thorax_extension", "thorax_twist",
    "head_bending", "head_extension", "head_twist",
    "scapula_abduction_r", "scapula_elevation_r", "scapula_upward_rot_r",
    "shoulder_r_x", "shoulder_r_y", "shoulder_r_z", "elbow_flexion_r", "pro_sup_r",
    "wrist_flexion_r", "wrist_deviation_r",
    "scapula_abduction_l", "scapula_elevation_l", "scapula_upward_rot_l",
    "shoulder_l_x", "shoulder_l_y", "shoulder_l_z", "elbow_flexion_l", "pro_sup_l",
    "wrist_flexion_l", "wrist_deviation_l",
)
NUM_DOFS = len(DOF_NAMES)  # 46

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "femur_r", "tibia_r", "talus_r", "calcn_r", "toes_r",
    "femur_l", "tibia_l", "talus_l", "calcn_l", "toes_l",
    "lumbar_body", "thorax", "head",
    "scapula_r", "humerus_r", "ulna_r", "radius_r", "hand_r",
    "scapula_l", "humerus_l", "ulna_l", "radius_l", "hand_l",
)
NUM_JOINTS = len(JOINT_NAMES)  # 24

# Bone (joint) that each DoF rotates, in DoF order (REFERENCE §3 table).
DOF_JOINT: tuple[int, ...] = (
    0, 0, 0,
    1, 1, 1, 2, 3, 4, 5,
    6, 6, 6, 7, 8, 9, 10,
    11, 11, 11,
    12, 12, 12,
    13, 13, 13,
    14, 14, 14, 15, 15, 15, 16, 17, 18, 18,
    19, 19, 19, 20, 20, 20, 21, 22, 23, 23,
)

# Kinematic tree: parent joint index (-1 for the root), standard OpenSim chain.
JOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4,      # right leg
    0, 6, 7, 8, 9,          # left leg
    0, 11, 12,              # lumbar -> thorax -> head
    12, 14, 15, 16, 17,     # right arm from the thorax
    12, 19, 20, 21, 22,     # left arm from the thorax
)

# Human-readable names used in text for people and for the LLM.
JOINT_LABELS: dict[str, str] = {
    "pelvis": "pelvis", "femur_r": "right hip", "tibia_r": "right knee", "talus_r": "right ankle",
    "calcn_r": "right subtalar joint", "toes_r": "right toes", "femur_l": "left hip",
    "tibia_l": "left knee", "talus_l": "left ankle", "calcn_l": "left subtalar joint",
    "toes_l": "left toes", "lumbar_body": "lower back", "thorax": "upper back", "head": "neck",
    "scapula_r": "right shoulder blade", "humerus_r": "right shoulder", "ulna_r": "right elbow",
    "radius_r": "right forearm", "hand_r": "right wrist", "scapula_l": "left shoulder blade",
    "humerus_l": "left shoulder", "ulna_l": "left elbow", "radius_l": "left forearm",
    "hand_l": "left wrist",
}

_PI = math.pi
# SKEL's own table (kin_skel.py::pose_limits). Some rows are written hi-first upstream
# (scapula_elevation_l); we store them as given and normalise in `limits()`.
SKEL_LIMITS: dict[str, tuple[float, float]] = {
    "scapula_abduction_r": (-0.628, 0.628), "scapula_elevation_r": (-0.4, -0.1),
    "scapula_upward_rot_r": (-0.190, 0.319),
    "scapula_abduction_l": (-0.628, 0.628), "scapula_elevation_l": (-0.1, -0.4),
    "scapula_upward_rot_l": (-0.210, 0.219),
    "elbow_flexion_r": (0.0, 0.75 * _PI), "pro_sup_r": (-0.375 * _PI, 0.375 * _PI),
    "wrist_flexion_r": (-_PI / 2, _PI / 2), "wrist_deviation_r": (-_PI / 4, _PI / 4),
    "elbow_flexion_l": (0.0, 0.75 * _PI), "pro_sup_l": (-_PI / 2, _PI / 2),
    "wrist_flexion_l": (-_PI / 2, _PI / 2), "wrist_deviation_l": (-_PI / 4, _PI / 4),
    "shoulder_r_y": (-_PI / 2, _PI / 2),
    "lumbar_bending": (-_PI / 6, _PI / 6), "lumbar_extension": (-_PI / 4, _PI / 4),
    "lumbar_twist": (-_PI / 4, _PI / 4),
    "thorax_bending": (-_PI / 4, _PI / 4), "thorax_extension": (-_PI / 4, _PI / 4),
    "thorax_twist": (-_PI / 4, _PI / 4),
    "head_bending": (-_PI / 4, _PI / 4), "head_extension": (-_PI / 4, _PI / 4),
    "head_twist": (-_PI / 4, _PI / 4),
    "ankle_angle_r": (-_PI / 4, _PI / 4), "subtalar_angle_r": (-_PI / 4, _PI / 4),
    "mtp_angle_r": (-_PI / 4, _PI / 4),
    "ankle_angle_l": (-_PI / 4, _PI / 4), "subtalar_angle_l": (-_PI / 4, _PI / 4),
    "mtp_angle_l": (-_PI / 4, _PI / 4),
    "knee_angle_r": (0.0, 0.75 * _PI), "knee_angle_l": (0.0, 0.75 * _PI),
}
# HSMR's additions for DoFs that SKEL leaves unbounded (limits.py, "added by HSMR").
HSMR_ADDED_LIMITS: dict[str, tuple[float, float]] = {
    "hip_flexion_r": (-_PI / 4, 0.75 * _PI), "hip_adduction_r": (-_PI / 4, _PI / 6),
    "hip_rotation_r": (-_PI / 4, _PI / 4),
    "hip_flexion_l": (-_PI / 4, 0.75 * _PI), "hip_adduction_l": (-_PI / 4, _PI / 6),
    "hip_rotation_l": (-_PI / 4, _PI / 4),
    "shoulder_r_x": (-_PI / 2, _PI / 2 + 1.5), "shoulder_r_z": (-_PI / 2, _PI / 2),
    "shoulder_l_x": (-_PI / 2 - 1.5, _PI / 2), "shoulder_l_y": (-_PI / 2, _PI / 2),
    "shoulder_l_z": (-_PI / 2, _PI / 2),
}

_DOF_INDEX = {n: i for i, n in enumerate(DOF_NAMES)}
_JOINT_INDEX = {n: i for i, n in enumerate(JOINT_NAMES)}


def dof_index(name: str) -> int:
    """Index of a DoF in SKEL order; raises KeyError naming the unknown DoF."""
    try:
        return _DOF_INDEX[name]
    except KeyError:
        raise KeyError(f"unknown SKEL DoF {name!r}; known: {', '.join(DOF_NAMES)}") from None


def joint_index(name: str) -> int:
    """Index of a joint (bone) in SKEL order; raises KeyError naming the unknown joint."""
    try:
        return _JOINT_INDEX[name]
    except KeyError:
        raise KeyError(f"unknown SKEL joint {name!r}; known: {', '.join(JOINT_NAMES)}") from None


def joint_dofs(joint: str) -> tuple[str, ...]:
    """The DoFs that rotate one joint, in SKEL order."""
    j = joint_index(joint)
    return tuple(n for n, b in zip(DOF_NAMES, DOF_JOINT) if b == j)


def dof_joint(dof: str) -> str:
    """The joint (bone) a DoF belongs to."""
    return JOINT_NAMES[DOF_JOINT[dof_index(dof)]]


def dof_mask(joints) -> np.ndarray:
    """(46,) bool mask selecting every DoF of the given joints (names or indices)."""
    sel = {joint_index(j) if isinstance(j, str) else int(j) for j in joints}
    return np.array([b in sel for b in DOF_JOINT], dtype=bool)


def joint_mask_to_dof_mask(joint_mask) -> np.ndarray:
    """(..., 24) joint mask -> (..., 46) DoF mask (a selected joint brings all its DoFs)."""
    return np.take(np.asarray(joint_mask), np.asarray(DOF_JOINT), axis=-1)


def mirror_name(name: str) -> str:
    """The left/right counterpart of a DoF or joint name; the name itself when unsided."""
    for a, b in (("_r_", "_l_"), ("_l_", "_r_")):
        if a in name:
            return name.replace(a, b)
    if name.endswith("_r"):
        return name[:-2] + "_l"
    if name.endswith("_l"):
        return name[:-2] + "_r"
    return name


def side(name: str) -> str | None:
    """'r', 'l' or None for a DoF or joint name."""
    if name.endswith("_r") or "_r_" in name:
        return "r"
    if name.endswith("_l") or "_l_" in name:
        return "l"
    return None


def bilateral_dof_pairs() -> tuple[tuple[str, str], ...]:
    """(right, left) DoF name pairs."""
    return tuple((n, mirror_name(n)) for n in DOF_NAMES if side(n) == "r")


def limits(source: str = "skel+hsmr") -> np.ndarray:
    """(46, 2) [lo, hi] radians with lo <= hi; unbounded DoFs are (-inf, inf).

    source: "skel" (SKEL's table only) or "skel+hsmr" (SKEL's table, then HSMR's additions for
    the DoFs SKEL leaves open). The pelvis orientation is never bounded.
    """
    if source not in ("skel", "skel+hsmr"):
        raise ValueError(f"limits source must be 'skel' or 'skel+hsmr', got {source!r}")
    table = dict(SKEL_LIMITS)
    if source == "skel+hsmr":
        for k, v in HSMR_ADDED_LIMITS.items():
            table.setdefault(k, v)
    out = np.tile(np.array([-np.inf, np.inf]), (NUM_DOFS, 1))
    for name, (a, b) in table.items():
        out[dof_index(name)] = (min(a, b), max(a, b))
    return out


def dof_label(dof: str) -> str:
    """Readable label, e.g. 'knee_angle_r' -> 'right knee angle'."""
    s = side(dof)
    base = dof
    if s is not None:
        base = dof[:-2] if dof.endswith(f"_{s}") else dof.replace(f"_{s}_", "_")
    words = base.replace("_", " ")
    prefix = {"r": "right ", "l": "left ", None: ""}[s]
    return prefix + words

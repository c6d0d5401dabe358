"""Forward kinematics of the SKEL chain (24 bones, 46 DoFs) for the synthetic world.

An approximation of SKEL built from segment lengths only: SKEL's true joint centres and axis
directions live in its licensed model file, so here every bone frame is aligned with the
world at the zero pose and each DoF turns about an anatomical axis (below). Good enough to
draw a moving body whose angles read like SKEL's; not a substitute for the real model.

World frame: y up, the subject faces +z, its left is +x (so its right is -x), like the
procedural body. In OpenSim's bone-frame words (x anterior, y superior, z to the right), which
SKEL follows: FWD = +z (anterior-posterior axis), UP = +y (long axis of the trunk and of the
hanging limbs), RIGHT = -x (medio-lateral axis). A rotation about an axis obeys the right-hand
rule. Zero pose: standing upright, legs straight, feet flat and pointing forward, arms hanging
at the sides (the OpenSim/SKEL anatomical pose; HSMR's shoulder_x range of ~176 deg of
abduction only fits that rest pose).

Axis of each DoF (sign conventions from `biocoach_jax/exercises/conventions.py`):
  pelvis_tilt        RIGHT   + tips the trunk backward (posterior tilt), see below
  pelvis_list        FWD     + tips the trunk toward the subject's right
  pelvis_rotation    UP      + turns the front toward the subject's left
  hip_flexion_r/l    RIGHT   + thigh forward (flexion)
  hip_adduction_r/l  +-FWD   + thigh toward the midline (adduction), mirrored axis on the left
  hip_rotation_r/l   +-UP    + front of the thigh turns medially (internal), mirrored
  knee_angle_r/l     -RIGHT  + shank backward (flexion)
  ankle_angle_r/l    RIGHT   + toes up (dorsiflexion)
  subtalar_angle     +-FWD   + sole turns medially (inversion); the true axis is oblique
  mtp_angle          RIGHT   + toes up (extension)
  *_bending          FWD     lumbar/thorax/head: + bends toward the subject's right
  *_extension        RIGHT   lumbar/thorax/head: + extension (leans back); flexion negative
  *_twist            UP      lumbar/thorax/head: + turns the front toward the subject's left
  scapula_abduction  +-UP    + the shoulder moves forward (protraction), same meaning both sides
  scapula_elevation  -+FWD   + the shoulder moves up; modelled as a rotation of the clavicle
  scapula_upward_rot -+FWD   + the shoulder moves up (same axis as elevation: an approximation,
                             the two add up here; SKEL's elevation is always negative, so the
                             zero pose of this model has the shoulders slightly higher)
  shoulder_*_x       -FWD    right: + abduction; left: + adduction (same axis both sides)
  shoulder_*_y       UP      axial rotation of the humerus (mirrored meaning)
  shoulder_*_z       RIGHT   + arm forward (flexion), both sides
  elbow_flexion      RIGHT   + forearm forward and up (flexion)
  pro_sup            +-UP    about the forearm's long axis (mirrored)
  wrist_flexion      RIGHT   + palm side toward the forearm (palms face forward at rest)
  wrist_deviation    +-FWD   signed, mirrored
A joint's rotation is the product of its DoF rotations in SKEL's order (`osim_rot.CustomJoint`
multiplies each next DoF on the left): R = R_k ... R_2 R_1 for the joint's DoFs 1..k in SKEL
order, e.g. pelvis R = R_rotation R_list R_tilt, hip R = R_rotation R_adduction R_flexion,
lumbar R = R_twist R_extension R_bending, shoulder R = R_z R_y R_x; expressed in the parent
bone's frame. The pelvis uses the same axes and flips as the right femur in SKEL's code
(z, x, y; +1, +1, +1), so a positive pelvis_tilt turns the pelvis the way a positive hip flexion
turns the thigh: the top of the pelvis goes backward (posterior tilt). A body lying face down
(push-up) therefore has pelvis_tilt near -90 deg, face up near +90 deg.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from biocoach_jax import skel

FWD = np.array([0.0, 0.0, 1.0])
UP = np.array([0.0, 1.0, 0.0])
RIGHT = np.array([-1.0, 0.0, 0.0])

SEGMENT_KEYS = ("thigh", "shank", "upper_arm", "forearm", "trunk", "pelvis_width",
                "shoulder_width", "foot", "head", "neck")
OPTIONAL_KEYS = ("ankle_height",)
_ANKLE_PER_SHANK = 0.075 / 0.43  # floor -> ankle joint over the shank, as the procedural body
HAND_PER_FOREARM = 0.72  # wrist -> fingertips over the forearm (common anthropometric ratio)
HEEL_BEHIND_ANKLE = 0.2  # fractions of the foot length (heel -> toe tip)
MTP_FROM_HEEL = 0.72
# Heights above the hip joints, as fractions of the trunk (hip joints -> base of the neck).
LUMBAR_AT, THORAX_AT, SHOULDER_AT = 0.2, 0.45, 0.85


class FKError(ValueError):
    """Bad input to the forward kinematics or the renderer; the message names the problem."""


def _side_sign(name: str) -> float:
    """+1 for right-side DoFs and unsided ones, -1 for left: mirrors an axis across x = 0."""
    return -1.0 if skel.side(name) == "l" else 1.0


def _dof_axes() -> dict[str, np.ndarray]:
    """Unit rotation axis of every DoF (world frame at the zero pose), see the module doc."""
    axes = {}
    for name in skel.DOF_NAMES:
        s = _side_sign(name)
        base = name[:-2] if skel.side(name) and name.endswith(("_r", "_l")) else name
        if base.startswith("shoulder"):  # same axis and flip on both sides (SKEL's code)
            axis = {"x": -FWD, "y": UP, "z": RIGHT}[name[-1]]
        elif base in ("pelvis_tilt", "hip_flexion", "ankle_angle", "mtp_angle", "elbow_flexion",
                      "wrist_flexion") or base.endswith("_extension"):
            axis = RIGHT
        elif base == "knee_angle":
            axis = -RIGHT
        elif base in ("pelvis_list",) or base.endswith("_bending"):
            axis = FWD
        elif base in ("pelvis_rotation",) or base.endswith("_twist"):
            axis = UP
        elif base in ("hip_adduction", "subtalar_angle", "wrist_deviation"):
            axis = s * FWD
        elif base in ("hip_rotation", "pro_sup", "scapula_abduction"):
            axis = s * UP
        elif base in ("scapula_elevation", "scapula_upward_rot"):
            axis = -s * FWD
        else:  # pragma: no cover - guarded by the assert below
            raise AssertionError(f"no axis for {name}")
        axes[name] = axis
    return axes


DOF_AXES: dict[str, np.ndarray] = _dof_axes()
_AXES = np.stack([DOF_AXES[n] for n in skel.DOF_NAMES])  # (46, 3)


def _joint_orders() -> tuple[tuple[int, ...], ...]:
    """Per joint, its DoF indices from the outermost rotation to the innermost (see above)."""
    return tuple(tuple(reversed([d for d, b in enumerate(skel.DOF_JOINT) if b == j]))
                 for j in range(skel.NUM_JOINTS))


JOINT_ORDERS = _joint_orders()


@functools.lru_cache(maxsize=1)
def _default_lengths() -> tuple[tuple[str, float], ...]:
    from biocoach_jax.body import ProceduralBody

    seg = ProceduralBody().segment_lengths(np.zeros(10)).as_dict()
    return tuple(seg.items())


def default_segment_lengths() -> dict[str, float]:
    """Average adult (the procedural body at betas = 0), metres."""
    return dict(_default_lengths())


def as_segment_lengths(segment_lengths=None, *, where: str = "segment_lengths") -> dict[str, float]:
    """Validate a SegmentLengths / mapping (None -> average adult); fills ankle_height."""
    if segment_lengths is None:
        return default_segment_lengths()
    if hasattr(segment_lengths, "as_dict"):
        segment_lengths = segment_lengths.as_dict()
    if not isinstance(segment_lengths, Mapping):
        raise FKError(f"{where}: expected a mapping or SegmentLengths, got "
                      f"{type(segment_lengths).__name__}")
    missing = [k for k in SEGMENT_KEYS if k not in segment_lengths]
    unknown = [k for k in segment_lengths if k not in SEGMENT_KEYS + OPTIONAL_KEYS]
    if missing or unknown:
        raise FKError(f"{where}: missing keys {missing}, unknown keys {unknown}; "
                      f"expected {SEGMENT_KEYS} (+ optional {OPTIONAL_KEYS})")
    out = {k: float(v) for k, v in segment_lengths.items()}
    out.setdefault("ankle_height", _ANKLE_PER_SHANK * out["shank"])
    bad = {k: v for k, v in out.items() if not (np.isfinite(v) and v > 0)}
    if bad:
        raise FKError(f"{where}: lengths must be positive and finite (metres), got {bad}")
    return out


def stature(seg: Mapping[str, float]) -> float:
    """Standing height (m) of the zero pose: floor -> top of the head."""
    return sum(seg[k] for k in ("ankle_height", "shank", "thigh", "trunk", "neck", "head"))


def pelvis_rest_height(seg: Mapping[str, float]) -> float:
    """Height of the pelvis origin (the midpoint of the hip joints) in the zero pose."""
    return seg["ankle_height"] + seg["shank"] + seg["thigh"]


def rest_offsets(seg: Mapping[str, float]) -> np.ndarray:
    """(24, 3) vector from each joint's parent joint at the zero pose (pelvis: from the floor).

    Joint = origin of the bone: femur = hip, tibia = knee, talus = ankle, calcn = heel on the
    floor, toes = ball of the foot (MTP) on the floor, lumbar_body = L5/S1, thorax = T12/L1,
    head = base of the neck, scapula = halfway between the midline and the shoulder joint,
    humerus = shoulder joint, ulna = radius = elbow, hand = wrist.
    """
    off = np.zeros((skel.NUM_JOINTS, 3))
    t, sw, pw, foot = seg["trunk"], seg["shoulder_width"], seg["pelvis_width"], seg["foot"]
    for s, x in (("r", -1.0), ("l", 1.0)):  # the right side is -x
        j = {n: skel.joint_index(f"{n}_{s}") for n in
             ("femur", "tibia", "talus", "calcn", "toes", "scapula", "humerus", "ulna", "radius",
              "hand")}
        off[j["femur"]] = (x * pw / 2, 0.0, 0.0)
        off[j["tibia"]] = (0.0, -seg["thigh"], 0.0)
        off[j["talus"]] = (0.0, -seg["shank"], 0.0)
        off[j["calcn"]] = (0.0, -seg["ankle_height"], -HEEL_BEHIND_ANKLE * foot)
        off[j["toes"]] = (0.0, 0.0, MTP_FROM_HEEL * foot)
        off[j["scapula"]] = (x * sw / 4, (SHOULDER_AT - THORAX_AT) * t, 0.0)
        off[j["humerus"]] = (x * sw / 4, 0.0, 0.0)
        off[j["ulna"]] = (0.0, -seg["upper_arm"], 0.0)
        off[j["radius"]] = (0.0, 0.0, 0.0)
        off[j["hand"]] = (0.0, -seg["forearm"], 0.0)
    off[skel.joint_index("pelvis")] = (0.0, pelvis_rest_height(seg), 0.0)
    off[skel.joint_index("lumbar_body")] = (0.0, LUMBAR_AT * t, 0.0)
    off[skel.joint_index("thorax")] = (0.0, (THORAX_AT - LUMBAR_AT) * t, 0.0)
    off[skel.joint_index("head")] = (0.0, (1.0 - THORAX_AT) * t, 0.0)
    return off


def axis_angle_matrices(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rodrigues: unit axes (..., 3) and angles (...) -> rotation matrices (..., 3, 3)."""
    x, y, z = np.moveaxis(axes, -1, 0)
    c, s = np.cos(angles), np.sin(angles)
    C = 1.0 - c
    return np.stack([
        np.stack([c + x * x * C, x * y * C - z * s, x * z * C + y * s], -1),
        np.stack([y * x * C + z * s, c + y * y * C, y * z * C - x * s], -1),
        np.stack([z * x * C - y * s, z * y * C + x * s, c + z * z * C], -1),
    ], -2)


def _as_poses(poses) -> np.ndarray:
    q = np.asarray(poses, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != skel.NUM_DOFS:
        raise FKError(f"poses: expected (T, {skel.NUM_DOFS}) SKEL angles in radians, "
                      f"got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        bad = np.argwhere(~np.isfinite(q))[0]
        raise FKError(f"poses: non-finite value at frame {bad[0]}, DoF "
                      f"{skel.DOF_NAMES[bad[1]]}")
    return q


def _as_root(root, num_frames: int) -> np.ndarray:
    r = np.asarray(root, dtype=np.float64)
    if r.shape == (3,):
        r = np.broadcast_to(r, (num_frames, 3))
    if r.shape != (num_frames, 3) or not np.all(np.isfinite(r)):
        raise FKError(f"root: expected a finite (3,) or ({num_frames}, 3) translation, got "
                      f"shape {np.shape(root)}")
    return r


def forward_kinematics(poses, segment_lengths=None, root=(0.0, 0.0, 0.0)):
    """Joint positions (T, 24, 3) and world rotations of the bone frames (T, 24, 3, 3).

    `root` (3,) or (T, 3) is added to the pelvis's standing position, so the zero pose with
    root 0 stands with its heels and balls of the feet on the floor (y = 0).
    """
    q = _as_poses(poses)
    seg = as_segment_lengths(segment_lengths)
    r = _as_root(root, len(q))
    dof_rot = axis_angle_matrices(np.broadcast_to(_AXES, q.shape + (3,)), q)  # (T, 46, 3, 3)
    eye = np.broadcast_to(np.eye(3), (len(q), 3, 3))
    offsets = rest_offsets(seg)
    pos = np.zeros((len(q), skel.NUM_JOINTS, 3))
    rot = np.zeros((len(q), skel.NUM_JOINTS, 3, 3))
    for j, parent in enumerate(skel.JOINT_PARENTS):  # parents come before their children
        local = eye
        for d in JOINT_ORDERS[j]:
            local = local @ dof_rot[:, d]
        if parent < 0:
            pos[:, j] = offsets[j] + r
            rot[:, j] = local
        else:
            pos[:, j] = pos[:, parent] + rot[:, parent] @ offsets[j]
            rot[:, j] = rot[:, parent] @ local
    return pos, rot


def joint_positions(poses, segment_lengths=None, root=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(T, 24, 3) joint positions in the y-up world frame (see `forward_kinematics`)."""
    return forward_kinematics(poses, segment_lengths, root)[0]


def ground_root(positions: np.ndarray, root_xz=(0.0, 0.0)) -> np.ndarray:
    """(T, 3) root translation that puts each frame's lowest joint on the floor (y = 0).

    For poses given without a root translation (a squat, a push-up), so the body neither
    floats nor sinks: feed it back as `root` to `forward_kinematics`.
    """
    low = positions[..., 1].min(axis=1)
    out = np.zeros((positions.shape[0], 3))
    out[:, 0], out[:, 2] = root_xz
    out[:, 1] = -low
    return out

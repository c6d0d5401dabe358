"""Sign conventions of the SKEL DoFs as used by the exercise library and the context text.

Every SKEL DoF is an angle in radians; this module says, per DoF, which anatomical word a
positive and a negative value mean, and how a right-side value maps onto its left mirror.

Stated conventions (SKEL follows the OpenSim gait-model conventions for these):
  knee_angle +flexion; hip_flexion +flexion; hip_adduction +adduction; hip_rotation +internal;
  lumbar/thorax/head_extension +extension (trunk flexion is negative); ankle_angle
  +dorsiflexion; subtalar_angle +inversion; mtp_angle +toe extension; elbow_flexion +flexion;
  wrist_flexion +flexion.

The SKEL shoulder (researched in the public SKEL release, MarilynKeller/SKEL):
  * `skel_model.py` builds humerus_r and humerus_l with the same joint type, axes
    (x, y, z) and axis flips (+1, +1, +1) on both sides, composed R = Rz(q_z) Ry(q_y) Rx(q_x)
    (`osim_rot.CustomJoint`), and expressed in the OpenSim default-pose frame of each bone
    (`R = Rk01 Ra^T Rp Ra Rk01^T`; Ra and the bone frames live in the licensed model file, so
    the physical axis directions cannot be confirmed from code alone).
  * The femur is built from the same kind of frame with flexion about z; in the OpenSim bone
    frame (x anterior, y up, z to the right) a rotation about z swings a limb in the sagittal
    plane, about x in the frontal plane, about y around its long axis.
  * HSMR's limit table gives shoulder_r_x [-pi/2, pi/2 + 1.5] and shoulder_l_x
    [-pi/2 - 1.5, pi/2]: the large (~176 deg) range is positive on the right and negative on
    the left, which only makes sense if x is the abduction axis with mirrored signs.
  ASSUMED from the above (not verified on the model): shoulder_r_x +abduction and
  shoulder_l_x -abduction (so "+adduction" on the left); shoulder_*_z +flexion (forward) on both
  sides (same axis and flip on both sides, sagittal axis); shoulder_*_y is axial rotation with
  mirrored signs between sides (direction unknown, shown as a signed number). These are
  glenohumeral angles (humerus relative to the scapula), so they are roughly 2/3 of the arm's
  elevation relative to the trunk (scapulohumeral rhythm). The scapula DoFs
  (scapula_abduction/elevation/upward_rot) have the same sign meaning on both sides (axis flips
  in skel_model.py and the limit table agree); SKEL's scapula_elevation is always negative
  (limit [-0.4, -0.1] rad), so it is shown as a signed number.
  DoFs whose direction is unknown or model-dependent (pelvis orientation, trunk bending/twist,
  pro_sup, wrist deviation, shoulder_*_y, scapula_elevation) are shown as signed degrees.
"""
from __future__ import annotations

import numpy as np

from biocoach_jax import skel

# base DoF name (side stripped) -> (word for positive values, word for negative values).
# Equal words mean "direction not known for sure": the text shows the signed value instead.
_MOTION_WORDS: dict[str, tuple[str, str]] = {
    "pelvis_tilt": ("tilt", "tilt"), "pelvis_list": ("list", "list"),
    "pelvis_rotation": ("rotation", "rotation"),
    "hip_flexion": ("flexion", "extension"), "hip_adduction": ("adduction", "abduction"),
    "hip_rotation": ("internal rotation", "external rotation"),
    "knee_angle": ("flexion", "hyperextension"),
    "ankle_angle": ("dorsiflexion", "plantarflexion"),
    "subtalar_angle": ("inversion", "eversion"), "mtp_angle": ("extension", "flexion"),
    "lumbar_bending": ("side bend", "side bend"), "lumbar_extension": ("extension", "flexion"),
    "lumbar_twist": ("twist", "twist"),
    "thorax_bending": ("side bend", "side bend"), "thorax_extension": ("extension", "flexion"),
    "thorax_twist": ("twist", "twist"),
    "head_bending": ("side bend", "side bend"), "head_extension": ("extension", "flexion"),
    "head_twist": ("twist", "twist"),
    "scapula_abduction": ("protraction", "retraction"),
    "scapula_elevation": ("elevation", "elevation"),
    "scapula_upward_rot": ("upward rotation", "downward rotation"),
    "shoulder_x": ("abduction", "adduction"),  # right side; mirrored on the left (assumed)
    "shoulder_y": ("axial rotation", "axial rotation"),
    "shoulder_z": ("flexion", "extension"),  # assumed, see module doc
    "elbow_flexion": ("flexion", "hyperextension"),
    "pro_sup": ("pronation-supination", "pronation-supination"),
    "wrist_flexion": ("flexion", "extension"), "wrist_deviation": ("deviation", "deviation"),
}

# DoFs whose left value is the negative of the mirrored right value (same axis and flip on both
# sides in skel_model.py, axis perpendicular to the sagittal plane's normal).
_MIRROR_NEGATED = frozenset({"shoulder_l_x", "shoulder_l_y", "shoulder_r_x", "shoulder_r_y"})


def base_name(dof: str) -> str:
    """DoF name without its side: 'knee_angle_r' -> 'knee_angle', 'shoulder_l_x' -> 'shoulder_x'."""
    s = skel.side(dof)
    if s is None:
        return dof
    return dof[:-2] if dof.endswith(f"_{s}") else dof.replace(f"_{s}_", "_")


def motion_words(dof: str) -> tuple[str, str]:
    """(positive word, negative word) for a DoF; the left shoulder x axis is mirrored."""
    skel.dof_index(dof)  # raises KeyError naming an unknown DoF
    pos, neg = _MOTION_WORDS[base_name(dof)]
    if dof == "shoulder_l_x":
        pos, neg = neg, pos
    return pos, neg


def has_direction(dof: str) -> bool:
    """True when the DoF's positive and negative directions have distinct anatomical words."""
    pos, neg = motion_words(dof)
    return pos != neg


def mirror_sign(dof: str) -> float:
    """Factor mapping a value of `dof` onto the same anatomical motion of its mirror DoF."""
    return -1.0 if dof in _MIRROR_NEGATED else 1.0


def mirror_signs() -> np.ndarray:
    """(46,) factors in SKEL order (see `mirror_sign`)."""
    return np.array([mirror_sign(n) for n in skel.DOF_NAMES])


def joint_label(dof: str) -> str:
    """Readable joint of a DoF, e.g. 'knee_angle_r' -> 'right knee', 'lumbar_extension' -> 'lower back'."""
    return skel.JOINT_LABELS[skel.dof_joint(dof)]


def joint_label_unsided(dof: str) -> str:
    """Joint label without 'right '/'left ', e.g. 'knee'."""
    label = joint_label(dof)
    for prefix in ("right ", "left "):
        if label.startswith(prefix):
            return label[len(prefix):]
    return label


def side_word(dof: str) -> str:
    return {"r": "right", "l": "left", None: ""}[skel.side(dof)]


assert set(_MOTION_WORDS) == {base_name(n) for n in skel.DOF_NAMES}, "motion word table incomplete"

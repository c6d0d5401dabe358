"""The drawable body of the synthetic renderer: tapered capsules attached to the SKEL bones.

Each part is a capsule whose two end centres hang on (possibly different) bones of
`fk.forward_kinematics`, given as an offset in that bone's frame (the world frame at the zero
pose: y up, facing +z, left +x), with an end radius at each end. A sphere is a capsule with
equal ends. The trunk is drawn as side-by-side pairs of capsules, so it is wider than deep.
Radii (metres) follow the procedural body's girths at betas = 0, scaled with stature and by a
girth factor (thin ~0.85 .. heavy ~1.25).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from biocoach_jax import skel
from biocoach_jax.data.synth import fk

MATERIALS = ("skin", "top", "bottom", "shoes", "hair")
SKIN, TOP, BOTTOM, SHOES, HAIR = range(len(MATERIALS))
_AVERAGE_STATURE = 1.75


class BodyParts(NamedTuple):
    """P capsules: end a/b on joint ja/jb at bone-frame offset la/lb, radii ra/rb (m)."""
    names: tuple[str, ...]
    ja: np.ndarray  # (P,) int
    la: np.ndarray  # (P, 3)
    jb: np.ndarray
    lb: np.ndarray
    ra: np.ndarray  # (P,)
    rb: np.ndarray
    material: np.ndarray  # (P,) index into MATERIALS


def body_parts(seg: Mapping[str, float], *, girth: float = 1.0, long_sleeves: bool = False,
               long_pants: bool = True) -> BodyParts:
    """The capsule table for one body (see the module doc)."""
    s = fk.stature(seg) / _AVERAGE_STATURE
    r = s * girth  # radius scale
    trunk, neck, head, foot = seg["trunk"], seg["neck"], seg["head"], seg["foot"]
    hip_x, chest_x = 0.39 * seg["pelvis_width"], 0.17 * seg["shoulder_width"]
    r_foot = 0.038 * r
    toe_len = (1.0 - fk.MTP_FROM_HEEL) * foot
    hand_len = 0.75 * fk.HAND_PER_FOREARM * seg["forearm"]  # palm + bent fingers
    rows = []  # (name, joint a, offset a, joint b, offset b, radius a, radius b, material)
    for side, x in (("r", -1.0), ("l", 1.0)):
        rows += [
            (f"hips_{side}", "pelvis", (x * hip_x, -0.04 * s, -0.01 * s),
             "lumbar_body", (x * hip_x, 0.02 * s, 0.0), 0.105 * r, 0.10 * r, BOTTOM),
            (f"belly_{side}", "lumbar_body", (x * hip_x, 0.0, 0.0),
             "thorax", (x * chest_x, 0.0, 0.005 * s), 0.10 * r, 0.105 * r, TOP),
            (f"chest_{side}", "thorax", (x * chest_x, 0.0, 0.005 * s),
             "thorax", (x * chest_x, 0.38 * trunk, 0.0), 0.11 * r, 0.10 * r, TOP),
            (f"shoulder_{side}", f"scapula_{side}", (0.0, 0.0, 0.0),
             f"humerus_{side}", (0.0, 0.0, 0.0), 0.06 * r, 0.055 * r, TOP),
            (f"upper_arm_{side}", f"humerus_{side}", (0.0, 0.0, 0.0),
             f"ulna_{side}", (0.0, 0.0, 0.0), 0.052 * r, 0.04 * r, TOP),
            (f"forearm_{side}", f"radius_{side}", (0.0, 0.0, 0.0),
             f"hand_{side}", (0.0, 0.0, 0.0), 0.04 * r, 0.028 * r, TOP if long_sleeves else SKIN),
            (f"hand_{side}", f"hand_{side}", (0.0, 0.0, 0.0),
             f"hand_{side}", (0.0, -hand_len, 0.0), 0.03 * r, 0.025 * r, SKIN),
            (f"thigh_{side}", f"femur_{side}", (0.0, 0.0, 0.0),
             f"tibia_{side}", (0.0, 0.0, 0.0), 0.085 * r, 0.058 * r, BOTTOM),
            (f"shank_{side}", f"tibia_{side}", (0.0, 0.0, 0.0),
             f"talus_{side}", (0.0, 0.0, 0.0), 0.058 * r, 0.042 * r,
             BOTTOM if long_pants else SKIN),
            (f"foot_{side}", f"calcn_{side}", (0.0, r_foot, r_foot),
             f"toes_{side}", (0.0, r_foot, 0.0), r_foot, r_foot, SHOES),
            (f"toes_{side}", f"toes_{side}", (0.0, 0.8 * r_foot, 0.0),
             f"toes_{side}", (0.0, 0.6 * r_foot, toe_len - 0.6 * r_foot),
             0.8 * r_foot, 0.6 * r_foot, SHOES),
        ]
    head_r = 0.47 * head
    rows += [
        ("neck", "head", (0.0, 0.0, 0.0), "head", (0.0, neck + 0.02 * s, 0.01 * s),
         0.05 * r, 0.045 * r, SKIN),
        ("head", "head", (0.0, neck + 0.5 * head, 0.015 * s),
         "head", (0.0, neck + 0.5 * head, 0.015 * s), head_r, head_r, SKIN),
        # A slightly smaller sphere shifted up and back: shows as hair on the crown.
        ("hair", "head", (0.0, neck + 0.56 * head, -0.01 * s),
         "head", (0.0, neck + 0.56 * head, -0.01 * s), 0.96 * head_r, 0.96 * head_r, HAIR),
    ]
    names, ja, la, jb, lb, ra, rb, mat = zip(*rows)
    return BodyParts(
        names=tuple(names), ja=np.array([skel.joint_index(j) for j in ja]), la=np.array(la),
        jb=np.array([skel.joint_index(j) for j in jb]), lb=np.array(lb),
        ra=np.array(ra), rb=np.array(rb), material=np.array(mat))


def part_endpoints(parts: BodyParts, positions: np.ndarray, rotations: np.ndarray):
    """World end centres (T, P, 3) of every capsule from FK positions and bone rotations."""
    a = positions[:, parts.ja] + np.einsum("tpij,pj->tpi", rotations[:, parts.ja], parts.la)
    b = positions[:, parts.jb] + np.einsum("tpij,pj->tpi", rotations[:, parts.jb], parts.lb)
    return a, b

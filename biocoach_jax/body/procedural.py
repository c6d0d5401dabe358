"""A built-in, licence-free procedural body: a ShapeModel driven by 10 SMPL-like betas.

Standing in SMPL's zero pose (a T-pose: arms straight out along x), facing +z, y up, soles at
y = 0, left side at +x. The mesh is a union of 7 closed, outward-oriented parts whose interiors
do not overlap, so the summed signed volume is the body volume: trunk+neck+head (one loft
ending in a pole at the top of the head), two legs (crotch to ankle), two feet (boxy lofts
under the ankles), two arms (from just outside the trunk to a fingertip pole). Only the trunk
is cut by the chest, waist and hip planes, whose heights are rings of the trunk loft.

What each beta drives (all effects are smooth, via exp(k * beta); betas ~ N(0, 1)):
  beta0  stature: every length x exp(0.04 b); girths x exp(0.02 b) (their square root), so
         mass grows like height squared and BMI does not drift with height
  beta1  weight: every girth x exp(0.048 b)
  beta2  chest vs waist: chest girth x exp(0.06 b), waist x exp(-0.06 b) (V-shape)
  beta3  leg length (thigh and shank) x exp(0.03 b), and so stature
  beta4  hip and pelvis width x exp(0.045 b)
  beta5  shoulder width x exp(0.05 b)
  beta6  arm length (upper arm, forearm, hand) x exp(0.04 b)
  beta7  head size and neck length x exp(0.04 b)
  beta8  belly: waist depth x exp(0.06 b) (and half of that at the lower chest)
  beta9  limb girth (arms and legs) x exp(0.035 b)
At betas = 0: 1.75 m, 74 kg (BMI 24), chest 0.97 m, waist 0.84 m, hips 1.01 m. Over the
corners of [-2, 2]^10: height 1.55-1.98 m, BMI 17.2-34.3. Proportions follow common
anthropometric tables (segment lengths as fractions of stature); the coefficients were chosen
so that the whole cube stays within plausible adults.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from biocoach_jax.body.mesh_build import SQUARE_8, Part, assemble, circle_coords, ring
from biocoach_jax.body.shape_model import MeshShapeModel, as_betas

NUM_BETAS = 10
_X, _Y, _Z = np.eye(3)
_TORSO_N, _LEG_N, _ARM_N = 48, 24, 20
_HEAD_LATITUDES_DEG = (-40.0, -15.0, 10.0, 35.0, 55.0, 72.0, 84.0)

# Trunk stations: height above the hip joints (m, scales with stature), half width (x),
# half depth (z), forward offset of the centre (z), and the factor that widens it.
_TRUNK = (
    ("crotch",      -0.100, 0.186, 0.117, -0.010, "hip"),
    ("hips",        -0.050, 0.191, 0.127, -0.015, "hip"),
    ("pelvis",       0.050, 0.171, 0.115, -0.005, "pelvis"),
    ("waist",        0.140, 0.154, 0.112,  0.005, "waist"),
    ("lower_chest",  0.230, 0.162, 0.120,  0.010, "lower_chest"),
    ("chest",        0.320, 0.178, 0.129,  0.015, "chest"),
    ("armpit",       0.400, 0.183, 0.120,  0.005, "chest"),
    ("shoulder",     0.465, 0.191, 0.096,  0.000, "shoulder"),
    ("shoulder_top", 0.505, 0.143, 0.079,  0.000, "shoulder"),
    ("neck_base",    0.540, 0.062, 0.062,  0.005, "neck"),
)
# Leg stations: fraction along the shank (ankle -> knee) or thigh (knee -> crotch), radius,
# gap between the leg's inner surface and the midline x = 0 (keeps the legs apart), z offset.
_LEG = (
    ("shank", 0.00, 0.041, 0.057, 0.000),
    ("shank", 0.35, 0.054, 0.045, -0.005),
    ("shank", 0.70, 0.069, 0.032, -0.012),
    ("thigh", 0.00, 0.059, 0.040, 0.000),
    ("thigh", 0.50, 0.083, 0.017, 0.000),
    ("thigh", 1.00, 0.090, 0.005, -0.005),
)
# Foot stations along its length (heel -> toes): half width and height as a fraction of the
# ankle height; the ankle sits over the flat part (t <= 0.4).
_FOOT = ((0.00, 0.034, 1.0), (0.12, 0.040, 1.0), (0.40, 0.045, 1.0), (0.72, 0.051, 0.6),
         (1.00, 0.037, 0.3))
_HEEL_BEHIND_ANKLE = 0.2  # fraction of the foot length


@dataclasses.dataclass(frozen=True)
class SegmentLengths:
    """Metres; for forward kinematics and the synthetic renderer."""
    thigh: float           # hip joint -> knee
    shank: float           # knee -> ankle
    upper_arm: float       # shoulder joint -> elbow
    forearm: float         # elbow -> wrist
    trunk: float           # hip joints -> base of the neck (vertical)
    pelvis_width: float    # between the hip joint centres
    shoulder_width: float  # between the shoulder joint centres
    foot: float            # heel -> toe tip
    head: float            # top of the neck -> top of the head
    neck: float            # base -> top of the neck
    ankle_height: float    # floor -> ankle joint
    # stature = ankle_height + shank + thigh + trunk + neck + head

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Factors:
    """Multipliers (all 1 at betas = 0) derived from the betas."""
    length: float
    girth: float
    chest: float
    waist: float
    leg: float
    hip: float
    shoulder: float
    arm: float
    head: float
    belly: float
    limb: float

    @classmethod
    def from_betas(cls, b: np.ndarray) -> "_Factors":
        e = np.exp
        length = float(e(0.04 * b[0]))
        return cls(length=length, girth=float(np.sqrt(length) * e(0.048 * b[1])),
                   chest=float(e(0.06 * b[2])), waist=float(e(-0.06 * b[2])),
                   leg=float(e(0.03 * b[3])), hip=float(e(0.045 * b[4])),
                   shoulder=float(e(0.05 * b[5])), arm=float(e(0.04 * b[6])),
                   head=float(e(0.04 * b[7])), belly=float(e(0.06 * b[8])),
                   limb=float(e(0.035 * b[9])))

    def trunk_scale(self, kind: str) -> tuple[float, float]:
        """(width, depth) multipliers of a trunk station, on top of the overall girth."""
        scales = {
            "hip": (self.hip, self.hip),
            "pelvis": (np.sqrt(self.hip * self.waist),) * 2,
            "waist": (self.waist, self.waist * self.belly),
            "lower_chest": (np.sqrt(self.chest * self.waist),
                            np.sqrt(self.chest * self.waist * self.belly)),
            "chest": (self.chest, self.chest),
            "shoulder": (self.shoulder, 1.0),
            "neck": (1.0, 1.0),
        }[kind]
        return float(scales[0]) * self.girth, float(scales[1]) * self.girth


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Key heights and lengths (m) for one betas vector."""
    f: _Factors
    seg: SegmentLengths

    @property
    def y_hip(self) -> float:
        return self.seg.ankle_height + self.seg.shank + self.seg.thigh


def _layout(b: np.ndarray) -> _Layout:
    f = _Factors.from_betas(b)
    s = f.length
    seg = SegmentLengths(
        thigh=0.43 * s * f.leg, shank=0.43 * s * f.leg,
        upper_arm=0.30 * s * f.arm, forearm=0.25 * s * f.arm,
        trunk=0.535 * s, pelvis_width=0.18 * s * f.hip, shoulder_width=0.39 * s * f.shoulder,
        foot=0.26 * s, head=1.8 * 0.115 * s * f.head, neck=0.075 * s * f.head,
        ankle_height=0.075 * s)
    return _Layout(f, seg)


def _trunk_part(lay: _Layout) -> tuple[Part, dict[str, int]]:
    f, seg = lay.f, lay.seg
    coords = circle_coords(_TORSO_N)
    rings, station_ring = [], {}
    for name, dy, a, b, cz, kind in _TRUNK:
        wa, wb = f.trunk_scale(kind)
        y = lay.y_hip + dy * f.length
        station_ring[name] = len(rings)
        rings.append(ring((0.0, y, cz * f.length), _Y, _X, a * wa, b * wb, coords))
    # Head: an ellipsoid whose lowest latitude rings continue the neck.
    ry = seg.head / 1.8
    y_centre = lay.y_hip + seg.trunk + seg.neck + 0.8 * ry
    rx, rz = 0.078 * f.length * f.head, 0.100 * f.length * f.head
    centre = np.array([0.0, y_centre, 0.01 * f.length])
    for lat in np.radians(_HEAD_LATITUDES_DEG):
        rings.append(ring(centre + ry * np.sin(lat) * _Y, _Y, _X,
                          rx * np.cos(lat), rz * np.cos(lat), coords))
    top = centre + ry * _Y
    return Part("trunk", np.stack(rings), end=top), station_ring


def _leg_part(lay: _Layout, side: float) -> Part:
    f, seg = lay.f, lay.seg
    coords = circle_coords(_LEG_N)
    y_knee = seg.ankle_height + seg.shank
    y_crotch = lay.y_hip - 0.100 * f.length
    spans = {"shank": (seg.ankle_height, y_knee), "thigh": (y_knee, y_crotch)}
    rings = []
    for seg_name, t, r, gap, cz in _LEG:
        lo, hi = spans[seg_name]
        radius = r * f.girth * f.limb
        x = side * (radius + gap * f.length)
        rings.append(ring((x, lo + t * (hi - lo), cz * f.length), _Y, _X, radius, radius, coords))
    return Part(f"leg_{'l' if side > 0 else 'r'}", np.stack(rings))


def _foot_part(lay: _Layout, ankle_x: float, side: float) -> Part:
    f, seg = lay.f, lay.seg
    z_heel = -_HEEL_BEHIND_ANKLE * seg.foot
    rings = []
    for t, half_width, rel_h in _FOOT:
        h = rel_h * seg.ankle_height
        # rings in the xy plane, lofted along +z; u = x, so w = z x x = +y (the sole is w = -1).
        rings.append(ring((ankle_x, h / 2, z_heel + t * seg.foot), _Z, _X,
                          half_width * f.girth, h / 2, SQUARE_8))
    return Part(f"foot_{'l' if side > 0 else 'r'}", np.stack(rings))


def _arm_part(lay: _Layout, side: float, x_start: float, y_shoulder: float) -> Part:
    f, seg = lay.f, lay.seg
    coords = circle_coords(_ARM_N)
    axis = side * _X
    x_joint = seg.shoulder_width / 2
    hand = 0.18 * f.length * f.arm
    x_elbow = x_joint + seg.upper_arm
    x_wrist = x_elbow + seg.forearm
    # (distance from the midline, radius along y, radius along z)
    stations = ((x_start, 0.055, 0.055), (x_joint + 0.5 * seg.upper_arm, 0.048, 0.048),
                (x_elbow, 0.038, 0.038), (x_elbow + 0.3 * seg.forearm, 0.042, 0.042),
                (x_wrist, 0.024, 0.032), (x_wrist + 0.5 * hand, 0.015, 0.045))
    g = f.girth * f.limb
    rings = [ring((side * x, y_shoulder, 0.0), axis, _Y, ry * g, rz * g, coords)
             for x, ry, rz in stations]
    tip = np.array([side * (x_wrist + hand), y_shoulder, 0.0])
    return Part(f"arm_{'l' if side > 0 else 'r'}", np.stack(rings), end=tip)


def _parts(betas: np.ndarray) -> tuple[list[Part], dict[str, int]]:
    """The 7 parts, and the trunk ring index of each trunk station."""
    lay = _layout(betas)
    trunk, station_ring = _trunk_part(lay)
    y_chest = trunk.rings[station_ring["chest"], 0, 1]
    y_shoulder = lay.y_hip + 0.455 * lay.f.length
    # Arms start just outside the widest trunk ring above the chest, so no volume is counted
    # twice and the chest plane (well below the arms) cuts only the trunk.
    upper = trunk.rings[trunk.rings[:, 0, 1] >= y_chest]
    x_start = float(np.abs(upper[..., 0]).max()) + 0.002
    legs = [_leg_part(lay, side) for side in (1.0, -1.0)]
    feet = [_foot_part(lay, float(leg.rings[0, :, 0].mean()), side)
            for leg, side in zip(legs, (1.0, -1.0))]
    arms = [_arm_part(lay, side, x_start, y_shoulder) for side in (1.0, -1.0)]
    return [trunk, *legs, *feet, *arms], station_ring


def _landmarks(parts: list[Part], station_ring: dict[str, int]) -> dict[str, int]:
    _, _, offsets = assemble(parts)
    trunk = parts[0]
    # Ring point 3n/4 lies at (u, w) = (0, -1), i.e. at +z, the front of the body.
    front = 3 * _TORSO_N // 4
    return {
        "head_top": offsets["trunk"] + trunk.rings.size // 3 + 1,  # the end pole
        "heel": offsets["foot_l"] + 6,  # first (heel) ring, SQUARE_8[6]: middle of the sole
        **{name: offsets["trunk"] + station_ring[name] * _TORSO_N + front
           for name in ("chest", "waist", "hips")},
    }


class ProceduralBody(MeshShapeModel):
    """The procedural body as a ShapeModel (see the module doc for what each beta does)."""

    source = "ProceduralBody"

    def __init__(self):
        parts, station_ring = _parts(np.zeros(NUM_BETAS))
        _, self._faces, _ = assemble(parts)  # the topology is the same for every betas
        self._landmarks = _landmarks(parts, station_ring)
        self._num_betas = NUM_BETAS

    def parts(self, betas) -> list[Part]:
        """The closed parts (trunk, leg_l, leg_r, foot_l, foot_r, arm_l, arm_r), for inspection."""
        return _parts(as_betas(betas, NUM_BETAS, source=self.source))[0]

    def v_shaped(self, betas) -> np.ndarray:
        return assemble(self.parts(betas))[0]

    def segment_lengths(self, betas) -> SegmentLengths:
        return _layout(as_betas(betas, NUM_BETAS, source=self.source)).seg

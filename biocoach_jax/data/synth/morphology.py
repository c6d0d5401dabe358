"""How a subject's morphology changes the ground-truth targets and cues (the synthetic rule book).

Rules (deliberately simple so a model can learn them from C_morph + the feedback text):
  R1 tall:  height >= 1.80 m relaxes the depth requirement of the lower-body exercises
            (squat, lunge: the lower bound `lo` of knee_angle and hip_flexion at the bottom)
            by 5 deg, height >= 1.86 m by 8 deg - long levers reach the same thigh angle
            with less knee and hip flexion.
  R2 BMI:   BMI >= 26 relaxes the depth requirement of squat, lunge and push-up
            (push-up: elbow_flexion `lo`) by 5 deg, BMI >= 28.5 by 8 deg - soft tissue
            stops the movement earlier.
  R1 + R2 add up, capped at 12 deg. The relaxed bound is quoted in the feedback with the
  reason ("for your height", "for your build"), so the text depends on the body.
  R3 stance cue: squat subjects with long thighs (thigh / stature >= 0.2475) or R1 get a
            stance hint appended to depth and trunk-flexion feedback ("take a slightly wider
            stance ...").
Rules only ever WIDEN an interval. The kinematics keep clean repetitions inside the
library's (narrower) interval and put errors beyond the relaxed one, so a kernel run with
either the library bounds or the subject's bounds separates them the same way.
"""
from __future__ import annotations

import dataclasses

from biocoach_jax import skel
from biocoach_jax.exercises import Exercise

TALL_M = ((1.86, 8.0), (1.80, 5.0))        # (threshold, relaxation deg), largest first
HIGH_BMI = ((28.5, 8.0), (26.0, 5.0))
MAX_RELAX_DEG = 12.0
LONG_THIGH_RATIO = 0.2475
# exercise -> (DoFs whose depth bound `lo` may be relaxed, rules that apply)
DEPTH_RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "squat": (("knee_angle_r", "knee_angle_l", "hip_flexion_r", "hip_flexion_l"), ("tall", "bmi")),
    "lunge": (("knee_angle_r", "knee_angle_l", "hip_flexion_r"), ("tall", "bmi")),
    "push_up": (("elbow_flexion_r", "elbow_flexion_l"), ("bmi",)),
}
STANCE_CUE_EXERCISES = ("squat",)
STANCE_CUES = (
    "A slightly wider stance with your toes turned out will help you sit deeper.",
    "Try widening your stance a little and turning your toes out.",
    "With your long thighs, set your feet a bit wider than your shoulders.",
)


@dataclasses.dataclass(frozen=True)
class Target:
    """Acceptable range of one DoF at the exercise's first keyframe, degrees."""
    dof: str
    keyframe: str
    lo_deg: float          # effective (subject) bounds
    hi_deg: float
    base_lo_deg: float     # the library's bounds
    base_hi_deg: float
    reason: str            # "" or e.g. "for your height and build"

    @property
    def relaxed(self) -> bool:
        return self.lo_deg != self.base_lo_deg or self.hi_deg != self.base_hi_deg

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _step(value: float, table) -> float:
    return next((d for thr, d in table if value >= thr), 0.0)


def relaxation(exercise: str, subject) -> tuple[float, str]:
    """(degrees by which depth bounds are relaxed, reason phrase) for this subject."""
    rules = DEPTH_RULES.get(exercise, ((), ()))[1]
    parts, total = [], 0.0
    if "tall" in rules and (d := _step(subject.height_m, TALL_M)):
        total += d
        parts.append("height")
    if "bmi" in rules and (d := _step(subject.bmi, HIGH_BMI)):
        total += d
        parts.append("build")
    return min(total, MAX_RELAX_DEG), ("for your " + " and ".join(parts)) if parts else ""


def targets(exercise: Exercise, subject) -> dict[str, Target]:
    """Effective intervals at the first keyframe for every dynamic DoF that has one."""
    kf = exercise.keyframe().name
    relax, reason = relaxation(exercise.name, subject)
    relaxed_dofs = DEPTH_RULES.get(exercise.name, ((), ()))[0]
    out = {}
    for spec in exercise.dofs:
        iv = spec.interval(kf) if spec.dof_class == "dynamic" else None
        if iv is None:
            continue
        lo = iv.lo_deg
        if spec.dof in relaxed_dofs and relax:
            lo = max(iv.lo_deg - relax, _limit_lo_deg(spec.dof))
        out[spec.dof] = Target(spec.dof, kf, lo, iv.hi_deg, iv.lo_deg, iv.hi_deg,
                               reason if lo != iv.lo_deg else "")
    return out


def _limit_lo_deg(dof: str) -> float:
    import math
    return math.degrees(skel.limits()[skel.dof_index(dof)][0])


def wants_stance_cue(exercise: str, subject) -> bool:
    """R3: the squat stance hint for long thighs or tall subjects."""
    return exercise in STANCE_CUE_EXERCISES and (
        subject.thigh_ratio >= LONG_THIGH_RATIO or _step(subject.height_m, TALL_M) > 0)

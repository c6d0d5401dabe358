"""Which errors can be injected into an exercise, and the range of their TRUE values.

An `ErrorOption` is one way a repetition can go wrong, in the kernel's vocabulary
(`biomech.constraints.KINDS`): below_interval / above_interval (a dynamic DoF's keyframe value
beyond the subject's interval), asymmetry (left vs right keyframe difference beyond the
exercise's threshold), instability (a static DoF moving more than its tolerance), tempo_fast /
tempo_slow (repetition duration outside the tempo range). `incomplete` and
`anatomical_limit` are never injected (they would change the repetition count or leave the
body model's range).

Every option is FEASIBLE by construction: its true values lie EXCESS_DEG beyond the bound
(at least MIN_EXCESS_DEG), stay MARGIN_LIMIT_DEG inside the anatomical limits, and an error on
the driving DoF that moves its keyframe toward rest keeps at least AMP_KEEP of the clean
amplitude (so the repetition is still detected and judged complete). Infeasible options are
simply not offered (e.g. "too deep" for a squat whose bound is the knee's limit).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from biocoach_jax import skel
from biocoach_jax.exercises import Exercise
from biocoach_jax.exercises.conventions import mirror_sign

EXCESS_DEG = (8.0, 25.0)        # preferred distance of an error beyond its bound
MIN_EXCESS_DEG = 6.0            # options that cannot reach this are dropped
MARGIN_LIMIT_DEG = 3.0          # stay this far inside the anatomical limits
AMP_KEEP = 0.62                 # driving amplitude kept by a "toward rest" error
TEMPO_FAST = (0.95, 0.78)       # fast rep: [0.95 s, 0.78 * min_s] (keyframes stay >= 0.5 s apart)
TEMPO_SLOW = (1.22, 1.45, 9.3)  # slow rep: [1.22, 1.45] * max_s, at most 9.3 s (kernel drops > 10 s)
# sampling weights of the option families
WEIGHTS = {"toward_rest": 3.0, "interval": 1.0, "asymmetry": 1.0, "instability": 1.0,
           "tempo_fast": 0.6, "tempo_slow": 0.6}


@dataclasses.dataclass(frozen=True)
class ErrorOption:
    kind: str                    # kernel violation kind
    dofs: tuple[str, ...]        # affected DoFs (both sides of a bilateral exercise)
    side: str                    # "lo" | "hi" (which bound is crossed)
    bound: float                 # degrees (seconds for tempo kinds)
    value_range: tuple[float, float]  # true value range: keyframe angle (deg, right side),
                                 # |left-right| (asymmetry), deviation (instability), seconds (tempo)
    family: str                  # key of WEIGHTS
    direction: float = 1.0       # instability: sign of the deviation


def limits_deg(dof: str) -> tuple[float, float]:
    lo, hi = np.degrees(skel.limits()[skel.dof_index(dof)])
    return float(lo) + MARGIN_LIMIT_DEG, float(hi) - MARGIN_LIMIT_DEG


KERNEL_SIGMA_S = 0.1            # the analysis kernel's default Gaussian smoothing


def clean_band(lo: float, hi: float) -> tuple[float, float]:
    """Where clean keyframe values go: >= 6 deg (up to 9) inside the interval."""
    m = max(6.0, min(9.0, (hi - lo) / 3.0))
    return lo + m, hi - m


def smoothing_loss(excursion: float, duration_s: float) -> float:
    """How much a Gaussian smoothing (sigma KERNEL_SIGMA_S) lowers the keyframe excursion of a
    sin^2 repetition of this duration: its cosine component is attenuated by
    exp(-(2 pi / d)^2 sigma^2 / 2), so the peak loses half of the missing part. Clean values
    keep this much extra room on the rest side, so a fast clean repetition is still clean
    after smoothing."""
    w = 2.0 * math.pi / max(duration_s, 1e-3)
    return 0.5 * abs(excursion) * (1.0 - math.exp(-0.5 * (w * KERNEL_SIGMA_S) ** 2))


def _group(ex: Exercise, dof: str) -> tuple[str, ...]:
    mirror = skel.mirror_name(dof)
    if ex.bilateral and mirror != dof and mirror in ex.dof_names:
        return (dof, mirror)
    return (dof,)


def _primary(ex: Exercise):
    """DoF specs to consider: right side and unsided ones (left copies follow their right side
    in a bilateral exercise), plus every DoF of a one-sided exercise."""
    return [s for s in ex.dofs if not (ex.bilateral and s.mirrored_from)]


def interval_options(ex: Exercise, models: dict, targets: dict) -> list[ErrorOption]:
    drive = ex.driving[0].dof
    out = []
    for spec in _primary(ex):
        t = targets.get(spec.dof)
        if t is None:
            continue
        m = models[spec.dof]
        lim_lo, lim_hi = limits_deg(spec.dof)
        clean = float(np.clip(m.rest + m.excursion, *clean_band(t.base_lo_deg, t.base_hi_deg)))
        for side in ("lo", "hi"):
            bound = t.lo_deg if side == "lo" else t.hi_deg
            sgn = -1.0 if side == "lo" else 1.0
            a, b = bound + sgn * EXCESS_DEG[0], bound + sgn * EXCESS_DEG[1]
            lo_v, hi_v = min(a, b), max(a, b)
            lo_v, hi_v = max(lo_v, lim_lo), min(hi_v, lim_hi)
            toward_rest = sgn * (clean - m.rest) < 0
            if spec.dof == drive and toward_rest:
                keep = m.rest + AMP_KEEP * (clean - m.rest)   # amplitude floor
                lo_v, hi_v = (max(lo_v, keep), hi_v) if clean > m.rest else (lo_v, min(hi_v, keep))
            # keep only the part at least MIN_EXCESS_DEG beyond the bound
            near = bound + sgn * MIN_EXCESS_DEG
            lo_v, hi_v = (max(lo_v, near), hi_v) if side == "hi" else (lo_v, min(hi_v, near))
            if lo_v > hi_v:
                continue
            out.append(ErrorOption("below_interval" if side == "lo" else "above_interval",
                                   _group(ex, spec.dof), side, bound, (lo_v, hi_v),
                                   "toward_rest" if toward_rest else "interval"))
    return out


def asymmetry_options(ex: Exercise, models: dict, targets: dict) -> list[ErrorOption]:
    if not ex.bilateral or ex.asymmetry is None:
        return []
    thr = ex.asymmetry.threshold_deg
    out = []
    for spec in _primary(ex):
        t = targets.get(spec.dof)
        group = _group(ex, spec.dof)
        if t is None or len(group) != 2:
            continue
        band = clean_band(t.base_lo_deg, t.base_hi_deg)
        room = (band[1] - band[0]) - thr       # largest excess that keeps both sides clean
        if room < MIN_EXCESS_DEG:
            continue
        out.append(ErrorOption("asymmetry", group, "hi", thr,
                               (thr + min(EXCESS_DEG[0], room), thr + min(EXCESS_DEG[1], room)),
                               "asymmetry"))
    return out


def instability_options(ex: Exercise, models: dict) -> list[ErrorOption]:
    out = []
    for spec in _primary(ex):
        if spec.dof_class != "static":
            continue
        m, tol = models[spec.dof], spec.tolerance.deg
        lim_lo, lim_hi = limits_deg(spec.dof)
        # deviate in the direction of the reference motion, else toward the roomier side
        room_up, room_down = lim_hi - m.rest, m.rest - lim_lo
        if abs(m.excursion) >= 1.0:
            direction = math.copysign(1.0, m.excursion)
        else:
            direction = 1.0 if room_up >= room_down else -1.0
        room = room_up if direction > 0 else room_down
        for d in _group(ex, spec.dof)[1:]:   # the mirrored side must have room too
            l_lo, l_hi = limits_deg(d)
            rest_l = models[d].rest
            room = min(room, (l_hi - rest_l) if direction * mirror_sign(d) > 0 else (rest_l - l_lo))
        hi_v = min(tol + EXCESS_DEG[1], room)
        lo_v = tol + EXCESS_DEG[0]
        if hi_v < tol + MIN_EXCESS_DEG:
            continue
        out.append(ErrorOption("instability", _group(ex, spec.dof), "hi", tol,
                               (min(lo_v, hi_v), hi_v), "instability", direction))
    return out


def tempo_options(ex: Exercise) -> list[ErrorOption]:
    drive = (ex.driving[0].dof,)
    out = []
    fast_hi = TEMPO_FAST[1] * ex.tempo.min_s
    if fast_hi >= TEMPO_FAST[0]:
        out.append(ErrorOption("tempo_fast", drive, "lo", ex.tempo.min_s,
                               (TEMPO_FAST[0], fast_hi), "tempo_fast"))
    slow_lo, slow_hi = TEMPO_SLOW[0] * ex.tempo.max_s, min(TEMPO_SLOW[1] * ex.tempo.max_s,
                                                            TEMPO_SLOW[2])
    if slow_lo <= slow_hi:
        out.append(ErrorOption("tempo_slow", drive, "hi", ex.tempo.max_s, (slow_lo, slow_hi),
                               "tempo_slow"))
    return out


def error_menu(ex: Exercise, models: dict, targets: dict) -> list[ErrorOption]:
    """All feasible options for this exercise and subject (targets = subject intervals)."""
    return (interval_options(ex, models, targets) + asymmetry_options(ex, models, targets)
            + instability_options(ex, models) + tempo_options(ex))


def draw_option(menu: list[ErrorOption], rng: np.random.Generator,
                exclude_dofs: set[str] = frozenset()) -> ErrorOption | None:
    ok = [o for o in menu if not exclude_dofs & set(o.dofs) and
          not (exclude_dofs and o.kind.startswith("tempo"))]
    if not ok:
        return None
    w = np.array([WEIGHTS[o.family] for o in ok])
    return ok[int(rng.choice(len(ok), p=w / w.sum()))]

"""Per-exercise SKEL trajectories (46 DoFs, radians, 16 fps) with injected errors.

Model: every DoF of the exercise follows its library reference cycle, normalised to a shape
s(u) in [0, 1] (0 at rest, 1 at the keyframe; all library cycles are rest -> keyframe -> rest
with the keyframe at the middle sample). Repetition i of duration d_i (tempo range x subject
tempo factor, +-8 % jitter) is
    q_d(t) = rest_d + (key_{i,d} - rest_d) * s_d(u),   u = (t - start_i) / d_i,
with the repetitions back to back, rest before and after, a per-subject stance offset on the
rest values, smooth low-frequency motion noise on every DoF, and the global pelvis posture of
the exercise (lying for push-ups and bridges). key_{i,d} is drawn:
  * clean: the reference keyframe value scaled by the subject's ROM fidelity plus jitter,
    clipped into the library interval with >= 6 deg margin (`errors.clean_band`); the left
    side of a bilateral exercise mirrors the right plus the subject's left/right bias;
  * error: a TRUE value drawn from the option's range (`errors.py`), 6-25 deg beyond the bound.
The smooth noise is drawn first and the keyframe values are solved for, so the final
trajectory hits every drawn value exactly at its keyframe frame: the recorded true values ARE
the generated angles.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.ndimage import gaussian_filter1d

from biocoach_jax import skel
from biocoach_jax.exercises import Exercise
from biocoach_jax.exercises.conventions import mirror_sign

from . import errors as E
from .morphology import Target, targets as subject_targets

FPS = 16.0
MAX_REPS = 15              # the kernel's default spec holds 16 cycles
NOISE_DEG, NOISE_SIGMA_S = 0.5, 0.4
JITTER_DEG = 1.5
# Global pelvis orientation per exercise (degrees; fk.py's convention: + pelvis_tilt tips the
# trunk backward, face down ~ -90, face up ~ +90). Push-ups: body ~18 deg above horizontal.
POSTURE = {"push_up": {"pelvis_tilt": -72.0}, "sit_to_stand": {"pelvis_tilt": -8.0}}
# Lying exercises whose trunk rises as the hips extend: pelvis_tilt = C - hip_flexion, which
# keeps the thigh's world angle fixed (feet planted). Bridge: trunk flat at rest (45 deg hip
# flexion), raised ~45 deg at the top.
COUPLED_TILT = {"glute_bridge": ("hip_flexion_r", 135.0)}
# Exercises whose opposite limb runs half a cycle behind the driving one (running in place).
ALTERNATING = {"high_knees": ("hip_flexion_r", "knee_angle_r")}
# Accessory motion: DoFs outside the exercise's key joints that real people move with each rep
# (arms forward in a squat, head dropping in a push-up, wrists under a curl, arm drive in high
# knees). Degrees at the keyframe from rest, (low, high) of a per-subject draw (|.| >= 14, so
# >= 10 deg after the per-rep -15 %: C_motion reports it); a DoF and its mirror share one draw.
# Never coached, never bounded by the library: the evidence a DoF selector must learn to leave
# out (without it they fill C_motion, as on real recordings).
ACCESSORY = {
    "squat": (("elbow_flexion_r", 15, 40), ("thorax_extension", -20, -14), ("head_extension", 14, 20)),
    "lunge": (("elbow_flexion_r", 15, 35), ("thorax_extension", -20, -14)),
    "push_up": (("head_extension", -25, -14), ("ankle_angle_r", 14, 20)),
    "jumping_jack": (("elbow_flexion_r", 15, 35), ("ankle_angle_r", -30, -15)),
    "shoulder_press": (("head_extension", 14, 20), ("wrist_flexion_r", -30, -15)),
    "bicep_curl": (("wrist_flexion_r", 15, 35), ("head_extension", -20, -14)),
    "lateral_raise": (("wrist_flexion_r", 14, 25), ("head_extension", -20, -14)),
    "high_knees": (("elbow_flexion_r", 20, 45), ("ankle_angle_r", -30, -15)),
    "glute_bridge": (("thorax_extension", 14, 20), ("ankle_angle_r", 14, 20)),
    "sit_to_stand": (("thorax_extension", -25, -14), ("head_extension", 14, 20),
                     ("elbow_flexion_r", 14, 30)),
}


@dataclasses.dataclass(frozen=True)
class DofModel:
    dof: str
    dof_class: str
    rest: float              # degrees (library reference at rest)
    excursion: float         # keyframe - rest, degrees
    shape: np.ndarray        # (L,) 0 at rest .. 1 at the keyframe


@dataclasses.dataclass
class Rep:
    index: int
    start: int               # first frame (track-relative)
    key: int                 # keyframe frame
    end: int                 # one past the last frame
    duration_s: float

    def to_json(self, offset: int = 0, fps: float = FPS) -> dict:
        return {"index": self.index, "start_frame": self.start + offset,
                "key_frame": self.key + offset, "end_frame": self.end - 1 + offset,
                "start_s": (self.start + offset) / fps, "key_s": (self.key + offset) / fps,
                "end_s": (self.end + offset) / fps, "duration_s": self.duration_s}


@dataclasses.dataclass
class InjectedError:
    rep: int
    dof: str                 # the DoF the kernel reports it on (right side for asymmetry)
    kind: str
    value: float             # TRUE value: degrees, or seconds for tempo kinds
    bound: float
    bound_side: str          # "lo" | "hi"
    key_frame: int           # track-relative
    group: int               # errors of one injected mistake (both sides) share a group

    def to_json(self, offset: int = 0, fps: float = FPS) -> dict:
        unit = "s" if self.kind.startswith("tempo") else "deg"
        return {"rep": self.rep, "dof": self.dof, "kind": self.kind, "value": self.value,
                "bound": self.bound, "bound_side": self.bound_side, "unit": unit,
                "key_frame": self.key_frame + offset, "key_time_s": (self.key_frame + offset) / fps,
                "group": self.group}


@dataclasses.dataclass
class ExerciseTrack:
    exercise: str
    poses: np.ndarray        # (T, 46) radians
    reps: list[Rep]
    errors: list[InjectedError]
    key_values: list[dict]   # per rep: dof -> degrees at the keyframe (involved DoFs)
    targets: dict[str, Target]
    active: tuple[int, int]  # [first frame of rep 0, end of the last rep)


def dof_models(ex: Exercise) -> dict[str, DofModel]:
    lead = ex.driving[0]
    ref_lead = np.asarray(ex.dof(lead.dof).reference_deg)
    k = int(np.argmax(ref_lead * lead.polarity))
    L = len(ref_lead)
    default = np.sin(np.pi * np.arange(L) / (L - 1)) ** 2
    out = {}
    for spec in ex.dofs:
        ref = np.asarray(spec.reference_deg, dtype=np.float64)
        exc = ref[k] - ref[0]
        shape = (ref - ref[0]) / exc if abs(exc) >= 1.0 else default
        out[spec.dof] = DofModel(spec.dof, spec.dof_class, float(ref[0]),
                                 float(exc) if abs(exc) >= 1.0 else 0.0, shape)
    return out


def _rest_posture() -> np.ndarray:
    """Degrees for DoFs no exercise moves: near zero, inside every anatomical limit."""
    lim = np.degrees(skel.limits())
    base = np.zeros(skel.NUM_DOFS)
    for name, v in (("elbow_flexion_r", 10.0), ("elbow_flexion_l", 10.0),
                    ("knee_angle_r", 3.0), ("knee_angle_l", 3.0)):
        base[skel.dof_index(name)] = v
    lo = np.where(np.isfinite(lim[:, 0]), lim[:, 0] + 3, -np.inf)
    hi = np.where(np.isfinite(lim[:, 1]), lim[:, 1] - 3, np.inf)
    finite = np.isfinite(lim).all(1)
    mid = np.where(finite, np.where(finite[:, None], lim, 0.0).mean(1), 0.0)
    return np.where((base < lo) | (base > hi), mid, base)


def _durations(ex: Exercise, subject, rng, active_s: float) -> list[float]:
    # >= 0.9 s: faster sin^2 repetitions are flattened by the kernel's smoothing (valleys rise)
    lo, hi = max(1.3 * ex.tempo.min_s, 0.9), 0.7 * ex.tempo.max_s
    nominal = float(np.clip(math.sqrt(ex.tempo.min_s * ex.tempo.max_s) * subject.tempo_factor,
                            lo, hi))
    out, total = [], 0.0
    while len(out) < MAX_REPS and (total < active_s or len(out) < 3):
        d = float(np.clip(nominal * rng.uniform(0.92, 1.08), lo, hi))
        out.append(d)
        total += d
    return out


def _plan_errors(menu, subject, rng, n_reps) -> list[list]:
    plans = []
    for _ in range(n_reps):
        chosen = []
        if menu and rng.random() < subject.error_probability:
            first = E.draw_option(menu, rng)
            chosen.append(first)
            if first.kind != "tempo_fast" and rng.random() < 0.2:
                second = E.draw_option(menu, rng, exclude_dofs=set(first.dofs))
                if second is not None and second.kind != "tempo_fast":
                    chosen.append(second)
        plans.append(chosen)
    return plans


def _band(t: Target, m: DofModel, duration_s: float) -> tuple[float, float]:
    """Clean band of a DoF, with the smoothing loss added on the side facing rest."""
    lo, hi = E.clean_band(t.base_lo_deg, t.base_hi_deg)
    loss = E.smoothing_loss(m.excursion, duration_s)
    if m.excursion > 0:
        lo = min(lo + loss, hi)
    elif m.excursion < 0:
        hi = max(hi - loss, lo)
    return lo, hi


def _clean_keys(ex, models, targets, subject, rng, centre: bool,
                duration_s: float) -> dict[str, float]:
    """Clean keyframe values (deg) for every involved DoF of one repetition."""
    keys = {}
    for spec in ex.dofs:
        m = models[spec.dof]
        if ex.bilateral and spec.mirrored_from:
            continue  # filled from the right side below
        v = m.rest + subject.rom_fidelity * m.excursion + rng.normal(0.0, JITTER_DEG)
        t = targets.get(spec.dof)
        if t is not None:
            band = _band(t, m, duration_s)
            v = 0.5 * (band[0] + band[1]) if centre else float(np.clip(v, *band))
        elif spec.dof_class == "static":
            cap = max(0.0, spec.tolerance.deg - 8.5)
            v = m.rest + float(np.clip(v - m.rest, -cap, cap))
        keys[spec.dof] = v
    for spec in ex.dofs:
        if ex.bilateral and spec.mirrored_from:
            s = mirror_sign(spec.dof)
            right = keys[spec.mirrored_from]
            t = targets.get(spec.dof)
            bias = float(np.clip(subject.lr_bias_deg + rng.normal(0, 0.5), -4.0, 4.0))
            v = s * (right + bias)
            if t is not None:
                v = float(np.clip(v, *_band(t, models[spec.dof], duration_s)))
            elif spec.dof_class == "static":
                rest = models[spec.dof].rest
                cap = max(0.0, spec.tolerance.deg - 8.5)
                v = rest + float(np.clip(v - rest, -cap, cap))
            keys[spec.dof] = v
    return keys


def _apply_error(opt: E.ErrorOption, keys: dict, models: dict, targets: dict, rng) -> float:
    """Overwrite keyframe values for one error; returns the drawn true value."""
    value = float(rng.uniform(*opt.value_range))
    right = opt.dofs[0]
    if opt.kind in ("below_interval", "above_interval"):
        keys[right] = value
        for d in opt.dofs[1:]:  # the mirrored side: same anatomical value, up to 1 deg further
            extra = rng.uniform(0.0, 1.0) * (-1.0 if opt.side == "lo" else 1.0)
            keys[d] = mirror_sign(d) * (value + extra)
    elif opt.kind == "asymmetry":
        t = targets[right]
        band = E.clean_band(t.base_lo_deg, t.base_hi_deg)
        r = float(rng.uniform(band[0], band[1] - value))   # right low, left high, or swapped
        lo_side, hi_side = (r, r + value) if rng.random() < 0.5 else (r + value, r)
        keys[right] = lo_side
        keys[opt.dofs[1]] = mirror_sign(opt.dofs[1]) * hi_side
    elif opt.kind == "instability":
        for d in opt.dofs:
            keys[d] = models[d].rest + mirror_sign(d) * opt.direction * value
    return value


def _noise(rng, n: int) -> np.ndarray:
    w = rng.normal(0.0, 1.0, (n + 64, skel.NUM_DOFS))
    x = gaussian_filter1d(w, NOISE_SIGMA_S * FPS, axis=0)[32:32 + n]
    return x / max(float(x.std()), 1e-9) * NOISE_DEG


def synthesize(ex: Exercise, subject, rng: np.random.Generator, *, active_s: float = 25.0,
               rest_s: tuple[float, float] = (1.0, 2.0)) -> ExerciseTrack:
    """One exercise segment (rest, repetitions, rest) for one subject."""
    models = dof_models(ex)
    targets = subject_targets(ex, subject)
    menu = E.error_menu(ex, models, targets)
    durations = _durations(ex, subject, rng, active_s)
    plans = _plan_errors(menu, subject, rng, len(durations))
    # tempo errors replace the drawn duration
    for i, plan in enumerate(plans):
        for opt in plan:
            if opt.kind.startswith("tempo"):
                durations[i] = float(rng.uniform(*opt.value_range))
    # Rest before the first / after the last repetition, short enough that a cycle boundary
    # drifting into it (noise near the resting level) cannot make a clean edge repetition
    # read as too slow.
    n0, n1 = (int(round(min(rng.uniform(*rest_s), max(0.5, 0.8 * (ex.tempo.max_s - d))) * FPS))
              for d in (durations[0], durations[-1]))
    lengths = [max(6, int(round(d * FPS))) for d in durations]
    T = n0 + sum(lengths) + n1
    base = _rest_posture()
    stance = np.clip(rng.normal(0.0, 0.7, skel.NUM_DOFS), -1.5, 1.5)  # rest offset (deg)
    for name, v in POSTURE.get(ex.name, {}).items():
        base[skel.dof_index(name)] = v
    base[skel.dof_index("pelvis_rotation")] = rng.uniform(-25.0, 25.0)  # facing the camera
    rest = base.copy()
    for d, m in models.items():
        rest[skel.dof_index(d)] = m.rest
    rest = rest + stance
    # from here on the models carry this track's actual resting values (stance included), so
    # static deviations and instability bumps are measured from where the body really rests
    models = {d: dataclasses.replace(m, rest=float(rest[skel.dof_index(d)]))
              for d, m in models.items()}
    noise = _noise(rng, T)
    q = np.tile(rest, (T, 1)) + noise

    reps, injected = [], []
    start = n0
    for i, (n, plan) in enumerate(zip(lengths, plans)):
        fast = any(o.kind == "tempo_fast" for o in plan)
        keys = _clean_keys(ex, models, targets, subject, rng, fast, n / FPS)
        values = [(o, _apply_error(o, keys, models, targets, rng)) for o in plan]
        kf = start + n // 2
        u = np.arange(n) / n
        for d, kv in keys.items():
            j = skel.dof_index(d)
            m = models[d]
            s = np.interp(u * (len(m.shape) - 1), np.arange(len(m.shape)), m.shape)
            # solve for the amplitude so the final value (rest + amp * s + noise) hits kv at kf
            r = rest[j]
            amp = kv - r - noise[kf, j]
            q[start:start + n, j] = r + amp * s + noise[start:start + n, j]
        rep = Rep(i, start, kf, start + n, n / FPS)
        reps.append(rep)
        injected += [(o, rep) for o, _ in values]
        start += n
    _accessory(ex, q, reps, models[ex.driving[0].dof].shape, rng.spawn(1)[0])
    _alternate(ex, q, reps, rest)
    if ex.name in COUPLED_TILT:
        dof, c = COUPLED_TILT[ex.name]
        q[:, skel.dof_index("pelvis_tilt")] = c - q[:, skel.dof_index(dof)] + stance[0]
    _clip_to_limits(q)
    errs = [e for g, (o, rep) in enumerate(injected) for e in _records(o, rep, q, g)]
    key_values = [{d: float(q[rep.key, skel.dof_index(d)]) for d in ex.dof_names} for rep in reps]
    return ExerciseTrack(ex.name, np.radians(q), reps, errs, key_values, targets, (n0, start))


def _records(opt, rep: Rep, q: np.ndarray, group: int) -> list[InjectedError]:
    """Error records with the TRUE value measured on the generated trajectory."""
    out = []
    if opt.kind in ("below_interval", "above_interval"):
        for d in opt.dofs:
            v = float(q[rep.key, skel.dof_index(d)])
            bound = opt.bound if d == opt.dofs[0] else _mirror_bound(d, opt)
            side = _mirror_side(d, opt)
            kind = "below_interval" if side == "lo" else "above_interval"
            out.append(InjectedError(rep.index, d, kind, v, bound, side, rep.key, group))
    elif opt.kind == "asymmetry":
        r, l = opt.dofs
        v = abs(q[rep.key, skel.dof_index(r)] - mirror_sign(l) * q[rep.key, skel.dof_index(l)])
        out.append(InjectedError(rep.index, r, "asymmetry", float(v), opt.bound, "hi", rep.key, group))
    elif opt.kind == "instability":
        for d in opt.dofs:
            x = q[rep.start:rep.end, skel.dof_index(d)]
            dev = np.abs(x - x[0])
            out.append(InjectedError(rep.index, d, "instability", float(dev.max()), opt.bound,
                                     "hi", rep.start + int(dev.argmax()), group))
    else:  # tempo: on the driving DoF, value = duration
        out.append(InjectedError(rep.index, opt.dofs[0], opt.kind, rep.duration_s, opt.bound,
                                 opt.side, rep.key, group))
    return out


def _mirror_side(d: str, opt) -> str:
    if mirror_sign(d) < 0 and d != opt.dofs[0]:
        return "hi" if opt.side == "lo" else "lo"
    return opt.side


def _mirror_bound(d: str, opt) -> float:
    return mirror_sign(d) * opt.bound


def _accessory(ex: Exercise, q: np.ndarray, reps: list[Rep], shape: np.ndarray, rng) -> None:
    """Add ACCESSORY motion in step with the driving DoF's shape, +-15 % per rep. Its own
    generator (spawned: the main stream's draws, hence the rest of the world, stay as they
    were without it)."""
    for dof, low, high in ACCESSORY.get(ex.name, ()):
        amp = rng.uniform(low, high)
        names = {dof, skel.mirror_name(dof)}
        for rep in reps:
            n = rep.end - rep.start
            s = np.interp(np.arange(n) / n * (len(shape) - 1), np.arange(len(shape)), shape)
            bump = amp * rng.uniform(0.85, 1.15) * s
            for d in names:
                q[rep.start:rep.end, skel.dof_index(d)] += bump


def _alternate(ex: Exercise, q: np.ndarray, reps: list[Rep], rest: np.ndarray) -> None:
    """Opposite limb half a cycle behind (running in place); not checked by the library."""
    for d in ALTERNATING.get(ex.name, ()):
        j, k = skel.dof_index(d), skel.dof_index(skel.mirror_name(d))
        for rep in reps:
            n = rep.end - rep.start
            a = rep.start + n // 2
            b = min(a + n, len(q))
            q[a:b, k] = rest[k] + (q[rep.start:rep.start + (b - a), j] - rest[j])


def _clip_to_limits(q: np.ndarray) -> None:
    lim = np.degrees(skel.limits())
    np.clip(q, lim[:, 0] + 0.5, lim[:, 1] - 0.5, out=q)

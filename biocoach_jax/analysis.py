"""Analyse one pose recording: exercise -> kernel spec -> biomech kernel -> a report.

This is the host-side glue between the readers (`data/poses.py`), the exercise library, the jax
kernel (`biomech/`) and the text renderer (`context.py`). `analyze` (the CLI), the plots and the
streaming context builder all consume `AnalysisReport`.

Exercise `auto`: the most active DoFs (robust ROM weighted by periodicity, `biomech.dof_activity`)
choose the driving DoF and the selected joints; the recording is then matched against every
library exercise whose driving DoF moves (>= 10 degrees: a jumping jack's hips move far less
than its shoulders, yet drive it), by the correlation between the recording's per-DoF
ROM and the exercise reference's per-DoF ROM (over the DoFs the file has). An exercise whose
reference moves the two sides of its driving DoF together (a squat's knees) is not a match for a
recording that moves them in opposition (walking, running), and the other way round. A match
>= 0.8 uses that exercise's intervals; otherwise the recording is analysed as `unknown` (cycles,
ROM, anatomical limits and consistency scores only).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import context, skel
from .biomech import (analyze_batch, auto_polarity, dof_activity, make_spec,
                      resample_cycles, violations_to_records)
from .data.poses import PoseRecording, resample
from .exercises import Exercise, list_exercises, load_exercise

DEFAULT_FPS = 16.0
# Light smoothing: 50 ms removes frame-to-frame jitter but keeps keyframe angles within ~1 degree
# of the raw peak (0.1 s already lowers a squat's knee peak by ~4 degrees at 16 Hz).
DEFAULT_SIGMA_S = 0.05
# Recordings are padded to a multiple of this many frames so that files of similar length share
# one compiled kernel (padding is masked out by `lengths`).
_T_BUCKET = 256
MATCH_THRESHOLD = 0.8
# |Pearson r| between the two sides of the driving DoF above which they move together (r > 0) or
# in opposition (r < 0), in the reference cycle and in the recording.
COUPLING_THRESHOLD = 0.5
MIN_MOVING_DEG = 10.0     # an exercise's driving DoF must move at least this much (robust ROM)
MAX_SELECTED_JOINTS = 12
# Global pelvis orientation follows the camera/world, not the movement: never the driving DoF.
_GLOBAL_DOFS = np.isin(np.arange(skel.NUM_DOFS), [0, 1, 2])
_TEMPO_KINDS = ("tempo_fast", "tempo_slow")


@dataclasses.dataclass(frozen=True)
class CycleReport:
    index: int
    start_s: float
    end_s: float
    keyframe_s: float
    complete: bool
    score: float
    key_values_deg: dict[str, float]
    rom_deg: dict[str, float]


@dataclasses.dataclass
class AnalysisReport:
    """Everything `analyze` reports, plus the arrays the plot needs."""
    source: str
    format: str
    fps: float                      # the recording's own frame rate
    analysis_fps: float
    duration_s: float
    exercise: str
    exercise_def: Exercise | None
    driving_dof: str
    polarity: int
    selected_joints: list[str]
    selected_dofs: list[str]
    cycles: list[CycleReport]
    violations: list               # biomech.Violation records (radians; seconds for tempo)
    warnings: list[str]
    context: str
    t: np.ndarray                  # (T,) analysis timestamps
    raw: np.ndarray                # (T, 46) resampled poses, radians
    smoothed: np.ndarray           # (T, 46)
    interval_lo: np.ndarray        # (46,) radians, NaN = none
    interval_hi: np.ndarray

    @property
    def reps(self) -> int:
        return len(self.cycles)

    def to_json(self) -> dict:
        """The `analyze --format json` object (a contract: field names and units are fixed)."""
        return {
            "source": self.source, "format": self.format, "fps": float(self.fps),
            "analysis_fps": float(self.analysis_fps), "duration_s": float(self.duration_s),
            "exercise": self.exercise, "driving_dof": self.driving_dof,
            "selected_joints": list(self.selected_joints), "selected_dofs": list(self.selected_dofs),
            "reps": self.reps,
            "cycles": [dataclasses.asdict(c) for c in self.cycles],
            "violations": [violation_json(self.exercise_def, v) for v in self.violations],
            "warnings": list(self.warnings), "context": self.context,
        }


def _deg(v: float | None) -> float | None:
    return None if v is None else round(math.degrees(v), 2)


def violation_json(exercise: Exercise | None, v) -> dict:
    """One violation as JSON; tempo values and bounds are seconds (the kind says so)."""
    conv = (lambda x: None if x is None else round(x, 3)) if v.kind in _TEMPO_KINDS else _deg
    message = (context.violation_message(exercise, v) if exercise is not None
               else context.describe_violation(v))
    return {"cycle": v.cycle, "dof": v.dof, "kind": v.kind, "value_deg": conv(v.value),
            "lo_deg": conv(v.lo), "hi_deg": conv(v.hi), "time_s": round(v.time_s, 3),
            "message": message}


def _reference_rom(ex: Exercise) -> np.ndarray:
    rom = np.zeros(skel.NUM_DOFS)
    for d in ex.dofs:
        rom[skel.dof_index(d.dof)] = np.radians(max(d.reference_deg) - min(d.reference_deg))
    return rom


def _side_coupling(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two series; 0 when either is constant."""
    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _couplings_disagree(ref: float, rec: float | None) -> bool:
    t = COUPLING_THRESHOLD
    return rec is not None and abs(ref) >= t and abs(rec) >= t and (ref > 0) != (rec > 0)


def match_exercise(rom: np.ndarray, present: np.ndarray, active: np.ndarray, polarity_of,
                   coupling_of=None):
    """Best library exercise for a per-DoF ROM profile: (name or None, similarity).

    An exercise is a candidate only if its driving DoF is present and active (`active`: moves
    at least MIN_MOVING_DEG) and moves away from rest in the exercise's direction (`polarity_of(dof_index)`): a squat starts standing and
    flexes the knee, a sit-to-stand starts seated and extends it. `coupling_of(a, b)` (optional)
    is the recording's Pearson r between DoFs a and b: an exercise whose reference moves the two
    sides of its driving DoF together is no candidate for a recording that moves them in
    opposition, and the other way round (module doc).
    """
    best, best_sim = None, float("nan")       # nan: no exercise was a candidate
    use = present & ~_GLOBAL_DOFS
    for name in list_exercises():
        ex = load_exercise(name)
        drive = skel.dof_index(ex.driving[0].dof)
        if not (present[drive] and active[drive]):
            continue
        if polarity_of(drive) != ex.driving[0].polarity:
            continue
        a_ref = ex.arrays()
        mirror = skel.dof_index(skel.mirror_name(ex.driving[0].dof))
        if (coupling_of is not None and mirror != drive and present[mirror]
                and a_ref.reference_mask[drive] and a_ref.reference_mask[mirror]
                and _couplings_disagree(_side_coupling(a_ref.reference[drive], a_ref.reference[mirror]),
                                        coupling_of(drive, mirror))):
            continue
        ref = _reference_rom(ex)
        a, b = rom[use], ref[use]
        if a.std() == 0 or b.std() == 0:
            continue
        sim = float(np.corrcoef(a, b)[0, 1])
        if not sim <= best_sim:                 # also takes the first candidate (best_sim nan)
            best, best_sim = name, sim
    return (best if best_sim >= MATCH_THRESHOLD else None), best_sim


def _padded(rec: PoseRecording):
    """(1, T_padded, 46) float32 poses and (1,) lengths."""
    T = len(rec.poses)
    Tp = -(-T // _T_BUCKET) * _T_BUCKET
    poses = np.zeros((1, Tp, skel.NUM_DOFS), np.float32)
    poses[0, :T] = rec.poses
    poses[0, T:] = rec.poses[-1]
    return poses, np.array([T], np.int32)


def _auto_choice(rec: PoseRecording, fps: float, warnings: list[str]):
    poses, lengths = _padded(rec)
    act = dof_activity(poses, lengths, fps, sigma_s=DEFAULT_SIGMA_S)
    rom = np.asarray(act.rom[0], np.float64)
    score = np.where(rec.present & ~_GLOBAL_DOFS, np.asarray(act.score[0]), -np.inf)
    if not np.isfinite(score).any():
        raise ValueError(f"{rec.source}: no joint-angle DoF to analyse (only global pelvis orientation)")
    drive = int(np.argmax(score))
    moving = rec.present & (rom >= np.radians(MIN_MOVING_DEG))
    active = moving & (rom >= 0.3 * rom[drive])
    name, sim = match_exercise(
        rom, rec.present, moving,
        lambda d: int(auto_polarity(poses[0, :, d], lengths[0], fps)),
        lambda a, b: _side_coupling(rec.poses[:, a], rec.poses[:, b]))
    if name is not None:
        warnings.append(f"auto: recognised '{name}' (ROM-profile correlation {sim:.2f})")
        return load_exercise(name), None, None
    why = (f"best correlation {sim:.2f}" if np.isfinite(sim) else
           "none drives these DoFs in this direction with this left/right coupling")
    warnings.append(f"auto: no library exercise matches ({why}); analysing "
                    f"cycles of {skel.DOF_NAMES[drive]} without exercise intervals")
    joint_score = np.full(skel.NUM_JOINTS, -np.inf)
    for d in np.flatnonzero(active & ~_GLOBAL_DOFS):
        j = skel.DOF_JOINT[d]
        joint_score[j] = max(joint_score[j], rom[d])
    order = [j for j in np.argsort(-joint_score) if np.isfinite(joint_score[j])]
    joints = sorted(order[:MAX_SELECTED_JOINTS])
    return None, drive, [skel.JOINT_NAMES[j] for j in joints]


def build_spec(exercise: Exercise | None, present: np.ndarray, *, drive: int | None = None,
               joints=None, references=None):
    """KernelSpec for an exercise (restricted to the DoFs the recording has) or a bare one."""
    if exercise is not None:
        a = exercise.arrays()
        selected = skel.dof_mask(exercise.key_joints) | a.dynamic_mask | a.static_mask
        selected &= present
        return make_spec(
            a.driving_index, polarity=int(a.driving_polarity), selected=selected,
            dynamic=a.dynamic_mask & selected, static=a.static_mask & selected,
            key_lo=a.interval_lo, key_hi=a.interval_hi, static_tol=np.nan_to_num(a.static_tol),
            references=a.reference, ref_mask=a.reference_mask & selected,
            tempo_s=tuple(a.tempo_range),
            asym_threshold=(a.asymmetry_threshold if np.isfinite(a.asymmetry_threshold) else np.inf),
            ref_len=a.reference.shape[1], sigma_s=DEFAULT_SIGMA_S)
    selected = skel.dof_mask(joints) & present
    ref_len = 33 if references is None else references.shape[1]
    return make_spec(drive, polarity=0, selected=selected, dynamic=np.zeros(skel.NUM_DOFS, bool),
                     asym_threshold=np.inf, references=references,
                     ref_mask=None if references is None else selected, ref_len=ref_len,
                     sigma_s=DEFAULT_SIGMA_S)


def _session_references(result, spec) -> np.ndarray:
    """Mean resampled cycle of the session per DoF: the reference for exercises we don't know."""
    c = result.cycles
    valid = np.asarray(c.valid[0])
    curves = np.asarray(resample_cycles(result.smoothed[0], c.start[0], c.end[0], spec.ref_len))
    if not valid.any():
        return np.zeros((skel.NUM_DOFS, spec.ref_len), np.float32)
    return curves[valid].mean(axis=0).astype(np.float32)       # (D, R)


def _run(rec: PoseRecording, spec, fps: float):
    poses, lengths = _padded(rec)
    return analyze_batch(poses, lengths, spec, fps)


def analyze_recording(rec: PoseRecording, exercise: str = "auto", *,
                      fps: float = DEFAULT_FPS) -> AnalysisReport:
    """Resample `rec` to `fps` and analyse it as `exercise` (a library name or 'auto')."""
    source_fps = float(rec.fps)
    rec = resample(rec, fps)
    warnings = list(rec.warnings)
    if len(rec.poses) < 4:
        raise ValueError(f"{rec.source}: recording too short to analyse ({len(rec.poses)} frames "
                         f"at {fps:g} Hz)")
    if exercise == "auto":
        ex, drive, joints = _auto_choice(rec, fps, warnings)
    else:
        ex, drive, joints = load_exercise(exercise), None, None
    if ex is not None:
        missing = [d for d in ex.dof_names if not rec.present[skel.dof_index(d)]]
        if not rec.present[skel.dof_index(ex.driving[0].dof)]:
            raise ValueError(f"{rec.source}: exercise '{ex.name}' is driven by "
                             f"{ex.driving[0].dof}, which this recording does not contain")
        if missing:
            warnings.append(f"{ex.name}: recording lacks {len(missing)} involved DoF(s), not "
                            f"checked: {', '.join(missing)}")
        spec = build_spec(ex, rec.present)
        result = _run(rec, spec, fps)
    else:
        spec0 = build_spec(None, rec.present, drive=drive, joints=joints)
        first = _run(rec, spec0, fps)
        spec = build_spec(None, rec.present, drive=drive, joints=joints,
                          references=_session_references(first, spec0))
        result = _run(rec, spec, fps)
    return _report(rec, source_fps, fps, ex, spec, result, warnings)


def _report(rec, source_fps, fps, ex, spec, result, warnings) -> AnalysisReport:
    sel = np.asarray(spec.selected)
    sel_dofs = [skel.DOF_NAMES[i] for i in np.flatnonzero(sel)]
    sel_joints = sorted({skel.DOF_JOINT[i] for i in np.flatnonzero(sel)})
    c = result.cycles
    valid = np.asarray(c.valid[0])
    t = rec.timestamps
    key_values, rom = np.asarray(result.key_values[0]), np.asarray(result.rom[0])
    q = np.asarray(result.quality_overall[0])
    cycles = []
    for i in np.flatnonzero(valid):
        s, e, k = int(c.start[0][i]), int(c.end[0][i]), int(c.key[0][i])
        cycles.append(CycleReport(
            index=len(cycles), start_s=round(float(t[s]), 3), end_s=round(float(t[e]), 3),
            keyframe_s=round(float(t[k]), 3), complete=bool(c.complete[0][i]),
            score=round(float(q[i]), 4) if np.isfinite(q[i]) else 0.0,
            key_values_deg={d: round(math.degrees(key_values[i, skel.dof_index(d)]), 2) for d in sel_dofs},
            rom_deg={d: round(math.degrees(rom[i, skel.dof_index(d)]), 2) for d in sel_dofs}))
    # Kernel cycle slots -> report indices (slots are in time order, valid ones first).
    slot_to_index = {int(s): n for n, s in enumerate(np.flatnonzero(valid))}
    viol_arrays = type(result.violations)(*(a[0] for a in result.violations))
    violations = [dataclasses.replace(v, cycle=slot_to_index.get(v.cycle), time_s=float(t[0]) + v.time_s)
                  for v in violations_to_records(viol_arrays, fps)]
    if int(c.n_keyframes[0]) > spec.max_cycles:
        warnings.append(f"more than {spec.max_cycles} repetitions: only the first "
                        f"{spec.max_cycles} are analysed")
    if int(c.n_candidates[0]) > spec.max_peaks:
        warnings.append(f"the driving signal has {int(c.n_candidates[0])} candidate peaks (more than "
                        f"{spec.max_peaks} slots): repetitions late in the recording may be missed")
    drive = skel.DOF_NAMES[int(np.argmax(np.abs(np.asarray(spec.drive_weights))))]
    name = ex.name if ex is not None else "unknown"
    text = _context_text(ex, cycles, violations, drive, spec)
    a = ex.arrays() if ex is not None else None
    nan = np.full(skel.NUM_DOFS, np.nan)
    return AnalysisReport(
        source=str(rec.source), format=rec.format, fps=source_fps, analysis_fps=fps,
        duration_s=round(float(t[-1] - t[0]) + 1.0 / fps, 3), exercise=name, exercise_def=ex,
        driving_dof=drive, polarity=int(c.polarity[0]),
        selected_joints=[skel.JOINT_NAMES[j] for j in sel_joints], selected_dofs=sel_dofs,
        cycles=cycles, violations=violations, warnings=warnings, context=text, t=t,
        raw=rec.poses, smoothed=np.asarray(result.smoothed[0])[:len(t)],
        interval_lo=a.interval_lo if a is not None else nan,
        interval_hi=a.interval_hi if a is not None else nan)


def _context_text(ex, cycles, violations, drive, spec) -> str:
    if not cycles:
        return "No repetition detected."
    last = cycles[-1]
    # Pose state: the driving DoF and the DoFs that have an interval at the keyframe.
    bounded = np.isfinite(np.asarray(spec.key_lo)) | np.isfinite(np.asarray(spec.key_hi))
    shown = {d for d in last.key_values_deg if d == drive or bounded[skel.dof_index(d)]}
    if ex is None:
        return (f"{len(cycles)} cycles of {skel.dof_label(drive)}; last cycle: "
                f"{skel.dof_label(drive)} {round(last.key_values_deg[drive])}° at the keyframe, "
                f"range {round(last.rom_deg[drive])}°.")
    state = {d: v for d, v in last.key_values_deg.items() if d in shown}
    return context.render_motion(ex, len(cycles), state, violations)


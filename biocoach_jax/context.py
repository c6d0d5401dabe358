"""C_motion and C_morph: the compact, deterministic texts that ground the coach (REFERENCE §1).

Formatting rules (one place, so the LLM always sees the same shapes):
  * angles: whole degrees, rounded half away from zero, written "85°"; people read positive
    magnitudes with the anatomical word of the DoF's sign (lumbar_extension -0.79 rad ->
    "lower back flexion 45°"); DoFs without a known direction show the signed value;
  * durations: seconds with one decimal ("1.4 s");
  * C_morph: metres with 2 decimals, kilograms with 1 decimal:
    "Height 1.78 m, Mass 73.2 kg, Chest 0.98 m, Waist 0.84 m, Hip 0.99 m."
Violations are any objects with attributes `cycle` (int or None = whole recording), `dof`
(SKEL name or None), `kind` (one of `VIOLATION_KINDS`), `value`, `lo`, `hi`, `time_s`.
Angles are radians; for tempo kinds value/lo/hi are seconds; for asymmetry and instability
value is the magnitude (left-right difference, movement of a static DoF) and hi the allowed
maximum. Order: by cycle (None last), then severity (incomplete, then tempo, then joint
violations by how far they exceed their bound), then SKEL DoF order.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from biocoach_jax import skel
from biocoach_jax.exercises import conventions
from biocoach_jax.exercises.library import VIOLATION_KINDS, Exercise

MORPH_FIELDS: tuple[tuple[str, str, str], ...] = (  # key, label, format
    ("height_m", "Height", "{:.2f} m"), ("mass_kg", "Mass", "{:.1f} kg"),
    ("chest_m", "Chest", "{:.2f} m"), ("waist_m", "Waist", "{:.2f} m"), ("hip_m", "Hip", "{:.2f} m"),
)
_TEMPO_KINDS = ("tempo_fast", "tempo_slow")


def round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def deg(rad: float) -> str:
    """Radians -> whole degrees as text ('-0' never appears)."""
    return str(round_half_away(math.degrees(rad)) + 0)


def _dof_motion(dof: str, value_rad: float) -> tuple[str, str]:
    """('right knee flexion', '85°') for a signed value; signed degrees if no known direction."""
    pos, neg = conventions.motion_words(dof)
    label = conventions.joint_label(dof)
    if pos == neg:
        return f"{label} {pos}", f"{deg(value_rad)}°"
    word = pos if round_half_away(math.degrees(value_rad)) >= 0 else neg
    return f"{label} {word}", f"{deg(abs(value_rad))}°"


def pose_phrase(dof: str, value_rad: float) -> str:
    """'right knee flexion 85°'."""
    return " ".join(_dof_motion(dof, value_rad))


def _bound_text(kind: str, dof: str, v: float, lo: float | None, hi: float | None) -> str:
    pos, neg = conventions.motion_words(dof)
    label = conventions.joint_label(dof)
    bound = lo if kind == "below_interval" else hi
    if bound is None:
        which = "lo" if kind == "below_interval" else "hi"
        raise ValueError(f"{kind} violation of {dof} needs its {which} bound")
    if pos == neg:  # no known direction: name the accepted range
        where = "below" if kind == "below_interval" else "above"
        rng = f"{deg(lo)}° to {deg(hi)}°" if lo is not None and hi is not None else (
            f"{deg(lo)}°" if kind == "below_interval" else f"{deg(hi)}°")
        return f"{label} {pos} {deg(v)}° {where} the accepted {rng}"
    if kind == "below_interval":
        if lo > 0:
            return f"insufficient {label} {pos}: {deg(v)}° detected, {deg(lo)}° required"
        return f"excessive {label} {neg}: {deg(-v)}° detected, at most {deg(-lo)}° allowed"
    if hi >= 0:
        return f"excessive {label} {pos}: {deg(v)}° detected, at most {deg(hi)}° allowed"
    return f"insufficient {label} {neg}: {deg(-v)}° detected, {deg(-hi)}° required"


def describe_violation(v: Any) -> str:
    """The quantified violation, e.g. 'insufficient right knee flexion: 85° detected, 90° required'."""
    kind = v.kind
    if kind not in VIOLATION_KINDS:
        raise ValueError(f"unknown violation kind {kind!r}; known: {', '.join(VIOLATION_KINDS)}")
    if kind == "incomplete":
        return "incomplete repetition"
    if kind == "tempo_fast":
        return f"rep too fast: {v.value:.1f} s, at least {v.lo:.1f} s expected"
    if kind == "tempo_slow":
        return f"rep too slow: {v.value:.1f} s, at most {v.hi:.1f} s expected"
    dof = v.dof
    skel.dof_index(dof)  # a clear KeyError for an unknown DoF
    if kind in ("below_interval", "above_interval"):
        return _bound_text(kind, dof, v.value, v.lo, v.hi)
    pos, _ = conventions.motion_words(dof)
    if kind == "asymmetry":
        return (f"left-right difference in {conventions.joint_label_unsided(dof)} {pos}: "
                f"{deg(abs(v.value))}°, at most {deg(v.hi)}° allowed")
    if kind == "instability":
        return (f"unstable {conventions.joint_label(dof)} {pos}: {deg(abs(v.value))}° of movement, "
                f"at most {deg(v.hi)}° allowed")
    # anatomical_limit: the bound that was crossed
    limit = v.hi if (v.hi is not None and v.value > v.hi) else v.lo
    return f"{pose_phrase(dof, v.value)} beyond the anatomical limit of {pose_phrase(dof, limit).split()[-1]}"


def _excess(v: Any) -> float:
    """How far a joint violation lies beyond its bound (radians); 0 if unknown."""
    if v.kind == "below_interval" and v.lo is not None:
        return v.lo - v.value
    if v.kind == "above_interval" and v.hi is not None:
        return v.value - v.hi
    if v.kind in ("asymmetry", "instability") and v.hi is not None:
        return abs(v.value) - v.hi
    if v.kind == "anatomical_limit":
        if v.hi is not None and v.value > v.hi:
            return v.value - v.hi
        return (v.lo - v.value) if v.lo is not None else 0.0
    return 0.0


def sort_violations(violations: Iterable[Any]) -> list[Any]:
    """Deterministic order: cycle (None last), severity, SKEL DoF order."""
    def key(v):
        tier = 0 if v.kind == "incomplete" else (1 if v.kind in _TEMPO_KINDS else 2)
        dof = skel.dof_index(v.dof) if v.dof is not None else -1
        return (v.cycle is None, v.cycle if v.cycle is not None else 0, tier,
                -round(_excess(v), 9), dof, VIOLATION_KINDS.index(v.kind))
    return sorted(violations, key=key)


def render_motion(exercise: Exercise, reps: int, key_values_deg: Mapping[str, float],
                  violations: Iterable[Any], *, max_violations: int = 6) -> str:
    """C_motion, e.g. 'Squat, rep 3. At bottom: right knee flexion 85°, lower back flexion 45°.
    Rep 3: insufficient right knee flexion: 85° detected, 90° required; ...'.

    `reps` is the number of completed repetitions; `key_values_deg` maps DoF names to their
    value (degrees) at the exercise's first keyframe in the latest rep. Violation `cycle`
    indices are 0-based (as in `analyze`'s JSON); the text numbers reps from 1.
    """
    parts = [f"{exercise.display_name}, rep {reps}." if reps > 0
             else f"{exercise.display_name}, no completed rep yet."]
    if key_values_deg:
        names = sorted(key_values_deg, key=skel.dof_index)
        state = ", ".join(pose_phrase(n, math.radians(key_values_deg[n])) for n in names)
        parts.append(f"At {exercise.keyframes[0].name}: {state}.")
    ordered = sort_violations(violations)
    if not ordered:
        parts.append("No violations.")
    shown, hidden = ordered[:max_violations], len(ordered) - min(len(ordered), max_violations)
    groups: list[tuple[Any, list[str]]] = []
    for v in shown:
        if not groups or groups[-1][0] != v.cycle:
            groups.append((v.cycle, []))
        groups[-1][1].append(describe_violation(v))
    for cycle, texts in groups:
        head = f"Rep {cycle + 1}" if cycle is not None else "Overall"  # cycles are 0-based
        parts.append(f"{head}: {'; '.join(texts)}.")
    if hidden:
        parts.append(f"({hidden} more violation{'s' if hidden > 1 else ''} not shown.)")
    return " ".join(parts)


def violation_message(exercise: Exercise, violation: Any) -> str:
    """The short coaching message from the exercise's cue template for this violation."""
    v = violation
    tempo = v.kind in _TEMPO_KINDS

    def num(x):
        if x is None:
            return "?"
        return f"{x:.1f}" if tempo else deg(x)

    fields = {
        "side": conventions.side_word(v.dof) if v.dof else "",
        "joint": conventions.joint_label_unsided(v.dof) if v.dof else "",
        "value": num(abs(v.value) if v.kind in ("asymmetry", "instability") else v.value),
        "lo": num(v.lo), "hi": num(v.hi),
    }
    text = " ".join(exercise.cue(v.kind, v.dof).format(**fields).split())
    return text[:1].upper() + text[1:]


def render_morph(measurements: Mapping[str, float]) -> str:
    """C_morph, e.g. 'Height 1.78 m, Mass 73.2 kg, Chest 0.98 m, Waist 0.84 m, Hip 0.99 m.'"""
    known = {k for k, _, _ in MORPH_FIELDS}
    unknown = sorted(set(measurements) - known)
    if unknown:
        raise ValueError(f"unknown measurement(s) {unknown}; known: {[k for k, _, _ in MORPH_FIELDS]}")
    items = []
    for key, label, fmt in MORPH_FIELDS:
        if key in measurements and measurements[key] is not None:
            x = float(measurements[key])
            if not math.isfinite(x) or x <= 0:
                raise ValueError(f"measurement {key} must be a positive finite number, got {x}")
            items.append(f"{label} {fmt.format(x)}")
    return (", ".join(items) + ".") if items else ""

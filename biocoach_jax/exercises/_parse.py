"""Validation of exercise TOML files into `library.Exercise` (schema in README.md).

Every check raises `ExerciseError("<file>: <field>: <problem>")`. Unknown keys are errors too,
so a typo never silently drops a bound.
"""
from __future__ import annotations

import math
import pathlib
import string
import tomllib

from biocoach_jax import skel
from biocoach_jax.exercises import conventions
from biocoach_jax.exercises.library import (
    CUE_FIELDS, VIOLATION_KINDS, Asymmetry, DofSpec, Driving, Exercise, ExerciseError, Interval,
    Keyframe, Tempo, Tolerance, frozen_mapping)

_TOP_KEYS = {"name", "display_name", "description", "bilateral", "key_joints", "driving",
             "keyframes", "tempo", "asymmetry", "cues", "dofs"}
_DOF_KEYS = {"class", "reference_deg", "intervals", "tolerance", "cues"}
_REST_TOLERANCE_DEG = 1.0  # a reference cycle must end where it starts (rest)
_MIN_REFERENCE_LENGTH = 5


class _Ctx:
    """Carries the file name so every error names it."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def fail(self, field: str, problem: str) -> ExerciseError:
        return ExerciseError(f"{self.path}: {field}: {problem}")

    def get(self, table: dict, key: str, kind, field: str, *, required: bool = True):
        if key not in table:
            if required:
                raise self.fail(field, "missing")
            return None
        value = table[key]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(field, f"expected a number, got {value!r}")
            if not math.isfinite(value):
                raise self.fail(field, f"must be finite, got {value!r}")
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(field, f"expected {kind.__name__}, got {type(value).__name__}")
        if kind is str and not value.strip():
            raise self.fail(field, "must not be empty")
        return value

    def keys(self, table: dict, allowed: set[str], field: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            raise self.fail(field, f"unknown key(s) {', '.join(extra)}; allowed: "
                                   f"{', '.join(sorted(allowed))}")

    def dof_name(self, name, field: str) -> str:
        if name not in skel.DOF_NAMES:
            raise self.fail(field, f"unknown SKEL DoF {name!r}")
        return name

    def justified(self, table: dict, field: str) -> tuple[str, str]:
        return (self.get(table, "reason", str, f"{field}.reason"),
                self.get(table, "source", str, f"{field}.source"))


def parse_file(path: pathlib.Path) -> Exercise:
    ctx = _Ctx(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExerciseError(f"{path}: file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ExerciseError(f"{path}: not valid TOML ({e})") from None
    ctx.keys(raw, _TOP_KEYS, "top level")

    name = ctx.get(raw, "name", str, "name")
    if name != path.stem:
        raise ctx.fail("name", f"{name!r} must equal the file name stem {path.stem!r}")
    bilateral = ctx.get(raw, "bilateral", bool, "bilateral")
    cues = _cues(ctx, ctx.get(raw, "cues", dict, "cues"), "cues", require_all=True)
    dofs = _dofs(ctx, ctx.get(raw, "dofs", dict, "dofs"), bilateral)
    involved = {d.dof: d for d in dofs}
    keyframes = _keyframes(ctx, ctx.get(raw, "keyframes", list, "keyframes"), involved)
    driving = _driving(ctx, ctx.get(raw, "driving", list, "driving"), involved)
    _check_intervals_keyframes(ctx, dofs, {k.name for k in keyframes})
    lead, first = driving[0], keyframes[0]
    if first.dof != lead.dof or first.extremum != ("max" if lead.polarity > 0 else "min"):
        raise ctx.fail("keyframes[0]", f"the first keyframe must be the {lead.dof} "
                                       f"{'maximum' if lead.polarity > 0 else 'minimum'} "
                                       "(the lead driving DoF and its polarity)")
    return Exercise(
        name=name, display_name=ctx.get(raw, "display_name", str, "display_name"),
        description=ctx.get(raw, "description", str, "description", required=False) or "",
        source_file=str(path), bilateral=bilateral,
        key_joints=_key_joints(ctx, ctx.get(raw, "key_joints", list, "key_joints"), dofs),
        driving=driving, keyframes=keyframes, dofs=dofs,
        tempo=_tempo(ctx, ctx.get(raw, "tempo", dict, "tempo")),
        asymmetry=_asymmetry(ctx, raw, bilateral), cues=cues)


def _cues(ctx: _Ctx, table: dict, field: str, *, require_all: bool):
    ctx.keys(table, set(VIOLATION_KINDS), field)
    if require_all:
        missing = [k for k in VIOLATION_KINDS if k not in table]
        if missing:
            raise ctx.fail(field, f"missing cue(s) for violation kind(s) {', '.join(missing)}")
    out = {}
    for kind, template in table.items():
        template = ctx.get(table, kind, str, f"{field}.{kind}")
        for _, placeholder, spec, conv in string.Formatter().parse(template):
            if placeholder is not None and (placeholder not in CUE_FIELDS or spec or conv):
                raise ctx.fail(f"{field}.{kind}", f"unknown placeholder {{{placeholder}}}; "
                                                  f"allowed: {', '.join(CUE_FIELDS)}")
        out[kind] = template
    return frozen_mapping(out)


def _dofs(ctx: _Ctx, table: dict, bilateral: bool) -> tuple[DofSpec, ...]:
    if not table:
        raise ctx.fail("dofs", "at least one DoF is required")
    specs = []
    for name, entry in table.items():
        field = f"dofs.{name}"
        ctx.dof_name(name, field)
        if bilateral and skel.side(name) == "l":
            raise ctx.fail(field, "a bilateral exercise lists right-side DoFs only; "
                                  "the left side is mirrored from them")
        if not isinstance(entry, dict):
            raise ctx.fail(field, "expected a table")
        specs.append(_dof(ctx, name, entry, field))
    lengths = {len(s.reference_deg) for s in specs}
    if len(lengths) != 1:
        raise ctx.fail("dofs.*.reference_deg", f"all reference trajectories must have the same "
                                               f"length, got lengths {sorted(lengths)}")
    if bilateral:
        specs += [_mirror(s) for s in specs if skel.side(s.dof) == "r"]
    return tuple(sorted(specs, key=lambda s: skel.dof_index(s.dof)))


def _dof(ctx: _Ctx, name: str, entry: dict, field: str) -> DofSpec:
    ctx.keys(entry, _DOF_KEYS, field)
    cls = ctx.get(entry, "class", str, f"{field}.class")
    if cls not in ("dynamic", "static"):
        raise ctx.fail(f"{field}.class", f"must be 'dynamic' or 'static', got {cls!r}")
    ref = ctx.get(entry, "reference_deg", list, f"{field}.reference_deg")
    ref = tuple(ctx.get({"v": v}, "v", float, f"{field}.reference_deg[{i}]")
                for i, v in enumerate(ref))
    if len(ref) < _MIN_REFERENCE_LENGTH:
        raise ctx.fail(f"{field}.reference_deg", f"needs at least {_MIN_REFERENCE_LENGTH} samples")
    if abs(ref[0] - ref[-1]) > _REST_TOLERANCE_DEG:
        raise ctx.fail(f"{field}.reference_deg", f"a cycle must start and end at rest: first "
                                                 f"{ref[0]} and last {ref[-1]} differ")
    intervals, tolerance = (), None
    if cls == "dynamic":
        if "tolerance" in entry:
            raise ctx.fail(f"{field}.tolerance", "a dynamic DoF has intervals, not a tolerance")
        raw = ctx.get(entry, "intervals", list, f"{field}.intervals")
        intervals = tuple(_interval(ctx, iv, f"{field}.intervals[{i}]") for i, iv in enumerate(raw))
        if not intervals:
            raise ctx.fail(f"{field}.intervals", "a dynamic DoF needs at least one interval")
        names = [iv.keyframe for iv in intervals]
        if len(set(names)) != len(names):
            raise ctx.fail(f"{field}.intervals", "at most one interval per keyframe")
    else:
        if "intervals" in entry:
            raise ctx.fail(f"{field}.intervals", "a static DoF has a tolerance, not intervals")
        tol = ctx.get(entry, "tolerance", dict, f"{field}.tolerance")
        ctx.keys(tol, {"deg", "reason", "source"}, f"{field}.tolerance")
        deg = ctx.get(tol, "deg", float, f"{field}.tolerance.deg")
        if deg <= 0:
            raise ctx.fail(f"{field}.tolerance.deg", f"must be positive, got {deg}")
        tolerance = Tolerance(deg, *ctx.justified(tol, f"{field}.tolerance"))
    cues = _cues(ctx, ctx.get(entry, "cues", dict, f"{field}.cues", required=False) or {},
                 f"{field}.cues", require_all=False)
    return DofSpec(name, cls, ref, intervals, tolerance, cues)


def _interval(ctx: _Ctx, iv, field: str) -> Interval:
    if not isinstance(iv, dict):
        raise ctx.fail(field, "expected a table")
    ctx.keys(iv, {"keyframe", "lo", "hi", "reason", "source"}, field)
    lo, hi = ctx.get(iv, "lo", float, f"{field}.lo"), ctx.get(iv, "hi", float, f"{field}.hi")
    if lo > hi:
        raise ctx.fail(field, f"lo ({lo}) must not exceed hi ({hi})")
    return Interval(ctx.get(iv, "keyframe", str, f"{field}.keyframe"), lo, hi,
                    *ctx.justified(iv, field))


def _mirror(spec: DofSpec) -> DofSpec:
    """The left-side copy of a right-side DoF (values multiplied by the mirror sign)."""
    sign = conventions.mirror_sign(spec.dof)
    intervals = tuple(
        Interval(iv.keyframe, min(sign * iv.lo_deg, sign * iv.hi_deg),
                 max(sign * iv.lo_deg, sign * iv.hi_deg), iv.reason, iv.source)
        for iv in spec.intervals)
    return DofSpec(skel.mirror_name(spec.dof), spec.dof_class,
                   tuple(sign * v for v in spec.reference_deg), intervals, spec.tolerance,
                   spec.cues, mirrored_from=spec.dof)


def _keyframes(ctx: _Ctx, raw: list, involved: dict) -> tuple[Keyframe, ...]:
    if not raw:
        raise ctx.fail("keyframes", "at least one keyframe is required")
    out = []
    for i, k in enumerate(raw):
        field = f"keyframes[{i}]"
        if not isinstance(k, dict):
            raise ctx.fail(field, "expected a table")
        ctx.keys(k, {"name", "dof", "extremum"}, field)
        dof = ctx.dof_name(ctx.get(k, "dof", str, f"{field}.dof"), f"{field}.dof")
        if dof not in involved:
            raise ctx.fail(f"{field}.dof", f"{dof!r} is not among the exercise's DoFs")
        ext = ctx.get(k, "extremum", str, f"{field}.extremum")
        if ext not in ("max", "min"):
            raise ctx.fail(f"{field}.extremum", f"must be 'max' or 'min', got {ext!r}")
        out.append(Keyframe(ctx.get(k, "name", str, f"{field}.name"), dof, ext))
    names = [k.name for k in out]
    if len(set(names)) != len(names):
        raise ctx.fail("keyframes", f"duplicate keyframe names in {names}")
    return tuple(out)


def _driving(ctx: _Ctx, raw: list, involved: dict) -> tuple[Driving, ...]:
    if not raw:
        raise ctx.fail("driving", "at least one driving DoF is required")
    out = []
    for i, d in enumerate(raw):
        field = f"driving[{i}]"
        if not isinstance(d, dict):
            raise ctx.fail(field, "expected a table")
        ctx.keys(d, {"dof", "polarity"}, field)
        dof = ctx.dof_name(ctx.get(d, "dof", str, f"{field}.dof"), f"{field}.dof")
        if dof not in involved:
            raise ctx.fail(f"{field}.dof", f"{dof!r} is not among the exercise's DoFs")
        if involved[dof].dof_class != "dynamic":
            raise ctx.fail(f"{field}.dof", f"{dof!r} must be a dynamic DoF")
        pol = ctx.get(d, "polarity", int, f"{field}.polarity")
        if pol not in (1, -1):
            raise ctx.fail(f"{field}.polarity", f"must be +1 or -1, got {pol}")
        ref = involved[dof].reference_deg
        peak = max(range(len(ref)), key=lambda j: pol * ref[j])
        if peak in (0, len(ref) - 1):
            raise ctx.fail(f"{field}.polarity", f"the reference of {dof} has its "
                                                f"{'maximum' if pol > 0 else 'minimum'} at rest; "
                                                "the polarity or the reference is wrong")
        out.append(Driving(dof, pol))
    return tuple(out)


def _check_intervals_keyframes(ctx: _Ctx, dofs, names: set[str]) -> None:
    for spec in dofs:
        for iv in spec.intervals:
            if iv.keyframe not in names:
                raise ctx.fail(f"dofs.{spec.mirrored_from or spec.dof}.intervals",
                               f"unknown keyframe {iv.keyframe!r}; known: {', '.join(sorted(names))}")


def _key_joints(ctx: _Ctx, raw: list, dofs) -> tuple[str, ...]:
    for i, j in enumerate(raw):
        if j not in skel.JOINT_NAMES:
            raise ctx.fail(f"key_joints[{i}]", f"unknown SKEL joint {j!r}")
    if len(set(raw)) != len(raw):
        raise ctx.fail("key_joints", "duplicate joint names")
    missing = sorted({skel.dof_joint(d.dof) for d in dofs} - set(raw))
    if missing:
        raise ctx.fail("key_joints", f"joints of involved DoFs are missing: {', '.join(missing)}")
    return tuple(sorted(raw, key=skel.joint_index))


def _tempo(ctx: _Ctx, table: dict) -> Tempo:
    ctx.keys(table, {"min_s", "max_s", "reason", "source"}, "tempo")
    lo, hi = ctx.get(table, "min_s", float, "tempo.min_s"), ctx.get(table, "max_s", float, "tempo.max_s")
    if not 0 < lo < hi:
        raise ctx.fail("tempo", f"need 0 < min_s < max_s, got {lo}, {hi}")
    return Tempo(lo, hi, *ctx.justified(table, "tempo"))


def _asymmetry(ctx: _Ctx, raw: dict, bilateral: bool) -> Asymmetry | None:
    if not bilateral:
        if "asymmetry" in raw:
            raise ctx.fail("asymmetry", "only a bilateral exercise has an asymmetry threshold")
        return None
    table = ctx.get(raw, "asymmetry", dict, "asymmetry")
    ctx.keys(table, {"threshold_deg", "reason", "source"}, "asymmetry")
    deg = ctx.get(table, "threshold_deg", float, "asymmetry.threshold_deg")
    if deg <= 0:
        raise ctx.fail("asymmetry.threshold_deg", f"must be positive, got {deg}")
    return Asymmetry(deg, *ctx.justified(table, "asymmetry"))

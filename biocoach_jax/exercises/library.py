"""The exercise library: frozen dataclasses loaded from `data/<name>.toml`, and their array view.

Angles in the TOML files are degrees (people read and edit them); everything handed to the rest
of the system (`Exercise.arrays()`) is radians in SKEL DoF order. Sign conventions are those of
`conventions.py` (knee_angle +flexion, hip_flexion +flexion, hip_adduction +adduction,
lumbar_extension +extension so trunk flexion is negative, ankle_angle +dorsiflexion,
elbow_flexion +flexion; shoulder: see that module). The file schema is in README.md beside this
file. Validation lives in `_parse.py`; every problem raises `ExerciseError` naming the file and
the field.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
import types
from typing import Mapping

import numpy as np

from biocoach_jax import skel
from biocoach_jax.exercises import conventions

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"

VIOLATION_KINDS: tuple[str, ...] = (
    "below_interval", "above_interval", "asymmetry", "instability", "anatomical_limit",
    "tempo_fast", "tempo_slow", "incomplete",
)
CUE_FIELDS: tuple[str, ...] = ("side", "joint", "value", "lo", "hi")


class ExerciseError(ValueError):
    """An exercise file is missing, malformed or inconsistent (the message names file and field)."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """Acceptable range of a dynamic DoF at one keyframe, degrees, with its justification."""
    keyframe: str
    lo_deg: float
    hi_deg: float
    reason: str
    source: str

    @property
    def lo(self) -> float:
        return math.radians(self.lo_deg)

    @property
    def hi(self) -> float:
        return math.radians(self.hi_deg)


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Allowed deviation of a static DoF from its value at the start of the rep, degrees."""
    deg: float
    reason: str
    source: str

    @property
    def rad(self) -> float:
        return math.radians(self.deg)


@dataclasses.dataclass(frozen=True)
class DofSpec:
    """One DoF involved in an exercise."""
    dof: str
    dof_class: str                      # "dynamic" | "static"
    reference_deg: tuple[float, ...]    # one cycle, rest -> keyframe -> rest, N samples
    intervals: tuple[Interval, ...]     # dynamic only, at most one per keyframe
    tolerance: Tolerance | None         # static only
    cues: Mapping[str, str]             # per-kind overrides of the exercise cues
    mirrored_from: str | None = None    # set when generated from the right side (bilateral)

    def interval(self, keyframe: str) -> Interval | None:
        return next((iv for iv in self.intervals if iv.keyframe == keyframe), None)


@dataclasses.dataclass(frozen=True)
class Driving:
    """A DoF whose extremum marks the keyframe: polarity +1 = maximum, -1 = minimum."""
    dof: str
    polarity: int


@dataclasses.dataclass(frozen=True)
class Keyframe:
    name: str
    dof: str
    extremum: str  # "max" | "min"


@dataclasses.dataclass(frozen=True)
class Tempo:
    """Acceptable duration of one cycle, seconds."""
    min_s: float
    max_s: float
    reason: str
    source: str


@dataclasses.dataclass(frozen=True)
class Asymmetry:
    """Largest acceptable left-right difference at a keyframe (bilateral exercises), degrees."""
    threshold_deg: float
    reason: str
    source: str


@dataclasses.dataclass(frozen=True)
class ExerciseArrays:
    """Numpy view of an exercise for the jax kernel (radians, SKEL order; NaN = none)."""
    keyframe: str
    interval_lo: np.ndarray        # (46,)
    interval_hi: np.ndarray        # (46,)
    dynamic_mask: np.ndarray       # (46,) bool
    static_mask: np.ndarray        # (46,) bool
    static_tol: np.ndarray         # (46,)
    reference: np.ndarray          # (46, N), zero where reference_mask is False
    reference_mask: np.ndarray     # (46,) bool
    key_joint_mask: np.ndarray     # (24,) bool
    driving_index: int
    driving_polarity: int
    tempo_range: np.ndarray        # (2,) seconds
    asymmetry_threshold: float     # radians, NaN when not bilateral
    mirror_sign: np.ndarray        # (46,) right value * sign = same motion on the left


@dataclasses.dataclass(frozen=True)
class Exercise:
    name: str
    display_name: str
    description: str
    source_file: str
    bilateral: bool
    key_joints: tuple[str, ...]
    driving: tuple[Driving, ...]
    keyframes: tuple[Keyframe, ...]
    dofs: tuple[DofSpec, ...]       # SKEL order, left mirrors included
    tempo: Tempo
    asymmetry: Asymmetry | None
    cues: Mapping[str, str]         # one template per violation kind

    @property
    def dof_names(self) -> tuple[str, ...]:
        return tuple(d.dof for d in self.dofs)

    @property
    def reference_length(self) -> int:
        return len(self.dofs[0].reference_deg)

    def dof(self, name: str) -> DofSpec:
        for d in self.dofs:
            if d.dof == name:
                return d
        raise KeyError(f"exercise {self.name!r} does not involve DoF {name!r}; "
                       f"involved: {', '.join(self.dof_names)}")

    def keyframe(self, name: str | None = None) -> Keyframe:
        if name is None:
            return self.keyframes[0]
        for k in self.keyframes:
            if k.name == name:
                return k
        raise KeyError(f"exercise {self.name!r} has no keyframe {name!r}; "
                       f"known: {', '.join(k.name for k in self.keyframes)}")

    def cue(self, kind: str, dof: str | None = None) -> str:
        """The cue template for a violation kind, the DoF's override first."""
        if kind not in VIOLATION_KINDS:
            raise KeyError(f"unknown violation kind {kind!r}; known: {', '.join(VIOLATION_KINDS)}")
        if dof is not None and dof in self.dof_names:
            override = self.dof(dof).cues.get(kind)
            if override is not None:
                return override
        return self.cues[kind]

    def arrays(self, keyframe: str | None = None) -> ExerciseArrays:
        return exercise_arrays(self, keyframe)


def exercise_arrays(ex: Exercise, keyframe: str | None = None) -> ExerciseArrays:
    """Arrays in SKEL order for the kernel; intervals are those at `keyframe` (default: first)."""
    kf = ex.keyframe(keyframe).name
    n, length = skel.NUM_DOFS, ex.reference_length
    lo, hi, tol = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    dynamic, static, ref_mask = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    ref = np.zeros((n, length))
    for spec in ex.dofs:
        i = skel.dof_index(spec.dof)
        ref[i] = np.radians(spec.reference_deg)
        ref_mask[i] = True
        if spec.dof_class == "dynamic":
            dynamic[i] = True
            iv = spec.interval(kf)
            if iv is not None:
                lo[i], hi[i] = iv.lo, iv.hi
        else:
            static[i] = True
            tol[i] = spec.tolerance.rad
    lead = ex.driving[0]
    return ExerciseArrays(
        keyframe=kf, interval_lo=lo, interval_hi=hi, dynamic_mask=dynamic, static_mask=static,
        static_tol=tol, reference=ref, reference_mask=ref_mask,
        key_joint_mask=np.isin(np.arange(skel.NUM_JOINTS),
                               [skel.joint_index(j) for j in ex.key_joints]),
        driving_index=skel.dof_index(lead.dof), driving_polarity=lead.polarity,
        tempo_range=np.array([ex.tempo.min_s, ex.tempo.max_s]),
        asymmetry_threshold=(math.radians(ex.asymmetry.threshold_deg) if ex.asymmetry
                             else float("nan")),
        mirror_sign=conventions.mirror_signs(),
    )


def list_exercises(data_dir: pathlib.Path | None = None) -> tuple[str, ...]:
    """Names of the exercises shipped in the library (file stems), sorted."""
    return tuple(sorted(p.stem for p in (data_dir or DATA_DIR).glob("*.toml")))


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> Exercise:
    return load_exercise_file(DATA_DIR / f"{name}.toml")


def load_exercise(name: str) -> Exercise:
    """Load a built-in exercise by name; an unknown name lists the known ones."""
    known = list_exercises()
    if name not in known:
        raise ExerciseError(f"unknown exercise {name!r}; known exercises: {', '.join(known)}")
    return _load_builtin(name)


def load_exercise_file(path) -> Exercise:
    """Load and validate one exercise TOML file."""
    from biocoach_jax.exercises import _parse  # the parser needs the dataclasses above
    return _parse.parse_file(pathlib.Path(path))


def frozen_mapping(d: dict) -> Mapping:
    return types.MappingProxyType(dict(d))

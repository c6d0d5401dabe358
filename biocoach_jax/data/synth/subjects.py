"""Synthetic subjects: body shape, measurements, skill, tempo and side bias.

A `Subject` is everything about the person that stays fixed over a workout:
  * betas (10,) ~ N(0, 0.8) clipped to [-2, 2] (sex-free, the procedural body's shape space);
  * measurements (height, mass, chest, waist, hip) and segment lengths of the procedural body
    (`biocoach_jax.body.ProceduralBody`), so C_morph and the rendered body agree with the betas;
  * skill in [0, 1]: drives the chance of an error per repetition (`error_probability`) and how
    faithfully the reference range of motion is reproduced (`rom_fidelity`);
  * tempo factor: multiplies the exercise's nominal repetition duration;
  * left/right bias (degrees): the left side's keyframe values are offset by it (a tendency to
    favour one side; always well below the asymmetry thresholds on clean repetitions);
  * appearance seed: for the renderer (clothes, skin, background).
How morphology changes targets and cues is in `morphology.py` (and the README beside it).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

NUM_BETAS = 10
BETA_STD = 0.8
BETA_CLIP = 2.0


@functools.lru_cache(maxsize=1)
def _body():
    # Built once per process (about 0.7 s); imported lazily so this module loads without it.
    from biocoach_jax.body import ProceduralBody
    return ProceduralBody()


@dataclasses.dataclass(frozen=True)
class Subject:
    subject_id: str
    betas: tuple[float, ...]            # (10,)
    measurements: dict                  # height_m, mass_kg, chest_m, waist_m, hip_m
    segment_lengths: dict               # metres, see body.procedural.SegmentLengths
    skill: float                        # [0, 1]
    tempo_factor: float                 # x nominal repetition duration
    lr_bias_deg: float                  # left keyframe offset (signed degrees)
    appearance_seed: int

    @property
    def height_m(self) -> float:
        return float(self.measurements["height_m"])

    @property
    def bmi(self) -> float:
        return float(self.measurements["mass_kg"]) / self.height_m ** 2

    @property
    def thigh_ratio(self) -> float:
        """Thigh (hip joint -> knee) length over stature."""
        return float(self.segment_lengths["thigh"]) / self.height_m

    @property
    def error_probability(self) -> float:
        """Chance that a repetition carries an injected error: 0.15 (skill 1) .. 0.55 (skill 0)."""
        return 0.55 - 0.40 * self.skill

    @property
    def rom_fidelity(self) -> float:
        """Fraction of the reference excursion reached on clean repetitions: 0.92 .. 1.04."""
        return 0.92 + 0.12 * self.skill

    def to_json(self) -> dict:
        return {"subject_id": self.subject_id, "betas": [round(float(b), 6) for b in self.betas],
                "measurements": {k: round(float(v), 6) for k, v in self.measurements.items()},
                "segment_lengths": {k: round(float(v), 6) for k, v in self.segment_lengths.items()},
                "bmi": round(self.bmi, 4), "skill": round(self.skill, 6),
                "tempo_factor": round(self.tempo_factor, 6),
                "lr_bias_deg": round(self.lr_bias_deg, 6), "appearance_seed": self.appearance_seed}


def subject_from_betas(betas, subject_id: str = "s", *, skill: float = 0.5,
                       tempo_factor: float = 1.0, lr_bias_deg: float = 0.0,
                       appearance_seed: int = 0) -> Subject:
    """A subject with the given shape (measured on the procedural body) and behaviour."""
    from biocoach_jax.body import measure_body
    b = np.asarray(betas, dtype=np.float64)
    if b.shape != (NUM_BETAS,) or not np.all(np.isfinite(b)):
        raise ValueError(f"subject {subject_id}: betas must be {NUM_BETAS} finite numbers, "
                         f"got shape {b.shape}")
    if not 0.0 <= skill <= 1.0:
        raise ValueError(f"subject {subject_id}: skill must be in [0, 1], got {skill}")
    if not tempo_factor > 0:
        raise ValueError(f"subject {subject_id}: tempo_factor must be > 0, got {tempo_factor}")
    body = _body()
    meas = measure_body(body, b).as_dict()
    seg = body.segment_lengths(b).as_dict()
    return Subject(subject_id, tuple(float(x) for x in b), meas, seg, float(skill),
                   float(tempo_factor), float(lr_bias_deg), int(appearance_seed))


def sample_subject(rng: np.random.Generator, subject_id: str) -> Subject:
    """Draw a subject (module doc gives the distributions)."""
    betas = np.clip(rng.normal(0.0, BETA_STD, NUM_BETAS), -BETA_CLIP, BETA_CLIP)
    return subject_from_betas(
        betas, subject_id,
        skill=float(rng.beta(2.0, 2.0)),
        tempo_factor=float(np.exp(rng.normal(0.0, 0.15))),
        lr_bias_deg=float(rng.uniform(-3.0, 3.0)),
        appearance_seed=int(rng.integers(0, 2**31 - 1)))

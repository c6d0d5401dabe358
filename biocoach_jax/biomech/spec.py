"""KernelSpec: what the biomech kernel analyses (arrays + a few static ints), and its builder.

A KernelSpec is a jax pytree (a frozen dataclass registered with jax.tree_util): the array
fields are traced, the meta fields are static (they fix shapes or filter widths), so changing
an interval or a reference does not recompile, changing ref_len does.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import skel
from .align import DEFAULT_QUALITY_WEIGHTS
from .constraints import bilateral_partners

D = skel.NUM_DOFS
_META = ("ref_len", "max_cycles", "max_peaks", "sigma_s", "min_period_s")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "drive_weights", "polarity", "selected", "dynamic", "static", "key_lo", "key_hi",
        "static_tol", "references", "ref_mask", "tempo_min_s", "tempo_max_s", "asym_threshold",
        "limits", "partner", "partner_sign", "prominence_frac", "max_period_s", "rest_tol_frac",
        "onset_frac", "amp_frac", "quality_weights",
    ],
    meta_fields=list(_META),
)
@dataclasses.dataclass(frozen=True)
class KernelSpec:
    drive_weights: jax.Array    # (46,) f32: driving signal = smoothed poses @ weights (one-hot = one DoF)
    polarity: jax.Array         # () i32: +1 peaks are maxima of the driving signal, -1 minima, 0 auto
    selected: jax.Array         # (46,) bool: DoFs analysed (scores, constraints)
    dynamic: jax.Array          # (46,) bool: checked at keyframes against [key_lo, key_hi]
    static: jax.Array           # (46,) bool: checked for stability over each cycle
    key_lo: jax.Array           # (46,) f32 radians, NaN = no lower bound
    key_hi: jax.Array           # (46,) f32 radians, NaN = no upper bound
    static_tol: jax.Array       # (46,) f32 radians: allowed max |x(t) - x(cycle start)|
    references: jax.Array       # (46, R) f32 radians: reference cycle per DoF
    ref_mask: jax.Array         # (46,) bool: DoFs that have a reference (quality scored)
    tempo_min_s: jax.Array      # () f32 seconds: shorter cycles -> tempo_fast
    tempo_max_s: jax.Array      # () f32 seconds: longer cycles -> tempo_slow
    asym_threshold: jax.Array   # () f32 radians: |right - left| at the keyframe above -> asymmetry
    limits: jax.Array           # (46, 2) f32 radians anatomical [lo, hi] (inf = open)
    partner: jax.Array          # (46,) i32 left partner of each right DoF, -1 otherwise
    partner_sign: jax.Array     # (46,) f32 +1, or -1 for mirrored sign conventions
    prominence_frac: jax.Array  # () f32 keyframe prominence >= frac * robust ROM
    max_period_s: jax.Array     # () f32 cycles longer than this are pseudo-detections (dropped)
    rest_tol_frac: jax.Array    # () f32 completeness: start/end within frac * ROM of rest
    onset_frac: jax.Array       # () f32 leading/trailing boundary: within frac * ROM of the minimum
    amp_frac: jax.Array         # () f32 completeness: amplitude >= frac * median amplitude
    quality_weights: jax.Array  # (4,) f32 cos, corr, vel, rom weights (align.py)
    ref_len: int = 64           # static R: resampled cycle length
    max_cycles: int = 16        # static C: cycle slots per session
    max_peaks: int = 32         # static P: peak candidate slots per driving signal
    sigma_s: float = 0.1        # static Gaussian sigma (seconds)
    min_period_s: float = 0.5   # static: keyframes at least this far apart (seconds)

    @property
    def drive_dof(self):
        """Index of the DoF with the largest |weight| (where cycle-level violations are put)."""
        return jnp.argmax(jnp.abs(self.drive_weights)).astype(jnp.int32)

    def constraint_params(self) -> dict:
        return dict(selected=self.selected, dynamic=self.dynamic, static=self.static,
                    key_lo=self.key_lo, key_hi=self.key_hi, static_tol=self.static_tol,
                    asym_threshold=self.asym_threshold, limits=self.limits,
                    partner=self.partner, partner_sign=self.partner_sign,
                    tempo_min_s=self.tempo_min_s, tempo_max_s=self.tempo_max_s,
                    drive_dof=self.drive_dof)


def _vec(v, fill, dtype, name):
    a = np.full(D, fill, dtype) if v is None else np.asarray(v, dtype)
    if a.shape != (D,):
        raise ValueError(f"make_spec: {name} must have shape ({D},), got {a.shape}")
    return a


def make_spec(drive, *, polarity: int = 0, selected=None, dynamic=None, static=None,
              key_lo=None, key_hi=None, static_tol=None, references=None, ref_mask=None,
              tempo_s=(0.0, np.inf), asym_threshold=np.deg2rad(15.0), limits_source="skel+hsmr",
              prominence_frac=0.3, max_period_s=10.0, rest_tol_frac=0.25, onset_frac=0.05,
              amp_frac=0.5, quality_weights=DEFAULT_QUALITY_WEIGHTS, ref_len=64, max_cycles=16,
              max_peaks=32, sigma_s=0.1, min_period_s=0.5) -> KernelSpec:
    """Build a KernelSpec with defaults. drive: a DoF name, index, or (46,) weights.

    Masks default to: selected = all, dynamic = selected, static = none; bounds open; static
    tolerance 10 degrees; no references (quality NaN-free but zero, ref_mask all False).
    """
    if isinstance(drive, (str, int, np.integer)):
        w = np.zeros(D, np.float32)
        w[skel.dof_index(drive) if isinstance(drive, str) else int(drive)] = 1.0
    else:
        w = _vec(drive, 0.0, np.float32, "drive weights")
    if not np.any(w != 0):
        raise ValueError("make_spec: driving weights are all zero")
    if polarity not in (-1, 0, 1):
        raise ValueError(f"make_spec: polarity must be -1, 0 or +1, got {polarity!r}")
    sel = _vec(selected, True, bool, "selected")
    dyn = _vec(dynamic, True, bool, "dynamic") & sel if dynamic is None else _vec(dynamic, True, bool, "dynamic")
    sta = _vec(static, False, bool, "static")
    if np.any(dyn & sta):
        raise ValueError("make_spec: a DoF cannot be both dynamic and static: "
                         + ", ".join(np.asarray(skel.DOF_NAMES)[dyn & sta]))
    refs = np.zeros((D, ref_len), np.float32) if references is None else np.asarray(references, np.float32)
    if refs.shape != (D, ref_len):
        raise ValueError(f"make_spec: references must have shape ({D}, {ref_len}), got {refs.shape}")
    rmask = _vec(ref_mask, references is not None, bool, "ref_mask")
    if tempo_s[0] > tempo_s[1]:
        raise ValueError(f"make_spec: tempo range must be (min_s, max_s) with min <= max, got {tempo_s}")
    for name, v in (("ref_len", ref_len), ("max_cycles", max_cycles), ("max_peaks", max_peaks)):
        if int(v) < 2:
            raise ValueError(f"make_spec: {name} must be an int >= 2, got {v!r}")
    if not (sigma_s > 0 and min_period_s > 0):
        raise ValueError(f"make_spec: sigma_s and min_period_s must be > 0, got {sigma_s}, {min_period_s}")
    lim = skel.limits(limits_source)
    partner, psign = bilateral_partners(lim)
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return KernelSpec(
        drive_weights=f32(w), polarity=jnp.asarray(polarity, jnp.int32), selected=jnp.asarray(sel),
        dynamic=jnp.asarray(dyn), static=jnp.asarray(sta),
        key_lo=f32(_vec(key_lo, np.nan, np.float32, "key_lo")),
        key_hi=f32(_vec(key_hi, np.nan, np.float32, "key_hi")),
        static_tol=f32(_vec(static_tol, np.deg2rad(10.0), np.float32, "static_tol")),
        references=f32(refs), ref_mask=jnp.asarray(rmask),
        tempo_min_s=f32(tempo_s[0]), tempo_max_s=f32(tempo_s[1]), asym_threshold=f32(asym_threshold),
        limits=f32(lim), partner=jnp.asarray(partner), partner_sign=f32(psign),
        prominence_frac=f32(prominence_frac), max_period_s=f32(max_period_s),
        rest_tol_frac=f32(rest_tol_frac), onset_frac=f32(onset_frac), amp_frac=f32(amp_frac),
        quality_weights=f32(quality_weights), ref_len=int(ref_len), max_cycles=int(max_cycles),
        max_peaks=int(max_peaks), sigma_s=float(sigma_s), min_period_s=float(min_period_s),
    )

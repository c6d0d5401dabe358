"""Constraint checks per cycle and DoF, from arrays only, plus host-side violation records.

For every cycle c, DoF d and kind k (KINDS order) the kernel returns a flag, the measured value,
the bounds it was compared with (NaN = open) and the frame of the measurement:

- below_interval / above_interval: dynamic DoFs, value at the cycle's keyframe vs [lo, hi].
- asymmetry: on the right DoF of each (right, left) pair whose two DoFs are both selected,
  |v_r - sign * v_l| at the keyframe vs the threshold (hi). sign = -1 for pairs whose SKEL limits
  are mirror images (lo_l, hi_l) = (-hi_r, -lo_r) with lo_r != -hi_r (e.g. shoulder_*_x), so a
  symmetric movement reads as symmetric.
- instability: static DoFs, max |x(t) - x(start)| over the cycle vs a tolerance (hi).
- anatomical_limit: any frame of the cycle outside the DoF's limits (value = the most
  exceeding angle, bounds = the limits).
- tempo_fast / tempo_slow: cycle duration in SECONDS vs [min_s, max_s], on the driving DoF.
- incomplete: a valid cycle flagged incomplete by cycles.py, on the driving DoF.
Values are radians except the tempo kinds (seconds).
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import skel

KINDS: tuple[str, ...] = ("below_interval", "above_interval", "asymmetry", "instability",
                          "anatomical_limit", "tempo_fast", "tempo_slow", "incomplete")
K_BELOW, K_ABOVE, K_ASYM, K_INSTAB, K_LIMIT, K_FAST, K_SLOW, K_INCOMPLETE = range(len(KINDS))


class ViolationArrays(NamedTuple):
    """Per (cycle, DoF, kind) arrays, shape (C, D, K) (batched: (B, C, D, K))."""
    flags: jax.Array   # bool
    value: jax.Array   # float32 measured value (radians; seconds for tempo kinds)
    lo: jax.Array      # float32 lower bound, NaN = none
    hi: jax.Array      # float32 upper bound, NaN = none
    frame: jax.Array   # int32 frame of the measurement


@dataclasses.dataclass(frozen=True)
class Violation:
    """One violation for people/LLM text. value in radians (seconds for tempo kinds)."""
    cycle: int | None
    dof: str
    kind: str
    value: float
    lo: float | None
    hi: float | None
    time_s: float


def bilateral_partners(limits=None) -> tuple[np.ndarray, np.ndarray]:
    """(46,) index of the left partner of each right DoF (-1 otherwise), (46,) sign (+1/-1)."""
    lim = skel.limits() if limits is None else np.asarray(limits)
    partner = np.full(skel.NUM_DOFS, -1, np.int32)
    sign = np.ones(skel.NUM_DOFS, np.float32)
    for r_name, l_name in skel.bilateral_dof_pairs():
        r, l = skel.dof_index(r_name), skel.dof_index(l_name)
        partner[r] = l
        (lr, hr), (ll, hl) = lim[r], lim[l]
        finite = np.isfinite([lr, hr, ll, hl]).all()
        if finite and math.isclose(ll, -hr) and math.isclose(hl, -lr) and not math.isclose(lr, -hr):
            sign[r] = -1.0
    return partner, sign


def _cycle_checks(x, start, end, key, complete, valid, p, fps: float):
    """All kinds for one cycle: x (T, D) smoothed poses; p = dict of spec arrays."""
    T, D = x.shape
    t = jnp.arange(T)
    in_cyc = ((t >= start) & (t <= end))[:, None]
    nan = jnp.full((D,), jnp.nan, jnp.float32)
    kf = jnp.full((D,), jnp.maximum(key, 0), jnp.int32)
    kv = x[jnp.maximum(key, 0)]
    sel, dyn, sta = p["selected"], p["dynamic"] & p["selected"], p["static"] & p["selected"]
    lo, hi = p["key_lo"], p["key_hi"]
    below = dyn & (kv < lo)        # comparisons with NaN are False: open bounds never fire
    above = dyn & (kv > hi)
    partner, psign = p["partner"], p["partner_sign"]
    pv = kv[jnp.maximum(partner, 0)] * psign
    asym_v = jnp.abs(kv - pv)
    asym = (partner >= 0) & sel & sel[jnp.maximum(partner, 0)] & (asym_v > p["asym_threshold"])
    dev = jnp.where(in_cyc, jnp.abs(x - x[jnp.maximum(start, 0)]), -jnp.inf)
    dev_t = jnp.argmax(dev, axis=0).astype(jnp.int32)
    dev_v = jnp.max(dev, axis=0)
    instab = sta & (dev_v > p["static_tol"])
    llo, lhi = p["limits"][:, 0], p["limits"][:, 1]
    exceed = jnp.where(in_cyc, jnp.maximum(llo - x, x - lhi), -jnp.inf)
    ex_t = jnp.argmax(exceed, axis=0).astype(jnp.int32)
    limit = sel & (jnp.max(exceed, axis=0) > 0)
    on_drive = jnp.arange(D) == p["drive_dof"]
    dur = jnp.full((D,), (end - start).astype(jnp.float32) / fps)
    tmin, tmax = p["tempo_min_s"], p["tempo_max_s"]
    fast, slow = on_drive & (dur < tmin), on_drive & (dur > tmax)
    inc = on_drive & ~complete
    full = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (D,))  # noqa: E731
    s0 = jnp.full((D,), jnp.maximum(start, 0), jnp.int32)
    flags = jnp.stack([below, above, asym, instab, limit, fast, slow, inc], axis=-1) & valid
    value = jnp.stack([kv, kv, asym_v, dev_v, x[ex_t, jnp.arange(D)], dur, dur, kv], axis=-1)
    los = jnp.stack([lo, lo, nan, nan, llo, full(tmin), full(tmin), nan], axis=-1)
    his = jnp.stack([hi, hi, full(p["asym_threshold"]), p["static_tol"], lhi, full(tmax),
                     full(tmax), nan], axis=-1)
    frame = jnp.stack([kf, kf, kf, dev_t, ex_t, s0, s0, kf], axis=-1)
    return ViolationArrays(flags, value, los.astype(jnp.float32), his.astype(jnp.float32), frame)


def check_constraints(x, cycles, params: dict, fps: float) -> ViolationArrays:
    """x (T, D) smoothed radians, cycles (a CycleResult), params: arrays (see spec.constraint_params)."""
    fn = jax.vmap(_cycle_checks, in_axes=(None, 0, 0, 0, 0, 0, None, None))
    return fn(x, cycles.start, cycles.end, cycles.key, cycles.complete, cycles.valid, params, fps)


def _opt(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def violations_to_records(violations: ViolationArrays, fps: float,
                          dof_names=skel.DOF_NAMES) -> list[Violation]:
    """Host side: one session's (C, D, K) arrays -> Violation records, by time then cycle/DoF/kind."""
    flags = np.asarray(violations.flags)
    if flags.ndim != 3 or flags.shape[1] != len(dof_names) or flags.shape[2] != len(KINDS):
        raise ValueError(f"violations_to_records: expected one session's (C, {len(dof_names)}, "
                         f"{len(KINDS)}) arrays, got flags of shape {flags.shape}")
    value, lo, hi, frame = (np.asarray(a) for a in violations[1:])
    out = [Violation(int(c), dof_names[d], KINDS[k], float(value[c, d, k]), _opt(lo[c, d, k]),
                     _opt(hi[c, d, k]), float(frame[c, d, k]) / fps)
           for c, d, k in zip(*np.nonzero(flags))]
    return sorted(out, key=lambda v: (v.time_s, v.cycle, dof_names.index(v.dof), KINDS.index(v.kind)))

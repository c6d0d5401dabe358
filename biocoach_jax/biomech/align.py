"""Cycle resampling to a reference length and the cycle quality score.

`cycle_quality(a, r)` compares a resampled cycle a (R,) with a reference r (R,) through four
terms, each in [0, 1]:

  cos   = max(0, cosine(a - mean(r), r - mean(r)))    shape AND offset: the reference's mean is
                                                       removed from both, so a constant bias lowers it
  corr  = max(0, pearson(a, r))                        shape only (each curve's own mean removed)
  vel   = 1 - ||da - dr|| / (||da|| + ||dr||)          velocity consistency, d = first differences
  rom   = min(rom_a, rom_r) / max(rom_a, rom_r)        amplitude ratio, rom = max - min

  score = (w_cos*cos + w_corr*corr + w_vel*vel + w_rom*rom) / (w_cos + w_corr + w_vel + w_rom)

Default weights: 0.25 each (DEFAULT_QUALITY_WEIGHTS). Degenerate cases (a term's denominator
below 1e-8, e.g. a flat curve) score 1 when both curves are degenerate in the same way, else 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_QUALITY_WEIGHTS = (0.25, 0.25, 0.25, 0.25)  # cos, corr, vel, rom
_EPS = 1e-8


def resample_cycle(signal, start, end, ref_len: int):
    """Linearly resample signal[start..end] (inclusive) of a (T,) signal to ref_len points."""
    T = signal.shape[-1]
    start = jnp.clip(start, 0, T - 1)
    end = jnp.clip(end, start, T - 1)
    pos = start + (end - start).astype(jnp.float32) * jnp.linspace(0.0, 1.0, ref_len)
    i0 = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, T - 1)
    i1 = jnp.minimum(i0 + 1, end)
    frac = pos - i0.astype(jnp.float32)
    return signal[i0] * (1.0 - frac) + signal[i1] * frac


def resample_cycles(poses, start, end, ref_len: int):
    """poses (T, D), cycles (C,) -> (C, D, R) resampled curves."""
    per_dof = jax.vmap(resample_cycle, in_axes=(1, None, None, None))
    return jax.vmap(per_dof, in_axes=(None, 0, 0, None))(poses, start, end, ref_len)


def _cos(u, v):
    nu, nv = jnp.linalg.norm(u), jnp.linalg.norm(v)
    degenerate = (nu < _EPS) | (nv < _EPS)
    c = jnp.dot(u, v) / jnp.maximum(nu * nv, _EPS * _EPS)
    return jnp.where(degenerate, jnp.where((nu < _EPS) & (nv < _EPS), 1.0, 0.0),
                     jnp.clip(c, 0.0, 1.0))


def quality_terms(cycle, reference):
    """(4,) terms [cos, corr, vel, rom] in [0, 1] (see module doc)."""
    a, r = cycle.astype(jnp.float32), reference.astype(jnp.float32)
    cos = _cos(a - r.mean(), r - r.mean())
    corr = _cos(a - a.mean(), r - r.mean())
    da, dr = jnp.diff(a), jnp.diff(r)
    den = jnp.linalg.norm(da) + jnp.linalg.norm(dr)
    vel = jnp.where(den < _EPS, 1.0, 1.0 - jnp.linalg.norm(da - dr) / jnp.maximum(den, _EPS))
    ra, rr = a.max() - a.min(), r.max() - r.min()
    hi = jnp.maximum(ra, rr)
    rom = jnp.where(hi < _EPS, 1.0, jnp.minimum(ra, rr) / jnp.maximum(hi, _EPS))
    return jnp.clip(jnp.stack([cos, corr, vel, rom]), 0.0, 1.0)


def cycle_quality(cycle, reference, weights=DEFAULT_QUALITY_WEIGHTS):
    """Score in [0, 1]: weighted mean of quality_terms (formula in the module doc)."""
    w = jnp.asarray(weights, jnp.float32)
    return jnp.dot(quality_terms(cycle, reference), w) / jnp.maximum(w.sum(), _EPS)


def quality_matrix(curves, references, dof_mask, weights=DEFAULT_QUALITY_WEIGHTS):
    """curves (C, D, R), references (D, R), dof_mask (D,) -> (per (C, D) score, per-cycle mean).

    Unselected DoFs get score 0 and are left out of the per-cycle mean (NaN when none selected).
    """
    per_dof = jax.vmap(cycle_quality, in_axes=(0, 0, None))
    q = jax.vmap(per_dof, in_axes=(0, None, None))(curves, references, weights)
    q = jnp.where(dof_mask[None, :], q, 0.0)
    n = jnp.sum(dof_mask)
    overall = jnp.where(n > 0, q.sum(axis=1) / jnp.maximum(n, 1), jnp.nan)
    return q, overall

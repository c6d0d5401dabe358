"""Repetition cycles from a driving signal: polarity, keyframes (peaks), boundaries, completeness.

Given the smoothed driving signal s (one DoF, or a weighted sum of DoFs) of valid length L:

1. Range of motion: rom = q95 - q05 of s over the valid frames (robust to spikes).
2. Polarity: +1 keeps s, -1 uses -s, 0 = auto. Auto rule: the resting level is the median of the
   first 0.25 s; the movement's excursions go toward the robust extreme (q05 or q95) that is
   farther from it, and that direction is made positive (ties -> +1). A recording that starts
   mid-repetition should pass the polarity explicitly.
3. Keyframes = peaks of the oriented signal y (only those >= min(y) + the threshold below are
   candidates) at least min_period_s apart (scipy's distance
   rule; see peaks.py) with an edge-aware prominence >= prominence_frac * rom: scipy's
   prominence, except that a peak with no higher sample after it up to the recording's end is
   judged on its left drop only (and one with none before it, on its right drop), so a last
   repetition cut off by the end of the recording is still found (then marked incomplete).
4. Boundaries: between consecutive keyframes, the lowest point of y between them (the first one
   on ties). Before the first keyframe: the last frame at or before it where y is within
   onset_frac * rom of the minimum of y on [0, key]; after the last keyframe: the first such
   frame on [key, L-1] (so leading/trailing rest is not counted in the cycle).
5. Pseudo-detections are dropped: cycles longer than max_period_s (seconds).
6. Incomplete cycles are kept but flagged (complete=False): start or end farther than
   rest_tol_frac * rom above the resting level (q05 of y) - e.g. the recording ends mid-rep or
   the stand-up is unfinished - or amplitude y[key] - max(y[start], y[end]) below
   amp_frac * the median amplitude of the session's cycles.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .ops import compact_small, extreme_quantiles, frame_mask, masked_median, materialize_rows
from .peaks import find_peaks_and_sides


class CycleResult(NamedTuple):
    """Fixed-size cycle list (C,), in time order; unused slots have valid=False and index -1."""
    start: jax.Array        # (C,) int32 first frame of the cycle
    end: jax.Array          # (C,) int32 last frame of the cycle (inclusive)
    key: jax.Array          # (C,) int32 keyframe (peak of the oriented driving signal)
    complete: jax.Array     # (C,) bool, False for incomplete (still valid) cycles
    valid: jax.Array        # (C,) bool
    count: jax.Array        # () int32 valid cycles
    polarity: jax.Array     # () int32 +1 / -1 actually used
    rom: jax.Array          # () float32 robust range of motion of the driving signal
    n_keyframes: jax.Array  # () int32 keyframes found (cycles are exact iff <= C)
    n_candidates: jax.Array  # () int32 peak candidates above min + threshold (exact iff <= max_peaks)


_QS = (0.0, 0.05, 0.95)   # order statistics the cycle logic reads (min, robust rest / top)


def _polarity(s, m, lo, hi, fps: float):
    """auto_polarity from the q05 / q95 (lo, hi) of the valid samples of s."""
    n0 = min(max(1, int(round(0.25 * fps))), s.shape[-1])
    rest = masked_median(s[..., :n0], m[..., :n0])      # masked-out samples never count
    return jnp.where(hi - rest >= rest - lo, 1, -1).astype(jnp.int32)


def auto_polarity(s, length, fps: float):
    """+1 or -1: the sign that makes excursions away from the starting (rest) level positive."""
    m = frame_mask(length, s.shape[-1])
    q = extreme_quantiles(s, m, jnp.sum(m, axis=-1), (0.05, 0.95))
    return _polarity(s, m, q[..., 0], q[..., 1], fps)


def _take(x, idx):
    """x[..., idx] for indices idx (..., K), clipped into range (callers mask unused slots)."""
    return jnp.take_along_axis(x, jnp.clip(idx, 0, x.shape[-1] - 1), axis=-1)


def _gap_bounds(y, m, key, has, n, L, onset):
    """Cycle bounds from the C keyframes (..., C) (first n valid): one per gap g in 0..C, where
    gap 0 = [0, key[0]], gap g = [key[g-1], key[g]], gap n = [key[n-1], L-1] (module doc, step 4).

    A keyframe is never the lowest point of a gap next to it (a peak has a strictly lower sample
    on both sides inside each of its gaps), so each frame can be given to a single gap (frames in
    (key[g-1], key[g]] -> g) and the per-gap minima / first argmins are two segment reductions
    over the frames (O(T), one scatter each) instead of masked (C+1, T) reductions.
    """
    T = y.shape[-1]
    C = key.shape[-1]
    t = jnp.arange(T, dtype=jnp.int32)
    gid = jnp.sum((key[..., None, :] < t[:, None]) & has[..., None, :], axis=-1, dtype=jnp.int32)
    lead_shape = y.shape[:-1]
    rows = jnp.arange(int(np.prod(lead_shape)), dtype=jnp.int32).reshape(lead_shape + (1,))
    seg = jnp.where(m, rows * (C + 2) + gid, rows * (C + 2) + C + 1).reshape(-1)     # C+1: padding
    nseg = rows.size * (C + 2)
    gmin = jnp.full((nseg,), jnp.inf, y.dtype).at[seg].min(y.reshape(-1), mode="promise_in_bounds")
    at_min = y.reshape(-1) == gmin[seg]
    first = jnp.full((nseg,), T, jnp.int32).at[seg].min(
        jnp.where(at_min, jnp.broadcast_to(t, y.shape).reshape(-1), T), mode="promise_in_bounds")
    gmin, valley = gmin.reshape(lead_shape + (C + 2,)), first.reshape(lead_shape + (C + 2,))
    # Lead (gap 0): the last frame <= key[0] within onset of the gap minimum; trail (gap n): the
    # first frame >= key[n-1] within onset of its minimum.
    e = lambda v: jnp.asarray(v)[..., None]
    last_key = _take(key, e(n) - 1)[..., 0]
    hi0 = jnp.where(n > 0, key[..., 0], L - 1)
    lo_n = jnp.where(n > 0, last_key, 0)
    near0 = m & (t <= e(hi0)) & (y <= e(gmin[..., 0] + onset))
    near_n = m & (t >= e(lo_n)) & (y <= e(_take(gmin, e(n))[..., 0] + onset))
    lead = jnp.max(jnp.where(near0, t, -1), axis=-1)
    trail = jnp.min(jnp.where(near_n, t, T), axis=-1)
    gi = jnp.arange(C + 1, dtype=jnp.int32)
    return jnp.where(gi == 0, e(lead), jnp.where(gi == e(n), e(trail), valley[..., :C + 1]))


def detect_cycles(s, length, fps: float, *, polarity=0, prominence_frac=0.3, min_period_s=0.5,
                  max_period_s=10.0, rest_tol_frac=0.25, onset_frac=0.05, amp_frac=0.5, max_cycles: int = 16,
                  max_peaks: int = 32):
    """Cycles of driving signals s (..., T) with `length` (...,) valid frames (see module doc).

    fps, min_period_s, max_cycles, max_peaks are static; the other parameters may be traced
    (scalars or arrays over the batch dims). Batch dims are handled natively (one flat batch for
    the peak search: no vmap, whose batched scatters / gathers are slow on CPU); vmap also works.
    """
    T = s.shape[-1]
    t = jnp.arange(T, dtype=jnp.int32)
    L = jnp.broadcast_to(jnp.asarray(length, jnp.int32), s.shape[:-1])
    m = t < L[..., None]
    e = lambda v: jnp.asarray(v)[..., None]             # a per-series value against (..., K)
    pol = jnp.asarray(polarity, jnp.int32)
    n_ok = jnp.sum(m, axis=-1)
    # One selection of the extreme order statistics serves the polarity and the quantiles of y = +-s.
    q_pos, q_neg = extreme_quantiles(s, m, n_ok, _QS, both_signs=True)
    auto = _polarity(s, m, q_pos[..., 1], q_pos[..., 2], fps)
    pol = materialize_rows(jnp.where(pol == 0, auto, jnp.sign(pol)).astype(jnp.int32), s)
    q = jnp.where(e(pol < 0), q_neg, q_pos)
    y = s * e(pol).astype(s.dtype)
    rest, rom = q[..., 1], q[..., 2] - q[..., 1]
    thr = jnp.maximum(prominence_frac * rom, 1e-6)
    # A keyframe rises >= thr above some valid sample, so peaks lower than min(y) + thr can be
    # dropped before the slots are filled: exact (the distance rule ranks by height, so lower
    # peaks never decide a higher one's fate) and it keeps noise at rest from using up slots.
    pk, sd, top = find_peaks_and_sides(y, L, height=q[..., 0] + thr, distance=max(1.0, min_period_s * fps),
                                       max_peaks=max_peaks)
    drop = jnp.where(sd.right_open, top - sd.left_min,
                     jnp.where(sd.left_open, top - sd.right_min, pk.prominences))
    key, has, n_key = compact_small(pk.valid & (drop >= e(thr)), pk.indices, max_peaks, -1)
    C = max_cycles
    key, has = key[..., :C], has[..., :C]
    n = jnp.minimum(n_key, C)
    bound = _gap_bounds(y, m, key, has, n, L, onset_frac * rom)
    start, end = bound[..., :-1], bound[..., 1:]
    dur = (end - start).astype(jnp.float32) / fps
    valid = has & (dur <= e(max_period_s))
    ys_, ye_, yk = (_take(y, i) for i in (start, end, key))
    tol = e(rest_tol_frac * rom)
    at_rest = (ys_ - e(rest) <= tol) & (ye_ - e(rest) <= tol)
    amp = yk - jnp.maximum(ys_, ye_)
    complete = at_rest & (amp >= e(amp_frac * masked_median(amp, valid)))
    (start, end, key, complete), ok, count = compact_small(
        valid, (start, end, key, complete), C, (-1, -1, -1, False))
    return CycleResult(start, end, key, complete & ok, ok, count, pol, rom, n_key, pk.n_candidates)

"""Peak finding with the semantics of `scipy.signal.find_peaks`, vectorised and fixed-shape.

Pipeline (the order scipy uses): local maxima -> height filter -> distance filter ->
prominence (scipy's `peak_prominences`, wlen=None) -> prominence filter.

- Local maxima: a maximal run of equal samples [l, r] with x[l-1] < x[l], x[r+1] < x[r],
  l >= 1, r <= L-2 is one peak at (l + r) // 2 (flat plateaus give their middle, rounded down).
- Distance: a peak is kept iff no *kept* peak of higher priority lies closer than
  ceil(distance) samples. Priority = height; equal heights are ranked by index (the later peak
  first), which is what scipy does whenever numpy's argsort is stable on the input (numpy's
  default sort is not stable, so scipy itself has no fixed rule for exact ties). The greedy rule
  is solved as a fixed point (Jacobi iteration over the candidates' neighbours) instead of a loop.
- Prominence: for peak p, the left base is the lowest point between p and the nearest sample to
  its left that is strictly higher (or the series start); among equal minima the one nearest p.
  Same on the right. Prominence = x[p] - max(left_min, right_min). The nearest-higher search is
  two-level (blocks of ~sqrt(T) samples), so it costs O(P (T/S + S)) per series, not O(P T).

Candidates (local maxima passing `height`) are packed into `max_peaks` slots before the distance
and prominence steps; results are exact when their number is <= max_peaks (`n_candidates` tells).
Inputs must be finite. Padding frames (t >= length) never influence results.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .ops import compact


class PeakResult(NamedTuple):
    """Fixed-size peak list (P,) per series, sorted by index; unused slots have valid=False."""
    indices: jax.Array       # (P,) int32 sample index, -1 in unused slots
    valid: jax.Array         # (P,) bool
    prominences: jax.Array   # (P,) float32, 0 in unused slots
    left_bases: jax.Array    # (P,) int32, -1 in unused slots
    right_bases: jax.Array   # (P,) int32, -1 in unused slots
    count: jax.Array         # () int32 number of peaks returned
    n_candidates: jax.Array  # () int32 local maxima passing `height` (exact iff <= P)


def _interval(cond, name):
    """scipy-style condition: None, a minimum, or a (min, max) pair (either may be None)."""
    if cond is None:
        return None, None
    if isinstance(cond, (tuple, list)):
        if len(cond) != 2:
            raise ValueError(f"find_peaks: {name} must be a number or a (min, max) pair, got {cond!r}")
        return cond[0], cond[1]
    return cond, None


def _in_interval(v, lo, hi):
    ok = jnp.ones(v.shape, bool)
    if lo is not None:
        ok &= v >= lo
    if hi is not None:
        ok &= v <= hi
    return ok


def _local_maxima(x, L):
    """(T,) bool: sample i is the (rounded-down) middle of a strict local-maximum plateau."""
    T = x.shape[0]
    idx = jnp.arange(T)
    starts = jnp.concatenate([jnp.array([True]), x[1:] != x[:-1]])
    ends = jnp.concatenate([x[:-1] != x[1:], jnp.array([True])])
    l = jax.lax.cummax(jnp.where(starts, idx, 0))
    r = jax.lax.cummin(jnp.where(ends, idx, T - 1), reverse=True)
    rises = jnp.concatenate([jnp.array([False]), x[:-1] < x[1:]])   # x[i-1] < x[i]
    falls = jnp.concatenate([x[1:] < x[:-1], jnp.array([False])])   # x[i+1] < x[i]
    # A run that reaches frame L-1 (or beyond, into padding) is never a peak: r <= L-2.
    return (idx == (l + r) // 2) & (l >= 1) & (r <= L - 2) & rises[l] & falls[r]


def _distance_keep(pos, h, valid, d: int):
    """scipy's greedy distance rule as a fixed point over the P packed candidates (module doc).

    Candidates are sorted by position and at least one sample apart, so only the d-1 slots on
    each side can be closer than d samples: the relation is built from 2(d-1) shifts, O(P d).
    """
    P = pos.shape[0]
    w = min(d - 1, P - 1)
    if w < 1:
        return valid
    k = jnp.arange(P)
    offs = [o for o in range(-w, w + 1) if o != 0]
    nb = jnp.stack([jnp.clip(k + o, 0, P - 1) for o in offs])          # (2w, P) neighbour slots
    inside = jnp.stack([(k + o >= 0) & (k + o < P) for o in offs])
    hn, pn = h[nb], pos[nb]
    higher = (hn > h) | ((hn == h) & (nb > k))
    blocks = inside & valid[nb] & valid & higher & (jnp.abs(pn - pos) < d)

    def step(state):
        keep, _ = state
        new = valid & ~jnp.any(blocks & keep[nb], axis=0)
        return new, jnp.any(new != keep)

    keep, _ = jax.lax.while_loop(lambda s: s[1], step, (valid, jnp.array(True)))
    return keep


def _block_size(T: int) -> int:
    return max(4, 2 ** round(math.log2(max(math.sqrt(T), 1.0))))


def _left_base(x, p):
    """For peaks p (P,) of x (T,): (min of x over (nearest-higher-left, p], its index nearest p).

    Two-level search: the own block of p, then whole-block maxima/minima, then one block row.
    """
    T = x.shape[0]
    S = _block_size(T)
    nb = -(-T // S)
    xb = jnp.pad(x, (0, nb * S - T)).reshape(nb, S)
    bmax, bmin = xb.max(axis=1), xb.min(axis=1)
    cols, bidx = jnp.arange(S), jnp.arange(nb)
    v = x[p][:, None]
    bp = p // S
    own, own_pos = xb[bp], bp[:, None] * S + cols
    own_in = own_pos <= p[:, None]
    own_above = own_in & (own > v)
    has_own = own_above.any(axis=1)
    # Nearest block left of p's block holding a sample higher than the peak (-1: none).
    jb = jnp.max(jnp.where((bidx < bp[:, None]) & (bmax > v), bidx, -1), axis=1)
    row, row_pos = xb[jnp.maximum(jb, 0)], jnp.maximum(jb, 0)[:, None] * S + cols
    far_ok = (~has_own & (jb >= 0))[:, None]
    lb = jnp.where(has_own, jnp.max(jnp.where(own_above, own_pos, -1), axis=1),
                   jnp.max(jnp.where(far_ok & (row > v), row_pos, -1), axis=1))
    lb_block = jnp.where(has_own, bp, jb)
    # The open-closed range (lb, p] = part of p's block + whole blocks + part of lb's block.
    a_mask = own_in & (own_pos > lb[:, None])
    b_mask = (bidx > lb_block[:, None]) & (bidx < bp[:, None])
    c_mask = far_ok & (row_pos > lb[:, None])
    inf = jnp.array(jnp.inf, x.dtype)
    vmin = jnp.minimum(jnp.min(jnp.where(a_mask, own, inf), axis=1),
                       jnp.minimum(jnp.min(jnp.where(b_mask, bmin, inf), axis=1),
                                   jnp.min(jnp.where(c_mask, row, inf), axis=1)))[:, None]
    base_a = jnp.max(jnp.where(a_mask & (own == vmin), own_pos, -1), axis=1)
    jmin = jnp.max(jnp.where(b_mask & (bmin == vmin), bidx, -1), axis=1)
    rowb = xb[jnp.maximum(jmin, 0)]
    base_b = jnp.max(jnp.where((jmin >= 0)[:, None] & (rowb == vmin),
                               jnp.maximum(jmin, 0)[:, None] * S + cols, -1), axis=1)
    base_c = jnp.max(jnp.where(c_mask & (row == vmin), row_pos, -1), axis=1)
    base = jnp.where(base_a >= 0, base_a, jnp.where(base_b >= 0, base_b, base_c))
    return vmin[:, 0], base, lb < 0


class PeakSides(NamedTuple):
    """Both sides of each peak: lowest point before the nearest strictly higher sample."""
    left_min: jax.Array
    left_base: jax.Array
    left_open: jax.Array    # no higher sample on the left (the search ran to the series start)
    right_min: jax.Array
    right_base: jax.Array
    right_open: jax.Array   # no higher sample on the right (the search ran to the series end)


def peak_sides(x, peaks, length) -> PeakSides:
    """Left/right minima and bases of in-range peak indices (P,) of x[:length] (x: (T,))."""
    T = x.shape[0]
    L = jnp.asarray(length, jnp.int32)
    p = jnp.clip(peaks, 0, T - 1)
    lmin, lbase, lopen = _left_base(x, p)
    # The right side is the left side of the valid part read backwards.
    xr = x[jnp.clip(L - 1 - jnp.arange(T), 0, T - 1)]
    rmin, rbase, ropen = _left_base(xr, jnp.clip(L - 1 - p, 0, T - 1))
    return PeakSides(lmin, lbase, lopen, rmin, L - 1 - rbase, ropen)


def peak_prominences(x, peaks, length):
    """scipy.signal.peak_prominences(x[:length], peaks) for in-range peak indices (P,).

    Returns (prominences, left_bases, right_bases); entries for invalid slots are meaningless.
    """
    s = peak_sides(x, peaks, length)
    return x[jnp.clip(peaks, 0, x.shape[0] - 1)] - jnp.maximum(s.left_min, s.right_min), s.left_base, s.right_base


def _find_peaks_1d(x, L, height, distance, prominence, P):
    T = x.shape[0]
    hlo, hhi = height
    is_max = _local_maxima(x, L) & _in_interval(x, hlo, hhi)
    pos, valid, n_cand = compact(is_max, jnp.arange(T, dtype=jnp.int32), P, -1)
    h = x[jnp.maximum(pos, 0)]
    if distance is not None:
        valid = _distance_keep(pos, h, valid, int(math.ceil(distance)))
    prom, lb, rb = peak_prominences(x, jnp.maximum(pos, 0), L)
    plo, phi = prominence
    if plo is not None or phi is not None:
        valid &= _in_interval(prom, plo, phi)
    (pos, prom, lb, rb), ok, count = compact(
        valid, (pos, prom, lb.astype(jnp.int32), rb.astype(jnp.int32)), P, (-1, 0.0, -1, -1))
    return PeakResult(pos, ok, prom, lb, rb, count, n_cand)


def find_peaks(x, length=None, *, height=None, distance=None, prominence=None, max_peaks: int = 64):
    """scipy.signal.find_peaks over the last axis of x (..., T) with fixed-size outputs.

    length: valid frames per series (broadcastable to x.shape[:-1]); None = all T.
    height, prominence: None, a minimum, or a (min, max) pair; values may be traced arrays
    broadcastable to x.shape[:-1]. distance: static Python number >= 1 (samples).
    Returns a PeakResult whose fields have shape x.shape[:-1] + (max_peaks,) (or () for counts).
    """
    if distance is not None and not distance >= 1:
        raise ValueError(f"find_peaks: distance must be >= 1 sample, got {distance!r}")
    if max_peaks < 1:
        raise ValueError(f"find_peaks: max_peaks must be >= 1, got {max_peaks}")
    x = jnp.asarray(x, jnp.float32)
    lead, T = x.shape[:-1], x.shape[-1]
    L = jnp.broadcast_to(jnp.asarray(T if length is None else length, jnp.int32), lead)
    hlo, hhi = _interval(height, "height")
    plo, phi = _interval(prominence, "prominence")
    conds = [jnp.broadcast_to(jnp.asarray(c, jnp.float32), lead) if c is not None else None
             for c in (hlo, hhi, plo, phi)]
    present = tuple(c is not None for c in conds)
    args = [c for c in conds if c is not None]

    def one(xi, li, *cs):
        it = iter(cs)
        c = [next(it) if has else None for has in present]
        return _find_peaks_1d(xi, li, (c[0], c[1]), distance, (c[2], c[3]), max_peaks)

    fn = one
    for _ in lead:
        fn = jax.vmap(fn)
    return fn(x, L, *args)

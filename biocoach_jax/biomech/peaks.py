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
  Same on the right. Prominence = x[p] - max(left_min, right_min). The nearest-higher sample,
  the range minimum and the base are found by binary lifting over (log2 T, T) sparse max / min
  tables: O(T log T) dense work plus O(P log T) scalar gathers per series, no O(P T) scan.

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
    """(T,) bool: sample i is the (rounded-down) middle of a strict local-maximum plateau.

    Gather-free: the run start l (with its "rises into the run" bit) and the run end r (with its
    "falls after the run" bit) are carried along the run by one cummax / cummin of packed ints.
    """
    T = x.shape[0]
    idx = jnp.arange(T, dtype=jnp.int32)
    neq = x[1:] != x[:-1]
    starts = jnp.concatenate([jnp.array([True]), neq])
    ends = jnp.concatenate([neq, jnp.array([True])])
    rises = jnp.concatenate([jnp.array([False]), x[:-1] < x[1:]])   # x[i-1] < x[i]
    falls = jnp.concatenate([x[1:] < x[:-1], jnp.array([False])])   # x[i+1] < x[i]
    l_enc = jax.lax.cummax(jnp.where(starts, 2 * idx + rises.astype(jnp.int32), 0))
    r_enc = jax.lax.cummin(jnp.where(ends, 2 * idx + (~falls).astype(jnp.int32), 2 * T + 1),
                           reverse=True)
    l, r = l_enc >> 1, r_enc >> 1
    ok = ((l_enc & 1) == 1) & ((r_enc & 1) == 0)
    # A run that reaches frame L-1 (or beyond, into padding) is never a peak: r <= L-2.
    return (idx == (l + r) // 2) & (l >= 1) & (r <= L - 2) & ok


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


def _sparse_tables(x):
    """(K, T) running max / min tables: tab[k, i] = max/min of x[i : i + 2**k] (clipped at T)."""
    T = x.shape[0]
    K = max(1, int(math.ceil(math.log2(max(T, 2)))))
    mx, mn = [x], [x]
    for k in range(1, K):
        h = 1 << (k - 1)
        a, b = mx[-1], mn[-1]
        mx.append(jnp.maximum(a, jnp.concatenate([a[h:], jnp.full((h,), -jnp.inf, x.dtype)]))
                  if h < T else a)
        mn.append(jnp.minimum(b, jnp.concatenate([b[h:], jnp.full((h,), jnp.inf, x.dtype)]))
                  if h < T else b)
    # Materialise the tables once (else XLA may refuse them into every gather that reads them).
    mx, mn = jax.lax.optimization_barrier((jnp.concatenate(mx), jnp.concatenate(mn)))
    return mx, mn, K


def _sides(x, p, L):
    """Both sides of peaks p (P,) of x[:L] by binary lifting over sparse max/min tables.

    O(P log T) small gathers per series instead of scanning T samples per peak.
    """
    T = x.shape[0]
    mx, mn, K = _sparse_tables(x)
    v = x[p]
    inf = jnp.array(jnp.inf, x.dtype)
    # Left limit: smallest c such that x[c:p] <= v everywhere; the nearest higher sample is c-1.
    c = p
    for k in reversed(range(K)):
        s = 1 << k
        j = c - s
        ok = (j >= 0) & (mx[k * T + jnp.maximum(j, 0)] <= v)
        c = jnp.where(ok, j, c)
    # Right limit: largest e such that x[p+1:e] <= v (e <= L); the nearest higher sample is e.
    e = p + 1
    for k in reversed(range(K)):
        s = 1 << k
        ok = (e + s <= L) & (mx[k * T + jnp.minimum(e, T - 1)] <= v)
        e = jnp.where(ok, e + s, e)
    e = jnp.minimum(e, L)

    def rmin(a, b):   # min of x[a:b+1], a <= b
        n = b - a + 1
        k = jnp.floor(jnp.log2(n.astype(jnp.float32))).astype(jnp.int32)
        k = jnp.clip(k, 0, K - 1)
        k = jnp.where((1 << k) > n, k - 1, k)
        k = jnp.where((1 << (k + 1)) <= n, k + 1, k)
        k = jnp.clip(k, 0, K - 1)
        return jnp.minimum(mn[k * T + a], mn[k * T + jnp.maximum(b - (1 << k) + 1, 0)])

    lmin = rmin(c, p)
    rmin_ = rmin(p, e - 1)
    # Left base: the largest j in [c, p] with x[j] == lmin (the minimum nearest the peak).
    q = p + 1
    for k in reversed(range(K)):
        s = 1 << k
        j = q - s
        ok = (j >= c) & (mn[k * T + jnp.maximum(j, 0)] > lmin)
        q = jnp.where(ok, j, q)
    lbase = q - 1
    # Right base: the smallest j in [p, e-1] with x[j] == right min.
    q = p
    for k in reversed(range(K)):
        s = 1 << k
        ok = (q + s <= e) & (mn[k * T + jnp.minimum(q, T - 1)] > rmin_)
        q = jnp.where(ok, q + s, q)
    rbase = q
    return lmin, lbase, c == 0, rmin_, rbase, e >= L


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
    p = jnp.clip(peaks, 0, T - 1).astype(jnp.int32)
    return PeakSides(*_sides(x, p, L))


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
        d = int(math.ceil(distance))
        valid = _distance_keep(pos, h, valid, d)
        # Survivors are >= d samples apart, so at most (T-1)//d + 1 of them: repack into that
        # many slots (exact) so the prominence search runs on fewer slots.
        P2 = min(P, (T - 1) // d + 1)
        if P2 < P:
            pos, valid, _ = compact(valid, pos, P2, -1)
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

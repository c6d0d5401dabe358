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

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .ops import compact, materialize


_WALK_BLOCK = 12   # peak rows per prominence sweep block


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


def _scatter_rows(slot, ok, vals, size, fills):
    """Rows (N, M): put vals[n, m] at [n, slot[n, m]] where ok (slot < size), as one 1-D scatter
    on the flattened batch (a batched scatter is far slower on CPU). Returns (N, size) arrays."""
    N = slot.shape[0]
    dst = jnp.arange(N, dtype=jnp.int32)[:, None] * (size + 1) + jnp.where(ok & (slot < size), slot, size)
    dst = dst.reshape(-1)
    return tuple(
        jnp.full((N * (size + 1),), f, dtype=v.dtype).at[dst].set(v.reshape(-1), mode="promise_in_bounds",
                                                                 unique_indices=False)
        .reshape(N, size + 1)[:, :size]
        for v, f in zip(vals, fills))


def _compact_rows(mask, vals, size, fills):
    """Row-wise `compact` on (N, M) arrays (M small): order-keeping, fixed size, one scatter."""
    cs = jnp.cumsum(mask.astype(jnp.int32), axis=1, dtype=jnp.int32)
    count = cs[:, -1]
    out = _scatter_rows(cs - 1, mask, vals, size, fills)
    return out, jnp.arange(size, dtype=jnp.int32)[None, :] < count[:, None], count


def _compact_cols(mask, vals, size, fills):
    """Column-wise `compact` on slot-major (M, N) arrays: one 1-D scatter per field."""
    M, N = mask.shape
    slot = jnp.cumsum(mask.astype(jnp.int32), axis=0, dtype=jnp.int32) - 1
    dst = jnp.where(mask & (slot < size), slot * N + jnp.arange(N, dtype=jnp.int32)[None, :], size * N)
    return tuple(
        jnp.full(((size + 1) * N,), f, v.dtype).at[dst.reshape(-1)].set(v.reshape(-1), mode="promise_in_bounds")
        [:size * N].reshape(size, N) for v, f in zip(vals, fills))


def _shift(a, o, fill, axis=1):
    """b[..., k, ...] = a[..., k + o, ...] (fill outside) along `axis`."""
    P = a.shape[axis]
    if o == 0:
        return a
    o_ = min(abs(o), P)
    shp = list(a.shape)
    shp[axis] = o_
    pad = jnp.full(shp, fill, a.dtype)
    if o > 0:
        return jnp.concatenate([jax.lax.slice_in_dim(a, o_, P, axis=axis), pad], axis=axis)
    return jnp.concatenate([pad, jax.lax.slice_in_dim(a, 0, P - o_, axis=axis)], axis=axis)


def _distance_keep(pos, h, valid, d: int, axis=1):
    """scipy's greedy distance rule as a fixed point over the packed candidates (module doc),
    slots along `axis` of (N, P) (axis=1) or (P, N) (axis=0: shifts are whole rows, cheaper).

    Candidates are sorted by position and at least one sample apart, so only the d-1 slots on
    each side can be closer than d samples: the relation is built from 2(d-1) slot shifts.
    """
    P = pos.shape[axis]
    w = min(d - 1, P - 1)
    if w < 1:
        return valid
    offs = [o for o in range(-w, w + 1) if o != 0]
    blocks = []
    for o in offs:
        hn, pn, vn = _shift(h, o, -jnp.inf, axis), _shift(pos, o, 0, axis), _shift(valid, o, False, axis)
        higher = (hn > h) | ((hn == h) & (o > 0))
        blocks.append(vn & valid & higher & (jnp.abs(pn - pos) < d))

    def step(state):
        keep, _ = state
        # One fused elementwise loop: OR over the shifts (no (2w, ...) stack per iteration).
        hit = functools.reduce(jnp.logical_or, [b & _shift(keep, o, False, axis) for b, o in zip(blocks, offs)])
        new = valid & ~hit
        return new, jnp.any(new != keep)

    keep, _ = jax.lax.while_loop(lambda s: s[1], step, (valid, jnp.array(True)))
    return keep


def _sides(x, p, L):
    """Both sides of peaks p (N, P) of rows x (N, T) (valid lengths L (N,)) by binary lifting over
    per-level (N, T) running max / min tables; every lookup is one 1-D gather on a flattened
    table (stacking the levels into one array costs more than all the lookups on XLA CPU).
    """
    N, T = x.shape
    K = max(1, int(math.ceil(math.log2(max(T, 2)))))
    mx, mn = [x], [x]
    for k in range(1, K):
        h = 1 << (k - 1)
        a, b = mx[-1], mn[-1]
        mx.append(jnp.maximum(a, jnp.pad(a[:, h:], ((0, 0), (0, h)), constant_values=-jnp.inf))
                  if h < T else a)
        mn.append(jnp.minimum(b, jnp.pad(b[:, h:], ((0, 0), (0, h)), constant_values=jnp.inf))
                  if h < T else b)
    # Materialise the tables once (else XLA may refuse them into every gather that reads them).
    mx, mn = jax.lax.optimization_barrier(([m.reshape(-1) for m in mx], [m.reshape(-1) for m in mn]))
    row = jnp.arange(N, dtype=jnp.int32)[:, None] * T
    L = L[:, None]
    v = mx[0][row + p]
    # Left limit: smallest c such that x[c:p] <= v everywhere (the nearest higher sample is c-1);
    # the accepted jumps tile [c, p), so their block minima give the left minimum on the way.
    c, lmin = p, v
    for k in reversed(range(K)):
        j = c - (1 << k)
        i = row + jnp.maximum(j, 0)
        ok = (j >= 0) & (mx[k][i] <= v)
        c = jnp.where(ok, j, c)
        lmin = jnp.where(ok, jnp.minimum(lmin, mn[k][i]), lmin)
    # Right limit: largest e such that x[p+1:e] <= v (e <= L); the nearest higher sample is e.
    e, rmin_ = p + 1, v
    for k in reversed(range(K)):
        s = 1 << k
        i = row + jnp.minimum(e, T - 1)
        ok = (e + s <= L) & (mx[k][i] <= v)
        e = jnp.where(ok, e + s, e)
        rmin_ = jnp.where(ok, jnp.minimum(rmin_, mn[k][i]), rmin_)
    e = jnp.minimum(e, L)
    # Left base: the largest j in [c, p] with x[j] == lmin (the minimum nearest the peak).
    q = p + 1
    for k in reversed(range(K)):
        j = q - (1 << k)
        ok = (j >= c) & (mn[k][row + jnp.maximum(j, 0)] > lmin)
        q = jnp.where(ok, j, q)
    lbase = q - 1
    # Right base: the smallest j in [p, e-1] with x[j] == right min.
    q = p
    for k in reversed(range(K)):
        s = 1 << k
        ok = (q + s <= e) & (mn[k][row + jnp.minimum(q, T - 1)] > rmin_)
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
    """Left/right minima and bases of in-range peak indices (..., P) of x[..., :length] (x: (..., T))."""
    x = jnp.asarray(x, jnp.float32)
    lead, T = x.shape[:-1], x.shape[-1]
    P = peaks.shape[-1]
    L = jnp.broadcast_to(jnp.asarray(length, jnp.int32), lead).reshape(-1)
    p = jnp.clip(jnp.broadcast_to(peaks, lead + (P,)), 0, T - 1).astype(jnp.int32).reshape(-1, P)
    out = _sides(x.reshape(-1, T), p, L)
    return PeakSides(*(o.reshape(lead + (P,)) for o in out))


def peak_prominences(x, peaks, length):
    """scipy.signal.peak_prominences(x[:length], peaks) for in-range peak indices (..., P).

    Returns (prominences, left_bases, right_bases); entries for invalid slots are meaningless.
    """
    s = peak_sides(x, peaks, length)
    top = jnp.take_along_axis(jnp.asarray(x, jnp.float32), jnp.clip(peaks, 0, x.shape[-1] - 1), axis=-1)
    return top - jnp.maximum(s.left_min, s.right_min), s.left_base, s.right_base


def _find_peaks_rows(x, L, height, distance, prominence, P, with_sides=False):
    """find_peaks on rows x (N, T) with lengths L (N,); conditions (N,) arrays or None.
    with_sides=True also returns the peaks' PeakSides and heights (packed like the peaks)."""
    N, T = x.shape
    hlo, hhi = height
    is_max = jax.vmap(_local_maxima)(x, L)
    if hlo is not None:
        is_max &= x >= hlo[:, None]
    if hhi is not None:
        is_max &= x <= hhi[:, None]
    pos, _, n_cand = jax.vmap(lambda m: compact(m, jnp.arange(T, dtype=jnp.int32), P, -1))(is_max)
    valid = jnp.arange(P, dtype=jnp.int32)[None, :] < n_cand[:, None]
    row = jnp.arange(N, dtype=jnp.int32)[:, None]
    xf = x.reshape(-1)
    if distance is not None:
        d = int(math.ceil(distance))
        h = xf[row * T + jnp.maximum(pos, 0)]
        valid = _distance_keep(pos, h, valid, d)
        # Survivors are >= d samples apart, so at most (T-1)//d + 1 of them: repack into that
        # many slots (exact) so the prominence search runs on fewer slots.
        P2 = min(P, (T - 1) // d + 1)
        if P2 < P:
            (pos,), valid, _ = _compact_rows(valid, (pos,), P2, (-1,))
    pc = jnp.maximum(pos, 0)
    lmin, lb, lopen, rmin_, rb, ropen = _sides(x, pc, L)
    top = xf[row * T + pc]
    prom = top - jnp.maximum(lmin, rmin_)
    plo, phi = prominence
    if plo is not None:
        valid &= prom >= plo[:, None]
    if phi is not None:
        valid &= prom <= phi[:, None]
    fields = (pos, prom, lb.astype(jnp.int32), rb.astype(jnp.int32))
    fills = (-1, 0.0, -1, -1)
    if with_sides:
        fields += (lmin, lopen, rmin_, ropen, top)
        fills += (0.0, False, 0.0, False, 0.0)
    out, ok, count = _compact_rows(valid, fields, P, fills)
    res = PeakResult(out[0], ok, out[1], out[2], out[3], count, n_cand)
    if not with_sides:
        return res
    lmin, lopen, rmin_, ropen, top = out[4:]
    return res, PeakSides(lmin, res.left_bases, lopen, rmin_, res.right_bases, ropen), top


def _structure(xT, L, S):
    """Boundaries of the V-shaped pieces of each series of time-major xT (T, N), valid lengths L (N,).

    Between two consecutive local maxima (and between the series edges 0 / L-1 and the nearest
    local maximum) the signal only falls then rises, so its maximum over the piece sits at an
    end and its minimum is the piece's valley. Boundaries = frame 0, every local maximum, frame
    L-1, packed into S slots in order. Per slot s: frame, value, and the valley of the piece
    ending at s (value, leftmost and rightmost frame of the minimum).

    The valley of a piece is its one run of equal samples entered by a fall (or at frame 0) and
    left by a rise (or at frame L-1); a local maximum is a run entered by a rise and left by a
    fall (l >= 1, r <= L-2). So valleys and maxima alternate in time, valley first and last:
    event e (0-based, in time order) is the valley of slot e // 2 + 1 (e even) or the maximum
    of slot e // 2 + 1 (e odd). One forward scan over time carries only the current run (start,
    entry direction) and the event count (XLA CPU pays per op and step: carrying the valley's
    running minimum as well cost three times as many ops); it reports at step t the run that
    ended at frame t-1 if it is an event. Then one 1-D scatter puts each event's step into its
    slot-major position and small gathers read the run's start back.
    """
    T, N = xT.shape
    E = 2 * S - 2                         # events of slots 1..S-1 (valley, maximum) pairs
    ts = jnp.arange(1, T + 1, dtype=jnp.int32)
    lane = jnp.arange(N, dtype=jnp.int32)

    def step(carry, inp):
        run, cnt = carry                  # run = 4 * start + 2 * (rose into it) + (fell into it or frame 0)
        xp, t = inp                       # xp = x[t-1]; x[t] is read only while t < L
        xt = jax.lax.dynamic_index_in_dim(xT, jnp.minimum(t, T - 1), keepdims=False)
        live = t < L
        ev_max = ((run & 2) != 0) & (xt < xp) & live
        ev_val = ((run & 1) != 0) & (((xt > xp) & live) | (t == L))
        ev = ev_max | ev_val
        dst = jnp.where(ev & (cnt < E), cnt * N + lane, E * N)
        new = jnp.where(xt != xp, 4 * t + 2 * (xt > xp).astype(jnp.int32) + (xt < xp).astype(jnp.int32), run)
        return (new, cnt + ev.astype(jnp.int32)), (dst, run)

    zi = jnp.zeros((N,), jnp.int32)
    (_, n_ev), (dst, run) = jax.lax.scan(step, (zi + 1, zi), (xT, ts))
    # Each event's reporting step, slot-major (E, N); the run it reports ended at frame step - 1.
    step_of = (jnp.ones((E * N + 1,), jnp.int32).at[dst.reshape(-1)]
               .set(jnp.broadcast_to(ts[:, None], dst.shape).reshape(-1), mode="promise_in_bounds")
               [:E * N].reshape(E, N))
    slot = jnp.arange(S, dtype=jnp.int32)[:, None]
    n_b = (n_ev + 3) >> 1                 # n_ev = 2 * (maxima) + 1 valleys
    used = (slot < n_b) & (slot > 0)
    runf = run.reshape(-1)

    def run_of(e):                        # (first frame, last frame) of the run of event e, (S, N)
        st = step_of[jnp.clip(e, 0, E - 1)[:, 0]]
        return runf[(st - 1) * N + lane] >> 2, st - 1

    sv = jnp.maximum(slot, 1)
    vleft, vright = run_of(2 * sv - 2)
    ml, mr = run_of(2 * sv - 1)
    # A maximum's frame is its plateau's middle (rounded down); the last boundary is frame L-1.
    bpos = jnp.where(used, jnp.where(slot == n_b - 1, L[None, :] - 1, (ml + mr) >> 1), 0)
    vleft = jnp.where(used, vleft, 0)
    xf = xT.reshape(-1)
    # Slot 0 is frame 0 (it ends no piece); unused slots get fills that never win the walks.
    # Materialised: the distance filter and the walks read each field many times.
    outs = (bpos, jnp.where(used | (slot == 0), xf[bpos * N + lane], -jnp.inf),
            jnp.where(used, xf[vleft * N + lane], jnp.inf), vleft, jnp.where(used, vright, 0))
    return tuple(materialize(a) for a in outs) + (n_b,)


def _find_peaks_rows_v(xT, L, distance, prominence, P):
    """find_peaks without a height condition on time-major xT (T, N) via the V-piece structure: the
    nearest higher sample and the side minima of every peak follow from a walk over the (few)
    boundary slots with slot-major (P2, N) state (series minor: vectorised) instead of lookups
    into (N, T)."""
    T, N = xT.shape
    S = P + 2
    bpos, bval, vmin, vleft, vright, n_b = _structure(xT, L, S)     # (S, N) each
    n_cand = jnp.maximum(n_b - 2, 0)
    # Slot-major (P, N) throughout (series minor: slot shifts are whole rows).
    pos = jnp.where(jnp.arange(P, dtype=jnp.int32)[:, None] < n_cand[None, :], bpos[1:P + 1], -1)
    v = bval[1:P + 1]
    valid = pos >= 0
    i = jnp.broadcast_to(jnp.arange(1, P + 1, dtype=jnp.int32)[:, None], (P, N))
    if distance is not None:
        d = int(math.ceil(distance))
        valid = _distance_keep(pos, v, valid, d, axis=0)
        P2 = min(P, (T - 1) // d + 1)
        if P2 < P:
            pos, v, i = _compact_cols(valid, (pos, v, i), P2, (-1, 0.0, 0))
            valid = pos >= 0
    # Sweeps over the boundary slots with per-peak state (rows, N), series minor (vectorised).
    # Left side, slots ascending: a running minimum of the valleys up to the peak, restarted
    # after every strictly higher boundary (so it ends as the minimum since the last one); ties
    # go to the later valley (nearest the peak). Right side, the mirror image, slots descending
    # (ties to the earlier valley). No stop flags to carry: a restart discards what lies beyond.
    # Peak rows are swept in blocks, each only over the slots its peaks can reach (left: up to
    # its last peak; right: down to its first); a block with no valid peak is skipped.
    # (Binary lifting over the slots, O(log S) gathers per peak, measured slower on CPU.)
    P2 = i.shape[0]
    hi_slot = jnp.max(n_b)                  # slots at or past this are unused (fills never win)
    outs = []
    for r0 in range(0, P2, _WALK_BLOCK):
        ib, vb, ok = i[r0:r0 + _WALK_BLOCK], v[r0:r0 + _WALK_BLOCK], valid[r0:r0 + _WALK_BLOCK]
        inf = jnp.full(ib.shape, jnp.inf, xT.dtype)
        zero = jnp.zeros(ib.shape, jnp.int32)

        def left(s, st, ib=ib, vb=vb):
            lm, lb = st
            Ms, Vs = bval[s][None], vmin[s][None]
            take = (s <= ib) & (Vs <= lm)                  # valley s lies left of boundary s
            lm = jnp.where((s < ib) & (Ms > vb), jnp.inf, jnp.where(take, Vs, lm))
            return lm, jnp.where(take, vright[s][None], lb)

        def right(k, st, ib=ib, vb=vb):
            rm, rb = st
            s = hi_slot - 1 - k
            Ms, Vs = bval[s][None], vmin[s][None]
            rm = jnp.where((s > ib) & (Ms > vb), jnp.inf, rm)
            take = (s > ib) & (Vs <= rm)
            return jnp.where(take, Vs, rm), jnp.where(take, vleft[s][None], rb)

        def sweep(ib=ib, ok=ok, inf=inf, zero=zero, left=left, right=right):
            lo = jnp.min(jnp.where(ok, ib, hi_slot))
            hi = jnp.max(jnp.where(ok, ib, 0))
            lm, lb = jax.lax.fori_loop(1, hi + 1, left, (inf, zero))
            rm, rb = jax.lax.fori_loop(0, hi_slot - 1 - lo, right, (inf, zero))
            return lm, lb, rm, rb

        outs.append(jax.lax.cond(jnp.any(ok), sweep, lambda inf=inf, zero=zero: (inf, zero, inf, zero)))
    lmin, lb, rmin, rb = (jnp.concatenate(f, axis=0) for f in zip(*outs))
    prom = v - jnp.maximum(lmin, rmin)
    plo, phi = prominence
    if plo is not None:
        valid &= prom >= plo[None, :]
    if phi is not None:
        valid &= prom <= phi[None, :]
    pos, prom, lb, rb = (a.T for a in _compact_cols(valid, (pos, prom, lb, rb), P, (-1, 0.0, -1, -1)))
    count = jnp.sum(valid, axis=0, dtype=jnp.int32)
    ok = jnp.arange(P, dtype=jnp.int32)[None, :] < count[:, None]
    return PeakResult(pos, ok, prom, lb, rb, count, n_cand)


def find_peaks(x, length=None, *, height=None, distance=None, prominence=None, max_peaks: int = 64):
    """scipy.signal.find_peaks over the last axis of x (..., T) with fixed-size outputs.

    length: valid frames per series (broadcastable to x.shape[:-1]); None = all T.
    height, prominence: None, a minimum, or a (min, max) pair; values may be traced arrays
    broadcastable to x.shape[:-1]. distance: static Python number >= 1 (samples).
    Returns a PeakResult whose fields have shape x.shape[:-1] + (max_peaks,) (or () for counts).
    All series are processed as one flat (N, T) batch (no vmap): lookups are 1-D gathers.
    """
    x, L, lead, c = _flat_args(x, length, height, distance, prominence, max_peaks)
    T = x.shape[-1]
    if c[0] is None and c[1] is None:
        r = _find_peaks_rows_v(x.reshape(-1, T).T, L, distance, (c[2], c[3]), max_peaks)
    else:
        r = _find_peaks_rows(x.reshape(-1, T), L, (c[0], c[1]), distance, (c[2], c[3]), max_peaks)
    return _unflat(r, lead)


def _check_args(distance, max_peaks):
    if distance is not None and not distance >= 1:
        raise ValueError(f"find_peaks: distance must be >= 1 sample, got {distance!r}")
    if max_peaks < 1:
        raise ValueError(f"find_peaks: max_peaks must be >= 1, got {max_peaks}")


def _flat_args(x, length, height, distance, prominence, max_peaks):
    """Validate find_peaks' arguments; flatten x to rows and the conditions to (N,) arrays."""
    _check_args(distance, max_peaks)
    x = jnp.asarray(x, jnp.float32)
    lead, T = x.shape[:-1], x.shape[-1]
    L = jnp.broadcast_to(jnp.asarray(T if length is None else length, jnp.int32), lead).reshape(-1)
    hlo, hhi = _interval(height, "height")
    plo, phi = _interval(prominence, "prominence")
    c = [jnp.broadcast_to(jnp.asarray(v, jnp.float32), lead).reshape(-1) if v is not None else None
         for v in (hlo, hhi, plo, phi)]
    return x.reshape(-1, T), L, lead, c


def _unflat(r, lead):
    return type(r)(*(f.reshape(lead + f.shape[1:]) for f in r))


def find_peaks_and_sides(x, length=None, *, height, distance=None, max_peaks: int = 64):
    """`find_peaks` with a height condition, plus each returned peak's `peak_sides` and height
    (..., P), from the same binary-lifting pass (no second set of lifting tables)."""
    x, L, lead, c = _flat_args(x, length, height, distance, None, max_peaks)
    res, sides, top = _find_peaks_rows(x, L, (c[0], c[1]), distance, (None, None), max_peaks, with_sides=True)
    return _unflat(res, lead), _unflat(sides, lead), top.reshape(lead + top.shape[1:])


def find_peaks_time_major(xT, length, *, distance=None, prominence=None, max_peaks: int = 64):
    """`find_peaks` (no height condition) of the N series of time-major xT (T, N), lengths (N,),
    prominence None / minimum / (min, max) broadcastable to (N,): fields (N, P) / (N,). The
    kernel's layout: poses (B, T, D) give time-major (T, B*D) series with one transpose."""
    _check_args(distance, max_peaks)
    N = xT.shape[1]
    L = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (N,))
    c = [None if v is None else jnp.broadcast_to(jnp.asarray(v, jnp.float32), (N,))
         for v in _interval(prominence, "prominence")]
    return _find_peaks_rows_v(jnp.asarray(xT, jnp.float32), L, distance, tuple(c), max_peaks)

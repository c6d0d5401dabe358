"""Small fixed-shape helpers shared by the biomech kernel (compaction, masked statistics).

Everything here is shape-static and works under `jax.jit` / `jax.vmap`: variable-length data is
a padded array plus a mask, never a dynamically sized array.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def materialize_rows(v, like):
    """v (...,) unchanged, but computed once into a buffer: a fusion boundary for XLA CPU.

    XLA CPU drops `lax.optimization_barrier` and fuses a small but costly per-series value (the
    polarity: quantiles, a median, comparisons) into every element of its (..., T) consumers,
    recomputing it per sample. A reduction over the time axis is only ever a fusion root, and
    this one (the value at t == 0, the lowest entry elsewhere) cannot be simplified away.
    """
    t0 = jnp.arange(like.shape[-1]) == 0
    return jnp.max(jnp.where(t0, v[..., None], _lowest(v.dtype)), axis=-1)


def materialize(v):
    """v unchanged, but computed once into a buffer (see `materialize_rows`), for arrays of any
    shape: a max over a new trailing axis of two (v and the lowest value) that XLA cannot
    simplify away. For values that are gathers of gathers, which XLA CPU otherwise re-runs
    inside every consumer fusion (once per element per consumer). (With the new axis leading,
    XLA CPU hands the reduction to a library kernel that is several times slower.)"""
    pick = jnp.arange(2) == 0
    low = -jnp.inf if jnp.issubdtype(v.dtype, jnp.floating) else _lowest(v.dtype)
    return jnp.max(jnp.where(pick, v[..., None], low), axis=-1)


def compact(mask, values, size: int, fill):
    """Move the entries where `mask` is true to the front, keeping their order.

    mask: (N,) bool; values: array (N,) or tuple of (N,) arrays; size: static output length.
    Returns (packed values (size,) or tuple thereof, valid (size,) bool, count scalar int32).
    Entries beyond `size` are dropped (callers compare `count` with `size` to detect that).
    `fill` (scalar or tuple matching `values`) fills the unused slots.
    """
    single = not isinstance(values, tuple)
    vals = (values,) if single else values
    fills = (fill,) * len(vals) if not isinstance(fill, tuple) else fill
    mask = mask.astype(bool)
    pos = jnp.cumsum(mask) - 1
    # Everything not kept (or past `size`) is sent to a scratch slot that is dropped.
    slot = jnp.where(mask & (pos < size), pos, size)
    out = tuple(
        jnp.full((size + 1,), f, dtype=v.dtype).at[slot].set(v, mode="drop")[:size]
        for v, f in zip(vals, fills)
    )
    count = jnp.sum(mask).astype(jnp.int32)
    valid = jnp.arange(size) < count
    return (out[0] if single else out), valid, count


def compact_small(mask, values, size: int, fill):
    """`compact` along the last axis of (..., M) arrays (M small) as one-hot masked reductions:
    no scatter, so it stays a fused loop under vmap (a batched scatter is slow on CPU)."""
    single = not isinstance(values, tuple)
    vals = (values,) if single else values
    fills = (fill,) * len(vals) if not isinstance(fill, tuple) else fill
    mask = mask.astype(bool)
    pos = jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - 1
    slot = jnp.arange(size, dtype=jnp.int32)
    hit = mask[..., None, :] & (pos[..., None, :] == slot[:, None])          # (..., size, M)
    out = tuple(
        jnp.where(jnp.any(hit, axis=-1), jnp.max(jnp.where(hit, v[..., None, :], _lowest(v.dtype)), axis=-1),
                  jnp.asarray(f, v.dtype))
        for v, f in zip(vals, fills))
    count = jnp.sum(mask, axis=-1, dtype=jnp.int32)
    valid = slot < count[..., None]
    return (out[0] if single else out), valid, count


def _lowest(dtype):
    if dtype == jnp.bool_:
        return False
    return jnp.finfo(dtype).min if jnp.issubdtype(dtype, jnp.floating) else jnp.iinfo(dtype).min


def take_small(x, idx):
    """x[..., idx] for in-range indices idx (..., K) of x (..., T) as a one-hot max (no gather)."""
    t = jnp.arange(x.shape[-1], dtype=jnp.int32)
    return jnp.max(jnp.where(t == idx[..., None], x[..., None, :], _lowest(x.dtype)), axis=-1)


def _interp_quantiles(take, n, q, flip, dtype):
    """numpy's linear-interpolation quantiles from `take(ranks)` = the ranks-th smallest valid
    samples (ranks (..., K), ascending, 0-based) and the valid count n; flip=True (may be traced)
    gives the quantiles of -x from the same order statistics (negation is exact)."""
    nn = jnp.maximum(n, 1)
    qs = jnp.atleast_1d(jnp.asarray(q, dtype=dtype))
    pos = qs * (nn - 1)[..., None].astype(dtype)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, nn[..., None] - 1)
    frac = pos - lo.astype(dtype)
    flip = jnp.asarray(flip)[..., None]
    # k-th smallest of -x is -(n-1-k)-th smallest of x.
    vlo = jnp.where(flip, -take(nn[..., None] - 1 - lo), take(lo))
    vhi = jnp.where(flip, -take(nn[..., None] - 1 - hi), take(hi))
    out = vlo + frac * (vhi - vlo)
    return out[..., 0] if jnp.ndim(q) == 0 else out


def sorted_quantiles(xs, n, q, flip=False):
    """`masked_quantile` from xs = sort(where(mask, x, inf)) and n = mask count, bit for bit;
    flip=True (may be traced) gives the quantiles of -x from the same sort (one sort for both)."""
    return _interp_quantiles(lambda r: take_small(xs, r), n, q, flip, xs.dtype)


def extreme_quantiles(x, mask, n, q, both_signs: bool = False):
    """`sorted_quantiles` (same numbers, bit for bit) for quantiles near the ends, without a sort;
    both_signs=True returns (quantiles of x, quantiles of -x) from the same selections.

    Every rank that the interpolation reads lies within k = max over q of
    floor(min(q, 1-q) * (T-1)) + 3 of one end of the valid samples (T = x.shape[-1]; +3 covers
    the floor, the +1 neighbour and float rounding of q * (n-1)), so the k smallest and k largest
    valid samples (two `top_k` selections, far cheaper than a full sort on CPU) hold them all.
    """
    T = x.shape[-1]
    qs = [float(v) for v in ((q,) if jnp.ndim(q) == 0 else q)]
    k = min(T, max(int(min(v, 1.0 - v) * (T - 1)) + 3 for v in qs))
    bot = -jax.lax.top_k(jnp.where(mask, -x, -jnp.inf), k)[0]     # ascending: rank r at r
    top = jax.lax.top_k(jnp.where(mask, x, -jnp.inf), k)[0]       # descending: rank r at n-1-r
    nn = jnp.maximum(n, 1)[..., None]

    def take(r):
        from_bot = jnp.take_along_axis(bot, jnp.clip(r, 0, k - 1), axis=-1)
        from_top = jnp.take_along_axis(top, jnp.clip(nn - 1 - r, 0, k - 1), axis=-1)
        return jnp.where(r < k, from_bot, from_top)

    if both_signs:
        return _interp_quantiles(take, n, q, False, x.dtype), _interp_quantiles(take, n, q, True, x.dtype)
    return _interp_quantiles(take, n, q, False, x.dtype)


def masked_quantile(x, mask, q):
    """Quantile(s) q of x[mask] along the last axis (linear interpolation, numpy's default).

    x: (..., T); mask: (..., T) bool with at least one true entry per row; q: float or tuple.
    Returns (...,) or (..., len(q)). Masked-out entries are sorted to the end and ignored.
    """
    n = jnp.sum(mask, axis=-1)
    xs = jnp.sort(jnp.where(mask, x, jnp.inf), axis=-1)
    qs = jnp.atleast_1d(jnp.asarray(q, dtype=x.dtype))
    pos = qs * (jnp.maximum(n, 1) - 1)[..., None].astype(x.dtype)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, jnp.maximum(n, 1)[..., None] - 1)
    frac = pos - lo.astype(x.dtype)
    vlo = jnp.take_along_axis(xs, lo, axis=-1)
    vhi = jnp.take_along_axis(xs, hi, axis=-1)
    out = vlo + frac * (vhi - vlo)
    return out[..., 0] if jnp.ndim(q) == 0 else out


def masked_median(x, mask):
    """Median of x[mask] along the last axis; 0 where the mask is empty."""
    n = jnp.sum(mask, axis=-1)
    return jnp.where(n > 0, masked_quantile(x, mask, 0.5), 0.0)


def frame_mask(length, T: int):
    """(..., T) bool: frame t is a valid (non-padding) frame of a series of `length` frames."""
    return jnp.arange(T) < jnp.asarray(length)[..., None]

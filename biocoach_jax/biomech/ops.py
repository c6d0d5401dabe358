"""Small fixed-shape helpers shared by the biomech kernel (compaction, masked statistics).

Everything here is shape-static and works under `jax.jit` / `jax.vmap`: variable-length data is
a padded array plus a mask, never a dynamically sized array.
"""
from __future__ import annotations

import jax.numpy as jnp


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

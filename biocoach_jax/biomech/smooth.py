"""Gaussian smoothing along time, matching `scipy.ndimage.gaussian_filter1d(mode="nearest")`.

sigma is given in seconds and converted once: sigma_samples = sigma_s * fps. The kernel is
scipy's: radius = int(truncate * sigma_samples + 0.5), weights exp(-t^2 / (2 sigma^2)) normalised
to sum 1. "nearest" edges repeat the first / last *valid* sample, so a padded series of valid
length L smooths exactly as the unpadded x[:L] would (the padding is overwritten first).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def gaussian_kernel(sigma_samples: float, truncate: float = 4.0) -> np.ndarray:
    """The normalised 1-D Gaussian weights scipy uses (float64, length 2*radius+1)."""
    if not (sigma_samples > 0 and math.isfinite(sigma_samples)):
        raise ValueError(f"gaussian_smooth: sigma must be a positive number of samples, got {sigma_samples}")
    radius = int(truncate * float(sigma_samples) + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma_samples) ** 2)
    return w / w.sum()


def hold_last(x, length):
    """Replace padding frames (t >= length) by the last valid value, along the last axis."""
    T = x.shape[-1]
    L = jnp.broadcast_to(jnp.asarray(length, jnp.int32), x.shape[:-1])
    last = jnp.take_along_axis(x, jnp.clip(L - 1, 0, T - 1)[..., None], axis=-1)
    return jnp.where(jnp.arange(T) < L[..., None], x, last)


def gaussian_smooth(x, sigma_s: float, fps: float, length=None, truncate: float = 4.0):
    """Gaussian-smooth x (..., T) along its last axis; sigma in seconds, fps static.

    length: None (all T frames valid) or int array broadcastable to x.shape[:-1] (each >= 1).
    Frames at or after `length` come back as the held last smoothed-edge value and must be
    ignored by callers (they are, via the length masks, everywhere in this package).
    """
    return smooth_along(x, sigma_s, fps, length, axis=-1, truncate=truncate)


def smooth_along(x, sigma_s: float, fps: float, length=None, axis: int = -1, truncate: float = 4.0):
    """`gaussian_smooth` along any axis: the kernel smooths poses (B, T, D) along axis 1 in place
    of two (B, D, T) transposes; `length` broadcasts against x with the time axis removed."""
    w = gaussian_kernel(float(sigma_s) * float(fps), truncate)
    x = jnp.asarray(x, jnp.float32)
    return smooth_padded(pad_nearest(x, (w.shape[0] - 1) // 2, length, axis), w, axis)


def pad_nearest(x, radius: int, length=None, axis: int = -1):
    """x with `radius` frames added at both ends of `axis`, scipy's "nearest" boundary on the
    valid frames: x[0] repeated on the left, x[length-1] on the right and over the padding.
    One gather: materialised on its own (see `smooth_padded`) it costs one pass over x."""
    axis = axis % x.ndim
    T = x.shape[axis]
    rest = x.shape[:axis] + x.shape[axis + 1:]
    L = jnp.expand_dims(jnp.broadcast_to(jnp.asarray(T if length is None else length, jnp.int32), rest), axis)
    t = jnp.arange(-radius, T + radius).reshape((T + 2 * radius,) + (1,) * (x.ndim - 1 - axis))
    return jnp.take_along_axis(x, jnp.clip(t, 0, L - 1), axis=axis)


def smooth_padded(padded, w, axis: int = -1):
    """scipy's symmetric correlation w0 x[i] + sum_j w_j (x[i-j] + x[i+j]) of a `pad_nearest`
    array (time axis T + 2 radius -> T). Shifted adds fuse into one loop (an XLA CPU convolution
    with one channel is far slower); it is fastest when `padded` is already in memory (e.g. an
    input of a loop step), as XLA would otherwise recompute the gather once per tap."""
    radius = (w.shape[0] - 1) // 2
    axis = axis % padded.ndim
    T = padded.shape[axis] - 2 * radius
    sl = lambda a, lo, hi: jax.lax.slice_in_dim(a, lo, hi, axis=axis)
    wf = [np.float32(v) for v in w[radius:]]
    out = sl(padded, radius, radius + T) * wf[0]
    for j in range(1, radius + 1):
        out = out + (sl(padded, radius - j, radius - j + T) + sl(padded, radius + j, radius + j + T)) * wf[j]
    return out

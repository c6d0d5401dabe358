"""Layers of the causal 3D CNN: a causal 3-tap temporal conv and the inverted-residual block.

Tensors are channels-last. Clip tensors are (B, T, H, W, C); a single frame is (B, H, W, C).
There is no BatchNorm: the original checkpoint stores convs with biases (BN already folded),
and the CNN is frozen here, so a conv with bias is the faithful inference form.

Temporal alignment (the one rule every temporal op follows): a temporal conv with stride s maps
input frames to output index j using input frames (e - 2, e - 1, e) with e = s*j + s - 1, and
zeros for negative indices (zero padding of that layer's input on the past side only). So a
strided layer keeps the odd frames (1, 3, 5, ...), and the residual of a strided block takes the
same frames. Nothing ever looks at a later frame.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx

from biocoach_jax.models.vision_config import BlockSpec

TAPS = 3  # temporal kernel size of the original's shifted blocks


def relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 6.0)


def per_frame(fn, x: jax.Array) -> jax.Array:
    """Apply a 2D (B, H, W, C) op to every frame of a (B, T, H, W, C) clip."""
    b, t = x.shape[:2]
    y = fn(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])


def conv2d(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, *, precision, rngs,
           kernel_init=None) -> nnx.Conv:
    """A PyTorch-style Conv2d: symmetric padding (k - 1) // 2 (not XLA 'SAME', which pads the
    high side more for stride 2 and would shift every map by half a pixel)."""
    p = (k - 1) // 2
    extra = {} if kernel_init is None else {"kernel_init": kernel_init}
    return nnx.Conv(cin, cout, (k, k), strides=stride, padding=((p, p), (p, p)),
                    feature_group_count=groups, precision=precision, rngs=rngs, **extra)


class TemporalConv(nnx.Module):
    """Causal 3-tap temporal conv with a 1x1 spatial extent (the original's SteppableConv3dAs2d
    with kernel (3, 1, 1)). kernel[k] multiplies frame e - 2 + k (oldest tap first)."""

    def __init__(self, cin: int, cout: int, stride: int, *, precision, rngs: nnx.Rngs, kernel_init=None):
        init = kernel_init or nnx.initializers.lecun_normal(in_axis=(0, 1), out_axis=2)
        self.kernel = nnx.Param(init(rngs.params(), (TAPS, cin, cout)))
        self.bias = nnx.Param(jnp.zeros((cout,)))
        self.stride = stride
        self.precision = precision

    def _mix(self, taps: list[jax.Array]) -> jax.Array:
        # taps[k]: (..., Cin) for tap k; one contraction over (tap, Cin).
        x = jnp.stack(taps, axis=-2)
        return jnp.einsum("...kc,kcd->...d", x, self.kernel[...], precision=self.precision) + self.bias[...]

    def __call__(self, x: jax.Array) -> jax.Array:
        """(B, T, H, W, Cin) -> (B, T // stride, H, W, Cout)."""
        t, s = x.shape[1], self.stride
        xp = jnp.pad(x, ((0, 0), (TAPS - 1, 0), (0, 0), (0, 0), (0, 0)))  # past side only
        # Output j ends at input frame e = s*j + s - 1, i.e. at padded index e + TAPS - 1.
        ends = jnp.arange(s - 1, (t // s) * s, s) + TAPS - 1
        return self._mix([xp[:, ends - (TAPS - 1) + k] for k in range(TAPS)])

    def window_step(self, window: jax.Array) -> jax.Array:
        """window (B, TAPS, H, W, Cin) of frames (e-2, e-1, e) -> output frame (B, H, W, Cout)."""
        return self._mix([window[:, k] for k in range(TAPS)])


class InvertedResidual(nnx.Module):
    """1x1 expansion (temporal conv in shifted blocks) -> ReLU6 -> depthwise kxk (spatial stride)
    -> ReLU6 -> 1x1 projection (linear), plus the identity when shapes allow."""

    def __init__(self, spec: BlockSpec, *, precision=None, rngs: nnx.Rngs, kernel_init=None):
        self.spec = spec
        h = spec.hidden
        kw = dict(precision=precision, rngs=rngs, kernel_init=kernel_init)
        if spec.temporal_shift:
            self.expand = TemporalConv(spec.in_channels, h, spec.time_stride, **kw)
        elif spec.expand_ratio != 1:
            self.expand = conv2d(spec.in_channels, h, 1, **kw)
        else:
            self.expand = None
        self.depthwise = conv2d(h, h, spec.kernel, spec.spatial_stride, groups=h, **kw)
        self.project = conv2d(h, spec.out_channels, 1, **kw)

    def _spatial(self, h: jax.Array, x: jax.Array) -> jax.Array:
        """Depthwise + projection on frames (N, H, W, C); `x` is the matching block input."""
        y = self.project(relu6(self.depthwise(h)))
        return y + x if self.spec.use_residual else y

    def __call__(self, x: jax.Array) -> jax.Array:
        """Clip forward: (B, T, H, W, Cin) -> (B, T // time_stride, H', W', Cout)."""
        s = self.spec.time_stride
        if self.spec.temporal_shift:
            h = relu6(self.expand(x))
        elif self.expand is not None:
            h = relu6(per_frame(self.expand, x))
        else:
            h = x
        x_kept = x[:, s - 1::s][:, :h.shape[1]]  # the frames the strided conv ended on
        b, t = h.shape[:2]
        y = self._spatial(h.reshape(b * t, *h.shape[2:]), x_kept.reshape(b * t, *x_kept.shape[2:]))
        return y.reshape(b, t, *y.shape[1:])

    def frame_step(self, x: jax.Array, window: Optional[jax.Array] = None) -> jax.Array:
        """One output frame (B, H, W, C). `x` is the current input frame; shifted blocks also take
        `window` = input frames (e-2, e-1, e) stacked on axis 1 (e = the current frame)."""
        if self.spec.temporal_shift:
            h = relu6(self.expand.window_step(window))
        elif self.expand is not None:
            h = relu6(self.expand(x))
        else:
            h = x
        return self._spatial(h, x)

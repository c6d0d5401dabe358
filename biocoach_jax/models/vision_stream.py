"""Frame-by-frame (streaming) evaluation of the causal 3D CNN.

Each temporally shifted block keeps a buffer of its last two input frames (zeros at the start,
which is exactly the batch forward's past-side zero padding). Layers after the k-th temporally
strided block run only on frames n with n % 2**k == 2**k - 1 (lax.cond, so the skipped work
is not done), so with two strided blocks a feature comes out on frames 3, 7, 11, ... and
equals the batch forward's step n // 4.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from biocoach_jax.models.vision_layers import TAPS, relu6


class StreamState(NamedTuple):
    """buffers[i]: (B, TAPS - 1, H, W, C) past inputs of the i-th shifted block (oldest first);
    count: int32 scalar, frames consumed so far."""
    buffers: tuple
    count: jax.Array


def shifted_block_inputs(model) -> list[tuple[int, int, int, int]]:
    """(block index, H, W, Cin) of the input of every temporally shifted block."""
    h, w = model.config.frame_size
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # stem stride 2
    out = []
    for i, blk in enumerate(model.blocks):
        spec = blk.spec
        if spec.temporal_shift:
            out.append((i, h, w, spec.in_channels))
        h, w = (h - 1) // spec.spatial_stride + 1, (w - 1) // spec.spatial_stride + 1
    return out


def init_stream_state(model, batch: int) -> StreamState:
    if batch < 1:
        raise ValueError(f"init_stream_state: batch must be >= 1, got {batch}")
    bufs = tuple(jnp.zeros((batch, TAPS - 1, h, w, c), jnp.float32)
                 for _, h, w, c in shifted_block_inputs(model))
    return StreamState(bufs, jnp.zeros((), jnp.int32))


def _check(model, state: StreamState, frame) -> None:
    h, w = model.config.frame_size
    n_buf = len(shifted_block_inputs(model))
    if not isinstance(state, StreamState) or len(state.buffers) != n_buf:
        raise ValueError(f"stream_step: state must be a StreamState with {n_buf} buffers "
                         "(use init_stream_state)")
    b = state.buffers[0].shape[0] if n_buf else None
    if frame.ndim != 4 or frame.shape[1:] != (h, w, 3) or (b is not None and frame.shape[0] != b):
        raise ValueError(f"stream_step: frame must be (B={b}, {h}, {w}, 3) RGB in [0, 1], got "
                         f"{tuple(frame.shape)}")
    if not jnp.issubdtype(frame.dtype, jnp.floating):
        raise ValueError(f"stream_step: frame must be float in [0, 1], got dtype {frame.dtype}")


def stream_step(model, state: StreamState, frame: jax.Array):
    """Consume one frame (B, H, W, 3) -> (new state, (feature (B, h, w, C), valid bool scalar)).

    `feature` is the batch forward's step `count // time_stride` when `valid`, zeros otherwise.
    Traceable (jit it, e.g. with `vision.jit_stream_step`)."""
    _check(model, state, frame)
    n = state.count
    blocks = list(model.blocks)
    buf_of = {i: k for k, (i, _, _, _) in enumerate(shifted_block_inputs(model))}
    fh, fw = model.config.feature_map_size
    zero_feature = jnp.zeros((frame.shape[0], fh, fw, model.config.out_channels), jnp.float32)

    def advance(i: int, x: jax.Array, bufs: tuple, period: int):
        """Run blocks i.. on the current frame `x` at the rate of `period` input frames."""
        while i < len(blocks):
            blk = blocks[i]
            if not blk.spec.temporal_shift:
                x = blk.frame_step(x)
                i += 1
                continue
            k = buf_of[i]
            window = jnp.concatenate([bufs[k], x[:, None]], axis=1)  # frames (e-2, e-1, e)
            bufs = bufs[:k] + (window[:, 1:],) + bufs[k + 1:]
            if not blk.spec.temporal_stride:
                x = blk.frame_step(x, window)
                i += 1
                continue
            # A strided block emits on every second frame of its input: the rest of the network
            # runs only then (the buffer above is updated either way).
            period *= blk.spec.time_stride
            emit = n % period == period - 1

            def on(bufs, i=i, x=x, window=window, period=period):
                return advance(i + 1, blocks[i].frame_step(x, window), bufs, period)

            return jax.lax.cond(emit, on, lambda bufs: (bufs, zero_feature), bufs)
        return bufs, model.head(x)  # the last conv's output, before its ReLU6

    x = relu6(model.stem(frame.astype(jnp.float32)))
    bufs, feature = advance(0, x, tuple(state.buffers), 1)
    valid = n % model.config.time_stride == model.config.time_stride - 1
    return StreamState(bufs, n + 1), (feature, valid)

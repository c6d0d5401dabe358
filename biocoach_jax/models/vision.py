"""Causal 3D CNN: Stream-VLM's visual encoder (quic/sense `StridedInflatedEfficientNet`) in NNX.

Input: frames (B, T, H, W, 3), RGB float in [0, 1] (no mean/std), H x W = config.frame_size
(224 x 160 in the original). Output: (B, T // 4, h, w, C) = the final 1x1 conv's output BEFORE
its ReLU6 ((7, 5, 1280) per step at full size). Channels-last throughout.

Time alignment (exact): output step j is computed from frames 0 .. 4j + 3 only; it is the step
that the 4th frame of the group (4j .. 4j + 3) completes. Every temporal conv pads its own input
with zeros on the past side (see vision_layers), so the first steps see zero history, like the
original started on an empty internal state. Trailing frames that do not fill a group of 4 give
no step. The streaming mode (`init_stream_state` / `stream_step`) consumes one frame at a time
and emits step j on frame 4j + 3, equal to the batch forward.

Stream-VLM stores features as (T, C, h, w): see `to_stream_vlm_layout`; the per-step tokens for
cross-attention are `feature_tokens` (row-major over (h, w), as flattening (C, h, w) does).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax.models import vision_stream
from biocoach_jax.models.vision_config import VisionConfig, make_config  # noqa: F401 (re-export)
from biocoach_jax.models.vision_layers import InvertedResidual, conv2d, relu6
from biocoach_jax.models.vision_stream import StreamState


class VisionCNN(nnx.Module):
    """stem (3x3 stride 2, ReLU6) -> inverted residual blocks -> head (1x1, no activation).

    Module tree mirrors the original `cnn` Sequential: stem = cnn.0, blocks[i] = cnn.{i+1},
    head = cnn.{N+1} (see converters/sense_cnn.py for the key mapping)."""

    def __init__(self, config: VisionConfig, *, rngs: nnx.Rngs, kernel_init=None):
        """kernel_init: None = LeCun normal (flax default); `abstract_vision_cnn` passes zeros,
        which is far cheaper to trace for a model whose values are replaced anyway."""
        self.config = config
        kw = dict(precision=config.precision, rngs=rngs, kernel_init=kernel_init)
        self.stem = conv2d(3, config.stem_channels, 3, 2, **kw)
        self.blocks = nnx.List([InvertedResidual(b, **kw) for b in config.blocks()])
        self.head = conv2d(config.last_block_channels, config.out_channels, 1, **kw)

    def _check_frames(self, frames) -> None:
        h, w = self.config.frame_size
        shape = tuple(frames.shape)
        if len(shape) != 5 or shape[2:] != (h, w, 3):
            raise ValueError(f"VisionCNN: frames must be (B, T, {h}, {w}, 3) RGB, got {shape}")
        if shape[1] < self.config.time_stride:
            raise ValueError(f"VisionCNN: need at least {self.config.time_stride} frames for one "
                             f"step, got T={shape[1]}")
        if not jnp.issubdtype(frames.dtype, jnp.floating):
            raise ValueError(f"VisionCNN: frames must be float in [0, 1] (divide uint8 by 255), "
                             f"got dtype {frames.dtype}")

    def __call__(self, frames: jax.Array) -> jax.Array:
        """(B, T, H, W, 3) -> (B, T // time_stride, h, w, out_channels)."""
        self._check_frames(frames)
        b, t = frames.shape[:2]
        x = relu6(self.stem(frames.astype(jnp.float32).reshape(b * t, *frames.shape[2:])))
        x = x.reshape(b, t, *x.shape[1:])
        for blk in self.blocks:
            x = blk(x)
        b, t = x.shape[:2]
        y = self.head(x.reshape(b * t, *x.shape[2:]))  # before the head's ReLU6
        return y.reshape(b, t, *y.shape[1:])

    def init_stream_state(self, batch: int) -> StreamState:
        """Empty per-layer past-frame buffers for `batch` parallel streams."""
        return vision_stream.init_stream_state(self, batch)

    def stream_step(self, state: StreamState, frame: jax.Array):
        """One frame (B, H, W, 3) -> (state, (feature (B, h, w, C), valid)); see module doc."""
        return vision_stream.stream_step(self, state, frame)


def create_vision_cnn(config: VisionConfig, seed: int = 0, bias_std: float = 0.0) -> VisionCNN:
    """A randomly initialised model: kernels ~ N(0, 1/fan_in) (LeCun normal), biases
    ~ N(0, bias_std^2). Drawn with numpy on the host: building the model eagerly (or jitting its
    initialisers) costs seconds of XLA compilation on CPU, and this CNN is normally loaded from
    a converted checkpoint anyway."""
    model = abstract_vision_cnn(config)
    gen = np.random.default_rng(seed)
    values = {}
    for path, shape in param_shapes(model).items():
        if path[-1] == "kernel":
            values[path] = gen.normal(0.0, np.prod(shape[:-1]) ** -0.5, shape)
        else:
            values[path] = gen.normal(0.0, 1.0, shape) * bias_std
    set_params(model, values)
    return model


def param_shapes(model: VisionCNN) -> dict[tuple, tuple[int, ...]]:
    """{path: shape} of every parameter, path like ('blocks', 3, 'expand', 'kernel')."""
    return {path: tuple(var.shape) for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def get_params(model: VisionCNN) -> dict[tuple, jax.Array]:
    """{path: array} of every parameter (same paths as `param_shapes`)."""
    return {path: var[...] for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def set_params(model: VisionCNN, values: dict) -> None:
    """Replace every parameter (in place) from {path: array}; the keys must be exactly
    `param_shapes(model)`'s and the shapes must match (checked by the caller's loader)."""
    expected = param_shapes(model)
    if set(values) != set(expected):
        raise ValueError(f"set_params: parameter paths differ: missing "
                         f"{sorted(map(str, set(expected) - set(values)))}, unexpected "
                         f"{sorted(map(str, set(values) - set(expected)))}")
    flat = []
    for path, shape in expected.items():
        v = jnp.asarray(values[path], jnp.float32)
        if v.shape != shape:
            raise ValueError(f"set_params: {'/'.join(map(str, path))} has shape {v.shape}, expected {shape}")
        flat.append((path, v))
    nnx.update(model, nnx.from_flat_state(flat))


def abstract_vision_cnn(config: VisionConfig) -> VisionCNN:
    """The model with shape-only parameters (no allocation): for shape checks and for loaders
    that fill every parameter (converters/sense_cnn.py)."""
    zeros = nnx.initializers.zeros
    return nnx.eval_shape(lambda: VisionCNN(config, rngs=nnx.Rngs(0), kernel_init=zeros))


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, frames):
    return nnx.merge(graphdef, params)(frames)


@functools.partial(jax.jit, static_argnums=0)
def _stream_step(graphdef, params, state, frame):
    return nnx.merge(graphdef, params).stream_step(state, frame)


def jit_forward(model: VisionCNN):
    """A jitted `frames -> features` of a snapshot of `model`'s parameters. Parameters are
    arguments (not constants baked into the program), so models of one config share a compile;
    it recompiles only for a new input shape."""
    graphdef, params = nnx.split(model)
    return lambda frames: _forward(graphdef, params, frames)


def jit_stream_step(model: VisionCNN):
    """A jitted `(state, frame) -> (state, (feature, valid))` of a snapshot of `model`."""
    graphdef, params = nnx.split(model)
    return lambda state, frame: _stream_step(graphdef, params, state, frame)


def to_stream_vlm_layout(features: jax.Array) -> jax.Array:
    """(..., T, h, w, C) -> (..., T, C, h, w), Stream-VLM's `<video>_features.npy` layout."""
    return jnp.moveaxis(features, -1, -3)


def from_stream_vlm_layout(features: jax.Array) -> jax.Array:
    """(..., T, C, h, w) -> (..., T, h, w, C)."""
    return jnp.moveaxis(features, -3, -1)


def feature_tokens(features: jax.Array) -> jax.Array:
    """(..., h, w, C) -> (..., h*w, C): the per-step spatial tokens (35 at 7x5), row-major."""
    return features.reshape(*features.shape[:-3], -1, features.shape[-1])

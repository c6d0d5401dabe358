"""Causal 3D CNN (models/vision*.py): shapes, exact time alignment / causality, streaming == batch,
config facts of the original, bad input. Tiny configs; one jitted forward / step per shape."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from biocoach_jax.models import vision
from biocoach_jax.models.vision_config import StageSpec, VisionConfig, make_config

# Odd frame size on purpose (39 x 25 -> 2 x 1 map): exercises PyTorch-style symmetric padding
# on odd sizes. Depth 0.34 keeps shifted blocks with and without residuals, and both strides.
TINY = make_config(width=0.25, depth=0.34, out_channels=24, frame_size=(39, 25))
T = 14  # three full steps + 2 trailing frames that complete no step


@pytest.fixture(scope="module")
def model():
    return vision.create_vision_cnn(TINY, seed=3, bias_std=0.3)


@pytest.fixture(scope="module")
def forward(model):
    return vision.jit_forward(model)


def _frames(rng, b=2, t=T, cfg=TINY):
    return rng.uniform(0.0, 1.0, (b, t, *cfg.frame_size, 3)).astype(np.float32)


# The original StridedInflatedEfficientNet layer list, transcribed from quic/sense
# (in, out, kernel, spatial stride, expand, temporal shift, temporal stride).
_ORIGINAL = [
    (32, 24, 3, 1, 1, 0, 0), (24, 32, 3, 2, 6, 0, 0), (32, 32, 3, 1, 6, 1, 0), (32, 32, 3, 1, 6, 0, 0),
    (32, 32, 3, 1, 6, 0, 0), (32, 56, 5, 2, 6, 0, 0), (56, 56, 5, 1, 6, 1, 1), (56, 56, 5, 1, 6, 0, 0),
    (56, 56, 5, 1, 6, 0, 0), (56, 112, 3, 2, 6, 0, 0), (112, 112, 3, 1, 6, 1, 0), (112, 112, 3, 1, 6, 0, 0),
    (112, 112, 3, 1, 6, 0, 0), (112, 112, 3, 1, 6, 1, 1), (112, 112, 3, 1, 6, 0, 0), (112, 160, 5, 1, 6, 0, 0),
    (160, 160, 5, 1, 6, 1, 0), (160, 160, 5, 1, 6, 0, 0), (160, 160, 5, 1, 6, 0, 0), (160, 160, 5, 1, 6, 1, 0),
    (160, 160, 5, 1, 6, 0, 0), (160, 272, 5, 2, 6, 0, 0), (272, 272, 5, 1, 6, 1, 0), (272, 272, 5, 1, 6, 0, 0),
    (272, 272, 5, 1, 6, 1, 0), (272, 272, 5, 1, 6, 0, 0), (272, 272, 5, 1, 6, 0, 0), (272, 272, 5, 1, 6, 0, 0),
    (272, 272, 5, 1, 6, 0, 0), (272, 448, 3, 1, 6, 0, 0),
]


def test_full_config_is_the_original_layer_list():
    cfg = make_config()
    got = [(b.in_channels, b.out_channels, b.kernel, b.spatial_stride, b.expand_ratio,
            int(b.temporal_shift), int(b.temporal_stride)) for b in cfg.blocks()]
    assert got == _ORIGINAL
    assert (cfg.stem_channels, cfg.out_channels, cfg.time_stride) == (32, 1280, 4)
    assert cfg.feature_map_size == (7, 5)


def test_full_config_shapes_without_allocation():
    cfg = make_config()
    abstract = vision.abstract_vision_cnn(cfg)
    graphdef, params = nnx.split(abstract)
    assert params["head"]["kernel"].shape == (1, 1, 448, 1280)
    assert params["blocks"][6]["expand"]["kernel"].shape == (3, 56, 336)  # temporal, 56*6 hidden
    for t, steps in [(8, 2), (11, 2)]:
        x = jax.ShapeDtypeStruct((2, t, 224, 160, 3), jnp.float32)
        out = jax.eval_shape(lambda p, x: nnx.merge(graphdef, p)(x), params, x)
        assert out.shape == (2, steps, 7, 5, 1280) and out.dtype == jnp.float32
        assert jax.eval_shape(vision.to_stream_vlm_layout, out).shape == (2, steps, 1280, 7, 5)
        assert jax.eval_shape(vision.feature_tokens, out).shape == (2, steps, 35, 1280)

    def one_step(p):
        m = nnx.merge(graphdef, p)
        return m.stream_step(m.init_stream_state(3), jnp.zeros((3, 224, 160, 3)))

    state, (feat, valid) = jax.eval_shape(one_step, params)
    assert feat.shape == (3, 7, 5, 1280) and valid.shape == () and len(state.buffers) == 8
    assert state.buffers[0].shape == (3, 2, 56, 40, 32)  # block 3's input, two past frames


@pytest.mark.parametrize("width,depth", [(0.25, 0.34), (0.5, 0.2), (0.3, 1.0)])
def test_scaled_configs_keep_temporal_structure(width, depth):
    cfg = make_config(width=width, depth=depth, out_channels=16, frame_size=(32, 24))
    assert cfg.time_stride == 4
    assert sum(b.temporal_stride for b in cfg.blocks()) == 2
    assert all(b.out_channels % 8 == 0 for b in cfg.blocks())
    assert VisionConfig.from_dict(cfg.to_dict()) == cfg


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="expand_ratio 1"):
        VisionConfig(stages=(StageSpec(1, 16, 2, 1, 3, shift_at=(1,)),))
    with pytest.raises(ValueError, match="invalid stage"):
        VisionConfig(stages=(StageSpec(6, 16, 2, 3, 3),))
    with pytest.raises(ValueError, match="width and depth"):
        make_config(width=0.0)


def test_tiny_shapes_and_layouts(forward, rng):
    x = _frames(rng)
    y = np.asarray(forward(x))
    assert y.shape == (2, T // 4, *TINY.feature_map_size, 24) == (2, 3, 2, 1, 24)
    assert np.all(np.isfinite(y)) and y.std() > 1e-2  # a live signal, so comparisons mean something
    back = vision.from_stream_vlm_layout(vision.to_stream_vlm_layout(y))
    np.testing.assert_array_equal(np.asarray(back), y)
    tokens = np.asarray(vision.feature_tokens(y))
    np.testing.assert_array_equal(tokens[1, 2, 1], y[1, 2, 1, 0])  # row-major (h, w)
    # Batch entries are independent streams (same compiled shape: swap them).
    np.testing.assert_allclose(np.asarray(forward(x[::-1])), y[::-1], rtol=1e-5, atol=1e-6)


def test_causality_and_exact_alignment(forward, rng):
    """Perturbing frames k.. leaves steps j with 4j + 3 < k bit-identical and changes step k // 4:
    step j depends on frames <= 4j + 3 and really on frame 4j + 3."""
    x = _frames(rng)
    base = np.asarray(forward(x))
    j = int(rng.integers(0, T // 4))
    for k in (4 * j, 4 * j + 3, int(rng.integers(0, 12))):
        x2 = x.copy()
        x2[:, k:] = rng.uniform(0.0, 1.0, x2[:, k:].shape)
        out = np.asarray(forward(x2))
        first_changed = k // 4
        np.testing.assert_array_equal(out[:, :first_changed], base[:, :first_changed], err_msg=f"k={k}")
        assert np.abs(out[:, first_changed] - base[:, first_changed]).max() > 1e-4, f"k={k}"
    # Only frame 4j + 3 changed: steps before j unchanged, step j changed.
    x3 = x.copy()
    x3[:, 4 * j + 3] = 1.0 - x3[:, 4 * j + 3]
    out = np.asarray(forward(x3))
    np.testing.assert_array_equal(out[:, :j], base[:, :j])
    assert np.abs(out[:, j] - base[:, j]).max() > 1e-4


def test_stream_equals_batch(model, forward, rng):
    x = _frames(rng)
    batch = np.asarray(forward(x))
    step = vision.jit_stream_step(model)
    state = model.init_stream_state(2)
    feats, valids = [], []
    for n in range(T):
        state, (feat, valid) = step(state, x[:, n])
        valids.append(bool(valid))
        feats.append(np.asarray(feat))
    assert valids == [n % 4 == 3 for n in range(T)]
    assert int(state.count) == T
    got = np.stack([f for f, v in zip(feats, valids) if v], axis=1)
    np.testing.assert_allclose(got, batch, rtol=1e-5, atol=1e-5 * np.abs(batch).max())
    assert all(not f.any() for f, v in zip(feats, valids) if not v)


def test_bad_inputs_raise_clear_errors(model, rng):
    h, w = TINY.frame_size
    with pytest.raises(ValueError, match=r"frames must be \(B, T, 39, 25, 3\)"):
        model(jnp.zeros((1, 8, w, h, 3)))
    with pytest.raises(ValueError, match="at least 4 frames"):
        model(jnp.zeros((1, 3, h, w, 3)))
    with pytest.raises(ValueError, match="divide uint8 by 255"):
        model(jnp.zeros((1, 4, h, w, 3), jnp.uint8))
    state = model.init_stream_state(2)
    with pytest.raises(ValueError, match="frame must be"):
        model.stream_step(state, jnp.zeros((1, h, w, 3)))
    with pytest.raises(ValueError, match="init_stream_state"):
        model.stream_step(state._replace(buffers=state.buffers[:-1]), jnp.zeros((2, h, w, 3)))
    with pytest.raises(ValueError, match="batch must be"):
        model.init_stream_state(0)

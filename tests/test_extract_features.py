"""extract_features: chunked causal CNN features equal the whole-video forward; layout, skip,
atomic outputs, decode errors, the absl/config_flags CLI."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from biocoach_jax import extract_features as xf
from biocoach_jax.data import qevd
from biocoach_jax.data.session import load_split
from biocoach_jax.data.video import read_video
from biocoach_jax.models.vision import create_vision_cnn, jit_forward, make_config
from test_pipeline import write_world

FRAME = (28, 20)
VISION = dict(width=0.25, depth=0.3, out_channels=5, frame_size=FRAME, checkpoint="")
REPO = pathlib.Path(__file__).resolve().parent.parent
CLIP = 344  # every whole-video forward is padded to this length: one compile for all


def whole_forward(model, frames: np.ndarray) -> np.ndarray:
    """Oracle: the CNN over the whole clip at once; trailing padding cannot change earlier
    steps (causal), so the clip is padded with its last frame to CLIP frames."""
    x = np.concatenate([frames, np.repeat(frames[-1:], CLIP - len(frames), 0)])
    return np.asarray(jit_forward(model)(x[None]))[0, :len(frames) // 4]


def make_cfg(**vision):
    v = dict(VISION)
    v.update(vision)
    return ml_collections.ConfigDict({"seed": 1, "data": {"fps": 16.0}, "vision": v})


@pytest.fixture(scope="module")
def model():
    return create_vision_cnn(make_config(0.25, 0.3, 5, FRAME), seed=1)


def test_chunked_features_equal_whole_video_forward(tmp_path, rng, model):
    split, workouts = write_world(tmp_path, rng, 2, video_size=(40, 28), features=False)
    chunk = int(rng.choice([8, 12, 20]))
    counts = xf.extract_split(make_cfg(), tmp_path, "train", model=model, chunk_frames=chunk,
                              progress=False)
    assert counts == {"done": 2, "skipped": 0}
    for w in workouts:
        f_path, t_path = xf.outputs_for(split, w.video_file)
        feats, times = np.load(f_path), np.load(t_path)
        frames, _ = read_video(split / w.video_file, 16.0, FRAME)
        whole = whole_forward(model, frames.astype(np.float32) / 255.0)  # (n, h, w, C)
        n = len(frames) // 4
        assert feats.shape == (n + 1, 5, *model.config.feature_map_size)
        assert np.all(feats[0] == 0)
        np.testing.assert_allclose(feats[1:], np.moveaxis(whole, -1, 1), rtol=1e-4, atol=1e-5)
        t = qevd.read_video_timestamps(split / w.timestamps_file)
        np.testing.assert_array_equal(times, np.concatenate([[t[0]], t[np.arange(n) * 4 + 3]]))
    # the session loader finds them, and a second run skips both
    assert load_split(tmp_path, "train")[0].features_path == xf.outputs_for(split, workouts[0].video_file)[0]
    before = [os.stat(xf.outputs_for(split, w.video_file)[0]).st_mtime_ns for w in workouts]
    assert xf.extract_split(make_cfg(), tmp_path, "train", model=model, chunk_frames=chunk,
                            progress=False) == {"done": 0, "skipped": 2}
    assert before == [os.stat(xf.outputs_for(split, w.video_file)[0]).st_mtime_ns for w in workouts]
    # a truncated output is redone
    f0 = xf.outputs_for(split, workouts[0].video_file)[0]
    good = f0.read_bytes()
    f0.write_bytes(good[:len(good) // 2])
    assert xf.extract_split(make_cfg(), tmp_path, "train", model=model, chunk_frames=chunk,
                            progress=False) == {"done": 1, "skipped": 1}
    assert f0.read_bytes() == good


def test_receptive_field_bounds_the_history(model, rng):
    """Steps past the receptive field do not depend on frames before it (so the overlap is
    enough), and the bound is not vacuous (it is shorter than a plain guess of the whole clip)."""
    R = xf.temporal_receptive_field(model.config)
    assert 0 < R < 64
    x = rng.uniform(size=(64, *FRAME, 3)).astype(np.float32)
    y = x.copy()
    y[:8] = rng.uniform(size=(8, *FRAME, 3))
    a, b = whole_forward(model, x), whole_forward(model, y)
    first_safe = -(-(8 + R) // 4)   # steps whose frames 4j+3-R.. start at or after frame 8
    np.testing.assert_allclose(a[first_safe:], b[first_safe:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:2], b[:2])


def test_decode_failure_names_video_and_keeps_done(tmp_path, rng, model):
    split, workouts = write_world(tmp_path, rng, 2, video_size=(40, 28), features=False)
    bad = split / workouts[1].video_file
    bad.write_bytes(b"\x00not a video at all" * 10)
    with pytest.raises(xf.ExtractionError, match="0001.mp4.*1 video"):
        xf.extract_split(make_cfg(), tmp_path, "train", model=model, progress=False)
    assert xf.is_done(*xf.outputs_for(split, workouts[0].video_file))
    assert not xf.outputs_for(split, workouts[1].video_file)[0].exists()
    assert not [p for p in (split / "efficientnet_features").rglob(".*")]  # no temp files left


def test_cli_with_config_overrides(tmp_path, rng):
    write_world(tmp_path, rng, 1, video_size=(40, 28), features=False)
    cfg_file = tmp_path / "tiny.py"
    cfg_file.write_text(
        "import ml_collections\n\n"
        "def get_config():\n"
        f"    return ml_collections.ConfigDict({dict(make_cfg().to_dict())!r})\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", XLA_FLAGS="")
    proc = subprocess.run(
        [sys.executable, "-m", "biocoach_jax.extract_features", f"--config={cfg_file}",
         "--config.vision.out_channels=3", f"--data={tmp_path}", "--split=all"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RANDOMLY initialised" in proc.stderr
    feats = np.load(tmp_path / qevd.TRAIN_DIR / "efficientnet_features/long_range_videos/0000_features.npy")
    assert feats.shape[1] == 3 and np.all(feats[0] == 0)
    proc = subprocess.run([sys.executable, "-m", "biocoach_jax.extract_features",
                           f"--config={cfg_file}", f"--data={tmp_path / 'nowhere'}", "--split=train"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and "nowhere" in proc.stderr

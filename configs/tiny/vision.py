"""Tiny chain, stage 2: pretrain the tiny causal 3D CNN (48x32 frames, 64 output channels) on
rendered synthetic clips (exercise class + movement phase per step), on CPU.

    python -m biocoach_jax.train --config=configs/tiny/vision.py --workdir=$BIOCOACH_TINY_ROOT/vision

Needs nothing on disk (clips are rendered in memory). Writes <workdir>/vision_cnn (the
`converters.sense_cnn` format), the `vision.checkpoint` of the later tiny stages.
"""
from configs._base import base


def tiny_vision(c):
    c.vision.width = 0.25
    c.vision.depth = 0.35
    c.vision.out_channels = 64
    c.vision.frame_size = (48, 32)
    return c


def make(root: str = ""):
    del root  # clips are rendered in memory
    c = tiny_vision(base())
    c.stage = "vision"
    c.vision_data.tracks_per_exercise = 2
    c.vision_data.eval_tracks_per_exercise = 1
    c.vision_data.clip_steps = 4
    c.data.batch_size = 16
    c.train.trainable = "vision"
    c.train.steps = 200
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.optimizer.lr = 3e-3
    c.optimizer.warmup_steps = 10
    return c


def get_config():
    return make()

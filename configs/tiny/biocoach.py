"""Tiny chain, stage 4: BioCoach (cross-attention + morphology fusion + DoF selector) from the
tiny Stream-VLM run, with C_motion and C_morph, on the synthetic world, on CPU.

    python -m biocoach_jax.train --config=configs/tiny/biocoach.py --workdir=$BIOCOACH_TINY_ROOT/biocoach

Needs the products of configs/tiny/{lm,vision,streamvlm}.py under $BIOCOACH_TINY_ROOT.
Also the shape used by benchmarks/train_step.py.
"""
import os

from configs._base import tiny_root
from configs.tiny.streamvlm import tiny_vlm


def make(root: str | None = None):
    root = tiny_root() if root is None else root
    c = tiny_vlm("biocoach", root)
    c.init.checkpoint = os.path.join(root, "streamvlm")
    c.model.dof_k = 12
    c.model.dof_loss_weight = 1.0
    return c


def get_config():
    return make()

"""Ablation tau = 2 s (8 steps at 4 Hz) instead of 3 s: the paper's failing window.

    python -m biocoach_jax.train --config=configs/ablations/window_2s.py --workdir=$RUNS/window_2s
"""
from configs import full


def get_config():
    c = full.get_config()
    c.data.window_s = 2.0
    return c

"""Ablation "w/o motion context": no C_motion segment in the token stream.

    python -m biocoach_jax.train --config=configs/ablations/no_motion_context.py --workdir=$RUNS/no_motion
"""
from configs import full


def get_config():
    c = full.get_config()
    c.data.use_motion_context = False
    return c

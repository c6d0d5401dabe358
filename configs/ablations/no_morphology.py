"""Ablation "w/o morphology": no C_morph, no morphology fusion (z = F).

    python -m biocoach_jax.train --config=configs/ablations/no_morphology.py --workdir=$RUNS/no_morph
"""
from configs import full


def get_config():
    c = full.get_config()
    c.data.use_morphology = False
    return c

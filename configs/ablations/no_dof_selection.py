"""Ablation "w/o DoF selection": the motion context analyses all DoFs, no selector loss.

    python -m biocoach_jax.train --config=configs/ablations/no_dof_selection.py --workdir=$RUNS/no_dof
"""
from configs import full


def get_config():
    c = full.get_config()
    c.model.use_dof_selection = False
    c.data.context_dofs = "all"
    return c

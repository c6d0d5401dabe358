"""Tiny chain, the paper's four ablations as BioCoach variants (one change each on
configs/tiny/biocoach.py, the same changes as configs/ablations/*.py make on configs/full.py):

    python -m biocoach_jax.train --config=configs/tiny/ablation.py:no_motion_context --workdir=$BIOCOACH_TINY_ROOT/ablations/no_motion_context

NAME: no_dof_selection (context over all DoFs, no selector), no_motion_context (no C_motion
segment), no_morphology (no C_morph, z = F), window_2s (tau = 2 s). Each starts from the tiny
Stream-VLM run, like configs/tiny/biocoach.py.
"""
from configs.tiny import biocoach
from configs.tiny.streamvlm import SHORT_STREAM_TOKENS

ABLATIONS = ("no_dof_selection", "no_motion_context", "no_morphology", "window_2s")


def apply(c, name: str):
    """`c` (a BioCoach config) with ablation `name`."""
    if name == "no_dof_selection":
        c.model.use_dof_selection = False
        c.data.context_dofs = "all"
    elif name == "no_motion_context":
        c.data.use_motion_context = False
        c.data.max_tokens = SHORT_STREAM_TOKENS   # the shorter rows fit (not a model change)
    elif name == "no_morphology":
        c.data.use_morphology = False
    elif name == "window_2s":
        c.data.window_s = 2.0
    else:
        raise ValueError(f"unknown ablation {name!r}; expected one of {ABLATIONS}")
    return c


def make(name: str, root: str | None = None):
    return apply(biocoach.make(root), name)


def get_config(name: str = "no_motion_context"):
    return make(name)

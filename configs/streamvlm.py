"""The Stream-VLM baseline stage at paper scale: LLaMA-2-7B (bf16, frozen) with LoRA r=32 on
q/k/v/lm_head and vision cross-attention in layers 6, 8, ..., 22; no kinematic or morphology
context, no DoF selector. Its workdir is the `init.checkpoint` of configs/full.py.

    python -m biocoach_jax.train --config=configs/streamvlm.py --workdir=$STREAMVLM_RUN \
        --config.llm.path=$LLAMA2_7B --config.data.data_dir=$QEVD_ROOT

Environment and paths as in configs/full.py.
"""
from configs import full


def get_config():
    c = full.get_config()
    c.stage = "streamvlm"
    c.train.trainable = "streamvlm"
    c.init.checkpoint = ""  # starts from the LLaMA (and fresh LoRA / cross-attention)
    c.data.use_motion_context = False
    c.data.use_morphology = False
    c.model.use_dof_selection = False
    c.optimizer.lr = 1e-4
    return c

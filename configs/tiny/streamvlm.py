"""Tiny chain, stage 3: the Stream-VLM baseline stage (LoRA + vision cross-attention) on the
synthetic world, starting from the tiny LLaMA of stage 1 and the tiny CNN of stage 2.

    python -m biocoach_jax.train --config=configs/tiny/streamvlm.py --workdir=$BIOCOACH_TINY_ROOT/streamvlm
    python -m biocoach_jax.train --config=configs/tiny/streamvlm.py:colloquial --workdir=$BIOCOACH_TINY_ROOT/streamvlm_colloquial

The second is the paper's baseline condition: Stream-VLM as released was trained on
QEVD-fit-coach's colloquial feedback and evaluated on the anatomical rewrite; it learns the
synthetic world's colloquial wording of the same lines (data.qevd.COLLOQUIAL_RECORDS_FILE).

Needs $BIOCOACH_TINY_ROOT/{data, tokenizer, lm/llama, vision/vision_cnn} (stages 1 and 2, the
synthetic world and its cached features). Its workdir is the `init.checkpoint` of
configs/tiny/biocoach.py.
"""
import os

from biocoach_jax.data.qevd import COLLOQUIAL_RECORDS_FILE
from configs._base import base, tiny_root
from configs.tiny.vision import tiny_vision


# Without C_motion segments a stream is prompt + one <vision> per step + the feedbacks: at most
# 362 tokens over the demo's 75 train segments (median 266), so 384 rows instead of 1024 (a
# ~3x cheaper step; an episode that does not fit is truncated with a warning).
SHORT_STREAM_TOKENS = 384


def tiny_vlm(stage: str, root: str | None = None):
    """The shared shape of the two coaching stages (and of the tiny ablations)."""
    root = tiny_root() if root is None else root
    c = tiny_vision(base())
    c.stage = stage
    c.llm.path = os.path.join(root, "lm", "llama")
    c.llm.lora.rank = 8
    c.llm.lora.alpha = 16.0
    c.llm.lora.dropout = 0.0
    c.llm.vision_layers = (1, 3)
    c.tokenizer.path = os.path.join(root, "tokenizer")
    c.vision.checkpoint = os.path.join(root, "vision", "vision_cnn")
    c.data.data_dir = os.path.join(root, "data")
    # a ~25 s segment is ~100 steps; with its C_motion segments the stream is ~900 tokens
    c.data.max_tokens = 1024
    c.data.max_steps = 128
    c.data.max_morph_tokens = 48
    c.data.batch_size = 4
    c.model.dof_hidden = 64
    c.model.morph_heads = 1
    c.train.trainable = stage
    c.train.steps = 150
    c.train.eval_every = 150
    c.train.checkpoint_every = 150
    c.optimizer.lr = 1e-3
    c.optimizer.warmup_steps = 10
    return c


def make(root: str | None = None, wording: str = "anatomical"):
    c = tiny_vlm("streamvlm", root)
    if wording == "colloquial":
        c.data.records_file = COLLOQUIAL_RECORDS_FILE
    elif wording != "anatomical":
        raise ValueError(f"wording must be 'anatomical' or 'colloquial', got {wording!r}")
    c.data.use_motion_context = False  # the baseline sees no kinematic context
    c.data.max_tokens = SHORT_STREAM_TOKENS
    c.data.use_morphology = False
    c.model.use_dof_selection = False
    return c


def get_config(wording: str = "anatomical"):
    return make(wording=wording)

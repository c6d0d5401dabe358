"""The training/eval batch: one single-exercise episode per row, padded to static shapes.

This is the contract between the sequence builder / grain pipeline (`data/sequence.py`,
`data/pipeline.py`), the model (`models/biocoach.py`) and `train.py`. All arrays are numpy on
the host and become (sharded) jax arrays in the train step. Shapes:
B = batch, L = tokens per row (config.data.max_tokens), S = feature steps per row
(config.data.max_steps, step 0 = Stream-VLM's all-zero step), N = spatial tokens per step
(35 = 7x5 at full size), C = feature channels, M = morphology tokens (config.data.max_morph_tokens).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    tokens: np.ndarray            # (B, L) int32 input ids (pad_id after the episode)
    targets: np.ndarray           # (B, L) int32 next-token ids (targets[:, i] = tokens[:, i+1])
    loss_weights: np.ndarray      # (B, L) float32: alpha (0.1) where the target is <vision>,
                                  #   1 on feedback tokens and <answer>/<answer/>, 0 on prompt,
                                  #   context segments and padding
    attention_mask: np.ndarray    # (B, L) bool real tokens
    vision_mask: np.ndarray       # (B, L) bool positions holding a <vision> token
    vision_step: np.ndarray       # (B, L) int32 feature step each <vision> position attends to
                                  #   (0 elsewhere); the k-th <vision> of an episode sees step k
    features: np.ndarray          # (B, S, N, C) float32 visual tokens per 0.25 s step
    step_mask: np.ndarray         # (B, S) bool valid steps
    morph_tokens: np.ndarray      # (B, M) int32 C_morph text ids (no BOS), pad elsewhere
    morph_mask: np.ndarray        # (B, M) bool
    joint_labels: np.ndarray      # (B, 24) float32 expert labels: the exercise's key joints
    joint_label_mask: np.ndarray  # (B,) bool rows that have labels
    episode_index: np.ndarray     # (B,) int32 index of the episode in its split (-1 = padding row)


def empty_batch(batch: int, max_tokens: int, max_steps: int, spatial: int, channels: int,
                max_morph: int, pad_id: int) -> Batch:
    """A batch of padding rows (what a short final batch is filled with)."""
    z = np.zeros
    return Batch(
        tokens=np.full((batch, max_tokens), pad_id, np.int32),
        targets=np.full((batch, max_tokens), pad_id, np.int32),
        loss_weights=z((batch, max_tokens), np.float32),
        attention_mask=z((batch, max_tokens), bool), vision_mask=z((batch, max_tokens), bool),
        vision_step=z((batch, max_tokens), np.int32),
        features=z((batch, max_steps, spatial, channels), np.float32),
        step_mask=z((batch, max_steps), bool),
        morph_tokens=np.full((batch, max_morph), pad_id, np.int32),
        morph_mask=z((batch, max_morph), bool),
        joint_labels=z((batch, 24), np.float32), joint_label_mask=z((batch,), bool),
        episode_index=np.full((batch,), -1, np.int32))

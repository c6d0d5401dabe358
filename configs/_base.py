"""Defaults for every field the training code reads (configs/README.md); not a run config.

Config files start from `base()` and change what their run needs.
"""
from __future__ import annotations

import os

import ml_collections


def tiny_root() -> str:
    """Where the tiny CPU chain keeps its data and runs (override with BIOCOACH_TINY_ROOT)."""
    return os.environ.get("BIOCOACH_TINY_ROOT", "/tmp/biocoach_tiny")


def base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stage = "biocoach"
    c.seed = 0

    c.llm = ml_collections.ConfigDict()
    c.llm.path = ""                     # HF or converted LLaMA directory; "" = fresh from llm.config
    c.llm.config = None                 # LlamaConfig fields (or an HF config.json dict); None = from llm.path
    c.llm.dtype = "float32"
    c.llm.param_dtype = "float32"
    c.llm.lora = ml_collections.ConfigDict(dict(rank=32, alpha=16.0, dropout=0.05,
                                                targets=("q", "k", "v", "lm_head")))
    c.llm.vision_layers = (6, 8, 10, 12, 14, 16, 18, 20, 22)

    c.tokenizer = ml_collections.ConfigDict(dict(path="", vocab_size=0))

    c.vision = ml_collections.ConfigDict(dict(width=1.0, depth=1.0, out_channels=1280,
                                              frame_size=(224, 160), checkpoint=""))
    # synthetic clips of the `vision` pretraining stage
    c.vision_data = ml_collections.ConfigDict(dict(tracks_per_exercise=2, eval_tracks_per_exercise=1,
                                                   clip_steps=4, active_s=8.0))

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ""
    c.data.split = "train"
    # the annotation index the coach learns from: the anatomical feedback (QEVD-bio-fit-coach
    # style) or, for the paper's Stream-VLM baseline, the synthetic world's colloquial wording
    # of the same lines (data.qevd.COLLOQUIAL_RECORDS_FILE)
    c.data.records_file = "feedbacks_long_range.json"
    c.data.eval_split = "benchmark"
    c.data.text_file = ""               # lm stage: one document per line ("" = the split's feedbacks)
    c.data.eval_rows = 0                # lm stage: packed rows held out for eval
    c.data.context_loss = True          # lm stage: C_motion / C_morph segments count in the loss
    c.data.fps = 16
    c.data.step_hz = 4
    c.data.window_s = 3.0
    c.data.max_tokens = 2048
    c.data.max_steps = 160
    c.data.max_morph_tokens = 48
    c.data.alpha = 0.1
    c.data.use_motion_context = True
    # where C_motion enters the stream (data/sequence.py): "before_answer" (DESIGN §4) or
    # "on_change" (after every <vision> that changes it, so the decision to speak reads it).
    # Tiny --long demo, on_change with 2048-token rows: BioCoach METEOR 0.447 vs 0.471, T-F
    # 0.661 vs 0.667, corrective METEOR 0.386 vs 0.372, real-time factor 0.083 vs 0.078, and
    # ~1850 vs ~4600 tokens/s in training (rows twice as long): no gain at the tiny scale, so
    # before_answer stays the default.
    c.data.motion_placement = "before_answer"
    c.data.context_dofs = "labels"
    c.data.use_morphology = True
    c.data.batch_size = 8
    c.data.workers = 0
    c.data.shuffle_buffer = 64

    c.model = ml_collections.ConfigDict(dict(use_dof_selection=True, dof_k=12, dof_loss_weight=1.0,
                                             dof_hidden=256, morph_heads=8, vocab_size=0))

    c.train = ml_collections.ConfigDict(dict(
        trainable="biocoach", steps=1000, grad_accum=1, eval_every=200, checkpoint_every=200,
        keep_checkpoints=3, log_every=10, stop_after=0, progress=True, async_checkpoint=True))
    c.optimizer = ml_collections.ConfigDict(dict(
        lr=2e-5, warmup_steps=100, weight_decay=0.0, clip_norm=1.0, schedule="cosine",
        end_lr_factor=0.0, b1=0.9, b2=0.999, eps=1e-8))
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.init = ml_collections.ConfigDict(dict(checkpoint=""))
    return c

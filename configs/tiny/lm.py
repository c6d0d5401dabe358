"""Tiny chain, stage 1: pretrain a tiny LLaMA (hidden 128, 4 layers, ~1k BPE vocabulary) from
scratch on the synthetic world's feedback texts, on CPU in a couple of minutes.

    python -m biocoach_jax.train --config=configs/tiny/lm.py --workdir=$BIOCOACH_TINY_ROOT/lm

Needs the synthetic world at $BIOCOACH_TINY_ROOT/data (default /tmp/biocoach_tiny/data), or a
text file: --config.data.text_file=corpus.txt. Trains the tokenizer into
$BIOCOACH_TINY_ROOT/tokenizer on first use. Writes <workdir>/llama for configs/tiny/streamvlm.py.
"""
import os

import ml_collections

from configs._base import base, tiny_root


def tiny_llama() -> ml_collections.ConfigDict:
    """LlamaConfig fields of the tiny model (vocab_size grows to the tokenizer's padded size)."""
    return ml_collections.ConfigDict(dict(
        vocab_size=1024, hidden_size=128, intermediate_size=344, num_layers=4, num_heads=4,
        num_kv_heads=2, head_dim=32, rms_norm_eps=1e-5, max_position_embeddings=1024))


def get_config():
    root = tiny_root()
    c = base()
    c.stage = "lm"
    c.llm.config = tiny_llama()
    c.tokenizer.path = os.path.join(root, "tokenizer")
    c.tokenizer.vocab_size = 1000
    c.data.data_dir = os.path.join(root, "data")
    c.data.max_tokens = 64
    c.data.batch_size = 16
    c.data.eval_rows = 32
    c.train.trainable = "lm"
    c.train.steps = 300
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.train.log_every = 10
    c.optimizer.lr = 3e-3
    c.optimizer.warmup_steps = 20
    c.optimizer.weight_decay = 0.01
    return c

"""Tiny chain, stage 1: pretrain a tiny LLaMA (hidden 128, 4 layers, ~1k BPE vocabulary) from
scratch on the synthetic world's coaching text, on CPU in a couple of minutes.

    python -m biocoach_jax.train --config=configs/tiny/lm.py --workdir=$BIOCOACH_TINY_ROOT/lm

Needs the synthetic world at $BIOCOACH_TINY_ROOT/data (default /tmp/biocoach_tiny/data), or a
text file: --config.data.text_file=corpus.txt (`python -m biocoach_jax.demo` writes one with the
feedbacks and the coaching streams with and without C_motion, see `biocoach_jax/demo_corpus.py`).
Trains the tokenizer into $BIOCOACH_TINY_ROOT/tokenizer on first use. Writes <workdir>/llama
for configs/tiny/streamvlm.py.
"""
import os

import ml_collections

from configs._base import base, tiny_root


def tiny_llama() -> ml_collections.ConfigDict:
    """LlamaConfig fields of the tiny model (vocab_size grows to the tokenizer's padded size)."""
    return ml_collections.ConfigDict(dict(
        vocab_size=1024, hidden_size=128, intermediate_size=344, num_layers=4, num_heads=4,
        num_kv_heads=2, head_dim=32, rms_norm_eps=1e-5, max_position_embeddings=2048))


def make(root: str) -> ml_collections.ConfigDict:
    c = base()
    c.stage = "lm"
    c.llm.config = tiny_llama()
    c.tokenizer.path = os.path.join(root, "tokenizer")
    c.tokenizer.vocab_size = 1000
    c.data.data_dir = os.path.join(root, "data")
    # long rows: a coaching stream with its C_motion texts is ~700 tokens, and the LM must
    # learn to quote a context segment into the feedback that follows it
    c.data.max_tokens = 256
    c.data.batch_size = 8
    c.data.eval_rows = 16
    # C_motion / C_morph are read, never written: the loss is on the feedback that quotes them
    c.data.context_loss = False
    c.train.trainable = "lm"
    c.train.steps = 400
    c.train.eval_every = 200
    c.train.checkpoint_every = 200
    c.train.log_every = 20
    c.optimizer.lr = 3e-3
    c.optimizer.warmup_steps = 30
    c.optimizer.weight_decay = 0.01
    return c


def get_config():
    return make(tiny_root())

"""Tokens/s and compile time of the tiny biocoach config's training step on CPU.

    python -m benchmarks.train_step [--steps 10]

The model is configs/tiny/biocoach.py's (tiny LLaMA of configs/tiny/lm.py built fresh, so no
earlier stage has to exist), the batch has the config's static shapes (B, L, S, N, C, M) with
random content, and the step is train.py's (split state, donated, AdamW). Tokens = real
(attention-mask) tokens per step. Last line: RESULT train_step tokens_per_s=... compile_s=...
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from biocoach_jax.data.batch import Batch  # noqa: E402
from biocoach_jax.models import biocoach as bc  # noqa: E402
from biocoach_jax.models.vision import make_config  # noqa: E402
from biocoach_jax.training import mesh as mesh_lib  # noqa: E402
from biocoach_jax.training import step as step_lib  # noqa: E402
from biocoach_jax.training.optim import make_optimizer  # noqa: E402
from configs.tiny import biocoach as tiny_biocoach  # noqa: E402
from configs.tiny.lm import tiny_llama  # noqa: E402


def random_batch(rng, cfg, vocab: int, spatial: int) -> Batch:
    b, length, s, m = cfg.data.batch_size, cfg.data.max_tokens, cfg.data.max_steps, cfg.data.max_morph_tokens
    c = cfg.vision.out_channels
    tokens = rng.integers(11, vocab, (b, length)).astype(np.int32)
    vision = np.zeros((b, length), bool)
    vision[:, 2::length // s] = True
    vision &= np.cumsum(vision, 1) <= s
    return Batch(tokens=tokens, targets=np.roll(tokens, -1, 1),
                 loss_weights=np.where(vision, 0.1, 1.0).astype(np.float32),
                 attention_mask=np.ones((b, length), bool), vision_mask=vision,
                 vision_step=np.where(vision, np.cumsum(vision, 1) - 1, 0).astype(np.int32),
                 features=rng.normal(size=(b, s, spatial, c)).astype(np.float32),
                 step_mask=np.ones((b, s), bool), morph_tokens=rng.integers(11, vocab, (b, m)).astype(np.int32),
                 morph_mask=np.ones((b, m), bool), joint_labels=(rng.random((b, 24)) < 0.4).astype(np.float32),
                 joint_label_mask=np.ones((b,), bool), episode_index=np.arange(b, dtype=np.int32))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    cfg = tiny_biocoach.get_config()
    cfg.llm.path = ""
    cfg.llm.config = tiny_llama()
    vcfg = make_config(cfg.vision.width, cfg.vision.depth, cfg.vision.out_channels, tuple(cfg.vision.frame_size))
    spatial = int(np.prod(vcfg.feature_map_size))
    mesh = mesh_lib.shd.make_mesh(1, 1, 1)
    model = bc.build_model(bc.ModelConfig.from_config(cfg), rngs=nnx.Rngs(0), mesh=mesh)
    trainable = bc.trainable_filter("biocoach")
    opt = nnx.Optimizer(model, make_optimizer(cfg.optimizer, cfg.train.steps), wrt=trainable)
    graphdef, mutable, frozen = step_lib.split_train_state(model, opt, trainable)
    step = step_lib.make_train_step(graphdef, trainable, lambda m, b: bc.loss_fn(
        m(b), b, dof_loss_weight=cfg.model.dof_loss_weight))
    rng = np.random.default_rng(0)
    batches = [mesh_lib.shard_batch(random_batch(rng, cfg, model.llm.cfg.vocab_size, spatial), mesh)
               for _ in range(2)]
    tokens = int(np.asarray(batches[0].attention_mask).sum())
    with jax.set_mesh(mesh):
        t0 = time.perf_counter()
        compiled = step.lower(mutable, frozen, batches[0]).compile()
        compile_s = time.perf_counter() - t0
        mutable, metrics = compiled(mutable, frozen, batches[0])  # warm-up
        jax.block_until_ready(metrics)
        t0 = time.perf_counter()
        for i in range(args.steps):
            mutable, metrics = compiled(mutable, frozen, batches[i % 2])
        jax.block_until_ready((mutable, metrics))
        dt = (time.perf_counter() - t0) / args.steps
    n_train = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, trainable)))
    print(f"tiny biocoach: B={cfg.data.batch_size} L={cfg.data.max_tokens} S={cfg.data.max_steps} "
          f"N={spatial} C={cfg.vision.out_channels}; {n_train:,} trainable parameters; "
          f"{dt * 1e3:.1f} ms/step, loss {float(metrics['loss']):.3f}; devices {jax.devices()[0].platform}")
    print(f"RESULT train_step tokens_per_s={tokens / dt:.1f} compile_s={compile_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""AdamW with linear warmup then cosine / linear decay (or constant), and global-norm clipping."""
from __future__ import annotations

import optax

SCHEDULES = ("cosine", "linear", "constant")


def make_schedule(opt_cfg, total_steps: int) -> optax.Schedule:
    """Warmup from 0 to `lr` over `warmup_steps`, then the named decay to `end_lr_factor * lr`
    at `total_steps` (or flat for 'constant')."""
    lr, warm = float(opt_cfg.lr), int(opt_cfg.warmup_steps)
    kind = str(opt_cfg.schedule)
    if kind not in SCHEDULES:
        raise ValueError(f"optimizer.schedule={kind!r}: expected one of {SCHEDULES}")
    if lr <= 0 or warm < 0 or total_steps < 1:
        raise ValueError(f"optimizer: need lr > 0, warmup_steps >= 0 and train.steps >= 1 "
                         f"(got lr={lr}, warmup_steps={warm}, steps={total_steps})")
    end = lr * float(opt_cfg.get("end_lr_factor", 0.0))
    decay_steps = max(total_steps - warm, 1)
    if kind == "cosine":
        decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=end / lr)
    elif kind == "linear":
        decay = optax.linear_schedule(lr, end, decay_steps)
    else:
        decay = optax.constant_schedule(lr)
    if warm == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), decay], [warm])


def make_optimizer(opt_cfg, total_steps: int) -> optax.GradientTransformation:
    """clip_by_global_norm(clip_norm) -> AdamW(schedule, b1, b2, eps, weight_decay).

    Decoupled weight decay applies to every trainable array (the trainable sets are adapters,
    cross-attention and small heads, where decaying norms and biases is harmless)."""
    tx = optax.adamw(make_schedule(opt_cfg, total_steps), b1=float(opt_cfg.get("b1", 0.9)),
                     b2=float(opt_cfg.get("b2", 0.999)), eps=float(opt_cfg.get("eps", 1e-8)),
                     weight_decay=float(opt_cfg.weight_decay))
    clip = float(opt_cfg.clip_norm)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx

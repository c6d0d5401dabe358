"""The pieces `biocoach_jax.train` calls, one job per module: mesh (devices and placement),
optim (AdamW + schedule), step (the jitted train/eval steps), checkpoint (orbax), metrics_log
(TensorBoard + JSONL), memory (per-device bytes of an abstract model), tasks (per-stage model,
loss and data hooks)."""

"""Per-stage hooks, so `train.py` stays one linear function.

A Task answers, for one `config.stage`:
  prepare(cfg, workdir)            one-off set-up before the model (e.g. train a tokenizer)
  build_model(cfg, mesh)           the model, deterministic from the config, already sharded
  trainable(cfg)                   nnx filter of the trained parameters (others: no optimizer state)
  loss_fn(cfg)                     (model, batch) -> (loss, metrics) with metrics['weight']
  train_iterator(cfg, pi, pc)      grain iterator (get_state / set_state) of host batches
  eval_batches(cfg)                a list of host batches (possibly empty)
  tokens(batch)                    count for the tokens/s readout (frames for the CNN stage)
  export(model, cfg, workdir)      write the stage's product for later stages (process 0 only,
                                   host-local writes; export_filter(cfg) = what it reads)
Stages: lm (tiny LLaMA on text, lm_task), vision (tiny CNN, vision_task), streamvlm and
biocoach (the paper's two stages, vlm_task).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

STAGES = ("lm", "vision", "streamvlm", "biocoach")


class Task:
    name = "task"

    def prepare(self, cfg, workdir) -> None:
        pass

    def export(self, model, cfg, workdir) -> None:
        pass

    def export_filter(self, cfg):
        from flax import nnx
        return nnx.Param

    def eval_batches(self, cfg) -> list:
        return []


def weighted_ce(logits, targets, weights):
    """(loss, metrics): token cross-entropy averaged over weight, argmax accuracy over weight > 0."""
    logits = logits.astype(jnp.float32)
    w = weights.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    wsum = jnp.sum(w)
    loss = jnp.sum(w * ce) / jnp.maximum(wsum, 1.0)
    counted = w > 0
    acc = jnp.sum((jnp.argmax(logits, -1) == targets) & counted) / jnp.maximum(jnp.sum(counted), 1)
    return loss, {"token_acc": acc, "weight": jnp.sum(counted).astype(jnp.float32)}


def get_task(stage: str) -> Task:
    if stage == "lm":
        from biocoach_jax.training.lm_task import LMTask
        return LMTask()
    if stage == "vision":
        from biocoach_jax.training.vision_task import VisionTask
        return VisionTask()
    if stage in ("streamvlm", "biocoach"):
        from biocoach_jax.training.vlm_task import VLMTask
        return VLMTask(stage)
    raise ValueError(f"config.stage={stage!r}: expected one of {STAGES}")


def process_rows(global_batch: int, process_count: int) -> int:
    """Rows each process loads per step (the global batch split evenly over processes)."""
    if global_batch % process_count:
        raise ValueError(f"data.batch_size={global_batch} is not divisible by the "
                         f"{process_count} processes")
    return global_batch // process_count


def host_tokens(mask) -> int:
    return int(jax.device_get(mask).sum())

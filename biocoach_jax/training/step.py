"""The jitted train and eval steps over split nnx state.

The (model, optimizer) pair is split once into
  mutable: the trainable parameters, the optimizer state and step, RNG state - donated to and
           returned by every step;
  frozen:  everything else (the frozen LLaMA, the CNN, constants) - passed in, never written,
           so it has no optimizer state and stays bit-identical.
Gradients are taken with respect to the trainable parameters only (split/merge + jax.grad),
but they flow through the frozen network to reach them (no stop_gradient anywhere).
Gradient accumulation is an explicit `lax.scan` over micro-batches: the update equals one step
on the mean of the micro-batch gradients.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

# loss_fn(model, batch) -> (scalar loss, {name: scalar}); every metric is a per-batch mean.
LossFn = Callable[[nnx.Module, Any], tuple[jax.Array, dict]]


def mutable_filter(trainable):
    return nnx.Any(trainable, nnx.OptState, nnx.RngState)


def split_train_state(model: nnx.Module, optimizer: nnx.Optimizer, trainable):
    """-> (graphdef, mutable, frozen) of the pair (model, optimizer); see module doc."""
    return nnx.split((model, optimizer), mutable_filter(trainable), ...)


def _micro_batches(batch, accum: int):
    def split(x):
        if x.shape[0] % accum:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into grad_accum={accum} "
                             "equal micro-batches")
        return x.reshape(accum, x.shape[0] // accum, *x.shape[1:])
    return jax.tree.map(split, batch)


def make_train_step(graphdef, trainable, loss_fn: LossFn, *, grad_accum: int = 1,
                    mutable_shardings=None):
    """A jitted `(mutable, frozen, batch) -> (mutable, metrics)` with `mutable` donated."""

    def grads_of(model, batch):
        gdef, params, rest = nnx.split(model, trainable, ...)

        def pure_loss(p, b):
            return loss_fn(nnx.merge(gdef, p, rest), b)

        grad_fn = jax.value_and_grad(pure_loss, has_aux=True)
        if grad_accum == 1:
            (loss, metrics), grads = grad_fn(params, batch)
            return grads, dict(metrics, loss=loss)

        def body(carry, micro):
            (loss, metrics), g = grad_fn(params, micro)
            metrics = dict(metrics, loss=loss)
            return jax.tree.map(jnp.add, carry, (g, metrics)), None

        zeros_g = jax.tree.map(jnp.zeros_like, params)
        first = jax.tree.map(lambda x: x[0], _micro_batches(batch, grad_accum))
        zeros_m = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda b: dict(
            grad_fn(params, b)[0][1], loss=jnp.zeros((), jnp.float32)), first))
        (g, m), _ = jax.lax.scan(body, (zeros_g, zeros_m), _micro_batches(batch, grad_accum))
        return (jax.tree.map(lambda x: x / grad_accum, g),
                jax.tree.map(lambda x: x / grad_accum, m))

    def step(mutable, frozen, batch):
        model, optimizer = nnx.merge(graphdef, mutable, frozen)
        grads, metrics = grads_of(model, batch)
        metrics["grad_norm"] = optax.global_norm(grads)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer), mutable_filter(trainable)), metrics

    out = None if mutable_shardings is None else (mutable_shardings, None)
    return jax.jit(step, donate_argnums=(0,), out_shardings=out)


def make_eval_step(graphdef, loss_fn: LossFn):
    """A jitted `(mutable, frozen, batch) -> metrics` (nothing donated, nothing updated)."""

    def step(mutable, frozen, batch):
        model, _ = nnx.merge(graphdef, mutable, frozen)
        loss, metrics = loss_fn(model, batch)
        return dict(metrics, loss=loss)

    return jax.jit(step)


def mean_metrics(all_metrics: list[dict]) -> dict[str, float]:
    """Average per-batch metrics, weighting each by its 'weight' entry when present (tokens)."""
    if not all_metrics:
        return {}
    w = [float(m.get("weight", 1.0)) for m in all_metrics]
    total = sum(w) or 1.0
    keys = [k for k in all_metrics[0] if k != "weight"]
    out = {k: sum(float(m[k]) * wi for m, wi in zip(all_metrics, w)) / total for k in keys}
    out["weight"] = sum(w)
    return out

"""Text generation over the KV cache: prefill once, then one token per step, all in one jit.

    out = generate(model, ids, mask, max_new_tokens=32)                      # greedy
    out = generate(model, ids, temperature=0.7, top_p=0.9, seed=1)           # sampling
    out = generate(model, ids, constrain=stream_vlm_constraint(v, a, a_end)) # Stream-VLM rules

`constrain` is either a jittable `fn(step_state, logits) -> logits` or a `Constraint` that also
carries its own state from token to token. Build it once and reuse it: it is a static argument
of the compiled loop, so a new object means a new compilation.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax.models.llama_model import KVCache, init_cache


class StepState(NamedTuple):
    step: jax.Array  # index of the token being chosen (0-based, scalar)
    last_token: jax.Array  # (B,) previous token (the prompt's last one at step 0)
    done: jax.Array  # (B,) rows that hit a stop token
    extra: Any  # a Constraint's carried state (None for a plain function)


class Constraint(NamedTuple):
    init: Callable[[int], Any]  # batch -> initial state (a pytree of arrays)
    apply: Callable[[StepState, jax.Array], jax.Array]  # (state, logits (B, V)) -> logits
    update: Callable[[Any, jax.Array], Any]  # (state, chosen tokens (B,)) -> state


class GenerateOutput(NamedTuple):
    tokens: jax.Array  # (B, max_new_tokens), pad_id after a stop token
    lengths: jax.Array  # (B,) tokens generated, the stop token included


def _no_state(batch):
    return None


def _keep_state(state, tokens):
    return state


def _as_constraint(constrain) -> Constraint | None:
    if constrain is None or isinstance(constrain, Constraint):
        return constrain
    # module-level helpers: the same function gives an equal Constraint, so no recompilation
    return Constraint(_no_state, constrain, _keep_state)


def _only(logits, token):
    """Logits that allow exactly `token` per row."""
    hit = jnp.arange(logits.shape[-1])[None, :] == token[:, None]
    return jnp.where(hit, 0.0, -jnp.inf).astype(logits.dtype)


def stream_vlm_constraint(vision_id: int, answer_id: int, answer_end_id: int,
                          max_feedback_len: int = 128) -> Constraint:
    """Stream-VLM's decoding rules (REFERENCE §2) as a constraint.

    Outside a feedback, a top token other than <vision>/<answer> is replaced by <vision>; inside,
    a top <vision>/<answer>, or a feedback already `max_feedback_len` tokens long, is replaced by
    <answer/>. When not forced, the tokens the rule would replace are masked, so sampling obeys
    the same grammar and greedy decoding is unchanged.
    """

    def init(batch):
        return jnp.zeros((batch,), bool), jnp.zeros((batch,), jnp.int32)  # inside, feedback length

    def apply(ss: StepState, logits):
        inside, length = ss.extra
        top = jnp.argmax(logits, axis=-1)
        is_tag = (top == vision_id) | (top == answer_id)
        force_vision = ~inside & ~is_tag
        force_close = inside & (is_tag | (length >= max_feedback_len))
        vocab = jnp.arange(logits.shape[-1])[None, :]
        tag = (vocab == vision_id) | (vocab == answer_id)
        allowed = jnp.where(inside[:, None], ~tag, tag)
        out = jnp.where(allowed, logits, -jnp.inf)
        out = jnp.where(force_vision[:, None], _only(logits, jnp.full_like(top, vision_id)), out)
        return jnp.where(force_close[:, None], _only(logits, jnp.full_like(top, answer_end_id)), out)

    def update(state, tok):
        inside, length = state
        now_inside = jnp.where(inside, tok != answer_end_id, tok == answer_id)
        return now_inside, jnp.where(inside & now_inside, length + 1, 0)

    return Constraint(init, apply, update)


def _choose(logits, key, sample: bool, temperature, top_p):
    """Greedy, or sampling at `temperature` from the top-p nucleus (both traced: no recompile)."""
    if not sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    # nucleus: the smallest set of top tokens whose probability reaches top_p
    srt = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(srt, axis=-1)
    keep = ((jnp.cumsum(probs, axis=-1) - probs) < top_p) | (top_p >= 1.0)
    thresh = jnp.min(jnp.where(keep, srt, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits >= thresh, logits, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_len"))
def prefill(graphdef, state, input_ids, attention_mask, max_len: int):
    """Run the prompt into a fresh cache; returns (logits of each row's last real token, cache)."""
    model = nnx.merge(graphdef, state)
    cache = init_cache(model.cfg, input_ids.shape[0], max_len, model.dtype)
    logits, cache = model(input_ids, attention_mask, cache=cache)
    t = input_ids.shape[1]
    last = jnp.max(jnp.where(attention_mask.astype(bool), jnp.arange(t)[None, :], -1), axis=1)
    return jnp.take_along_axis(logits, jnp.maximum(last, 0)[:, None, None], axis=1)[:, 0], cache


@functools.partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("cache",))
def decode_step(graphdef, state, cache: KVCache, tokens):
    """One token per row through the cache: (logits (B, V), cache)."""
    logits, cache = nnx.merge(graphdef, state)(tokens[:, None], cache=cache)
    return logits[:, 0], cache


@functools.partial(jax.jit, static_argnames=(
    "graphdef", "max_new", "max_len", "stops", "sample", "constraint", "pad_id"))
def _generate(graphdef, state, input_ids, attention_mask, seed, temperature, top_p, *, max_new,
              max_len, stops, sample, constraint, pad_id):
    model = nnx.merge(graphdef, state)
    b, t = input_ids.shape
    cache = init_cache(model.cfg, b, max_len, model.dtype)
    logits, cache = model(input_ids, attention_mask, cache=cache)
    valid = attention_mask.astype(bool)
    last = jnp.maximum(jnp.max(jnp.where(valid, jnp.arange(t)[None, :], -1), axis=1), 0)
    logits = jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]
    prev = jnp.take_along_axis(input_ids, last[:, None], axis=1)[:, 0]
    key = jax.random.key(seed)
    stop_arr = jnp.asarray(stops if stops else (-1,), jnp.int32)
    cstate = None if constraint is None else constraint.init(b)

    def cond(c):
        step, _, _, _, done, *_ = c
        return (step < max_new) & ~jnp.all(done)

    def body(c):
        step, cache, logits, out, done, prev, lengths, cstate = c
        if constraint is not None:
            logits = constraint.apply(StepState(step, prev, done, cstate), logits)
        tok = _choose(logits, jax.random.fold_in(key, step), sample, temperature, top_p)
        tok = jnp.where(done, pad_id, tok)
        out = out.at[:, step].set(tok)
        lengths = lengths + (~done).astype(jnp.int32)
        if constraint is not None:
            cstate = constraint.update(cstate, tok)
        done = done | jnp.isin(tok, stop_arr)

        def forward(cache):
            lg, cache = model(tok[:, None], cache=cache)
            return lg[:, 0], cache

        # the last step needs no forward pass
        logits, cache = jax.lax.cond(step + 1 < max_new, forward, lambda c: (logits, c), cache)
        return step + 1, cache, logits, out, done, tok, lengths, cstate

    out = jnp.full((b, max_new), pad_id, jnp.int32)
    zeros = jnp.zeros((b,), jnp.int32)
    init = (jnp.int32(0), cache, logits, out, jnp.zeros((b,), bool), prev, zeros, cstate)
    _, _, _, out, _, _, lengths, _ = jax.lax.while_loop(cond, body, init)
    return GenerateOutput(out, lengths)


def generate(model, input_ids, attention_mask=None, *, max_new_tokens: int = 32,
             stop_tokens: Sequence[int] = (), temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, constrain=None, pad_id: int = 0, max_len: int | None = None) -> GenerateOutput:
    """Greedy (temperature 0) or sampled continuation of a (left- or right-) padded prompt batch.

    Extra keyword inputs of inserted blocks are not threaded through here; streaming code that
    needs them drives `prefill` / `decode_step` itself.
    """
    ids = np.asarray(input_ids, np.int32)
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {ids.shape}")
    mask = np.ones_like(ids, bool) if attention_mask is None else np.asarray(attention_mask, bool)
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask shape {mask.shape} != input_ids shape {ids.shape}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    need = ids.shape[1] + max_new_tokens
    max_len = need if max_len is None else max_len
    if max_len < need:
        raise ValueError(f"max_len {max_len} < prompt {ids.shape[1]} + max_new_tokens {max_new_tokens}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    graphdef, state = nnx.split(model)
    return _generate(graphdef, state, jnp.asarray(ids), jnp.asarray(mask), jnp.uint32(seed),
                     jnp.float32(max(temperature, 1e-6)), jnp.float32(top_p),
                     max_new=int(max_new_tokens), max_len=int(max_len),
                     stops=tuple(int(s) for s in stop_tokens), sample=temperature > 0,
                     constraint=_as_constraint(constrain), pad_id=int(pad_id))

"""The LLaMA decoder (Flax NNX): embeddings, decoder layers with insertable blocks, head, KV cache."""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from biocoach_jax.models.llama_config import LlamaConfig, LoRAConfig, rope_cos_sin, rope_inv_freq
from biocoach_jax.models.llama_layers import LoRA, DecoderLayer, LayerCache, Linear, RMSNorm, param


class KVCache(NamedTuple):
    """Static-length cache for prefill + one-token decode.

    layers: per-layer keys/values (B, S, kv_heads, head_dim); index: next slot to write (scalar);
    valid: (B, S) which slots hold real tokens (padding excluded); next_pos: (B,) RoPE position of
    each row's next real token.
    """

    layers: tuple
    index: jax.Array
    valid: jax.Array
    next_pos: jax.Array

    @property
    def max_len(self) -> int:
        return self.valid.shape[1]


def init_cache(cfg: LlamaConfig, batch: int, max_len: int, dtype=jnp.float32) -> KVCache:
    shape = (batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    layers = tuple(LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.num_layers))
    return KVCache(layers, jnp.zeros((), jnp.int32), jnp.zeros((batch, max_len), bool),
                   jnp.zeros((batch,), jnp.int32))


def grow_cache(cache: KVCache, max_len: int) -> KVCache:
    """The same cache with room for `max_len` slots (the new ones empty): a stream can start
    small, since a decode step reads every slot of its cache."""
    extra = max_len - cache.valid.shape[1]
    if extra < 0:
        raise ValueError(f"grow_cache: {max_len} slots < the {cache.valid.shape[1]} already there")

    def pad(x):
        return jnp.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2))

    layers = tuple(LayerCache(pad(c.k), pad(c.v)) for c in cache.layers)
    return KVCache(layers, cache.index, pad(cache.valid), cache.next_pos)


class Llama(nnx.Module):
    """LlamaForCausalLM equivalent. `model(input_ids)` -> float32 logits (B, T, V).

    Extra blocks (e.g. vision cross-attention) run after the MLP residual of chosen layers as
    `block(h, **extra)`, where `extra` are the keyword inputs given to `__call__`.
    """

    def __init__(self, cfg: LlamaConfig, *, dtype=jnp.float32, param_dtype=None, rngs: nnx.Rngs,
                 lora: LoRAConfig | None = None, inserted: Mapping[int, nnx.Module] | None = None):
        param_dtype = dtype if param_dtype is None else param_dtype
        self.cfg, self.dtype = cfg, dtype
        emb = jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.hidden_size), param_dtype) * 0.02
        self.embed = param(emb.astype(param_dtype), ("vocab", "embed"))
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.layers = nnx.List([DecoderLayer(cfg, **kw) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype=param_dtype)
        # tied: logits use embed.T (a LoRA on the head then lives in lm_head_lora)
        self.lm_head = None if cfg.tie_word_embeddings else Linear(
            cfg.hidden_size, cfg.vocab_size, ("embed", "vocab"), **kw)
        self.lm_head_lora = nnx.data(None)
        self.inv_freq = nnx.Variable(jnp.asarray(rope_inv_freq(cfg)))  # a constant, not a Param
        self.inserted = nnx.List([None] * cfg.num_layers)
        if inserted:
            self.insert_blocks(inserted)
        if lora is not None:
            add_lora(self, lora, rngs)

    def insert_blocks(self, blocks: Mapping[int, nnx.Module]) -> None:
        """Place modules to run after the MLP residual of the given decoder layers."""
        slots = list(self.inserted)
        for i, block in blocks.items():
            if not 0 <= i < self.cfg.num_layers:
                raise ValueError(f"layer {i} out of range 0..{self.cfg.num_layers - 1}")
            slots[i] = block
        # rebuilt rather than assigned in place: an empty (None) slot is static in an nnx.List
        self.inserted = nnx.List(slots)

    def _positions_and_mask(self, valid, positions, cache: KVCache | None):
        b, t = valid.shape
        if positions is None:
            base = 0 if cache is None else cache.next_pos[:, None]
            # positions count real tokens only, so a padded row sees the positions of the unpadded one
            positions = jnp.maximum(base + jnp.cumsum(valid, axis=1, dtype=jnp.int32) - 1, 0)
        if cache is None:
            key_valid, q_slot, s = valid, jnp.arange(t), t
        else:
            key_valid = jax.lax.dynamic_update_slice(cache.valid, valid, (0, cache.index))
            q_slot, s = cache.index + jnp.arange(t), cache.max_len
        causal = jnp.arange(s)[None, :] <= q_slot[:, None]  # (T, S)
        return positions, causal[None] & key_valid[:, None, :], key_valid

    def __call__(self, input_ids, attention_mask=None, positions=None, *, cache: KVCache | None = None,
                 **extra):
        """Logits (B, T, V) float32; with `cache`, returns (logits, updated cache)."""
        input_ids = jnp.asarray(input_ids, jnp.int32)
        b, t = input_ids.shape
        valid = jnp.ones((b, t), bool) if attention_mask is None else jnp.asarray(attention_mask).astype(bool)
        positions, mask, key_valid = self._positions_and_mask(valid, positions, cache)
        cos, sin = rope_cos_sin(self.inv_freq.get_value(), positions)
        h = jnp.take(self.embed.get_value(), input_ids, axis=0).astype(self.dtype)
        new_layers = []
        for i, layer in enumerate(self.layers):
            lc = None if cache is None else cache.layers[i]
            h, lc = layer(h, cos, sin, mask, lc, None if cache is None else cache.index)
            new_layers.append(lc)
            if self.inserted[i] is not None:
                h = self.inserted[i](h, **extra)
        h = self.norm(h)
        if self.lm_head is None:
            logits = h @ self.embed.get_value().astype(self.dtype).T
            if self.lm_head_lora is not None:
                logits = logits + self.lm_head_lora(h)
        else:
            logits = self.lm_head(h)
        logits = logits.astype(jnp.float32)
        if cache is None:
            return logits
        last = jnp.max(jnp.where(valid, positions, -1), axis=1) + 1
        next_pos = jnp.maximum(cache.next_pos, last)
        return logits, KVCache(tuple(new_layers), cache.index + t, key_valid, next_pos.astype(jnp.int32))


def add_lora(model: Llama, lora: LoRAConfig, rngs: nnx.Rngs) -> Llama:
    """Attach fresh LoRA adapters (B = 0: the model is unchanged) to the projections named in
    `lora.targets`; works on a loaded model, in place."""
    for layer in model.layers:
        for name in ("q", "k", "v", "o"):
            if name in lora.targets:
                getattr(layer.attn, f"{name}_proj").add_lora(lora, rngs)
        for name in ("gate", "up", "down"):
            if name in lora.targets:
                getattr(layer.mlp, f"{name}_proj").add_lora(lora, rngs)
    if "lm_head" in lora.targets:
        if model.lm_head is not None:
            model.lm_head.add_lora(lora, rngs)
        else:
            model.lm_head_lora = LoRA(model.cfg.hidden_size, model.cfg.vocab_size, ("embed", "vocab"), lora,
                                      param_dtype=model.embed.get_value().dtype, rngs=rngs)
    return model


def resize_token_embeddings(model: Llama, new_vocab_size: int, multiple: int = 64) -> Llama:
    """Grow the vocabulary to `new_vocab_size` rounded up to `multiple`; new rows = mean row.

    Untied output heads get mean columns; LoRA B of the head gets zero columns, so the logits of
    the old tokens are unchanged. Works in place and returns the model.
    """
    old = model.cfg.vocab_size
    target = int(math.ceil(new_vocab_size / multiple) * multiple)
    if target < old:
        raise ValueError(f"cannot shrink vocabulary from {old} to {new_vocab_size}")
    if target == old:
        return model
    extra = target - old

    def grow(p, axis, fill):
        v = p.get_value()
        pad_shape = list(v.shape)
        pad_shape[axis] = extra
        new = fill(v).astype(v.dtype)
        p.set_value(jnp.concatenate([v, jnp.broadcast_to(new, pad_shape)], axis=axis))

    mean_rows = lambda v: jnp.mean(v.astype(jnp.float32), axis=0, keepdims=True)  # noqa: E731
    grow(model.embed, 0, mean_rows)
    head = model.lm_head
    if head is not None:
        grow(head.kernel, 1, lambda v: jnp.mean(v.astype(jnp.float32), axis=1, keepdims=True))
    head_lora = head.lora if head is not None else model.lm_head_lora
    if head_lora is not None:
        grow(head_lora.b, 1, lambda v: jnp.zeros((v.shape[0], 1), v.dtype))
    model.cfg = dataclasses.replace(model.cfg, vocab_size=target)
    return model

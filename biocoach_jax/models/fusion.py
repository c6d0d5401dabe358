"""Fusion blocks: Stream-VLM's vision cross-attention and BioCoach's morphology fusion (Flax NNX).

`VisionCrossAttention` is inserted after the MLP residual of chosen LLaMA decoder layers
(`Llama(..., inserted={i: block})`, called as `block(h, **extra)`); it lets each `<vision>`
position read the 35 (generally S) spatial feature tokens of its own visual step.
`MorphologyFusion` computes BioCoach's z = F + CrossAttn(q=F, k=v=m) on the visual tokens before
they reach the LLM, m being the LLM's own embeddings of the morphology text.

Parameters follow the LLaMA modules' conventions (`llama_layers.param`: logical axis names in the
`sharding_names` metadata, plain `nnx.Param`; `dtype` = compute dtype, `param_dtype` = storage).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from biocoach_jax.models.llama_layers import Linear, param

_NEG = -1e30  # finite "minus infinity" for masked keys (no inf - inf NaNs)


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis with scale and bias; statistics in float32 (torch's default
    eps 1e-5, the value Stream-VLM's `nn.LayerNorm` uses)."""

    def __init__(self, dim: int, eps: float = 1e-5, *, param_dtype=jnp.float32):
        self.scale = param(jnp.ones((dim,), param_dtype), ("norm",))
        self.bias = param(jnp.zeros((dim,), param_dtype), ("norm",))
        self.eps = eps

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)  # two-pass: no cancellation
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale.value.astype(jnp.float32) + self.bias.value.astype(jnp.float32)).astype(x.dtype)


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_shape(who: str, name: str, x, ndim: int, last: int | None = None):
    if x.ndim != ndim or (last is not None and x.shape[-1] != last):
        want = f"{ndim}-D" + ("" if last is None else f" with last dim {last}")
        raise ValueError(f"{who}: {name} must be {want}, got shape {tuple(x.shape)}")


class VisionCrossAttention(nnx.Module):
    """Stream-VLM's vision cross-attention block (one head, no gate).

    q = Wq h; k = Wk f; v = W2 GELU(W1 LayerNorm(f)); out = Wo softmax(q k^T / sqrt(d_attn)) v,
    added to h only at `<vision>` positions, where f are the S feature tokens of that position's
    step. Facts checked in `Qualcomm-AI-research/FitCoach` (src/vision_modules/cross_attention.py):
    every Linear of the block is bias-free (not only q), GELU is torch's default exact-erf form,
    LayerNorm is torch's default (eps 1e-5, affine), the scale is 1/sqrt(d_attn).

    Mask convention: FitCoach's integer `vision_xattn_mask` is 0 (text), 1 (position gathered but
    its output multiplied by 0) or 2 (active). Our boolean `vision_mask` is `their_mask >= 2`;
    a value of 1 behaves exactly like 0 there, so nothing is lost.

    Efficiency: keys and values are never formed per spatial token. Because Wk has no bias,
    q.(Wk f) = (Wk^T q).f, so logits use the raw features; and since the attention weights sum to
    one, p.(W2 g) = W2 (p.g). Per position we therefore gather only its step's raw features
    (capacity x S x d_vision), and W2 / Wo run once per position.
    """

    def __init__(self, d_model: int, d_vision: int, d_attn: int | None = None, *, dtype=jnp.float32,
                 param_dtype=None, ln_eps: float = 1e-5, rngs: nnx.Rngs):
        d_attn = d_model if d_attn is None else d_attn
        param_dtype = dtype if param_dtype is None else param_dtype
        lin = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.q_proj = Linear(d_model, d_attn, ("embed", "heads"), **lin)
        self.k_proj = Linear(d_vision, d_attn, ("vision", "heads"), **lin)
        self.v_norm = LayerNorm(d_vision, ln_eps, param_dtype=param_dtype)
        self.v_fc1 = Linear(d_vision, d_vision, ("vision", "vision"), **lin)
        self.v_fc2 = Linear(d_vision, d_attn, ("vision", "heads"), **lin)
        self.out_proj = Linear(d_attn, d_model, ("heads", "embed"), **lin)
        self.d_model, self.d_vision, self.d_attn, self.dtype = d_model, d_vision, d_attn, dtype

    def _check(self, h, feats, step, mask):
        who = type(self).__name__
        _check_shape(who, "h", h, 3, self.d_model)
        _check_shape(who, "vision_feats", feats, 4, self.d_vision)
        _check_shape(who, "vision_step", step, 2)
        _check_shape(who, "vision_mask", mask, 2)
        if feats.shape[0] != h.shape[0] or step.shape != h.shape[:2] or mask.shape != h.shape[:2]:
            raise ValueError(f"{who}: batch/length mismatch: h {tuple(h.shape)}, vision_feats "
                             f"{tuple(feats.shape)}, vision_step {tuple(step.shape)}, vision_mask "
                             f"{tuple(mask.shape)} (want h (B,L,D), feats (B,n,S,C), step/mask (B,L))")
        if not jnp.issubdtype(step.dtype, jnp.integer):
            raise ValueError(f"{who}: vision_step must be integer, got {step.dtype}")

    def __call__(self, h, *, vision_feats, vision_step, vision_mask, capacity: int | None = None,
                 **unused):
        """h (B, L, d_model) -> h with the block's output added at `<vision>` positions.

        vision_feats (B, n_steps, S, d_vision); vision_step (B, L) int: the step each position
        reads (ignored, e.g. -1, where not a vision position); vision_mask (B, L) bool.
        capacity: static bound on the `<vision>` positions per row (default L, always exact);
        passing n_steps when each step is read once saves memory for long sequences; it must be
        a Python int (it fixes an array shape), not a traced value. Rows with more vision
        positions than `capacity`, or a vision step outside [0, n_steps), raise ValueError when
        called eagerly and come back as NaN under jit (never silently wrong).
        Positions outside the mask are returned bit-identical. `unused` swallows the other
        blocks' inputs that the LLaMA passes to every inserted block.
        """
        h, vision_feats = jnp.asarray(h), jnp.asarray(vision_feats)
        vision_mask = jnp.asarray(vision_mask).astype(bool)
        vision_step = jnp.asarray(vision_step)
        self._check(h, vision_feats, vision_step, vision_mask)
        b, length, _ = h.shape
        n_steps = vision_feats.shape[1]
        if isinstance(capacity, jax.core.Tracer):
            raise ValueError(f"{type(self).__name__}: capacity must be a static Python int (close "
                             "over it or mark it static under jit), got a traced value")
        cap = length if capacity is None else int(capacity)
        if not 1 <= cap:
            raise ValueError(f"{type(self).__name__}: capacity must be >= 1, got {capacity}")
        cap = min(cap, length)

        bad_step = vision_mask & ((vision_step < 0) | (vision_step >= n_steps))
        bad_row = jnp.any(bad_step, axis=1) | (jnp.sum(vision_mask, axis=1) > cap)
        if _is_concrete(vision_mask, vision_step) and bool(jnp.any(bad_row)):
            rows = [int(i) for i in jnp.nonzero(bad_row)[0]]
            raise ValueError(f"{type(self).__name__}: rows {rows} have a vision step outside "
                             f"[0, {n_steps}) or more than capacity={cap} vision positions")

        # Compact the vision positions to the front (stable: original order kept).
        order = jnp.argsort(jnp.logical_not(vision_mask), axis=1, stable=True)[:, :cap]  # (B, C)
        valid = jnp.take_along_axis(vision_mask, order, axis=1)
        step = jnp.where(valid, jnp.take_along_axis(vision_step, order, axis=1), 0)
        step = jnp.clip(step, 0, n_steps - 1)
        hc = jnp.take_along_axis(h, order[:, :, None], axis=1)  # (B, C, D)
        feats = jnp.take_along_axis(vision_feats, step[:, :, None, None], axis=1)  # (B, C, S, Cv)
        feats = feats.astype(self.dtype)

        q = self.q_proj(hc)
        qk = q @ self.k_proj.kernel.value.astype(self.dtype).T  # Wk^T q: (B, C, d_vision)
        logits = jnp.einsum("bcd,bcsd->bcs", qk, feats, preferred_element_type=jnp.float32)
        probs = jax.nn.softmax(logits / math.sqrt(self.d_attn), axis=-1)
        g = jax.nn.gelu(self.v_fc1(self.v_norm(feats)), approximate=False)
        pg = jnp.einsum("bcs,bcsd->bcd", probs.astype(g.dtype), g)
        out = self.out_proj(self.v_fc2(pg)).astype(h.dtype)

        # Scatter-add back; padding slots point past the end and are dropped, so every
        # non-vision position keeps its exact bits.
        target = jnp.where(valid, order, length)
        rows = jnp.arange(b)[:, None]
        h_new = h.at[rows, target].add(out, mode="drop")
        return jnp.where(bad_row[:, None, None], jnp.nan, h_new).astype(h.dtype)


class MorphologyFusion(nnx.Module):
    """BioCoach's morphology fusion z = F + CrossAttn(q=F, k=v=m) (residual).

    F: visual tokens (B, n_steps, S, d_vision) (any middle shape); m: the LLM's own embeddings of
    the morphology text C_morph (B, M, d_text) with a padding mask (B, M).

    Choices (the paper gives only the formula above):
    - standard multi-head attention, `num_heads` (default 8: 1280 = 8 x 160 in the paper config;
      use 1 for tiny widths), scale 1/sqrt(d_vision / num_heads); projections q: d_vision ->
      d_vision, k/v: d_text -> d_vision, out: d_vision -> d_vision, all bias-free.
    - pre-LayerNorm on F and on m: CNN features and LLaMA embedding rows differ in scale by orders
      of magnitude, and the norm keeps the logits of either at unit scale.
    - `zero_init_out=True` (default): the output projection starts at zero, so z == F at init and
      the fused model starts exactly as the Stream-VLM it is fine-tuned from; the gradient still
      reaches the output projection at once, and the other projections from the first update on.
    Padded morphology tokens are never attended; a row with no valid token returns F unchanged.
    """

    def __init__(self, d_vision: int, d_text: int, *, num_heads: int = 8, zero_init_out: bool = True,
                 dtype=jnp.float32, param_dtype=None, rngs: nnx.Rngs):
        if num_heads < 1 or d_vision % num_heads:
            raise ValueError(f"MorphologyFusion: num_heads={num_heads} must divide d_vision={d_vision}")
        param_dtype = dtype if param_dtype is None else param_dtype
        lin = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.norm_f = LayerNorm(d_vision, param_dtype=param_dtype)
        self.norm_m = LayerNorm(d_text, param_dtype=param_dtype)
        self.q_proj = Linear(d_vision, d_vision, ("vision", "heads"), **lin)
        self.k_proj = Linear(d_text, d_vision, ("embed", "heads"), **lin)
        self.v_proj = Linear(d_text, d_vision, ("embed", "heads"), **lin)
        self.out_proj = Linear(d_vision, d_vision, ("heads", "vision"), **lin)
        if zero_init_out:
            self.out_proj.kernel.value = jnp.zeros_like(self.out_proj.kernel.value)
        self.d_vision, self.d_text, self.num_heads, self.dtype = d_vision, d_text, num_heads, dtype

    def __call__(self, feats, morph_emb, morph_mask):
        """feats (B, ..., d_vision), morph_emb (B, M, d_text), morph_mask (B, M) bool -> z like feats."""
        who = type(self).__name__
        feats, morph_emb = jnp.asarray(feats), jnp.asarray(morph_emb)
        morph_mask = jnp.asarray(morph_mask).astype(bool)
        if feats.ndim < 2 or feats.shape[-1] != self.d_vision:
            raise ValueError(f"{who}: feats must be (B, ..., {self.d_vision}), got {tuple(feats.shape)}")
        _check_shape(who, "morph_emb", morph_emb, 3, self.d_text)
        b, m = morph_emb.shape[:2]
        if feats.shape[0] != b or morph_mask.shape != (b, m):
            raise ValueError(f"{who}: batch mismatch: feats {tuple(feats.shape)}, morph_emb "
                             f"{tuple(morph_emb.shape)}, morph_mask {tuple(morph_mask.shape)}")
        nh, hd = self.num_heads, self.d_vision // self.num_heads
        x = feats.reshape(b, -1, self.d_vision)  # (B, T, Cv): every spatial token of every step
        q = self.q_proj(self.norm_f(x)).reshape(b, -1, nh, hd)
        mn = self.norm_m(morph_emb)
        k = self.k_proj(mn).reshape(b, m, nh, hd)
        v = self.v_proj(mn).reshape(b, m, nh, hd)
        logits = jnp.einsum("bthd,bmhd->bhtm", q, k, preferred_element_type=jnp.float32) / math.sqrt(hd)
        logits = jnp.where(morph_mask[:, None, None, :], logits, _NEG)
        probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        att = jnp.einsum("bhtm,bmhd->bthd", probs, v).reshape(b, -1, self.d_vision)
        out = self.out_proj(att).astype(feats.dtype).reshape(feats.shape)
        # A row with no morphology token: the softmax above is uniform over padding; drop it.
        any_valid = jnp.any(morph_mask, axis=1).reshape((b,) + (1,) * (feats.ndim - 1))
        return jnp.where(any_valid, feats + out, feats)

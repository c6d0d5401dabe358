"""BioCoach's DoF selector: visual tokens -> 24 SKEL joint scores -> top-K joints -> 46-DoF mask.

Scores come from a 3-layer MLP on the pooled visual tokens; the top-K joints (K = 12 in the paper)
are kept for the whole session and every DoF of a kept joint is analysed. Top-K is a plain,
non-differentiable selection: the scores are trained by `balanced_bce` against expert joint labels.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax import skel
from biocoach_jax.models.llama_layers import param

_DOF_JOINT = np.asarray(skel.DOF_JOINT, dtype=np.int32)


class Dense(nnx.Module):
    """y = x @ kernel + bias (LeCun-normal kernel, zero bias)."""

    def __init__(self, d_in, d_out, axes, *, dtype, param_dtype, rngs: nnx.Rngs):
        kernel = jax.nn.initializers.lecun_normal()(rngs.params(), (d_in, d_out), param_dtype)
        self.kernel = param(kernel, axes)
        self.bias = param(jnp.zeros((d_out,), param_dtype), axes[1:])
        self.dtype = dtype

    def __call__(self, x):
        x = x.astype(self.dtype)
        return x @ self.kernel.value.astype(self.dtype) + self.bias.value.astype(self.dtype)


class DoFSelector(nnx.Module):
    """Pooled visual tokens -> Dense-GELU-Dense-GELU-Dense -> sigmoid -> (B, num_joints) scores."""

    def __init__(self, d_vision: int, hidden: int, num_joints: int = skel.NUM_JOINTS, *, k: int = 12,
                 dtype=jnp.float32, param_dtype=None, rngs: nnx.Rngs):
        param_dtype = dtype if param_dtype is None else param_dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fc1 = Dense(d_vision, hidden, ("vision", "mlp"), **kw)
        self.fc2 = Dense(hidden, hidden, ("mlp", "mlp"), **kw)
        self.fc3 = Dense(hidden, num_joints, ("mlp", None), **kw)
        self.d_vision, self.num_joints, self.k = d_vision, num_joints, k

    def logits(self, feats, step_mask=None):
        """feats (B, n_steps, S, d_vision), step_mask (B, n_steps) bool -> (B, num_joints) float32.

        Pooling is the mean over the valid steps and all S spatial tokens; a row with no valid
        step pools to zeros (the MLP then gives its bias-only scores, never NaN).
        """
        if feats.ndim != 4 or feats.shape[-1] != self.d_vision:
            raise ValueError(f"DoFSelector: feats must be (B, n_steps, S, {self.d_vision}), "
                             f"got {tuple(feats.shape)}")
        b, n = feats.shape[:2]
        step_mask = jnp.ones((b, n), bool) if step_mask is None else jnp.asarray(step_mask).astype(bool)
        if step_mask.shape != (b, n):
            raise ValueError(f"DoFSelector: step_mask must be {(b, n)}, got {tuple(step_mask.shape)}")
        w = step_mask.astype(jnp.float32)
        total = jnp.sum(feats.astype(jnp.float32).mean(axis=2) * w[:, :, None], axis=1)
        pooled = total / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1.0)
        x = jax.nn.gelu(self.fc1(pooled), approximate=False)
        x = jax.nn.gelu(self.fc2(x), approximate=False)
        return self.fc3(x).astype(jnp.float32)

    def __call__(self, feats, step_mask=None):
        """Joint scores in [0, 1], (B, num_joints) float32."""
        return jax.nn.sigmoid(self.logits(feats, step_mask))

    def select(self, scores, k: int | None = None):
        """(B, num_joints) bool mask of the top-k joints (k defaults to the selector's K)."""
        return select_top_k(scores, self.k if k is None else k)


def select_top_k(scores, k: int = 12):
    """(..., J) scores -> (..., J) bool mask of the k highest; ties go to the lower joint index.

    Rank of joint j = #{i: s_i > s_j} + #{i < j: s_i == s_j}; joint j is kept when its rank < k.
    The ranks are a permutation of 0..J-1, so exactly k joints are kept (J^2 = 576 compares).
    """
    scores = jnp.asarray(scores)
    num = scores.shape[-1]
    if not 0 <= int(k) <= num:
        raise ValueError(f"select_top_k: k={k} must be in [0, {num}]")
    if not isinstance(scores, jax.core.Tracer) and bool(jnp.any(jnp.isnan(scores))):
        raise ValueError("select_top_k: scores contain NaN")
    si, sj = scores[..., :, None], scores[..., None, :]  # i rows, j columns
    lower = jnp.arange(num)[:, None] < jnp.arange(num)[None, :]
    rank = jnp.sum((si > sj) | ((si == sj) & lower), axis=-2)
    return rank < int(k)


def joint_to_dof_mask(joint_mask):
    """(..., 24) joint mask -> (..., 46) DoF mask in jnp (jit-safe twin of
    `skel.joint_mask_to_dof_mask`): a selected joint brings all its DoFs."""
    joint_mask = jnp.asarray(joint_mask)
    if joint_mask.shape[-1] != skel.NUM_JOINTS:
        raise ValueError(f"joint_to_dof_mask: last dim must be {skel.NUM_JOINTS} SKEL joints, "
                         f"got shape {tuple(joint_mask.shape)}")
    return jnp.take(joint_mask, jnp.asarray(_DOF_JOINT), axis=-1)


def balanced_bce(scores, labels, mask=None, *, from_logits: bool = False, eps: float = 1e-7):
    """Class-balanced binary cross-entropy, averaged over the batch.

    For example b with valid joints m_j (mask, default all), labels y_j in {0, 1} (soft labels
    in [0, 1] also work) and probabilities p_j:
        P = sum_j m_j y_j,  N = sum_j m_j (1 - y_j)
        pos = -sum_j m_j y_j log p_j / P,  neg = -sum_j m_j (1 - y_j) log(1 - p_j) / N
        L_b = (pos + neg) / 2 when P > 0 and N > 0; pos or neg alone when only one class occurs
    i.e. positives and negatives carry equal total weight per example (weights normalised to 1).
    The result is the mean of L_b over examples with at least one valid joint (0 if none).
    scores are probabilities (clipped to [eps, 1 - eps]), or logits when from_logits=True (exact
    log-sigmoid, preferred for training).
    """
    scores = jnp.asarray(scores, jnp.float32)
    labels = jnp.asarray(labels, jnp.float32)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"balanced_bce: scores {tuple(scores.shape)} and labels "
                         f"{tuple(labels.shape)} must both be (B, J)")
    m = jnp.ones_like(labels) if mask is None else jnp.asarray(mask).astype(jnp.float32)
    if m.shape != labels.shape:
        raise ValueError(f"balanced_bce: mask {tuple(m.shape)} must match labels {tuple(labels.shape)}")
    if from_logits:
        log_p, log_q = jax.nn.log_sigmoid(scores), jax.nn.log_sigmoid(-scores)
    else:
        p = jnp.clip(scores, eps, 1.0 - eps)
        log_p, log_q = jnp.log(p), jnp.log1p(-p)
    pos_w, neg_w = m * labels, m * (1.0 - labels)
    n_pos, n_neg = pos_w.sum(-1), neg_w.sum(-1)
    pos = -(pos_w * log_p).sum(-1) / jnp.maximum(n_pos, 1e-12)
    neg = -(neg_w * log_q).sum(-1) / jnp.maximum(n_neg, 1e-12)
    has_pos, has_neg = n_pos > 0, n_neg > 0
    n_cls = has_pos.astype(jnp.float32) + has_neg.astype(jnp.float32)
    per_ex = (jnp.where(has_pos, pos, 0.0) + jnp.where(has_neg, neg, 0.0)) / jnp.maximum(n_cls, 1.0)
    used = n_cls > 0
    return jnp.sum(jnp.where(used, per_ex, 0.0)) / jnp.maximum(jnp.sum(used), 1)

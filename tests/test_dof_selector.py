"""DoF selector: top-K with ties, joint -> DoF mask, balanced BCE, and a short training run."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
from flax import nnx

from biocoach_jax import skel
from biocoach_jax.models.dof_selector import DoFSelector, balanced_bce, joint_to_dof_mask, select_top_k

J = skel.NUM_JOINTS
_select_jit = jax.jit(select_top_k, static_argnums=1)


def _topk_oracle(scores, k):
    """numpy: stable sort of -score keeps the lower index first among equal scores."""
    out = np.zeros(scores.shape, bool)
    for b, row in enumerate(scores):
        out[b, np.argsort(-row, kind="stable")[:k]] = True
    return out


@pytest.mark.parametrize("k", [0, 1, 12, 13, 24])
def test_top_k_exact_with_ties(k, rng):
    scores = (rng.integers(0, 4, (5, J)) / 4).astype(np.float32)  # only 4 values: many ties
    scores[0] = 0.5  # all tied: the k lowest indices win
    want = _topk_oracle(scores, k)
    got = np.asarray(_select_jit(jnp.asarray(scores), k))
    np.testing.assert_array_equal(got, want)
    assert (got.sum(-1) == k).all()
    np.testing.assert_array_equal(got[0], np.arange(J) < k)
    np.testing.assert_array_equal(np.asarray(select_top_k(scores, k)), want)  # eager path too


def test_top_k_bad_input():
    with pytest.raises(ValueError, match="k=25"):
        select_top_k(np.zeros((1, J)), 25)
    with pytest.raises(ValueError, match="NaN"):
        select_top_k(np.full((1, J), np.nan), 3)


def test_dof_mask_matches_skel_helper(rng):
    joints = rng.random((3, 7, J)) < 0.4
    want = skel.joint_mask_to_dof_mask(joints)
    np.testing.assert_array_equal(np.asarray(joint_to_dof_mask(joints)), want)
    np.testing.assert_array_equal(np.asarray(jax.jit(joint_to_dof_mask)(joints)), want)
    knee = np.zeros(J, bool)
    knee[skel.joint_index("tibia_r")] = True
    np.testing.assert_array_equal(np.asarray(joint_to_dof_mask(knee)), skel.dof_mask(["tibia_r"]))
    with pytest.raises(ValueError, match="24 SKEL joints"):
        joint_to_dof_mask(np.zeros((2, 23), bool))


def test_balanced_bce_hand_worked():
    # one positive (p=0.8), two negatives (p=0.4, 0.1): L = (-log .8 + -(log .6 + log .9)/2) / 2
    p = np.array([[0.8, 0.4, 0.1]])
    y = np.array([[1.0, 0.0, 0.0]])
    want = (-math.log(0.8) - (math.log(0.6) + math.log(0.9)) / 2) / 2
    assert float(balanced_bce(p, y)) == pytest.approx(want, rel=1e-6)
    # the mask removes the 0.1 negative; a second row with only negatives counts them alone
    p2 = np.array([[0.8, 0.4, 0.1], [0.3, 0.2, 0.6]])
    y2 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    m2 = np.array([[1, 1, 0], [1, 1, 1]], bool)
    row0 = (-math.log(0.8) - math.log(0.6)) / 2
    row1 = -(math.log(0.7) + math.log(0.8) + math.log(0.4)) / 3
    assert float(balanced_bce(p2, y2, m2)) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # a fully masked row is left out of the batch mean
    m3 = m2.copy()
    m3[1] = False
    assert float(balanced_bce(p2, y2, m3)) == pytest.approx(row0, rel=1e-6)
    with pytest.raises(ValueError, match="labels"):
        balanced_bce(p2, y2[:, :2])


def test_balanced_bce_matches_weighted_numpy_form(rng):
    """Independent form: per-joint weights y/(2P) + (1-y)/(2N), so each class sums to 1/2."""
    logits = rng.normal(0, 2, (6, J))
    y = (rng.random((6, J)) < 0.3).astype(np.float64)
    y[:, 0], y[:, 1] = 1.0, 0.0  # both classes present in every row
    p = 1 / (1 + np.exp(-logits))
    w = y / (2 * y.sum(1, keepdims=True)) + (1 - y) / (2 * (1 - y).sum(1, keepdims=True))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    want = (w * bce).sum(1).mean()
    assert float(balanced_bce(p, y)) == pytest.approx(want, rel=1e-5)
    assert float(balanced_bce(logits, y, from_logits=True)) == pytest.approx(want, rel=1e-5)


def _toy_problem(rng, n=16, n_steps=3, s=5, d=8):
    """Two 'exercises', each with its own feature prototype and its own 6 relevant joints."""
    protos = rng.normal(0, 1, (2, d))
    relevant = np.zeros((2, J), np.float32)
    relevant[0, [1, 2, 3, 6, 7, 8]] = 1  # legs
    relevant[1, [14, 15, 16, 19, 20, 21]] = 1  # arms
    cls = np.arange(n) % 2
    feats = protos[cls][:, None, None, :] + rng.normal(0, 0.3, (n, n_steps, s, d))
    step_mask = rng.random((n, n_steps)) < 0.8
    step_mask[:, 0] = True
    return feats.astype(np.float32), step_mask, relevant[cls]


def test_selector_trains_on_separable_toy_problem(rng):
    feats, step_mask, labels = _toy_problem(rng)
    model = DoFSelector(feats.shape[-1], 16, k=6, rngs=nnx.Rngs(int(rng.integers(1 << 30))))
    opt = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            return balanced_bce(m.logits(feats, step_mask), labels, from_logits=True)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(40)]
    assert losses[-1] < 0.25 * losses[0], losses
    scores = np.asarray(model(feats, step_mask))
    assert scores.shape == labels.shape and (scores >= 0).all() and (scores <= 1).all()
    np.testing.assert_array_equal(np.asarray(model.select(scores)), labels.astype(bool))


def test_selector_pooling_ignores_masked_steps(rng):
    feats, step_mask, _ = _toy_problem(rng, n=3)
    step_mask[:, 1] = False
    model = DoFSelector(feats.shape[-1], 8, rngs=nnx.Rngs(0))
    base = np.asarray(model(feats, step_mask))
    feats2 = feats.copy()
    feats2[:, 1] = 1e3
    np.testing.assert_allclose(np.asarray(model(feats2, step_mask)), base, rtol=1e-6, atol=1e-7)
    # the whole forward against numpy: masked mean pooling, exact-erf GELU, sigmoid
    w = step_mask[:, :, None].astype(np.float64)
    x = (feats.mean(2) * w).sum(1) / w.sum(1)
    for i, layer in enumerate((model.fc1, model.fc2, model.fc3)):
        x = x @ np.asarray(layer.kernel.value, np.float64) + np.asarray(layer.bias.value, np.float64)
        if i < 2:
            x = 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))
    np.testing.assert_allclose(base, 1 / (1 + np.exp(-x)), rtol=1e-5, atol=1e-6)
    empty = np.asarray(model(feats, np.zeros_like(step_mask)))
    assert np.isfinite(empty).all()
    with pytest.raises(ValueError, match="step_mask"):
        model(feats, step_mask[:, :2])
    with pytest.raises(ValueError, match="feats"):
        model(feats[..., :-1], step_mask)

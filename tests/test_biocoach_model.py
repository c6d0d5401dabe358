"""BioCoach model composition: shapes, masking, trainable sets, loss, ablations, KV cache, sharding.

Tiny shapes (hidden 64, 4 layers, vision layers [1, 3], C = 16, N = 6, L = 48). A handful of
compiled functions (forward, loss + full gradient, cached step) are shared by all tests.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from biocoach_jax import sharding as shd
from biocoach_jax import skel
from biocoach_jax.models.biocoach import (ModelConfig, ModelOutput, abstract_model, build_model,
                                          init_stream_cache, loss_fn, param_bytes, resolve_vision_layers,
                                          select_dofs, shard_model, trainable_filter)
from biocoach_jax.models.llama import LlamaConfig, LoRAConfig

V, E, LAYERS, HEADS, KV, HD, MLP = 130, 64, 4, 4, 2, 16, 96
B, L, S, N, C, M, R = 4, 48, 9, 6, 16, 5, 4
LCFG = LlamaConfig(vocab_size=V, hidden_size=E, intermediate_size=MLP, num_layers=LAYERS, num_heads=HEADS,
                   num_kv_heads=KV, head_dim=HD)
CFG = ModelConfig(llm=LCFG, lora=LoRAConfig(rank=R), vision_layers=(1, 3), d_vision=C, morph_heads=2,
                  dof_hidden=24, dof_k=5)


def _randomise(model, rng, wrt, scale=0.05):
    """Random values in zero-initialised weights (LoRA B, fusion output) so every weight matters."""
    for _, var in nnx.to_flat_state(nnx.state(model, wrt)):
        var.set_value(jnp.asarray(rng.normal(0, scale, var.get_value().shape), jnp.float32))


@pytest.fixture(scope="module")
def model():
    m = build_model(CFG, rngs=nnx.Rngs(3))
    rng = np.random.default_rng(0)
    _randomise(m, rng, nnx.Any(nnx.PathContains("b"), nnx.PathContains("out_proj")), 0.1)
    return m


def make_batch(rng, b=B):
    """Episodes: text prompt, then <vision> tokens (k-th reads step k) interleaved with text;
    row 1 is right-padded; row 2 has no joint labels."""
    tokens = rng.integers(3, V, (b, L)).astype(np.int32)
    vmask = np.zeros((b, L), bool)
    vstep = np.zeros((b, L), np.int32)
    attn = np.ones((b, L), bool)
    for r in range(b):
        pos = np.sort(rng.choice(np.arange(10, L - 2), S, replace=False))
        vmask[r, pos], vstep[r, pos] = True, np.arange(S)
        tokens[r, pos] = 1  # the <vision> id of this toy vocabulary
    attn[1, L - 7:] = False
    vmask &= attn
    targets = np.concatenate([tokens[:, 1:], np.zeros((b, 1), np.int32)], axis=1)
    w = np.where(np.concatenate([vmask[:, 1:], np.zeros((b, 1), bool)], 1), 0.1, 1.0).astype(np.float32)
    w[:, :10] = 0.0
    w *= np.concatenate([attn[:, 1:], np.zeros((b, 1), bool)], 1)
    labels = (rng.random((b, 24)) < 0.4).astype(np.float32)
    labels[:, 0], labels[:, 1] = 1.0, 0.0  # both classes in every row
    return dict(tokens=tokens, targets=targets, loss_weights=w, attention_mask=attn, vision_mask=vmask,
                vision_step=vstep, features=rng.normal(0, 1, (b, S, N, C)).astype(np.float32),
                step_mask=np.ones((b, S), bool), morph_tokens=rng.integers(3, V, (b, M)).astype(np.int32),
                morph_mask=np.arange(M)[None, :] < rng.integers(1, M + 1, (b, 1)),
                joint_labels=labels, joint_label_mask=np.array([True, True, False, True][:b]))


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, batch):
    out = nnx.merge(graphdef, state)(batch)
    return out.logits, out.joint_scores


def forward(model, batch):
    graphdef, state = nnx.split(model)
    return _forward(graphdef, state, batch)


@functools.partial(jax.jit, static_argnums=0)
def _loss_and_grads(graphdef, params, rest, batch):
    def f(p):
        loss, metrics = loss_fn(nnx.merge(graphdef, p, rest)(batch), batch, dof_loss_weight=0.5)
        return loss, metrics
    return jax.value_and_grad(f, has_aux=True)(params)


@nnx.jit
def _update(opt, model, grads):
    opt.update(model, grads)


def make_optimizer(model, stage):
    # one learning rate everywhere: the optimizer (tx) is part of the jitted update's cache key
    return nnx.Optimizer(model, optax.adamw(1e-2, weight_decay=0.0), wrt=trainable_filter(stage))


def loss_and_grads(model, batch):
    """Gradient with respect to every parameter (one compile for all stages)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    (loss, metrics), grads = _loss_and_grads(graphdef, params, rest, batch)
    return loss, metrics, grads


@pytest.fixture(scope="module")
def batch():
    return make_batch(np.random.default_rng(1))


def test_output_shapes_and_vision_layers(model, batch):
    logits, scores = forward(model, batch)
    assert logits.shape == (B, L, V) and logits.dtype == jnp.float32
    assert scores.shape == (B, skel.NUM_JOINTS) and bool(jnp.all((scores > 0) & (scores < 1)))
    assert [i for i, blk in enumerate(model.llm.inserted) if blk is not None] == [1, 3]
    assert resolve_vision_layers((6, 8, 1, 3, 22), 4) == (1, 3)
    with pytest.raises(ValueError, match="none is below the model depth"):
        resolve_vision_layers((6, 8), 4)
    with pytest.raises(ValueError, match="features must be"):
        model({**batch, "features": batch["features"][..., :7]})


def test_cross_attention_only_at_vision_positions(model, batch, rng):
    base, _ = forward(model, batch)
    other, _ = forward(model, {**batch, "features": rng.normal(0, 1, batch["features"].shape).astype(np.float32)})
    first = batch["vision_mask"].argmax(axis=1)
    for r in range(B):
        before = slice(0, first[r])
        np.testing.assert_array_equal(np.asarray(base[r, before]), np.asarray(other[r, before]))
        # the first <vision> position and every later one see the features
        assert float(jnp.max(jnp.abs(base[r, first[r]] - other[r, first[r]]))) > 1e-4
        assert float(jnp.max(jnp.abs(base[r, -8] - other[r, -8]))) > 1e-4


def _n(*shape):
    return int(np.prod(shape))


def test_trainable_counts_per_stage(model):
    lora = LAYERS * (_n(E, R) + _n(R, HEADS * HD) + 2 * (_n(E, R) + _n(R, KV * HD))) + _n(E, R) + _n(R, V)
    xattn = 2 * (_n(E, E) + _n(C, E) + 2 * C + _n(C, C) + _n(C, E) + _n(E, E))
    fusion = 2 * C + 2 * E + _n(C, C) + 2 * _n(E, C) + _n(C, C)
    selector = _n(C, 24) + 24 + _n(24, 24) + 24 + _n(24, 24) + 24
    base = V * E * 2 + LAYERS * (2 * E + E * HEADS * HD * 2 + 2 * E * KV * HD + 3 * E * MLP) + E
    assert param_bytes(model, trainable_filter("streamvlm"))[0] == lora + xattn
    assert param_bytes(model, trainable_filter("biocoach"))[0] == xattn + fusion + selector
    assert param_bytes(model, trainable_filter("biocoach+lora"))[0] == lora + xattn + fusion + selector
    assert param_bytes(model, trainable_filter("lm"))[0] == base
    assert param_bytes(model)[0] == base + lora + xattn + fusion + selector
    with pytest.raises(ValueError, match="unknown trainable set"):
        trainable_filter("everything")


def _flat(state):
    return {".".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(state)}


@pytest.mark.parametrize("stage", ["streamvlm", "biocoach", "biocoach+lora"])
def test_gradients_reach_trainable_set_and_frozen_stay_bit_identical(model, batch, stage):
    model = nnx.clone(model)
    loss, _, grads = loss_and_grads(model, batch)
    wrt = trainable_filter(stage)
    g = _flat(grads.filter(wrt))
    assert g and all(float(jnp.max(jnp.abs(x))) > 0 for x in g.values()), \
        [k for k, x in g.items() if not float(jnp.max(jnp.abs(x))) > 0]
    opt = make_optimizer(model, stage)
    mu = opt.opt_state[0].mu
    assert sum(x.size for x in jax.tree.leaves(mu)) == param_bytes(model, wrt)[0]
    before = _flat(nnx.state(model, nnx.Param))
    _update(opt, model, grads.filter(wrt))
    after = _flat(nnx.state(model, nnx.Param))
    moved = set(_flat(nnx.state(model, wrt)))
    for k in before:
        same = np.array_equal(np.asarray(before[k]), np.asarray(after[k]))
        assert same != (k in moved), f"{k}: trainable={k in moved}, unchanged={same}"


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


jloss = jax.jit(loss_fn)


def test_loss_weights_hand_check(batch, rng):
    logits = rng.normal(0, 2, (B, L, V)).astype(np.float32)
    jl = rng.normal(0, 1, (B, 24)).astype(np.float32)
    out = ModelOutput(jnp.asarray(logits), jax.nn.sigmoid(jl), None, jnp.asarray(jl))
    loss, m = jloss(out, batch, dof_loss_weight=0.3)
    w, t = batch["loss_weights"], batch["targets"]
    ce = -np.take_along_axis(_np_log_softmax(logits.astype(np.float64)), t[..., None], -1)[..., 0]
    token = (w * ce).sum() / w.sum()
    # balanced BCE by hand over the labelled rows only
    per_row = []
    for r in np.flatnonzero(batch["joint_label_mask"]):
        y, p = batch["joint_labels"][r], 1 / (1 + np.exp(-jl[r].astype(np.float64)))
        per_row.append(0.5 * (-(y * np.log(p)).sum() / y.sum() - ((1 - y) * np.log(1 - p)).sum() / (1 - y).sum()))
    np.testing.assert_allclose(float(m["token_loss"]), token, rtol=1e-5)
    np.testing.assert_allclose(float(m["dof_loss"]), np.mean(per_row), rtol=1e-5)
    np.testing.assert_allclose(float(loss), token + 0.3 * np.mean(per_row), rtol=1e-5)
    # anything at a zero-weight position leaves the loss unchanged
    zero = w == 0
    noisy = np.where(zero[..., None], rng.normal(0, 5, logits.shape), logits).astype(np.float32)
    t2 = np.where(zero, rng.integers(0, V, t.shape), t).astype(np.int32)
    loss2, _ = jloss(out._replace(logits=jnp.asarray(noisy)), {**batch, "targets": t2}, dof_loss_weight=0.3)
    assert float(loss2) == pytest.approx(float(loss), rel=1e-6)
    # accuracies: vision targets and feedback targets are counted separately
    pred = logits.argmax(-1)
    vis_t = np.concatenate([batch["vision_mask"][:, 1:], np.zeros((B, 1), bool)], 1) & (w > 0)
    fb = (w > 0) & ~vis_t
    forced = np.where(vis_t, t, pred)  # make every vision target right
    mv = jloss(out._replace(logits=jnp.asarray(np.eye(V, dtype=np.float32)[forced] * 50)), batch,
                 dof_loss_weight=0.3)[1]
    assert float(mv["vision_acc"]) == 1.0
    assert float(mv["feedback_acc"]) == pytest.approx((forced == t)[fb].mean())
    assert float(mv["token_acc"]) == pytest.approx((forced == t)[w > 0].mean())


def test_morphology_switch_equals_fusion_bypass(model, batch):
    off = nnx.clone(model)
    off.cfg = dataclasses.replace(CFG, use_morphology=False)
    f = jnp.asarray(batch["features"])
    assert off.fuse(f, batch["morph_tokens"], batch["morph_mask"]) is f  # z = F exactly
    no_morph = {**batch, "morph_mask": np.zeros_like(batch["morph_mask"])}  # fusion's own bypass
    on_bypassed, _ = forward(model, no_morph)
    off_logits, _ = forward(off, batch)
    np.testing.assert_array_equal(np.asarray(off_logits), np.asarray(on_bypassed))
    fused, _ = forward(model, batch)
    assert float(jnp.max(jnp.abs(fused - off_logits))) > 1e-4  # the fusion does act when on


def test_dof_selection_switch(model, batch):
    feats = jnp.asarray(batch["features"])
    dofs = select_dofs(model, feats, batch["step_mask"])
    scores = np.asarray(model.dof_selector(feats, batch["step_mask"]))
    for r in range(B):
        top = np.argsort(-scores[r], kind="stable")[:CFG.dof_k]
        want = np.isin(np.asarray(skel.DOF_JOINT), top)
        np.testing.assert_array_equal(np.asarray(dofs[r]), want)
    off = nnx.clone(model)
    off.cfg = dataclasses.replace(CFG, use_dof_selection=False)
    assert bool(jnp.all(select_dofs(off, feats))) and select_dofs(off, feats).shape == (B, skel.NUM_DOFS)
    shapes = jax.eval_shape(lambda b: off(b), batch)  # traced only: no compile, no compute
    assert shapes.joint_logits is None and shapes.joint_scores.shape == (B, skel.NUM_JOINTS)
    logits = np.random.default_rng(0).normal(0, 1, (B, L, V)).astype(np.float32)
    out = ModelOutput(jnp.asarray(logits), jnp.ones((B, 24)), None, None)
    _, metrics = jloss(out, batch, dof_loss_weight=1.0)
    assert "dof_loss" not in metrics and float(metrics["loss"]) == float(metrics["token_loss"])


def test_few_steps_reduce_loss(model, batch):
    model = nnx.clone(model)
    wrt = trainable_filter("streamvlm")
    opt = make_optimizer(model, "streamvlm")
    losses = []
    for _ in range(8):
        loss, _, grads = loss_and_grads(model, batch)
        losses.append(float(loss))
        _update(opt, model, grads.filter(wrt))
    assert losses[-1] < 0.85 * losses[0], losses


@functools.partial(jax.jit, static_argnums=0)
def _cached(graphdef, state, inputs, cache):
    out = nnx.merge(graphdef, state)(inputs, cache=cache)
    return out.logits, out.cache


def test_cached_decode_equals_full_forward(model, batch):
    full, _ = forward(model, batch)
    graphdef, state = nnx.split(model)
    per_token = ("tokens", "attention_mask", "vision_mask", "vision_step")
    rest = {k: batch[k] for k in ("features", "step_mask", "morph_tokens", "morph_mask")}
    k = 17
    assert batch["vision_mask"][:, k:].sum() >= 4  # <vision> positions go through one-token decode
    cache = init_stream_cache(model, B, L)
    logits, cache = _cached(graphdef, state, {**rest, **{n: batch[n][:, :k] for n in per_token}}, cache)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(full[:, :k]), atol=2e-5)
    valid = batch["attention_mask"]
    for j in range(k, L):
        step, cache = _cached(graphdef, state, {**rest, **{n: batch[n][:, j:j + 1] for n in per_token}}, cache)
        ok = valid[:, j]
        err = np.abs(np.asarray(step[:, 0]) - np.asarray(full[:, j]))[ok].max()
        assert err < 2e-5, f"position {j} (vision: {batch['vision_mask'][:, j]}) err {err}"


def test_sharded_forward_equals_unsharded(model, batch):
    want, want_scores = forward(model, batch)
    mesh = shd.make_mesh(data=2, fsdp=2, tensor=2)
    sharded = shard_model(nnx.clone(model), mesh)
    q = sharded.llm.inserted[1].q_proj.kernel.get_value()
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    sb = {k: jax.device_put(v, spec) for k, v in batch.items()}
    with jax.set_mesh(mesh):
        got, got_scores = forward(sharded, sb)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5)
    np.testing.assert_allclose(np.asarray(got_scores), np.asarray(want_scores), atol=1e-6)


def test_abstract_7b_widths_footprint_and_from_config():
    """LLaMA-2-7B widths (12 of its 32 layers, to keep the trace quick): exact parameter counts,
    nothing allocated, the paper's vision layers clamped to the depth."""
    import ml_collections

    n_layers, e, mlp, v = 12, 4096, 11008, 32064
    cfg = ml_collections.ConfigDict({
        "llm": {"config": {"vocab_size": v, "hidden_size": e, "intermediate_size": mlp,
                           "num_hidden_layers": n_layers, "num_attention_heads": 32},
                "dtype": "bfloat16", "lora": {"rank": 32, "alpha": 16.0, "dropout": 0.05,
                                              "targets": ["q", "k", "v", "lm_head"]},
                "vision_layers": [6, 8, 10, 12, 14, 16, 18, 20, 22]},
        "model": {"d_vision": 1280, "use_dof_selection": True, "dof_k": 12}, "data": {"use_morphology": False}})
    mc = ModelConfig.from_config(cfg)
    assert mc.use_morphology is False and mc.lora.rank == 32 and mc.vision_layers[-1] == 22
    abstract = abstract_model(mc)
    assert [i for i, blk in enumerate(abstract.llm.inserted) if blk is not None] == [6, 8, 10]
    n_xattn = 3 * (2 * e * e + 2 * 1280 * e + 1280 * 1280 + 2 * 1280)
    n_lora = n_layers * 3 * 32 * 2 * e + 32 * (e + v)
    n_base = 2 * v * e + n_layers * (4 * e * e + 3 * e * mlp + 2 * e) + e
    n_fusion = 2 * 1280 * 1280 + 2 * e * 1280 + 2 * 1280 + 2 * e
    n_sel = 1280 * 256 + 256 + 256 * 256 + 256 + 256 * 24 + 24
    assert param_bytes(abstract, trainable_filter("streamvlm"))[0] == n_xattn + n_lora
    assert param_bytes(abstract, trainable_filter("lm"))[0] == n_base
    n_all, bytes_all = param_bytes(abstract)
    assert n_all == n_base + n_lora + n_xattn + n_fusion + n_sel and bytes_all == 2 * n_all  # bf16
    assert isinstance(abstract.llm.embed.get_value(), jax.ShapeDtypeStruct)

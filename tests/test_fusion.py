"""Vision cross-attention (vs a PyTorch build of Stream-VLM's block) and morphology fusion (vs
torch.nn.MultiheadAttention)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from biocoach_jax.models.fusion import MorphologyFusion, VisionCrossAttention

B, L, N_STEPS, S, D_MODEL, D_VISION, D_ATTN = 2, 9, 4, 5, 12, 7, 10
D_TEXT, M = 6, 5


def _randomise(module, rng, scale=0.4):
    """Random values in every parameter (LayerNorm scale/bias included) so nothing is trivial."""
    for _, var in nnx.iter_graph(module):
        if isinstance(var, nnx.Param):
            var.value = jnp.asarray(rng.normal(0, scale, var.value.shape), var.value.dtype)


def _t(x):
    return torch.tensor(np.asarray(x, np.float32))


def _torch_linear(kernel):
    lin = torch.nn.Linear(*kernel.shape, bias=False)
    lin.weight.data = _t(kernel).T.contiguous()
    return lin


def torch_vision_xattn(block: VisionCrossAttention, h, feats, step, mask):
    """Stream-VLM's block in torch (Linear/LayerNorm/GELU), one position at a time."""
    ln = torch.nn.LayerNorm(D_VISION, eps=1e-5)
    ln.weight.data, ln.bias.data = _t(block.v_norm.scale.value), _t(block.v_norm.bias.value)
    q_fc, k_fc = _torch_linear(block.q_proj.kernel.value), _torch_linear(block.k_proj.kernel.value)
    v_ff = torch.nn.Sequential(ln, _torch_linear(block.v_fc1.kernel.value), torch.nn.GELU(),
                               _torch_linear(block.v_fc2.kernel.value))
    out_fc = _torch_linear(block.out_proj.kernel.value)
    h_t, f_t = _t(h).clone(), _t(feats)
    with torch.no_grad():
        for b in range(h.shape[0]):
            for pos in range(h.shape[1]):
                if not mask[b, pos]:
                    continue
                f = f_t[b, int(step[b, pos])]  # (S, C): this position's own step only
                q, k, v = q_fc(h_t[b, pos]), k_fc(f), v_ff(f)
                att = torch.softmax(q @ k.T / math.sqrt(D_ATTN), dim=-1)
                h_t[b, pos] = h_t[b, pos] + out_fc(att @ v)
    return h_t.numpy()


def _inputs(rng):
    h = rng.normal(0, 1, (B, L, D_MODEL)).astype(np.float32)
    h[0, 0, :3] = -0.0  # a negative zero must survive untouched at a text position
    feats = rng.normal(0, 2, (B, N_STEPS, S, D_VISION)).astype(np.float32)
    mask = rng.random((B, L)) < 0.6
    mask[0, 0], mask[:, 1] = False, True
    step = np.where(mask, rng.integers(0, N_STEPS, (B, L)), -1).astype(np.int32)
    return h, feats, step, mask


@pytest.fixture(scope="module")
def xattn():
    block = VisionCrossAttention(D_MODEL, D_VISION, D_ATTN, rngs=nnx.Rngs(0))
    _randomise(block, np.random.default_rng(1234))
    return block


@pytest.fixture(scope="module")
def xattn_jit():
    return nnx.jit(lambda blk, h, f, s, m: blk(h, vision_feats=f, vision_step=s, vision_mask=m))


def _bits(x):
    return np.asarray(x, np.float32).view(np.uint32)


def test_vision_xattn_matches_torch_and_leaves_text_positions_bit_identical(xattn, xattn_jit, rng):
    h, feats, step, mask = _inputs(rng)
    want = torch_vision_xattn(xattn, h, feats, step, mask)
    got = np.asarray(xattn(jnp.asarray(h), vision_feats=jnp.asarray(feats), vision_step=step,
                           vision_mask=mask))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_bits(got[~mask]), _bits(h[~mask]))
    assert np.all(np.abs(got[mask] - h[mask]).max(axis=-1) > 1e-3)  # vision positions do change
    jitted = np.asarray(xattn_jit(xattn, h, feats, step, mask))
    np.testing.assert_allclose(jitted, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_bits(jitted[~mask]), _bits(h[~mask]))


def test_each_position_reads_only_its_own_step(xattn, xattn_jit, rng):
    h, feats, step, mask = _inputs(rng)
    base = np.asarray(xattn_jit(xattn, h, feats, step, mask))
    s = int(step[0, 1])  # a step read by at least one position
    feats2 = feats.copy()
    feats2[:, s] += rng.normal(0, 3, feats2[:, s].shape).astype(np.float32)
    got = np.asarray(xattn_jit(xattn, h, feats2, step, mask))
    reads_s = mask & (step == s)
    np.testing.assert_allclose(got[~reads_s], base[~reads_s], rtol=0, atol=1e-6)
    assert np.all(np.abs(got[reads_s] - base[reads_s]).max(axis=-1) > 1e-4)


def test_one_token_decode_equals_full_call(xattn, rng):
    h, feats, step, mask = _inputs(rng)
    full = np.asarray(xattn(jnp.asarray(h), vision_feats=feats, vision_step=step, vision_mask=mask))
    one = nnx.jit(lambda blk, h1, s1, m1: blk(h1, vision_feats=feats, vision_step=s1, vision_mask=m1))
    for pos in range(L):  # one compile, L calls: a KV-cached decode feeds one position at a time
        got = np.asarray(one(xattn, h[:, pos:pos + 1], step[:, pos:pos + 1], mask[:, pos:pos + 1]))
        np.testing.assert_allclose(got[:, 0], full[:, pos], rtol=1e-6, atol=1e-6)


def test_capacity_and_bad_input(xattn, rng):
    h, feats, step, mask = _inputs(rng)
    kw = dict(vision_feats=feats, vision_step=step, vision_mask=mask)
    full = np.asarray(xattn(h, **kw))
    need = int(mask.sum(1).max())
    np.testing.assert_allclose(np.asarray(xattn(h, capacity=need, **kw)), full, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="capacity"):
        xattn(h, capacity=need - 1, **kw)
    bad_step = np.where(mask, step, -1)
    bad_step[1, 1] = N_STEPS
    with pytest.raises(ValueError, match="outside"):
        xattn(h, vision_feats=feats, vision_step=bad_step, vision_mask=mask)
    # under jit the offending row comes back NaN, the others are untouched
    jitted = nnx.jit(lambda blk, s: blk(h, vision_feats=feats, vision_step=s, vision_mask=mask))
    out = np.asarray(jitted(xattn, bad_step))
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(out[0], full[0], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="vision_feats"):
        xattn(h, vision_feats=feats[..., :-1], vision_step=step, vision_mask=mask)
    with pytest.raises(ValueError, match="mismatch"):
        xattn(h, vision_feats=feats, vision_step=step[:, :-1], vision_mask=mask[:, :-1])


def test_gradients_reach_every_parameter(xattn, rng):
    h, feats, step, mask = _inputs(rng)

    def loss(blk):
        return jnp.sum(blk(h, vision_feats=feats, vision_step=step, vision_mask=mask) ** 2)

    grads = nnx.jit(nnx.grad(loss))(xattn)
    for path, g in nnx.to_flat_state(grads):
        g = np.asarray(g.value if hasattr(g, "value") else g)
        assert np.isfinite(g).all() and np.abs(g).max() > 0, path


def test_plugs_into_llama_as_inserted_block(rng):
    from biocoach_jax.models.llama_config import LlamaConfig
    from biocoach_jax.models.llama_model import Llama

    cfg = LlamaConfig(vocab_size=37, hidden_size=16, intermediate_size=24, num_layers=2, num_heads=2,
                      num_kv_heads=1, head_dim=8)
    block = VisionCrossAttention(16, D_VISION, rngs=nnx.Rngs(3))
    _randomise(block, rng)
    plain = Llama(cfg, rngs=nnx.Rngs(0))
    fused = Llama(cfg, rngs=nnx.Rngs(0), inserted={1: block})
    ids = rng.integers(0, 37, (B, 6))
    mask = np.zeros((B, 6), bool)
    mask[:, 2] = True
    step = np.where(mask, 1, -1).astype(np.int32)
    feats = rng.normal(0, 1, (B, N_STEPS, S, D_VISION)).astype(np.float32)
    kw = dict(vision_feats=feats, vision_step=step)
    off = np.asarray(fused(ids, vision_mask=np.zeros_like(mask), **kw))
    np.testing.assert_array_equal(off, np.asarray(plain(ids)))
    on = np.asarray(fused(ids, vision_mask=mask, **kw))
    np.testing.assert_array_equal(on[:, :2], off[:, :2])  # causal: earlier tokens unaffected
    assert np.abs(on[:, 2] - off[:, 2]).max() > 1e-4


def test_bf16_compute_close_to_float32(rng):
    h, feats, step, mask = _inputs(rng)
    f32 = VisionCrossAttention(D_MODEL, D_VISION, D_ATTN, rngs=nnx.Rngs(5))
    bf16 = VisionCrossAttention(D_MODEL, D_VISION, D_ATTN, dtype=jnp.bfloat16, param_dtype=jnp.float32,
                                rngs=nnx.Rngs(5))
    kw = dict(vision_feats=feats, vision_step=step, vision_mask=mask)
    want = np.asarray(f32(jnp.asarray(h), **kw))
    got = bf16(jnp.asarray(h, jnp.bfloat16), **kw)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=0.05, atol=0.05)


# --- morphology fusion -------------------------------------------------------------------------

def _morph_inputs(rng):
    feats = rng.normal(0, 2, (B, 3, S, D_VISION)).astype(np.float32)
    emb = rng.normal(0, 0.02, (B, M, D_TEXT)).astype(np.float32)  # LLaMA-scale embedding rows
    mask = np.ones((B, M), bool)
    mask[0, 3:] = False  # padded tail
    mask[1, 1] = False  # a hole
    return feats, emb, mask


def torch_morph_fusion(fusion: MorphologyFusion, feats, emb, mask):
    def ln(norm, dim):
        mod = torch.nn.LayerNorm(dim, eps=1e-5)
        mod.weight.data, mod.bias.data = _t(norm.scale.value), _t(norm.bias.value)
        return mod

    mha = torch.nn.MultiheadAttention(D_VISION, fusion.num_heads, bias=False, kdim=D_TEXT,
                                      vdim=D_TEXT, batch_first=True)
    mha.q_proj_weight.data = _t(fusion.q_proj.kernel.value).T.contiguous()
    mha.k_proj_weight.data = _t(fusion.k_proj.kernel.value).T.contiguous()
    mha.v_proj_weight.data = _t(fusion.v_proj.kernel.value).T.contiguous()
    mha.out_proj.weight.data = _t(fusion.out_proj.kernel.value).T.contiguous()
    x = _t(feats).reshape(B, -1, D_VISION)
    m = ln(fusion.norm_m, D_TEXT)(_t(emb))
    with torch.no_grad():
        out, _ = mha(ln(fusion.norm_f, D_VISION)(x), m, m, key_padding_mask=torch.tensor(~mask),
                     need_weights=False)
    return (x + out).reshape(feats.shape).numpy()


@pytest.mark.parametrize("heads", [1, 7])
def test_morph_fusion_matches_torch_mha_and_ignores_padding(heads, rng):
    fusion = MorphologyFusion(D_VISION, D_TEXT, num_heads=heads, zero_init_out=False, rngs=nnx.Rngs(2))
    _randomise(fusion, rng)
    feats, emb, mask = _morph_inputs(rng)
    got = np.asarray(fusion(feats, emb, mask))
    np.testing.assert_allclose(got, torch_morph_fusion(fusion, feats, emb, mask), rtol=1e-5, atol=1e-5)
    assert np.abs(got - feats).max() > 1e-3
    emb2 = emb.copy()
    emb2[~mask] = rng.normal(0, 50, emb2[~mask].shape)  # garbage in padded slots: no effect
    np.testing.assert_allclose(np.asarray(fusion(feats, emb2, mask)), got, rtol=0, atol=1e-6)
    # dropping the padded tail of row 0 gives the same row
    short = np.asarray(fusion(feats[:1], emb[:1, :3], mask[:1, :3]))
    np.testing.assert_allclose(short[0], got[0], rtol=1e-6, atol=1e-6)
    none = mask.copy()
    none[1] = False  # a row with no morphology text at all returns F exactly
    np.testing.assert_array_equal(np.asarray(fusion(feats, emb, none))[1], feats[1])


def test_morph_fusion_zero_init_is_identity_and_trains(rng):
    fusion = MorphologyFusion(D_VISION, D_TEXT, num_heads=1, rngs=nnx.Rngs(4))
    feats, emb, mask = _morph_inputs(rng)
    np.testing.assert_array_equal(np.asarray(fusion(feats, emb, mask)), feats)
    target = jnp.asarray(rng.normal(0, 1, feats.shape), jnp.float32)

    def loss(mod):
        return jnp.mean((mod(feats, emb, mask) - target) ** 2)

    grad_fn = nnx.jit(nnx.grad(loss))
    grads = dict(nnx.to_flat_state(grad_fn(fusion)))
    g_out = np.asarray(grads[("out_proj", "kernel")].value)
    assert np.abs(g_out).max() > 0  # the zero output projection gets gradient at once
    # after a step on it, gradient reaches q/k/v (the whole block trains)
    fusion.out_proj.kernel.value = fusion.out_proj.kernel.value - 0.5 * g_out
    grads = grad_fn(fusion)
    for path, g in nnx.to_flat_state(grads):
        assert np.abs(np.asarray(g.value)).max() > 0, path
    with pytest.raises(ValueError, match="num_heads"):
        MorphologyFusion(D_VISION, D_TEXT, num_heads=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="batch mismatch"):
        fusion(feats, emb[:1], mask[:1])


def test_logical_axes_place_the_blocks_on_a_mesh(xattn, rng):
    from biocoach_jax import sharding

    fusion = MorphologyFusion(D_VISION, D_TEXT, num_heads=7, rngs=nnx.Rngs(0))
    for module in (xattn, fusion):
        for path, var in nnx.to_flat_state(nnx.state(module, nnx.Param)):
            axes = sharding.variable_axes(var)
            assert axes is not None and len(axes) == var.value.ndim, path
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    h, feats, step, mask = _inputs(rng)
    want = np.asarray(xattn(h, vision_feats=feats, vision_step=step, vision_mask=mask))
    graph, state = nnx.split(xattn)
    with jax.set_mesh(mesh):
        placed = jax.device_put(state, sharding.state_shardings(state, mesh))
        got = nnx.jit(lambda blk: blk(h, vision_feats=feats, vision_step=step, vision_mask=mask))(
            nnx.merge(graph, placed))
    q_spec = placed["q_proj"]["kernel"].value.sharding.spec
    assert q_spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

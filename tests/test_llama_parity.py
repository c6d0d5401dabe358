"""Our LLaMA against transformers.LlamaForCausalLM (CPU, float32) on tiny random models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from biocoach_jax import sharding as shd
from biocoach_jax.models.generate import decode_step, generate, prefill
from biocoach_jax.models.llama import load_llama
from test_llama_util import (LLAMA3_ROPE, hf_logits, hf_model, max_abs, ours_logits, padded_batch,
                             random_ids, save)

TOL = 1e-4
# name -> (hf_model kwargs, how the weights are saved, transformers-4 style config?)
VARIANTS = {
    "mha_untied_v4cfg": (dict(heads=4, kv=4), "safetensors", True),
    "gqa_tied_llama3_sharded": (dict(heads=4, kv=2, head_dim=24, tied=True, rope=LLAMA3_ROPE), "sharded", False),
    "gqa8_bin_llama3_v4cfg": (dict(heads=8, kv=2, layers=3, vocab=515, rope=LLAMA3_ROPE), "bin", True),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = {}
    for i, (name, (kw, how, v4)) in enumerate(VARIANTS.items()):
        hf = hf_model(i, **kw)
        folder = save(hf, tmp_path_factory.mktemp(name), how, v4_config=v4)
        out[name] = (hf, load_llama(folder, dtype=jnp.float32), folder)
    return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_logits_match_hf(models, rng, name):
    hf, ours, _ = models[name]
    ids = random_ids(rng, (3, 24), hf.config.vocab_size)
    got, want = ours_logits(ours, ids), hf_logits(hf, ids)
    assert got.shape == want.shape == (3, 24, hf.config.vocab_size)
    assert got.dtype == np.float32
    assert max_abs(got, want) < TOL


@pytest.mark.parametrize("left", [True, False])
def test_padded_batch_equals_unpadded_rows(models, rng, left):
    hf, ours, _ = models["gqa_tied_llama3_sharded"]
    v, t = hf.config.vocab_size, 24
    lengths = [t, int(rng.integers(3, t - 2)), int(rng.integers(1, 4))]
    ids, mask = padded_batch(rng, lengths, t, v, left=left)
    got = ours_logits(ours, ids, mask)
    # HF on the padded batch with explicit positions (what its generate does)...
    pos = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    want_padded = hf_logits(hf, ids, mask, pos)
    for i in range(3):
        row = mask[i]
        assert max_abs(got[i][row], want_padded[i][row]) < TOL
        # ...and each row alone, without padding
        alone = hf_logits(hf, ids[i:i + 1, row])[0]
        assert max_abs(got[i][row], alone) < TOL


def test_long_rows_use_query_blocks_and_match_hf(models, rng):
    """Rows of at least two query blocks take the blocked causal attention (each block scored
    against its key prefix only): same logits as HF, odd length (a partial last block), with a
    right-padded and a left-padded row."""
    from biocoach_jax.models.llama_layers import Q_BLOCK

    hf, ours, _ = models["gqa_tied_llama3_sharded"]
    t = 2 * Q_BLOCK + int(rng.integers(1, Q_BLOCK // 2)) * 2 + 1
    lengths = [t, int(rng.integers(Q_BLOCK, t - 3))]
    for left in (False, True):
        ids, mask = padded_batch(rng, lengths, t, hf.config.vocab_size, left=left)
        got = ours_logits(ours, ids, mask)
        pos = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
        want = hf_logits(hf, ids, mask, pos)
        for i in range(2):
            assert max_abs(got[i][mask[i]], want[i][mask[i]]) < TOL


def test_kv_cache_decode_equals_full_forward(models, rng):
    hf, ours, _ = models["gqa8_bin_llama3_v4cfg"]
    v, t, k = hf.config.vocab_size, 24, 12  # (3, 24): the forward compiled for the logits test
    ids, mask = padded_batch(rng, [t, t - 5, t - 11], t, v, left=True)
    full = ours_logits(ours, ids, mask)
    graphdef, state = nnx.split(ours)
    last, cache = prefill(graphdef, state, jnp.asarray(ids[:, :k]), jnp.asarray(mask[:, :k]), max_len=32)
    np.testing.assert_allclose(np.asarray(last), full[:, k - 1], atol=TOL)
    for j in range(k, t):
        step, cache = decode_step(graphdef, state, cache, jnp.asarray(ids[:, j]))
        assert max_abs(step, full[:, j]) < TOL, f"decode step {j}"
    assert int(cache.index) == t


def test_greedy_generation_matches_hf(models, rng):
    hf, ours, _ = models["mha_untied_v4cfg"]
    v = hf.config.vocab_size
    ids, mask = padded_batch(rng, [10, 7, 4], 10, v, left=True)
    out = generate(ours, ids, mask, max_new_tokens=32, stop_tokens=[2], pad_id=0)
    with torch.no_grad():
        ref = hf.generate(torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long),
                          max_new_tokens=32, do_sample=False, eos_token_id=2, pad_token_id=0)
    ref = ref[:, ids.shape[1]:].numpy()
    ref = np.pad(ref, ((0, 0), (0, 32 - ref.shape[1])))  # HF stops early if every row stopped
    np.testing.assert_array_equal(np.asarray(out.tokens), ref)
    stopped = [np.flatnonzero(r == 2) for r in ref]
    want_len = [s[0] + 1 if len(s) else 32 for s in stopped]
    np.testing.assert_array_equal(np.asarray(out.lengths), want_len)


def test_sharded_forward_equals_unsharded(models, rng):
    hf, ours, folder = models["gqa_tied_llama3_sharded"]
    mesh = shd.make_mesh(data=1, fsdp=4, tensor=2)
    sharded = load_llama(folder, dtype=jnp.float32, mesh=mesh)
    q = sharded.layers[0].attn.q_proj.kernel.get_value()
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (16, 48)
    # vocab 1001 is not divisible by tensor=2: that axis stays replicated, embed still split
    assert sharded.embed.get_value().sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
    ids = random_ids(rng, (4, 24), hf.config.vocab_size)
    with jax.set_mesh(mesh):
        got = ours_logits(sharded, ids)
    assert max_abs(got, ours_logits(ours, ids)) < 1e-5
    assert max_abs(got, hf_logits(hf, ids)) < TOL


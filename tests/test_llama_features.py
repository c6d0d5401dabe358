"""LoRA, vocabulary resize, inserted blocks, sampling and constrained (Stream-VLM) decoding."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from biocoach_jax.models.generate import generate, stream_vlm_constraint
from biocoach_jax.models.llama import LoRAConfig, LoRAParam, load_llama, resize_token_embeddings
from test_llama_util import hf_logits, hf_model, max_abs, ours_logits, random_ids, save

ALL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down", "lm_head")
LORA = LoRAConfig(targets=ALL_TARGETS, rank=4, alpha=8.0, dropout=0.1)


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    hf = hf_model(20, heads=4, kv=2, vocab=1001)
    return hf, save(hf, tmp_path_factory.mktemp("untied"))


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    hf = hf_model(21, heads=4, kv=4, vocab=300, tied=True)
    return hf, save(hf, tmp_path_factory.mktemp("tied"))


@nnx.jit
def lora_sgd_step(model, opt, ids, target):
    """One SGD step on the LoRA parameters only (the optimizer's filter)."""

    def loss_fn(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(ids), target).mean()

    loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, nnx.OfType(LoRAParam)))(model)
    opt.update(model, grads)
    return loss, loss_fn(model)


@pytest.mark.parametrize("which", ["untied", "tied"])
def test_lora_at_init_equals_base(request, rng, which):
    hf, folder = request.getfixturevalue(which)
    model = load_llama(folder, lora=LORA)
    lora_vars = jax.tree.leaves(nnx.state(model, nnx.OfType(LoRAParam)))
    assert len(lora_vars) == 2 * (7 * hf.config.num_hidden_layers + 1)  # A and B per projection
    ids = random_ids(rng, (2, 12), hf.config.vocab_size)
    assert max_abs(ours_logits(model, ids), hf_logits(hf, ids)) < 1e-4


def test_lora_optimizer_moves_only_lora(tied, rng):
    hf, folder = tied
    model = load_llama(folder, lora=LoRAConfig(targets=("q", "v", "lm_head"), rank=4, dropout=0.0))
    base_filter = nnx.All(nnx.Param, nnx.Not(nnx.OfType(LoRAParam)))
    frozen = jax.tree.map(np.asarray, nnx.state(model, base_filter))
    b0 = np.asarray(model.lm_head_lora.b.get_value())
    assert not b0.any() and np.asarray(model.lm_head_lora.a.get_value()).any()
    opt = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.OfType(LoRAParam))
    ids, target = (jnp.asarray(random_ids(rng, (2, 12), hf.config.vocab_size)) for _ in range(2))
    loss, new_loss = lora_sgd_step(model, opt, ids, target)
    jax.tree.map(np.testing.assert_array_equal, frozen, jax.tree.map(np.asarray, nnx.state(model, base_filter)))
    assert np.asarray(model.lm_head_lora.b.get_value()).any()
    assert float(new_loss) < float(loss)


def test_resize_keeps_old_logits_and_sets_mean_rows(untied, tied, rng):
    for hf, folder in (untied, tied):
        model = load_llama(folder, lora=LORA)  # as in the LoRA test: its forward is compiled
        v = hf.config.vocab_size
        emb0 = np.asarray(model.embed.get_value())
        head0 = None if model.lm_head is None else np.asarray(model.lm_head.kernel.get_value())
        ids = random_ids(rng, (2, 12), v)
        before = ours_logits(model, ids)
        resize_token_embeddings(model, v + 3, multiple=64)
        new_v = -(-(v + 3) // 64) * 64
        assert model.cfg.vocab_size == new_v and model.embed.get_value().shape == (new_v, emb0.shape[1])
        np.testing.assert_array_equal(np.asarray(model.embed.get_value()[:v]), emb0)
        np.testing.assert_allclose(np.asarray(model.embed.get_value()[v:]),
                                   np.broadcast_to(emb0.mean(0), (new_v - v, emb0.shape[1])), rtol=1e-5, atol=1e-7)
        if head0 is not None:
            head = np.asarray(model.lm_head.kernel.get_value())
            np.testing.assert_allclose(head[:, v:], np.repeat(head0.mean(1, keepdims=True), new_v - v, 1),
                                       rtol=1e-5, atol=1e-7)
        after = ours_logits(model, ids)
        assert after.shape[-1] == new_v
        assert max_abs(after[..., :v], before) < 1e-5
    with pytest.raises(ValueError, match="shrink"):
        resize_token_embeddings(model, 10)


class AddFeatures(nnx.Module):
    """A stand-in for vision cross-attention: adds projected features where a mask is set."""

    def __init__(self, c, e, rngs):
        self.proj = nnx.Linear(c, e, use_bias=False, rngs=rngs)

    def __call__(self, h, *, feats, vision_mask, **_):
        return h + jnp.where(vision_mask[..., None], self.proj(feats)[:, None, :], 0.0)


def test_inserted_blocks_get_keyword_inputs(untied, rng):
    hf, folder = untied
    model = load_llama(folder)
    ids = random_ids(rng, (2, 8), hf.config.vocab_size)
    base = ours_logits(model, ids)
    model.insert_blocks({0: AddFeatures(5, 64, nnx.Rngs(1))})
    feats = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
    vmask = np.zeros((2, 8), bool)
    vmask[:, 5] = True
    out = np.asarray(nnx.jit(lambda m, i, f, v: m(i, feats=f, vision_mask=v))(
        model, jnp.asarray(ids), feats, jnp.asarray(vmask)))
    assert max_abs(out[:, :5], base[:, :5]) < 1e-5  # causal: earlier positions untouched
    assert max_abs(out[:, 5:], base[:, 5:]) > 1e-3
    with pytest.raises(ValueError, match="out of range"):
        model.insert_blocks({7: AddFeatures(5, 64, nnx.Rngs(1))})


@pytest.fixture(scope="module")
def gen_model(untied):
    return load_llama(untied[1])


GEN = dict(max_new_tokens=12)  # one prompt shape (8, 6) everywhere: few compilations


def test_sampling_seed_and_top_p(untied, gen_model, rng):
    hf, _ = untied
    prompt = np.repeat(random_ids(rng, (1, 6), hf.config.vocab_size), 8, axis=0)
    kw = dict(temperature=1.0, top_p=0.3, **GEN)
    a = np.asarray(generate(gen_model, prompt, seed=5, **kw).tokens)
    b = np.asarray(generate(gen_model, prompt, seed=5, **kw).tokens)
    c = np.asarray(generate(gen_model, prompt, seed=6, **kw).tokens)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # every first token must lie in the top-p nucleus computed from the HF logits
    lg = hf_logits(hf, prompt[:1])[0, -1].astype(np.float64)
    order = np.argsort(-lg)
    p = np.exp(lg[order] - lg.max())
    p /= p.sum()
    nucleus = set(order[: int(np.searchsorted(np.cumsum(p), 0.3) + 1)].tolist())
    assert set(a[:, 0].tolist()) | set(c[:, 0].tolist()) <= nucleus
    greedy = np.asarray(generate(gen_model, prompt, **GEN).tokens)
    tiny_p = np.asarray(generate(gen_model, prompt, temperature=1.0, top_p=1e-6, **GEN).tokens)
    np.testing.assert_array_equal(greedy, tiny_p)


def test_plain_constrain_hook_forbids_a_token(untied, gen_model, rng):
    hf, _ = untied
    prompt = random_ids(rng, (8, 6), hf.config.vocab_size)
    free = np.asarray(generate(gen_model, prompt, **GEN).tokens)
    banned = int(free[0, 0])

    def forbid(step_state, logits):
        return logits.at[:, banned].set(-jnp.inf)

    out = np.asarray(generate(gen_model, prompt, constrain=forbid, **GEN).tokens)
    assert banned not in out and out[0, 0] != free[0, 0]


def stream_vlm_reference(hf, prompt, n, vision, answer, close, max_len):
    """Stream-VLM's rule applied to HF greedy logits, one token at a time (the oracle)."""
    tokens, out, inside, length = list(prompt), [], False, 0
    for _ in range(n):
        top = int(np.argmax(hf_logits(hf, np.asarray([tokens]))[0, -1]))
        if not inside:
            tok = top if top in (vision, answer) else vision
        else:
            tok = close if top in (vision, answer) or length >= max_len else top
        if not inside and tok == answer:
            inside, length = True, 0
        elif inside and tok == close:
            inside = False
        elif inside:
            length += 1
        tokens.append(tok)
        out.append(tok)
    return out


def test_stream_vlm_constraint_matches_reference(untied, gen_model, rng):
    hf, _ = untied
    prompt = random_ids(rng, (8, 6), hf.config.vocab_size)
    # <answer> := row 0's own first greedy choice, so a feedback opens at once
    answer = int(np.argmax(hf_logits(hf, prompt[:1])[0, -1]))
    vision, close = [int(t) for t in rng.choice(np.setdiff1d(np.arange(3, 1001), [answer]), 2, replace=False)]
    constraint = stream_vlm_constraint(vision, answer, close, max_feedback_len=4)
    out = np.asarray(generate(gen_model, prompt, constrain=constraint, **GEN).tokens)
    for i in range(2):
        assert out[i].tolist() == stream_vlm_reference(hf, prompt[i], 12, vision, answer, close, 4)
    row = out[0].tolist()
    assert row[0] == answer and close in row and row[row.index(close) + 1] in (vision, answer)
    assert row.index(close) <= 5  # at most 4 feedback tokens before the forced <answer/>

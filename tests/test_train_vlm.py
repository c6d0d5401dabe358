"""The streamvlm / biocoach stages with the real BioCoachModel and loss: frozen weights stay
bit-identical and get no optimizer state, gradients reach the trainable set through the frozen
LLaMA, an 8-device (data=2, fsdp=2, tensor=2) step equals the 1-device step, and the
streamvlm -> biocoach chain through `init.checkpoint` (data: hand-made Batches)."""
from __future__ import annotations

import dataclasses

import grain
import jax
import numpy as np
import optax
import pytest
from absl import flags
from flax import nnx

from biocoach_jax.data.batch import Batch
from biocoach_jax.models import biocoach as bc
from biocoach_jax.models.llama import LlamaConfig, LoRAConfig
from biocoach_jax.train import train
from biocoach_jax.training import mesh as mesh_lib
from biocoach_jax.training import step as step_lib
from biocoach_jax.training.checkpoint import state_to_flat
from biocoach_jax.training.vlm_task import VLMTask
from configs.tiny import biocoach as tiny_biocoach

VOCAB, L, S, N, C, M = 128, 23, 5, 3, 8, 6
LLM = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=2,
                  num_kv_heads=1, head_dim=16)


def model_config(**kw) -> bc.ModelConfig:
    return bc.ModelConfig(llm=LLM, lora=LoRAConfig(rank=4, alpha=8.0, dropout=0.0), vision_layers=(1,),
                          d_vision=C, dof_hidden=16, morph_heads=1, dof_k=5, **kw)


def make_batch(rng, b=8) -> Batch:
    tokens = rng.integers(11, VOCAB, (b, L)).astype(np.int32)
    vision = np.zeros((b, L), bool)
    vision[:, 1::5] = True                            # 5 <vision> positions per row = S steps
    step = np.where(vision, np.cumsum(vision, 1) - 1, 0).astype(np.int32)
    attn = np.ones((b, L), bool)
    attn[0, -3:] = False                              # one padded row tail
    weights = rng.choice([0.0, 0.1, 1.0], (b, L)).astype(np.float32) * attn
    morph = np.zeros((b, M), bool)
    morph[:, :4] = True
    return Batch(tokens=tokens, targets=np.roll(tokens, -1, 1), loss_weights=weights,
                 attention_mask=attn, vision_mask=vision, vision_step=step,
                 features=rng.normal(size=(b, S, N, C)).astype(np.float32),
                 step_mask=np.ones((b, S), bool), morph_tokens=rng.integers(11, VOCAB, (b, M)).astype(np.int32),
                 morph_mask=morph, joint_labels=(rng.random((b, 24)) < 0.4).astype(np.float32),
                 joint_label_mask=np.ones((b,), bool), episode_index=np.arange(b, dtype=np.int32))


def setup(stage, mesh, seed=0, tx=None):
    model = bc.build_model(model_config(), rngs=nnx.Rngs(seed), mesh=mesh)
    trainable = bc.trainable_filter(stage)
    opt = nnx.Optimizer(model, tx or optax.adamw(1e-2), wrt=trainable)
    mesh_lib.place(opt, mesh)
    graphdef, mutable, frozen = step_lib.split_train_state(model, opt, trainable)

    def loss(m, batch):
        return bc.loss_fn(m(batch), batch, dof_loss_weight=1.0)

    return graphdef, mutable, frozen, step_lib.make_train_step(graphdef, trainable, loss)


def copy_flat(state):
    return {k: np.array(v) for k, v in state_to_flat(state).items()}


@pytest.mark.parametrize("stage", ["biocoach", "streamvlm"])
def test_only_trainable_weights_move(stage, rng):
    mesh = mesh_lib.shd.make_mesh(1, 1, 1)
    graphdef, mutable, frozen, step = setup(stage, mesh)
    before_frozen, before = copy_flat(frozen), copy_flat(mutable)
    fresh = bc.build_model(model_config(), rngs=nnx.Rngs(0))
    names = lambda f: {"0." + ".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(fresh, f))}  # noqa: E731
    params = sorted(names(bc.trainable_filter(stage)))
    # the mutable model part is exactly the trainable set (+ RNG streams), nothing frozen
    assert {k for k in before if k.startswith("0.")} == set(params) | names(nnx.RngState)
    assert not set(params) & {"0." + k for k in before_frozen}
    # AdamW: mu and nu for each trainable array and nothing else (frozen: no optimizer state)
    moments = [k for k in before if k.startswith("1.opt_state") and not k.endswith("count")]
    assert sorted(moments) == sorted(f"1.opt_state.0.{m}.{k[2:]}" for k in params for m in ("mu", "nu"))
    with jax.set_mesh(mesh):
        for _ in range(2):
            mutable, metrics = step(mutable, frozen, mesh_lib.shard_batch(make_batch(rng), mesh))
    assert np.isfinite(float(metrics["loss"]))
    after_frozen, after = copy_flat(frozen), copy_flat(mutable)
    for k in before_frozen:
        np.testing.assert_array_equal(before_frozen[k], after_frozen[k], err_msg=k)
    unchanged = [k for k in params if np.array_equal(before[k], after[k])]
    assert not unchanged, unchanged
    if stage == "streamvlm":
        # layer 0 is below the only cross-attention block: its LoRA learns only through the
        # frozen layer 1 and the frozen head, i.e. gradients flow through frozen weights
        assert any(k.startswith("0.llm.layers.0.attn.q_proj.lora") for k in params)


def test_eight_devices_equal_one(rng):
    batches = [make_batch(rng) for _ in range(2)]
    results = []
    for shape in [(1, 1, 1), (2, 2, 2)]:
        mesh = mesh_lib.shd.make_mesh(*shape)
        _, mutable, frozen, step = setup("biocoach", mesh)
        with jax.set_mesh(mesh):
            for b in batches:
                mutable, _ = step(mutable, frozen, mesh_lib.shard_batch(b, mesh))
        results.append(copy_flat(mutable))
        if shape == (2, 2, 2):
            specs = {str(v.sharding.spec) for v in jax.tree.leaves(frozen)}
            assert len(specs) > 1, "nothing was sharded"
    one, eight = results
    # atol: Adam divides by sqrt(v), so a weight whose gradient is ~0 moves by ~lr in a
    # direction set by float rounding; seen: 5e-6 on one weight in 1024 (1 run in 10). A
    # sharding bug (a missing reduction) moves weights by O(lr) = 1e-2.
    for k in one:
        np.testing.assert_allclose(one[k], eight[k], rtol=2e-4, atol=2e-5, err_msg=k)


class _Tok:
    padded_vocab_size = VOCAB


def _stub_task(monkeypatch, seed):
    """VLMTask with hand-made Batches instead of the QEVD pipeline (needs no dataset)."""
    gen = np.random.default_rng(seed)
    batches = [make_batch(gen, 4) for _ in range(3)]
    monkeypatch.setattr(VLMTask, "prepare", lambda self, cfg, wd: setattr(self, "tok", _Tok()))
    monkeypatch.setattr(VLMTask, "train_iterator",
                        lambda self, cfg, pi, pc: iter(grain.MapDataset.source(batches).repeat()))
    monkeypatch.setattr(VLMTask, "eval_batches", lambda self, cfg: batches[:1])


def vlm_config(stage, init=""):
    c = tiny_biocoach.get_config()
    c.stage = c.train.trainable = stage
    c.llm.path = ""
    c.llm.config = dataclasses.asdict(LLM)
    c.llm.lora.rank, c.llm.lora.alpha = 4, 8.0
    c.llm.vision_layers = (1,)
    c.vision.out_channels = C
    c.model.update(dof_hidden=16, morph_heads=1, dof_k=5)
    c.init.checkpoint = init
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, 2, 1
    c.data.batch_size = 4
    c.train.update(steps=2, log_every=1, eval_every=2, checkpoint_every=2, progress=False)
    return c


def test_streamvlm_then_biocoach_chain(monkeypatch, tmp_path, rng):
    flags.FLAGS.mark_as_parsed()
    _stub_task(monkeypatch, int(rng.integers(1 << 30)))
    first = train(vlm_config("streamvlm"), tmp_path / "streamvlm")
    assert first.step == 2 and first.eval["token_acc"] >= 0
    second = train(vlm_config("biocoach", init=str(tmp_path / "streamvlm")), tmp_path / "biocoach")
    assert second.step == 2 and "dof_loss" in second.history[-1]
    # the LoRA trained by Stream-VLM is frozen in BioCoach and arrives unchanged
    model = bc.build_model(model_config(), rngs=nnx.Rngs(0))
    from biocoach_jax.training.checkpoint import load_model_params
    loaded = load_model_params(tmp_path / "biocoach", model)
    lora = [k for k in first.state if k.startswith("0.") and k.endswith((".lora.a", ".lora.b"))]
    assert lora and not any(".lora." in k for k in loaded)  # biocoach saved no LoRA
    assert any(not np.all(first.state[k] == 0) for k in lora if k.endswith(".b"))  # LoRA B trained
    load_model_params(tmp_path / "streamvlm", model)
    flat = {".".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(nnx.state(model))}
    for k in lora:
        np.testing.assert_array_equal(np.asarray(flat[k[2:]]), first.state[k])


def test_grad_accumulation_equals_full_batch(rng):
    """With equal token counts per micro-batch, the mean of micro-batch gradients is the
    full-batch gradient, so one accumulated step equals one plain step. Plain SGD keeps the
    update linear in the gradient: Adam's first step is lr * g / (|g| + eps), which turns
    float-summation noise on a near-zero gradient into a visible parameter difference."""
    b = make_batch(rng)
    b = b._replace(loss_weights=np.ones_like(b.loss_weights), attention_mask=np.ones_like(b.attention_mask))
    mesh = mesh_lib.shd.make_mesh(1, 1, 1)
    out = []
    for accum in (1, 4):
        graphdef, mutable, frozen, _ = setup("biocoach", mesh, tx=optax.sgd(1e-2))
        before = copy_flat(mutable)
        step = step_lib.make_train_step(graphdef, bc.trainable_filter("biocoach"), lambda m, x: bc.loss_fn(
            m(x), x, dof_loss_weight=1.0), grad_accum=accum)
        with jax.set_mesh(mesh):
            mutable, metrics = step(mutable, frozen, mesh_lib.shard_batch(b, mesh))
        after = copy_flat(mutable)
        out.append(({k: (after[k] - before[k], np.abs(after[k]).max()) for k in after},
                    float(metrics["loss"])))
    (one, loss1), (four, loss4) = out
    assert loss1 == pytest.approx(loss4, rel=1e-5)
    assert any(np.abs(d).max() > 0 for d, _ in one.values())   # the step moved something
    for k, (d1, w_max) in one.items():
        # each update to 1e-4 of that weight's largest update, plus the float32 rounding of
        # the stored weights the update is read back from (w_new - w_old)
        ulps = 4 * np.finfo(np.float32).eps * w_max
        np.testing.assert_allclose(four[k][0], d1, rtol=1e-4, atol=1e-4 * np.abs(d1).max() + ulps,
                                   err_msg=k)
    with pytest.raises(ValueError, match="grad_accum=3"):
        step_lib.make_train_step(graphdef, bc.trainable_filter("biocoach"), lambda m, x: bc.loss_fn(
            m(x), x), grad_accum=3)(mutable, frozen, mesh_lib.shard_batch(b, mesh))

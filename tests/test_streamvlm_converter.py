"""Stream-VLM (FitCoach) release -> our checkpoint, checked against a PyTorch reference forward.

The release is built here with FitCoach's names and layouts (tiny dims): an HF LLaMA wrapped by
PEFT (`lang.base_model.model.*`, `.base_layer`, `lora_A.default`), cross-attention modules whose
attribute names are FitCoach's (`xattn_layer.attn_layers.0.{hidden_attn_fc, feat_attn_keys_fc,
vision_projector, out_fc}`), the vision tower and the adapter's embedding alias. The reference is
HF's LlamaForCausalLM with the LoRA merged into its weights and the cross-attention added after
the chosen decoder layers by forward hooks, computed one <vision> position at a time.
"""
import functools
import json
import math
import os

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from biocoach_jax.models.biocoach import EXTRA_PARAMS, load_extra_params, load_streamvlm
from biocoach_jax.models.llama import CheckpointError
from biocoach_jax.models.llama_io import safetensors_refs, write_safetensors
from biocoach_jax.tokenizer import Tokenizer, train_bpe_tokenizer
from converters import streamvlm

E, LAYERS, HEADS, KV, MLP, BASE_V = 48, 4, 4, 2, 72, 291
C, D_ATTN, R, ALPHA, XLAYERS = 12, 40, 4, 16.0, (1, 3)
B, L, S, N = 2, 21, 5, 6
PREFIX = "lang.base_model.model."


class FitCoachXAttn(torch.nn.Module):
    """FitCoach's cross-attention layer structure (names, shapes, math), one head."""

    def __init__(self):
        super().__init__()
        self.hidden_attn_fc = torch.nn.Linear(E, D_ATTN, bias=False)
        self.feat_attn_keys_fc = torch.nn.Linear(C, D_ATTN, bias=False)
        self.vision_projector = torch.nn.Sequential(torch.nn.LayerNorm(C), torch.nn.Linear(C, C, bias=False),
                                                    torch.nn.GELU(), torch.nn.Linear(C, D_ATTN, bias=False))
        self.out_fc = torch.nn.Linear(D_ATTN, E, bias=False)

    def forward(self, h, feats):  # h (E,), feats (N, C) of this position's step
        logits = self.hidden_attn_fc(h) @ self.feat_attn_keys_fc(feats).T / math.sqrt(D_ATTN)
        return self.out_fc(torch.softmax(logits, -1) @ self.vision_projector(feats))


def _randn(g, *shape, scale=0.1):
    return torch.randn(*shape, generator=g) * scale


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(release dir, llm dir, torch reference model with hooks state, xattn modules)."""
    root = tmp_path_factory.mktemp("svlm")
    g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    corpus = [f"squat number {i}: knees out, chest up, keep going {i * 7}" for i in range(60)]
    tok = train_bpe_tokenizer(corpus, 300, root / "release")  # the release ships its tokenizer
    hcfg = transformers.LlamaConfig(vocab_size=BASE_V, hidden_size=E, intermediate_size=MLP,
                                    num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                    num_key_value_heads=KV, tie_word_embeddings=False)
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=g)))
    base = transformers.LlamaForCausalLM(hcfg).eval()
    base.save_pretrained(root / "llama")
    vocab = -(-tok.vocab_size // 64) * 64
    assert vocab > BASE_V
    sd = {k: v.clone() for k, v in base.state_dict().items()}
    sd["model.embed_tokens.weight"] = torch.cat([sd["model.embed_tokens.weight"], _randn(g, vocab - BASE_V, E)])
    sd["lm_head.weight"] = torch.cat([sd["lm_head.weight"], _randn(g, vocab - BASE_V, E)])
    rel, merged = {}, dict(sd)
    for name, w in sd.items():
        if ".mlp." in name:  # left out of the release: these must come from the --llm directory
            continue
        lora_target = any(f"{p}_proj.weight" in name for p in "qkv") or name == "lm_head.weight"
        if lora_target:
            w = w + _randn(g, *w.shape, scale=0.01)  # the release's base differs (a fine-tuned LLaMA)
            a, b = _randn(g, R, w.shape[1]), _randn(g, w.shape[0], R)
            stem = name[:-len(".weight")]
            rel[f"{PREFIX}{stem}.base_layer.weight"] = w
            rel[f"{PREFIX}{stem}.lora_A.default.weight"], rel[f"{PREFIX}{stem}.lora_B.default.weight"] = a, b
            merged[name] = w + (ALPHA / R) * b @ a
        else:
            rel[PREFIX + name] = w
    xattn = {}
    for i in XLAYERS:
        xattn[i] = FitCoachXAttn()
        with torch.no_grad():
            for p in xattn[i].parameters():
                p.copy_(_randn(g, *p.shape, scale=0.3) + (1.0 if p.ndim == 1 and p.shape[0] == C else 0.0))
        for k, v in xattn[i].state_dict().items():
            rel[f"{PREFIX}model.layers.{i}.xattn_layer.attn_layers.0.{k}"] = v.clone()
    rel["vision.cnn.0.conv.weight"] = _randn(g, 8, 3, 3, 3)
    rel["adapter.embed_tokens.weight"] = rel[PREFIX + "model.embed_tokens.weight"]
    torch.save({"state_dict": rel, "epoch": 3}, root / "release" / "state_dict.pth.tar")
    (root / "release" / "adapter_config.json").write_text(json.dumps({"r": R, "lora_alpha": ALPHA,
                                                                      "lora_dropout": 0.05}))
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**hcfg.to_dict(), "vocab_size": vocab})).eval()
    ref.load_state_dict(merged)
    return dict(root=root, rel=rel, ref=ref, xattn=xattn, vocab=vocab, tok=tok)


def reference_logits(rel, tokens, vmask, vstep, feats):
    """HF LLaMA (LoRA merged) + FitCoach cross-attention after the MLP of layers XLAYERS."""
    ref, hooks = rel["ref"], []

    def hook(i):
        def add(module, inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            h = h.clone()
            for b, pos in zip(*np.nonzero(vmask)):
                h[b, pos] = h[b, pos] + rel["xattn"][i](h[b, pos], torch.tensor(feats[b, vstep[b, pos]]))
            return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h
        return add

    for i in XLAYERS:
        hooks.append(ref.model.layers[i].register_forward_hook(hook(i)))
    try:
        with torch.no_grad():
            return ref(torch.tensor(tokens, dtype=torch.long)).logits.numpy()
    finally:
        for h in hooks:
            h.remove()


@pytest.fixture(scope="module")
def converted(release):
    out = release["root"] / "out"
    cfg = streamvlm.convert(str(release["root"] / "release"), str(release["root"] / "llama"), str(out))
    return out, cfg


@functools.partial(jax.jit, static_argnums=0)
def _logits(graphdef, state, batch):
    return nnx.merge(graphdef, state)(batch).logits


def test_converted_model_matches_pytorch_reference(release, converted, rng):
    out, cfg = converted
    assert cfg.vision_layers == XLAYERS and cfg.d_vision == C and cfg.d_attn == D_ATTN
    assert cfg.lora.rank == R and cfg.lora.alpha == ALPHA and set(cfg.lora.targets) == {"q", "k", "v", "lm_head"}
    model = load_streamvlm(out)
    assert model.llm.cfg.vocab_size == release["vocab"] and not model.cfg.use_morphology
    tok = Tokenizer.load(out / "tokenizer")
    assert tok.special_ids == release["tok"].special_ids
    tokens = rng.integers(0, release["vocab"], (B, L)).astype(np.int32)
    vmask = np.zeros((B, L), bool)
    vstep = np.zeros((B, L), np.int32)
    for b in range(B):
        pos = np.sort(rng.choice(np.arange(2, L), S, replace=False))
        vmask[b, pos], vstep[b, pos] = True, np.arange(S)
        tokens[b, pos] = tok.vision_id
    feats = rng.normal(0, 1, (B, S, N, C)).astype(np.float32)
    want = reference_logits(release, tokens, vmask, vstep, feats)
    graphdef, state = nnx.split(model)
    got = np.asarray(_logits(graphdef, state, dict(tokens=tokens, vision_mask=vmask, vision_step=vstep,
                                                    features=feats)))
    scale = np.abs(want).max()
    assert np.abs(got - want)[vmask].max() < 1e-4 * scale  # vision positions (cross-attention)
    assert np.abs(got - want).max() < 1e-4 * scale
    # the cross-attention does matter at those positions (the check above is not vacuous)
    plain = reference_logits(release, tokens, np.zeros_like(vmask), vstep, feats)
    assert np.abs(plain - want)[vmask].max() > 1e-2 * scale


def test_each_tensor_lands_transposed(release, converted):
    """Each Linear of ours gives the torch Linear's output (x W^T) for the same x."""
    model = load_streamvlm(converted[0])
    x = np.random.default_rng(0).normal(0, 1, (3, E)).astype(np.float32)
    blk = model.llm.inserted[3]
    tq = release["xattn"][3].hidden_attn_fc(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(blk.q_proj(x)), tq, atol=1e-5)
    lora = model.llm.layers[2].attn.k_proj.lora
    a = release["rel"][PREFIX + "model.layers.2.self_attn.k_proj.lora_A.default.weight"]
    b = release["rel"][PREFIX + "model.layers.2.self_attn.k_proj.lora_B.default.weight"]
    np.testing.assert_allclose(np.asarray(lora(x)), (torch.tensor(x) @ a.T @ b.T).numpy() * ALPHA / R, atol=1e-5)
    np.testing.assert_allclose(np.asarray(blk.v_norm.bias.get_value()),
                               release["xattn"][3].vision_projector[0].bias.detach().numpy(), atol=0)


def test_our_extra_params_file_is_checked(converted, tmp_path):
    model = load_streamvlm(converted[0])
    tensors = {k: r.read() for k, r in safetensors_refs(str(converted[0] / EXTRA_PARAMS)).items()}
    tensors["llm.inserted.1.k_proj.kernel"] = np.zeros((C + 1, D_ATTN), np.float32)
    tensors["llm.inserted.2.q_proj.kernel"] = np.zeros((E, D_ATTN), np.float32)
    del tensors["llm.layers.0.attn.v_proj.lora.b"]
    write_safetensors(str(tmp_path / "x.safetensors"), tensors)
    with pytest.raises(CheckpointError, match="3 problems") as e:
        load_extra_params(model, str(tmp_path / "x.safetensors"))
    for part in ("unexpected tensor llm.inserted.2.q_proj.kernel", "missing tensor llm.layers.0.attn.v_proj.lora.b",
                 f"llm.inserted.1.k_proj.kernel: shape ({C + 1}, {D_ATTN}), expected ({C}, {D_ATTN})"):
        assert part in str(e.value)
    with pytest.raises(CheckpointError, match="not a converted"):
        load_streamvlm(tmp_path)


def test_peft_adapter_names_normalise():
    n = streamvlm.normalise("base_model.model.model.layers.3.self_attn.v_proj.lora_A.weight")
    assert streamvlm.map_name(n, streamvlm.RELEASE_TO_OURS) == ("llm.layers.3.attn.v_proj.lora.a", True)
    n = streamvlm.normalise("lang.base_model.model.lm_head.lora_B.default.weight")
    assert streamvlm.map_name(n, streamvlm.RELEASE_TO_OURS) == ("llm.lm_head.lora.b", True)
    assert streamvlm.normalise("lang.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") \
        == "model.layers.0.self_attn.q_proj.weight"


def test_bad_release_lists_every_problem(release, tmp_path, capsys):
    rel = dict(release["rel"])
    del rel[f"{PREFIX}model.layers.3.xattn_layer.attn_layers.0.out_fc.weight"]
    rel[f"{PREFIX}model.layers.1.xattn_layer.attn_layers.0.gate.weight"] = torch.zeros(3)
    rel[f"{PREFIX}model.layers.2.self_attn.q_proj.lora_B.default.weight"] = torch.zeros(E + 1, R)
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(rel, bad / "state_dict.pth.tar")
    Tokenizer.load(release["root"] / "release").save(bad)
    (bad / "adapter_config.json").write_text(json.dumps({"r": R, "lora_alpha": ALPHA}))
    with pytest.raises(CheckpointError) as e:
        streamvlm.convert(str(bad), str(release["root"] / "llama"), str(tmp_path / "o"))
    msg = str(e.value)
    assert "3 problems" in msg and "missing tensor for llm.inserted.3.out_proj.kernel" in msg
    assert "unexpected tensor lang.base_model.model.model.layers.1.xattn_layer.attn_layers.0.gate.weight" in msg
    assert f"shape ({E + 1}, {R}), expected ({E}, {R})" in msg
    # without adapter_config.json FitCoach's r=32 is assumed, and the rank-4 tensors disagree
    (bad / "adapter_config.json").unlink()
    with pytest.raises(CheckpointError, match="LoRA rank 4 in the tensors but r=32"):
        streamvlm.convert(str(bad), str(release["root"] / "llama"), str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    # the CLI reports the same error and an existing output is never overwritten silently
    assert streamvlm.main(["--release", str(bad), "--llm", str(release["root"] / "llama"),
                           "--out", str(tmp_path / "o")]) == 1
    assert "problems" in capsys.readouterr().err

"""Shared helpers for the LLaMA tests: tiny random HF models written to disk, jitted forward.

(No tests here; imported by the other tests/test_llama_*.py files.)
"""
from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
SEED = int.from_bytes(os.urandom(4), "little")
print(f"[llama test model seed {SEED}]")


def hf_model(seed=0, *, vocab=1001, hidden=64, inter=96, layers=2, heads=4, kv=2, head_dim=None,
             tied=False, rope=None, dtype=None):
    """A random transformers.LlamaForCausalLM (eval mode, CPU). Larger init spreads the logits
    so greedy decoding has no near-ties."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED + seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                      head_dim=head_dim or hidden // heads, tie_word_embeddings=tied,
                      initializer_range=0.1, max_position_embeddings=256, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0,
                      rope_parameters=rope or {"rope_type": "default", "rope_theta": 10000.0})
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norm scales too, so a wrong norm mapping cannot hide
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model.to(dtype) if dtype is not None else model


def save(model, folder, how="safetensors", v4_config=False):
    """Write an HF directory: safetensors, sharded safetensors or pytorch_model.bin."""
    import torch

    os.makedirs(folder, exist_ok=True)
    if how == "bin":
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))
    elif how == "sharded":
        model.save_pretrained(folder, max_shard_size="40KB")
    else:
        model.save_pretrained(folder)
    if v4_config:  # transformers 4 layout: top-level rope_theta + rope_scaling
        path = os.path.join(folder, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        rope = dict(cfg.pop("rope_parameters"))
        cfg["rope_theta"] = rope.pop("rope_theta")
        cfg["rope_scaling"] = None if rope["rope_type"] == "default" else rope
        with open(path, "w") as f:
            json.dump(cfg, f)
    return str(folder)


def hf_logits(model, ids, mask=None, positions=None):
    import torch

    kw = {}
    if mask is not None:
        kw["attention_mask"] = torch.tensor(np.asarray(mask), dtype=torch.long)
    if positions is not None:
        kw["position_ids"] = torch.tensor(np.asarray(positions), dtype=torch.long)
    with torch.no_grad():
        return model(torch.tensor(np.asarray(ids), dtype=torch.long), **kw).logits.float().numpy()


@nnx.jit
def forward(model, ids, mask):
    return model(ids, mask)


def ours_logits(model, ids, mask=None):
    ids = jnp.asarray(ids, jnp.int32)
    mask = jnp.ones(ids.shape, bool) if mask is None else jnp.asarray(mask, bool)
    return np.asarray(forward(model, ids, mask))


def random_ids(rng, shape, vocab, low=3):
    """Token ids avoiding 0..2 (pad/bos/eos) so no generation stops early by chance."""
    return rng.integers(low, vocab, size=shape).astype(np.int32)


def padded_batch(rng, lengths, t, vocab, left=True):
    ids = np.zeros((len(lengths), t), np.int32)
    mask = np.zeros((len(lengths), t), bool)
    for i, n in enumerate(lengths):
        sl = slice(t - n, t) if left else slice(0, n)
        ids[i, sl] = random_ids(rng, (n,), vocab)
        mask[i, sl] = True
    return ids, mask


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


__all__ = ["LLAMA3_ROPE", "hf_model", "save", "hf_logits", "ours_logits", "random_ids", "padded_batch",
           "max_abs", "forward"]

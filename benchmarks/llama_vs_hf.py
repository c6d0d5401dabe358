"""Our LLaMA (JAX, CPU) against transformers.LlamaForCausalLM (PyTorch, CPU), float32, one process.

    python -m benchmarks.llama_vs_hf [--layers 12] [--repeats 5]

A ~100M-parameter random model (hidden 768, 12 layers, 12 heads, intermediate 2048, vocab
32000): prefill of 512 tokens, then a 64-token greedy decode over the KV cache. Decode time =
generate(512 prompt, 64 new tokens) minus generate(512 prompt, 1 new token), for both sides,
so prefill and per-call overheads cancel. Medians of several repeats; the last two lines are
the RESULT lines.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from transformers import LlamaConfig as HFConfig
from transformers import LlamaForCausalLM

from biocoach_jax.models.generate import generate
from biocoach_jax.models.llama import load_llama


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation for ours)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)

    torch.manual_seed(0)
    cfg = HFConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=a.layers,
                   num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=2048,
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    hf = LlamaForCausalLM(cfg).eval()
    n_params = sum(t.numel() for t in hf.parameters())
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = load_llama(d, dtype=jnp.float32)
    print(f"params {n_params / 1e6:.1f}M  devices {jax.devices()}  torch threads {torch.get_num_threads()}")

    ids = np.random.default_rng(0).integers(3, cfg.vocab_size, (1, a.prompt)).astype(np.int32)
    ids_t = torch.tensor(ids, dtype=torch.long)

    graphdef, state = nnx.split(ours)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    ids_j = jnp.asarray(ids)
    ours_prefill = median_time(lambda: forward(state, ids_j).block_until_ready(), a.repeats)

    def hf_prefill_fn():
        with torch.no_grad():
            hf(ids_t, use_cache=True)

    ref_prefill = median_time(hf_prefill_fn, a.repeats)

    def ours_gen(n):
        return lambda: generate(ours, ids, max_new_tokens=n).tokens.block_until_ready()

    def hf_gen(n):
        def run():
            with torch.no_grad():
                return hf.generate(ids_t, attention_mask=torch.ones_like(ids_t), max_new_tokens=n,
                                   min_new_tokens=n, do_sample=False, use_cache=True, pad_token_id=0)
        return run

    n = a.new_tokens
    ours_1, ours_n = median_time(ours_gen(1), a.repeats), median_time(ours_gen(n), a.repeats)
    ref_1, ref_n = median_time(hf_gen(1), a.repeats), median_time(hf_gen(n), a.repeats)
    same = np.array_equal(np.asarray(ours_gen(n)()), hf_gen(n)()[:, a.prompt:].numpy())
    print(f"greedy tokens identical to HF: {same}")
    # n - 1 decode steps separate the two runs
    ours_tok_s = (n - 1) / max(ours_n - ours_1, 1e-9)
    ref_tok_s = (n - 1) / max(ref_n - ref_1, 1e-9)
    print(f"generate 1 / {n} tokens: ours {ours_1:.3f}s / {ours_n:.3f}s  hf {ref_1:.3f}s / {ref_n:.3f}s")
    print(f"RESULT llama_prefill ours_s={ours_prefill:.4f} ref_s={ref_prefill:.4f} "
          f"speedup={ref_prefill / ours_prefill:.2f}")
    print(f"RESULT llama_decode ours_tok_s={ours_tok_s:.2f} ref_tok_s={ref_tok_s:.2f} "
          f"speedup={ours_tok_s / ref_tok_s:.2f}")


if __name__ == "__main__":
    main()

"""LLaMA-2/3 family in Flax NNX - public entry point.

    from biocoach_jax.models.llama import load_llama
    model = load_llama(hf_dir_or_converted_dir, dtype=jnp.float32)
    logits = model(input_ids)                      # (B, T) int32 -> (B, T, V) float32
    logits = model(ids, attention_mask=mask)       # left or right padded batches

Parts: llama_config (config.json, RoPE), llama_layers (NNX blocks, LoRAParam), llama_model
(the decoder, KV cache, resize), llama_io (tensor files), llama_loading (key table, loading).
"""
from biocoach_jax.models.llama_config import LlamaConfig, LoRAConfig  # noqa: F401
from biocoach_jax.models.llama_io import CheckpointError  # noqa: F401
from biocoach_jax.models.llama_layers import LoRAParam  # noqa: F401
from biocoach_jax.models.llama_loading import load_llama, read_config  # noqa: F401
from biocoach_jax.models.llama_model import (  # noqa: F401
    KVCache, Llama, add_lora, grow_cache, init_cache, resize_token_embeddings)  # noqa: F401

__all__ = ["CheckpointError", "KVCache", "Llama", "LlamaConfig", "add_lora", "LoRAConfig", "LoRAParam",
           "grow_cache", "init_cache", "load_llama", "read_config", "resize_token_embeddings"]

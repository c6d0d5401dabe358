"""The paper's BioCoach stage: LLaMA-2-7B (frozen, bf16) + Stream-VLM initialisation; trained:
vision cross-attention (layers 6, 8, ..., 22) + morphology fusion + DoF selector (K = 12);
tau = 3 s, alpha = 0.1, AdamW lr 2e-5; the full 224x160 CNN (1280 channels); 8 accelerators.

    python -m biocoach_jax.train --config=configs/full.py --workdir=gs://BUCKET/biocoach \
        --config.llm.path=$LLAMA2_7B --config.init.checkpoint=$STREAMVLM_RUN \
        --config.data.data_dir=$QEVD_ROOT
    python -m biocoach_jax.train --config=configs/full.py --workdir=/tmp/x --dry_run   # memory only

Paths (defaults from the environment; placeholders otherwise, which fail with a message naming
the field): LLAMA2_7B = HF LLaMA-2-7B directory (or `converters.hf_llama` output);
STREAMVLM_RUN = workdir of a configs/streamvlm.py run; QEVD_ROOT = folder holding
QEVD-FIT-COACH/ and QEVD-FIT-COACH-Benchmark/; BIOCOACH_TOKENIZER = tokenizer directory
(default: the LLaMA directory); BIOCOACH_VISION_CNN = converted CNN (`converters.sense_cnn`).
Launch on a pod / cluster with launch/tpu_pod.sh or launch/gpu_cluster.sh.
"""
import os

import ml_collections

from configs._base import base

# LLaMA-2-7B's config.json (public facts): used for shapes when llm.path is absent (dry runs).
LLAMA2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, rms_norm_eps=1e-5,
                 max_position_embeddings=4096, rope_theta=10000.0, bos_token_id=1, eos_token_id=2)


def get_config():
    c = base()
    c.stage = "biocoach"
    llama = os.environ.get("LLAMA2_7B", "/path/to/llama-2-7b-hf")
    c.llm.path = llama
    c.llm.config = ml_collections.ConfigDict(LLAMA2_7B)
    c.llm.dtype = "bfloat16"
    c.llm.param_dtype = "bfloat16"
    c.llm.lora = ml_collections.ConfigDict(dict(rank=32, alpha=16.0, dropout=0.05,
                                                targets=("q", "k", "v", "lm_head")))
    c.llm.vision_layers = (6, 8, 10, 12, 14, 16, 18, 20, 22)
    c.tokenizer.path = os.environ.get("BIOCOACH_TOKENIZER", llama)
    c.vision.checkpoint = os.environ.get("BIOCOACH_VISION_CNN", "/path/to/sense_cnn_converted")
    c.data.data_dir = os.environ.get("QEVD_ROOT", "/path/to/qevd")
    c.data.window_s = 3.0          # tau = 12 steps at 4 Hz
    c.data.alpha = 0.1
    c.data.batch_size = 8
    c.model.dof_k = 12
    c.model.use_dof_selection = True
    c.model.vocab_size = 32064     # 32000 + our 7 special tokens, padded to a multiple of 64
    c.train.trainable = "biocoach"
    c.train.steps = 10000
    c.optimizer.lr = 2e-5
    c.optimizer.warmup_steps = 200
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, 8, 1
    c.init.checkpoint = os.environ.get("STREAMVLM_RUN", "/path/to/streamvlm_run")
    return c

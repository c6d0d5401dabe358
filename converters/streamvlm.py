"""Stream-VLM release (Qualcomm-AI-research/FitCoach) -> our model directory.

    python -m converters.streamvlm --release DIR --llm LLAMA_DIR --out OUT [--dtype auto|bf16|fp32]
    model = biocoach_jax.models.biocoach.load_streamvlm(OUT)      # or build_model(cfg, llm_path=OUT)

DIR holds the release weights: FitCoach's `state_dict.pth.tar` (torch.save of the whole model,
optionally under "state_dict"; keys `lang.base_model.model.*` for the PEFT-wrapped LLaMA,
`vision.*` for the 3D CNN, `adapter.embed_tokens.weight`), or PEFT-style files
(`adapter_model.safetensors` / `.bin`, any other `*.safetensors|*.bin|*.pt|*.pth|*.pth.tar`),
plus the tokenizer files and optionally PEFT's `adapter_config.json` (r, lora_alpha,
lora_dropout; without it FitCoach's configs/base.yaml values r=32, alpha=16, dropout 0.05).
LLAMA_DIR is the base LLaMA (HF or converted), used for its config and every base weight the
release does not carry.

Names (facts from FitCoach's src/vision_modules/cross_attention.py, customllama/modeling_llama.py,
model_helpers.py): after dropping the `lang.`, `base_model.model.`, PEFT's `.default` adapter
name and `.base_layer`, the release uses HF LLaMA names plus
  model.layers.{i}.self_attn.{q,k,v}_proj.lora_{A,B}.weight, lm_head.lora_{A,B}.weight
  model.layers.{i}.xattn_layer.attn_layers.0.{hidden_attn_fc, feat_attn_keys_fc, out_fc}.weight
  model.layers.{i}.xattn_layer.attn_layers.0.vision_projector.{0 (LayerNorm) weight/bias, 1, 3}.weight
Torch Linear weights are (out, in); ours are (in, out), so every matrix is transposed.
The vision tower (`vision.*`) is converted by converters.sense_cnn and skipped here.

OUT: `biocoach_llama.json` + `params/` (the base LLaMA, vocabulary as resized by the release, a
multiple of 64), `extra_params.safetensors` (LoRA + cross-attention, our paths),
`biocoach_model.json` (ModelConfig), `tokenizer/`. Written to a temporary sibling and renamed.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import re
import sys

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

from biocoach_jax.models.biocoach import (EXTRA_PARAMS, ModelConfig, build_model, save_extra_params,
                                          trainable_filter, write_model_config)
from biocoach_jax.models.llama import CheckpointError, LoRAConfig, read_config
from biocoach_jax.models.llama_config import write_json_atomic
from biocoach_jax.models.llama_io import TensorRef, safetensors_refs
from biocoach_jax.models.llama_loading import HF_TO_OURS, OURS_CONFIG, OURS_PARAMS, is_ours, map_name
from converters.hf_llama import DTYPES, _atomic_dir, _auto_dtype

FITCOACH_LORA = dict(r=32, lora_alpha=16.0, lora_dropout=0.05)  # FitCoach configs/base.yaml
_XATTN = r"model\.layers\.(\d+)\.xattn_layer\.attn_layers\.0\."
# (release name regex after normalisation, our path template, transpose?)
RELEASE_TO_OURS = (
    (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_A\.weight", r"llm.layers.\1.attn.\2_proj.lora.a", True),
    (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_B\.weight", r"llm.layers.\1.attn.\2_proj.lora.b", True),
    (r"lm_head\.lora_A\.weight", r"llm.lm_head.lora.a", True),
    (r"lm_head\.lora_B\.weight", r"llm.lm_head.lora.b", True),
    (_XATTN + r"hidden_attn_fc\.weight", r"llm.inserted.\1.q_proj.kernel", True),
    (_XATTN + r"feat_attn_keys_fc\.weight", r"llm.inserted.\1.k_proj.kernel", True),
    (_XATTN + r"vision_projector\.0\.weight", r"llm.inserted.\1.v_norm.scale", False),
    (_XATTN + r"vision_projector\.0\.bias", r"llm.inserted.\1.v_norm.bias", False),
    (_XATTN + r"vision_projector\.1\.weight", r"llm.inserted.\1.v_fc1.kernel", True),
    (_XATTN + r"vision_projector\.3\.weight", r"llm.inserted.\1.v_fc2.kernel", True),
    (_XATTN + r"out_fc\.weight", r"llm.inserted.\1.out_proj.kernel", True),
)
# skipped on purpose: the vision tower, the adapter's alias of the embedding, RoPE buffers
IGNORED = (r"vision\..*", r"adapter\.embed_tokens\.weight", r".*rotary_emb\.inv_freq")
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.pth.tar", "*.ckpt")


def normalise(name: str) -> str:
    """Release key -> HF-LLaMA-style name (PEFT / DDP / FitCoach wrapper prefixes removed)."""
    for prefix in ("module.", "lang.", "base_model.model."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = re.sub(r"\.(lora_[AB])\.default\.", r".\1.", name)
    return name.replace(".base_layer.", ".")


def _torch_refs(path: str) -> dict[str, TensorRef]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for corrupt zips / pickles
        raise CheckpointError(f"{path}: corrupt or unreadable PyTorch weights ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")

    def to_numpy(t):
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return t.float().numpy() if t.dtype == torch.float16 else t.numpy()

    return {k: TensorRef(k, path, tuple(t.shape), np.dtype(np.float32), lambda t=t: to_numpy(t))
            for k, t in obj.items() if isinstance(t, torch.Tensor)}


def read_release(release: str) -> tuple[dict[str, TensorRef], dict]:
    """(normalised name -> tensor, LoRA settings) from a release directory or weight file."""
    folder = release if os.path.isdir(release) else os.path.dirname(os.path.abspath(release))
    files = [release] if os.path.isfile(release) else sorted(
        {f for g in _WEIGHT_GLOBS for f in glob.glob(os.path.join(release, g))})
    if not files:
        raise CheckpointError(f"{release}: no weight file ({', '.join(_WEIGHT_GLOBS)})")
    refs: dict[str, TensorRef] = {}
    dupes = []
    for f in files:
        for name, ref in (safetensors_refs(f) if f.endswith(".safetensors") else _torch_refs(f)).items():
            key = normalise(name)
            if key in refs:
                dupes.append(f"{name} in {f} (also in {refs[key].file})")
            refs[key] = ref
    if dupes:
        raise CheckpointError(f"{release}: tensors given twice: {dupes}")
    lora = dict(FITCOACH_LORA)
    cfg_file = os.path.join(folder, "adapter_config.json")
    if os.path.exists(cfg_file):
        try:
            with open(cfg_file) as fh:
                d = json.load(fh)
            lora.update({k: d[k] for k in FITCOACH_LORA if d.get(k) is not None})
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{cfg_file}: unreadable ({e})") from e
    return refs, lora


def plan(refs: dict[str, TensorRef], lora: dict) -> tuple[ModelConfig, dict]:
    """Model settings read off the release tensors, and our path -> (ref, transpose) for every
    tensor; names that match nothing are returned under None for the error report."""
    mapping, unexpected = {}, []
    for name, ref in refs.items():
        if any(re.fullmatch(p, name) for p in IGNORED):
            continue
        hit = map_name(name, RELEASE_TO_OURS)
        if hit is None and (base := map_name(name, HF_TO_OURS)) is not None:
            hit = (f"llm.{base[0]}", base[1])
        if hit is None:
            unexpected.append(f"unexpected tensor {ref.name} in {ref.file}")
            continue
        mapping[hit[0]] = (ref, hit[1])
    layers = sorted({int(m.group(1)) for k in mapping if (m := re.match(r"llm\.inserted\.(\d+)\.", k))})
    targets = sorted({m.group(1) for k in mapping if (m := re.match(r"llm\.layers\.\d+\.attn\.(\w)_proj\.lora", k))})
    if "llm.lm_head.lora.a" in mapping:
        targets.append("lm_head")
    if not layers:
        raise CheckpointError("release has no cross-attention tensors (model.layers.*.xattn_layer.*); "
                              "is this a Stream-VLM checkpoint?" + "".join(f"\n  - {u}" for u in unexpected))
    k_refs = [r for k, (r, _) in mapping.items() if re.fullmatch(r"llm\.inserted\.\d+\.k_proj\.kernel", k)]
    q_refs = [r for k, (r, _) in mapping.items() if re.fullmatch(r"llm\.inserted\.\d+\.q_proj\.kernel", k)]
    if not k_refs or not q_refs:
        raise CheckpointError("release lacks every feat_attn_keys_fc or hidden_attn_fc weight: cannot "
                              "tell the feature width / attention width")
    emb = mapping.get("llm.embed")
    a_refs = [r for k, (r, _) in mapping.items() if k.endswith("lora.a")]
    rank = a_refs[0].shape[0] if a_refs else int(lora["r"])
    if a_refs and rank != int(lora["r"]):
        unexpected.append(f"LoRA rank {rank} in the tensors but r={lora['r']} in adapter_config.json")
    cfg = ModelConfig(
        lora=LoRAConfig(targets=tuple(targets), rank=rank, alpha=float(lora["lora_alpha"]),
                        dropout=float(lora["lora_dropout"])) if targets else None,
        vision_layers=tuple(layers),
        d_vision=k_refs[0].shape[1], d_attn=q_refs[0].shape[0],
        vocab_size=emb[0].shape[0] if emb else None, use_morphology=False, use_dof_selection=False,
        # Stream-VLM has no morphology fusion; a later BioCoach run creates it with 8 heads when
        # they divide the feature width (1280 = 8 x 160), else the largest common divisor
        morph_heads=math.gcd(8, k_refs[0].shape[1]))
    return cfg, {"tensors": mapping, "problems": unexpected}


def _check_and_set(model, mapping: dict, problems: list[str], where: str) -> int:
    """Every LoRA / cross-attention parameter must come from the release; base weights may.
    Raise one CheckpointError listing all problems; returns the count of base tensors taken."""
    flat = {".".join(map(str, p)): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    required = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(model, trainable_filter("streamvlm")))}
    problems = list(problems)
    if "llm.lm_head_lora.a" in flat:  # a tied head keeps its LoRA beside the embedding
        mapping = {k.replace("llm.lm_head.lora.", "llm.lm_head_lora."): v for k, v in mapping.items()}
    for key in sorted(required - set(mapping)):
        problems.append(f"missing tensor for {key} (shape {tuple(flat[key].get_value().shape)})")
    for key, (ref, transpose) in sorted(mapping.items()):
        if key not in flat:
            problems.append(f"unexpected tensor {ref.name} in {ref.file} (no parameter {key} in the model)")
            continue
        want = tuple(flat[key].get_value().shape)
        got = tuple(ref.shape[::-1] if transpose else ref.shape)
        if got != want:
            stored = want[::-1] if transpose else want
            problems.append(f"tensor {ref.name} in {ref.file}: shape {tuple(ref.shape)}, expected {stored}")
    if problems:
        raise CheckpointError(f"{where}: release does not match the model ({len(problems)} problems):\n  - "
                              + "\n  - ".join(problems))
    for key, (ref, transpose) in mapping.items():
        arr = np.asarray(ref.read(), np.float32)
        var = flat[key]
        var.set_value(jnp.asarray(arr.T if transpose else arr, var.get_value().dtype))
    return sum(1 for k in mapping if k not in required)


def _llm_dtype(llm_dir: str, dtype: str):
    if dtype != "auto":
        return DTYPES[dtype]
    if is_ours(llm_dir):
        import orbax.checkpoint as ocp

        meta = ocp.StandardCheckpointer().metadata(os.path.join(os.path.abspath(llm_dir), OURS_PARAMS))
        return next(iter(meta.item_metadata.tree.values())).dtype
    return _auto_dtype(llm_dir)


def convert(release: str, llm_dir: str, out: str, *, tokenizer_dir: str | None = None, dtype: str = "auto",
            overwrite: bool = False) -> ModelConfig:
    """Convert; returns the ModelConfig written to OUT (see the module docstring)."""
    from biocoach_jax.tokenizer import Tokenizer

    refs, lora = read_release(release)
    cfg, found = plan(refs, lora)
    folder = release if os.path.isdir(release) else os.path.dirname(os.path.abspath(release))
    tok = Tokenizer.load(tokenizer_dir or folder)  # TokenizerError (a ValueError) names the folder
    pdtype = _llm_dtype(llm_dir, dtype)
    name = "bfloat16" if pdtype == jnp.bfloat16 else "float32"
    vocab = max(cfg.vocab_size or 0, tok.padded_vocab_size)
    cfg = dataclasses.replace(cfg, dtype=name, vocab_size=vocab)
    model = build_model(dataclasses.replace(cfg, llm_path=llm_dir), rngs=nnx.Rngs(0))
    n_base = _check_and_set(model, found["tensors"], found["problems"], release)
    if tok.vocab_size > model.llm.cfg.vocab_size:
        raise CheckpointError(f"{tokenizer_dir or folder}: tokenizer has {tok.vocab_size} tokens but the "
                              f"release embedding has {model.llm.cfg.vocab_size} rows")
    _, hf_config = read_config(llm_dir)
    hf_config = dict(hf_config, vocab_size=model.llm.cfg.vocab_size)
    import orbax.checkpoint as ocp

    base = {".".join(map(str, p)): v.get_value()
            for p, v in nnx.to_flat_state(nnx.state(model.llm, trainable_filter("lm")))}
    with _atomic_dir(out, overwrite) as tmp:
        ckptr = ocp.StandardCheckpointer()
        ckptr.save(os.path.join(tmp, OURS_PARAMS), base)
        ckptr.wait_until_finished()
        write_json_atomic(os.path.join(tmp, OURS_CONFIG), {
            "format_version": 1, "config": model.llm.cfg.to_json_dict(), "hf_config": hf_config})
        save_extra_params(model, os.path.join(tmp, EXTRA_PARAMS), trainable_filter("streamvlm"))
        write_model_config(cfg, tmp)
        tok.save(os.path.join(tmp, "tokenizer"))
    print(f"wrote {out}: vision layers {list(cfg.vision_layers)}, d_vision {cfg.d_vision}, LoRA "
          f"r={cfg.lora.rank if cfg.lora else 0} on {list(cfg.lora.targets) if cfg.lora else []}, vocab "
          f"{model.llm.cfg.vocab_size}, {n_base} base tensors from the release, the rest from {llm_dir}")
    return cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m converters.streamvlm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--release", required=True, help="Stream-VLM release directory (or its weight file)")
    p.add_argument("--llm", required=True, help="base LLaMA directory (HF or converted)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the release directory)")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="parameter dtype (auto: that of the base LLaMA)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    a = p.parse_args(argv)
    try:
        convert(a.release, a.llm, a.out, tokenizer_dir=a.tokenizer, dtype=a.dtype, overwrite=a.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as e:  # CheckpointError, TokenizerError
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

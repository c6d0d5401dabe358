"""Load LLaMA weights (HF directory or our orbax checkpoint) into an abstractly created model.

The HF <-> ours name mapping is one regex table (with the transpose each tensor needs). All
mismatches between checkpoint and model are gathered into one CheckpointError. Under a mesh each
tensor goes straight to its NamedSharding, read slice by slice from a memory-mapped file.
"""
from __future__ import annotations

import os
import re
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax import sharding as shd
from biocoach_jax.models.llama_config import LlamaConfig, LoRAConfig, read_json, rope_inv_freq
from biocoach_jax.models.llama_io import CheckpointError, TensorRef, hf_weight_files, open_tensors
from biocoach_jax.models.llama_layers import LoRAParam
from biocoach_jax.models.llama_model import Llama, add_lora

OURS_CONFIG = "biocoach_llama.json"
OURS_PARAMS = "params"

# (HF name regex, our parameter path, transpose?) - HF Linear weights are (out, in), ours (in, out)
HF_TO_OURS = (
    (r"model\.embed_tokens\.weight", r"embed", False),
    (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"layers.\1.attn.\2_proj.kernel", True),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"layers.\1.mlp.\2_proj.kernel", True),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"layers.\1.input_norm.scale", False),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers.\1.post_attn_norm.scale", False),
    (r"model\.norm\.weight", r"norm.scale", False),
    (r"lm_head\.weight", r"lm_head.kernel", True),
)
OURS_TO_HF = (
    (r"embed", r"model.embed_tokens.weight", False),
    (r"layers\.(\d+)\.attn\.([qkvo])_proj\.kernel", r"model.layers.\1.self_attn.\2_proj.weight", True),
    (r"layers\.(\d+)\.mlp\.(gate|up|down)_proj\.kernel", r"model.layers.\1.mlp.\2_proj.weight", True),
    (r"layers\.(\d+)\.input_norm\.scale", r"model.layers.\1.input_layernorm.weight", False),
    (r"layers\.(\d+)\.post_attn_norm\.scale", r"model.layers.\1.post_attention_layernorm.weight", False),
    (r"norm\.scale", r"model.norm.weight", False),
    (r"lm_head\.kernel", r"lm_head.weight", True),
)
# buffers some exports carry that are recomputed here
HF_IGNORED = (r".*\.rotary_emb\.inv_freq",)

BASE = nnx.All(nnx.Param, nnx.Not(nnx.OfType(LoRAParam)))  # what a checkpoint holds


def map_name(name: str, table) -> tuple[str, bool] | None:
    for pattern, template, transpose in table:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, template, name), transpose
    return None


def path_str(path) -> str:
    return ".".join(str(p) for p in path)


def flat_base(state) -> dict[str, nnx.Variable]:
    return {path_str(p): v for p, v in nnx.to_flat_state(state)}


def is_ours(path: str) -> bool:
    return os.path.exists(os.path.join(path, OURS_CONFIG))


def read_config(path: str) -> tuple[LlamaConfig, dict]:
    """Our config (and the original HF config dict) from either kind of directory."""
    if is_ours(path):
        f = os.path.join(path, OURS_CONFIG)
        d = read_json(f)
        return LlamaConfig.from_json_dict(d["config"], f), d.get("hf_config") or {}
    f = os.path.join(path, "config.json")
    if not os.path.exists(f):
        raise CheckpointError(f"{path}: neither {OURS_CONFIG} nor config.json found")
    d = read_json(f)
    return LlamaConfig.from_hf_dict(d, f), d


def _check(expected: dict, provided: dict[str, tuple], where: str, unexpected: list[str],
           stored_name: Callable[[str], tuple[str, bool]] = lambda k: (k, False)) -> None:
    """provided: our path -> (shape as stored, dtype, description); stored_name: our path ->
    (name in the file, stored transposed?). Raise one error listing all problems."""
    problems = [f"unexpected tensor {u}" for u in unexpected]
    for key, var in expected.items():
        name, transposed = stored_name(key)
        want = tuple(var.get_value().shape)
        want = want[::-1] if transposed else want
        if key not in provided:
            problems.append(f"missing tensor {name} (shape {want})")
            continue
        shape, dtype, desc = provided[key]
        if tuple(shape) != want:
            problems.append(f"{desc}: shape {tuple(shape)}, expected {want}")
        if not jnp.issubdtype(dtype, jnp.floating):
            problems.append(f"{desc}: dtype {np.dtype(dtype).name}, expected a floating type")
    if problems:
        lines = "\n  - ".join(problems)
        raise CheckpointError(f"{where}: checkpoint does not match the model ({len(problems)} problems):\n  - {lines}")


def _hf_tensors(path: str, expected: dict, tied: bool) -> dict[str, tuple[TensorRef, bool]]:
    files = hf_weight_files(path)
    refs = open_tensors(files)
    where = files[0] if len(files) == 1 else f"{path} ({len(files)} files)"
    found, unexpected, provided = {}, [], {}
    for name, ref in refs.items():
        if any(re.fullmatch(p, name) for p in HF_IGNORED) or (tied and name == "lm_head.weight"):
            continue  # tied models may still store the head; it equals the embedding
        m = map_name(name, HF_TO_OURS)
        if m is None or m[0] not in expected:
            unexpected.append(f"{name} in {ref.file}")
            continue
        found[m[0]] = (ref, m[1])
        provided[m[0]] = (ref.shape, ref.dtype, f"{name} in {ref.file}")
    _check(expected, provided, where, unexpected, lambda k: map_name(k, OURS_TO_HF))
    return found


def _place(read: Callable[[], np.ndarray], shape, dtype, sharding) -> jax.Array:
    if sharding is None:
        return jnp.asarray(np.asarray(read()), dtype=dtype)
    src = read()  # a lazy view: each device reads only its own slice
    return jax.make_array_from_callback(tuple(shape), sharding, lambda idx: np.asarray(src[idx]).astype(dtype))


def _load_hf(path, expected, shardings, tied, progress) -> dict[str, jax.Array]:
    found = _hf_tensors(path, expected, tied)
    out = {}
    items = sorted(found.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"loading {os.path.basename(path.rstrip('/'))}", unit="tensor")
    for key, (ref, transpose) in items:
        read = (lambda r=ref: r.read().T) if transpose else ref.read
        try:
            out[key] = _place(read, expected[key].get_value().shape, expected[key].get_value().dtype, shardings.get(key))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{ref.file}: cannot read tensor {ref.name} ({e})") from e
    return out


def _load_ours(path, expected, shardings) -> dict[str, jax.Array]:
    import orbax.checkpoint as ocp

    pdir = os.path.join(os.path.abspath(path), OURS_PARAMS)
    ckptr = ocp.StandardCheckpointer()
    try:
        tree = ckptr.metadata(pdir).item_metadata.tree
    except Exception as e:  # orbax raises assorted errors for damaged directories
        raise CheckpointError(f"{pdir}: unreadable orbax checkpoint ({type(e).__name__}: {e})") from e
    provided = {k: (m.shape, m.dtype, f"{k} in {pdir}") for k, m in tree.items() if k in expected}
    _check(expected, provided, pdir, [f"{k} in {pdir}" for k in tree if k not in expected])
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {k: jax.ShapeDtypeStruct(v.get_value().shape, v.get_value().dtype, sharding=shardings.get(k, default))
              for k, v in expected.items()}
    try:
        return ckptr.restore(pdir, target)
    except Exception as e:
        raise CheckpointError(f"{pdir}: cannot restore orbax checkpoint ({type(e).__name__}: {e})") from e


def load_llama(path, dtype=jnp.float32, *, param_dtype=None, mesh=None, lora: LoRAConfig | None = None,
               lora_seed: int = 0, progress: bool = False) -> Llama:
    """A Llama from an HF directory (safetensors, sharded safetensors, .bin) or our converted one.

    dtype: compute dtype; param_dtype: storage dtype (default = dtype); mesh: place every tensor
    with the sharding given by its logical axes; lora: fresh LoRA adapters (B = 0, so the model
    equals the checkpoint) drawn from `lora_seed`.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: not a directory")
    cfg, _ = read_config(path)
    param_dtype = dtype if param_dtype is None else param_dtype
    # shapes only: no weight is initialised, the checkpoint provides every one of them
    abstract = nnx.eval_shape(lambda: Llama(cfg, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0)))
    graphdef, base_abs, rest = nnx.split(abstract, BASE, ...)
    expected = flat_base(base_abs)
    shardings = {}
    if mesh is not None:
        shardings = {k: shd.named_sharding(mesh, shd.variable_axes(v), v.get_value().shape) for k, v in expected.items()}
    if is_ours(path):
        arrays = _load_ours(path, expected, shardings)
    else:
        arrays = _load_hf(path, expected, shardings, cfg.tie_word_embeddings, progress)
    for key, var in expected.items():
        var.set_value(arrays[key])
    model = nnx.merge(graphdef, base_abs, rest)
    model.inv_freq.set_value(jnp.asarray(rope_inv_freq(cfg)))  # the only non-checkpoint state
    if lora is not None:
        add_lora(model, lora, nnx.Rngs(lora_seed))
        if mesh is not None:
            adapters = nnx.state(model, nnx.OfType(LoRAParam))
            nnx.update(model, jax.device_put(adapters, shd.state_shardings(adapters, mesh)))
    return model

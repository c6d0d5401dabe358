"""HF LLaMA <-> our orbax checkpoint.

    python -m converters.hf_llama --hf_dir HF_DIR --out OUT_DIR [--dtype auto|bf16|fp32] [--overwrite]
    python -m converters.hf_llama --from_ours OUT_DIR --to_hf HF_DIR2 [--overwrite]

OUT_DIR holds `params/` (orbax, our parameter names) and `biocoach_llama.json` (our config plus
the original HF config). The export writes `model.safetensors` + `config.json` that
`transformers.LlamaForCausalLM.from_pretrained` loads. Both write into a temporary sibling
directory and rename it into place, so an interrupted run leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax.models.llama import load_llama, read_config
from biocoach_jax.models.llama_config import write_json_atomic
from biocoach_jax.models.llama_io import hf_weight_files, open_tensors, write_safetensors
from biocoach_jax.models.llama_loading import BASE, OURS_CONFIG, OURS_PARAMS, OURS_TO_HF, map_name, path_str

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


@contextlib.contextmanager
def _atomic_dir(out: str, overwrite: bool):
    """Yield a temp dir next to `out`; on success it replaces `out`."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists (pass --overwrite to replace it)")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp", dir=os.path.dirname(out))
    try:
        yield tmp
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old", dir=os.path.dirname(out))
            os.replace(out, os.path.join(old, "x"))
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def base_params(model) -> dict[str, jax.Array]:
    return {path_str(p): v.get_value() for p, v in nnx.to_flat_state(nnx.state(model, BASE))}


def save_ours(model, out: str, hf_config: dict | None = None, overwrite: bool = False) -> None:
    import orbax.checkpoint as ocp

    with _atomic_dir(out, overwrite) as tmp:
        ckptr = ocp.StandardCheckpointer()
        ckptr.save(os.path.join(tmp, OURS_PARAMS), base_params(model))
        ckptr.wait_until_finished()
        write_json_atomic(os.path.join(tmp, OURS_CONFIG), {
            "format_version": 1, "config": model.cfg.to_json_dict(), "hf_config": hf_config or {}})


def export_hf(model, out: str, hf_config: dict | None = None, overwrite: bool = False,
              progress: bool = False) -> None:
    tensors, dtype_name = {}, "float32"
    items = sorted(base_params(model).items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="exporting", unit="tensor")
    for key, value in items:
        mapped = map_name(key, OURS_TO_HF)
        if mapped is None:  # the table covers every base parameter; this is a programming error
            raise KeyError(f"no HF name for parameter {key}")
        arr = np.asarray(jax.device_get(value))
        tensors[mapped[0]] = np.ascontiguousarray(arr.T if mapped[1] else arr)
        dtype_name = "bfloat16" if arr.dtype == jnp.bfloat16 else str(arr.dtype)
    config = dict(hf_config) if hf_config else model.cfg.to_hf_dict()
    config.update(vocab_size=model.cfg.vocab_size, dtype=dtype_name)
    config.pop("torch_dtype", None)
    with _atomic_dir(out, overwrite) as tmp:
        write_safetensors(os.path.join(tmp, "model.safetensors"), tensors, {"format": "pt"})
        write_json_atomic(os.path.join(tmp, "config.json"), config)


def _auto_dtype(hf_dir: str):
    refs = open_tensors(hf_weight_files(hf_dir))
    emb = refs.get("model.embed_tokens.weight")
    return jnp.bfloat16 if emb is not None and emb.dtype == jnp.bfloat16 else jnp.float32


def hf_to_ours(hf_dir: str, out: str, dtype: str = "auto", overwrite: bool = False) -> None:
    pdtype = _auto_dtype(hf_dir) if dtype == "auto" else DTYPES[dtype]
    model = load_llama(hf_dir, dtype=pdtype, progress=True)
    _, hf_config = read_config(hf_dir)
    save_ours(model, out, hf_config, overwrite)


def ours_to_hf(ours_dir: str, out: str, overwrite: bool = False) -> None:
    import orbax.checkpoint as ocp

    # keep the stored dtype: read it from the checkpoint metadata
    meta = ocp.StandardCheckpointer().metadata(os.path.join(os.path.abspath(ours_dir), OURS_PARAMS))
    stored = next(iter(meta.item_metadata.tree.values())).dtype
    model = load_llama(ours_dir, dtype=stored)
    _, hf_config = read_config(ours_dir)
    export_hf(model, out, hf_config, overwrite, progress=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m converters.hf_llama", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hf_dir", help="HF LLaMA directory to convert")
    p.add_argument("--out", help="output directory for our checkpoint")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="parameter dtype of our checkpoint (auto: bf16 if the HF weights are bf16)")
    p.add_argument("--from_ours", help="our checkpoint directory to export")
    p.add_argument("--to_hf", help="output HF directory (safetensors + config.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    a = p.parse_args(argv)
    try:
        return _run(p, a)
    except (ValueError, FileExistsError, FileNotFoundError) as e:  # CheckpointError included
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(p, a) -> int:
    if a.hf_dir and a.out and not (a.from_ours or a.to_hf):
        hf_to_ours(a.hf_dir, a.out, a.dtype, a.overwrite)
        print(f"wrote {a.out}")
    elif a.from_ours and a.to_hf and not (a.hf_dir or a.out):
        ours_to_hf(a.from_ours, a.to_hf, a.overwrite)
        print(f"wrote {a.to_hf}")
    else:
        p.error("use either --hf_dir D --out O, or --from_ours O --to_hf D2")
    return 0


if __name__ == "__main__":
    sys.exit(main())

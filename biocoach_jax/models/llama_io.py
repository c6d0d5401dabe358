"""Tensor files of HF checkpoints: lazy safetensors reading/writing and `pytorch_model*.bin` reading.

Tensors are read lazily (memory-mapped), so loading under a mesh only touches the slices each
device needs. Every problem names the file it comes from.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct
from typing import Callable, Iterable

import ml_dtypes
import numpy as np


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message lists every problem found."""


_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_, "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


@dataclasses.dataclass
class TensorRef:
    """One tensor in a file: shape and dtype known without reading its data."""

    name: str
    file: str
    shape: tuple
    dtype: np.dtype
    _read: Callable[[], np.ndarray]

    def read(self) -> np.ndarray:
        return self._read()


# -- safetensors -------------------------------------------------------------------------------
def read_safetensors_header(path: str) -> tuple[dict, int]:
    """(header dict, data start) of a safetensors file, checking it against the file size."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: corrupt safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                raise CheckpointError(f"{path}: corrupt safetensors file (header length {n} > file size {size})")
            header = json.loads(f.read(n))
    except CheckpointError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({type(e).__name__}: {e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors file (header is not an object)")
    start = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            b, e = info["data_offsets"]
            dt, shape = info["dtype"], tuple(int(s) for s in info["shape"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: corrupt safetensors entry {name!r} ({err})") from err
        if dt not in _ST_DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dt}")
        if start + e > size:
            raise CheckpointError(f"{path}: truncated file (tensor {name!r} ends at byte {start + e}, "
                                  f"file has {size})")
        if e - b != int(np.prod(shape)) * np.dtype(_ST_DTYPES[dt]).itemsize:
            raise CheckpointError(f"{path}: corrupt safetensors entry {name!r} (byte size does not match shape)")
    return header, start


def safetensors_refs(path: str) -> dict[str, TensorRef]:
    header, start = read_safetensors_header(path)
    mm: list = []  # one shared memory map per file, opened on first read

    def reader(b, e, dtype, shape):
        def read():
            if not mm:
                mm.append(np.memmap(path, dtype=np.uint8, mode="r"))
            return mm[0][start + b:start + e].view(dtype).reshape(shape)
        return read

    refs = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = np.dtype(_ST_DTYPES[info["dtype"]]), tuple(info["shape"])
        b, e = info["data_offsets"]
        refs[name] = TensorRef(name, path, shape, dtype, reader(b, e, dtype, shape))
    return refs


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> None:
    """Write a safetensors file (temp file, then rename); bf16 supported through ml_dtypes."""
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, arr in tensors.items():
        nbytes = arr.size * arr.dtype.itemsize
        header[name] = {"dtype": _ST_NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data section to 8 bytes
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for arr in tensors.values():
            f.write(np.ascontiguousarray(arr).tobytes())
    os.replace(tmp, path)


# -- pytorch .bin ------------------------------------------------------------------------------
def torch_bin_refs(path: str) -> dict[str, TensorRef]:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for corrupt zips/pickles
        raise CheckpointError(f"{path}: corrupt or unreadable PyTorch weights ({type(e).__name__}: {e})") from e
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(sd).__name__}")

    def to_numpy(t):
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return t.numpy()

    refs = {}
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        dtype = np.dtype(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else np.dtype(
            torch.empty(0, dtype=t.dtype).numpy().dtype)
        refs[name] = TensorRef(name, path, tuple(t.shape), dtype, lambda t=t: to_numpy(t))
    return refs


# -- an HF directory ---------------------------------------------------------------------------
def _index_files(index_path: str, folder: str) -> list[str]:
    try:
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index_path}: unreadable index ({type(e).__name__}: {e})") from e
    return [os.path.join(folder, n) for n in sorted(set(weight_map.values()))]


def hf_weight_files(folder: str) -> list[str]:
    """The weight files of an HF checkpoint directory, safetensors preferred."""
    for index, single in (("model.safetensors.index.json", "model.safetensors"),
                          ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if os.path.exists(os.path.join(folder, index)):
            files = _index_files(os.path.join(folder, index), folder)
            missing = [f for f in files if not os.path.exists(f)]
            if missing:
                raise CheckpointError(f"{folder}: index names missing weight files {missing}")
            return files
        if os.path.exists(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
    bins = sorted(glob.glob(os.path.join(folder, "pytorch_model*.bin")))
    if bins:
        return bins
    raise CheckpointError(f"{folder}: no model.safetensors, sharded safetensors index or pytorch_model*.bin")


def open_tensors(files: Iterable[str]) -> dict[str, TensorRef]:
    """Lazy references to every tensor of the given files (duplicate names are an error)."""
    refs: dict[str, TensorRef] = {}
    problems = []
    for path in files:
        got = safetensors_refs(path) if path.endswith(".safetensors") else torch_bin_refs(path)
        for name, ref in got.items():
            if name in refs:
                problems.append(f"tensor {name!r} in both {refs[name].file} and {path}")
            refs[name] = ref
    if problems:
        raise CheckpointError("; ".join(problems))
    return refs

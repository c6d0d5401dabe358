"""Convert quic/sense `StridedInflatedEfficientNet` PyTorch weights to our NNX VisionCNN.

    python -m converters.sense_cnn --ckpt strided_inflated_efficientnet.ckpt --out DIR [--config cfg.json]

writes DIR/params.npz (our parameter paths joined by '/') and DIR/config.json (VisionConfig),
each atomically (temp file + os.replace). `load_converted(DIR)` reads them back.

The original's state-dict layout (facts of the public repo):
  cnn.0.0.{weight,bias}          stem Conv2d 3->32, 3x3 stride 2 (cnn.0 is Conv + ReLU6)
  cnn.{i}.conv.0.0.*             block i's 1x1 expansion (only when expand_ratio != 1); in blocks
                                 with temporal shift it is a Conv2d over 3*Cin channels: the three
                                 frames (e-2, e-1, e) concatenated on the channel axis, oldest first
  cnn.{i}.conv.{1|0}.0.*         depthwise kxk Conv2d (groups = channels), weight (C, 1, k, k)
  cnn.{i}.conv.{2|1}.*           1x1 projection Conv2d (no activation)
  cnn.{N+1}.0.*                  head 1x1 Conv2d (its ReLU6 is not applied to our feature)
Conv2d weights are (out, in/groups, kh, kw); ours are (kh, kw, in/groups, out); our temporal
kernel is (3, Cin, out). There is no BatchNorm in this network (folded into conv biases).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Mapping

import numpy as np

from biocoach_jax.io_utils import atomic_path, atomic_write_text
from biocoach_jax.models.vision import VisionCNN, abstract_vision_cnn, get_params, param_shapes, set_params
from biocoach_jax.models.vision_config import VisionConfig, make_config

FORMAT = "biocoach_jax.vision_cnn/1"


class SenseCheckpointError(ValueError):
    """A state dict that does not fit the model; the message lists every problem found."""


def _conv_to_ours(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)


def _temporal_to_ours(w: np.ndarray) -> np.ndarray:
    out, cin3 = w.shape[:2]
    return np.transpose(w.reshape(out, 3, cin3 // 3), (1, 2, 0))  # -> (3, Cin, out)


def sense_key_map(model: VisionCNN) -> dict[str, tuple[tuple, tuple[int, ...], Any]]:
    """{torch key: (our param path, expected torch shape, torch -> ours array function)}."""
    ours = param_shapes(model)
    modules = {("stem",): "cnn.0.0", ("head",): f"cnn.{len(model.blocks) + 1}.0"}
    for i, blk in enumerate(model.blocks):
        j = 0
        if blk.expand is not None:
            modules[("blocks", i, "expand")] = f"cnn.{i + 1}.conv.0.0"
            j = 1
        modules[("blocks", i, "depthwise")] = f"cnn.{i + 1}.conv.{j}.0"
        modules[("blocks", i, "project")] = f"cnn.{i + 1}.conv.{j + 1}"
    out = {}
    for mod, tkey in modules.items():
        kshape = ours[mod + ("kernel",)]
        if len(kshape) == 3:  # temporal conv (3, Cin, out)
            tshape, fn = (kshape[2], 3 * kshape[1], 1, 1), _temporal_to_ours
        else:
            tshape, fn = (kshape[3], kshape[2], kshape[0], kshape[1]), _conv_to_ours
        out[f"{tkey}.weight"] = (mod + ("kernel",), tshape, fn)
        out[f"{tkey}.bias"] = (mod + ("bias",), ours[mod + ("bias",)], np.asarray)
    return out


def _to_numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor; torch itself is not needed here
        v = v.detach().cpu().float().numpy()
    return np.asarray(v, dtype=np.float32)


def _strip_prefix(keys) -> str:
    """A wrapper prefix ('module.', 'feature_extractor.', ...) shared by every key, if any."""
    if not keys or any(k.startswith("cnn.") for k in keys):
        return ""
    cut = {k[:k.find("cnn.")] for k in keys if "cnn." in k}
    return cut.pop() if len(cut) == 1 and all("cnn." in k for k in keys) else ""


def load_sense_state_dict(model: VisionCNN, state_dict: Mapping[str, Any], source: str = "state dict") -> VisionCNN:
    """Fill `model`'s parameters (in place; an `abstract_vision_cnn` works) from a sense
    state dict. Raises SenseCheckpointError listing all missing, unexpected, mis-shaped and
    non-finite entries at once."""
    prefix = _strip_prefix(list(state_dict))
    given = {k[len(prefix):]: v for k, v in state_dict.items()}
    expected = sense_key_map(model)
    problems = [f"missing key {k} (expected shape {expected[k][1]})" for k in expected if k not in given]
    problems += [f"unexpected key {prefix}{k}" for k in given if k not in expected]
    values = {}
    for key, (path, tshape, fn) in expected.items():
        if key not in given:
            continue
        arr = _to_numpy(given[key])
        if arr.shape != tshape:
            problems.append(f"{prefix}{key}: shape {arr.shape}, expected {tshape}")
        elif not np.all(np.isfinite(arr)):
            problems.append(f"{prefix}{key}: contains NaN or inf")
        else:
            values[path] = fn(arr)
    if problems:
        raise SenseCheckpointError(_problem_report(source, problems, len(model.blocks)))
    set_params(model, values)
    return model


def _problem_report(source: str, problems: list[str], n_blocks: int, limit: int = 40) -> str:
    head = f"{source}: {len(problems)} problem(s) loading a sense CNN with {n_blocks} blocks"
    if len(problems) > limit:  # a wrong config mismatches everything; keep the message readable
        head += " (wrong --config / architecture?)"
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return head + ":\n  " + "\n  ".join(problems)


def read_torch_checkpoint(path) -> dict:
    """torch.load with weights_only (no arbitrary code); unwraps {'state_dict': ...}."""
    import torch  # only the CLI path needs torch

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt / non-torch files
        raise SenseCheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SenseCheckpointError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


def save_converted(model: VisionCNN, out_dir, source: str = "") -> None:
    """DIR/params.npz then DIR/config.json, each written atomically."""
    out_dir = pathlib.Path(out_dir)
    arrays = {"/".join(map(str, p)): np.asarray(v) for p, v in get_params(model).items()}
    with atomic_path(out_dir / "params.npz", suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    meta = {"format": FORMAT, "source": str(source), "config": model.config.to_dict()}
    atomic_write_text(out_dir / "config.json", json.dumps(meta, indent=1))


def load_converted(out_dir) -> VisionCNN:
    """Read a directory written by `save_converted`; errors name the file and the problem."""
    out_dir = pathlib.Path(out_dir)
    cfg_path, npz_path = out_dir / "config.json", out_dir / "params.npz"
    for p in (cfg_path, npz_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (not a converted vision CNN directory?)")
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{cfg_path}: not a {FORMAT} config")
    model = abstract_vision_cnn(VisionConfig.from_dict(meta["config"]))
    shapes = param_shapes(model)
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{npz_path}: unreadable ({e})") from None
    names = {"/".join(map(str, p)): p for p in shapes}
    problems = [f"missing {n}" for n in names if n not in arrays]
    problems += [f"unexpected {n}" for n in arrays if n not in names]
    problems += [f"{n}: shape {arrays[n].shape}, expected {shapes[p]}" for n, p in names.items()
                 if n in arrays and arrays[n].shape != shapes[p]]
    if problems:
        raise ValueError(f"{npz_path}: does not match {cfg_path.name}:\n  " + "\n  ".join(problems))
    set_params(model, {p: arrays[n] for n, p in names.items()})
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="sense StridedInflatedEfficientNet .ckpt/.pth")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--config", help="VisionConfig JSON (default: the original full config)")
    args = ap.parse_args(argv)
    if args.config:
        try:
            config = VisionConfig.from_dict(json.loads(pathlib.Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError, ValueError) as e:
            raise ValueError(f"{args.config}: cannot read a VisionConfig ({e})") from None
    else:
        config = make_config()
    model = load_sense_state_dict(abstract_vision_cnn(config), read_torch_checkpoint(args.ckpt),
                                  source=str(args.ckpt))
    save_converted(model, args.out, source=args.ckpt)
    n = sum(int(np.prod(s)) for s in param_shapes(model).values())
    print(f"wrote {args.out}: {len(model.blocks)} blocks, {n:,} parameters, "
          f"{config.frame_size} -> {config.feature_map_size} x {config.out_channels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

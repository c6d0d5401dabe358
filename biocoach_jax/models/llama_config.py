"""LLaMA configuration: read from an HF `config.json` (transformers 4 or 5 style) and RoPE tables."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

SUPPORTED_ROPE = ("default", "llama3", "linear")


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    """LoRA on projections chosen by name (q, k, v, o, gate, up, down, lm_head)."""

    targets: tuple[str, ...] = ("q", "k", "v", "lm_head")
    rank: int = 32
    alpha: float = 16.0
    dropout: float = 0.05

    def __post_init__(self):
        bad = set(self.targets) - {"q", "k", "v", "o", "gate", "up", "down", "lm_head"}
        if bad:
            raise ValueError(f"unknown LoRA targets {sorted(bad)}")
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_type: str = "default"
    # llama3 / linear scaling parameters (only those of rope_type are used)
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_pos: int = 8192
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | tuple | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not a multiple of kv heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        if self.rope_type not in SUPPORTED_ROPE:
            raise ValueError(f"rope_type {self.rope_type!r} not supported (have {SUPPORTED_ROPE})")

    # -- HF config.json ------------------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config") -> "LlamaConfig":
        for key in ("attention_bias", "mlp_bias"):
            if d.get(key):
                raise ValueError(f"{source}: {key}=true is not supported by this LLaMA port")
        if d.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError(f"{source}: partial_rotary_factor != 1 is not supported")
        try:
            hidden, heads = int(d["hidden_size"]), int(d["num_attention_heads"])
            # transformers 5: rope_parameters {rope_theta, rope_type, ...}; 4: rope_theta + rope_scaling
            rope = dict(d.get("rope_parameters") or d.get("rope_scaling") or {})
            theta = float(rope.get("rope_theta", d.get("rope_theta", 10000.0)))
            rope_type = rope.get("rope_type", rope.get("type", "default")) or "default"
            eos = d.get("eos_token_id")
            return cls(
                vocab_size=int(d["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(d["intermediate_size"]),
                num_layers=int(d["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(d.get("num_key_value_heads") or heads),
                head_dim=int(d.get("head_dim") or hidden // heads),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                rope_theta=theta,
                rope_type=rope_type,
                rope_factor=float(rope.get("factor", 1.0)),
                rope_low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
                rope_high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
                rope_original_max_pos=int(rope.get("original_max_position_embeddings", 8192)),
                max_position_embeddings=int(d.get("max_position_embeddings", 4096)),
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                bos_token_id=d.get("bos_token_id"),
                eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
                pad_token_id=d.get("pad_token_id"),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"{source}: not a usable LLaMA config ({type(e).__name__}: {e})") from e

    def to_hf_dict(self) -> dict[str, Any]:
        """transformers 5 style config.json for LlamaForCausalLM."""
        rope: dict[str, Any] = {"rope_theta": self.rope_theta, "rope_type": self.rope_type}
        if self.rope_type == "llama3":
            rope.update(factor=self.rope_factor, low_freq_factor=self.rope_low_freq_factor,
                        high_freq_factor=self.rope_high_freq_factor,
                        original_max_position_embeddings=self.rope_original_max_pos)
        elif self.rope_type == "linear":
            rope.update(factor=self.rope_factor)
        eos = list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "rms_norm_eps": self.rms_norm_eps, "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings, "rope_parameters": rope,
            "tie_word_embeddings": self.tie_word_embeddings, "attention_bias": False,
            "mlp_bias": False, "bos_token_id": self.bos_token_id, "eos_token_id": eos,
            "pad_token_id": self.pad_token_id,
        }

    # -- our own json ---------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.eos_token_id, tuple):
            d["eos_token_id"] = list(self.eos_token_id)
        return d

    @classmethod
    def from_json_dict(cls, d: dict[str, Any], source: str = "config") -> "LlamaConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"{source}: unknown config fields {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("eos_token_id"), list):
            d["eos_token_id"] = tuple(d["eos_token_id"])
        return cls(**d)


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable json ({e})") from e


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


# -- rotary embeddings ------------------------------------------------------------------------
def rope_inv_freq(cfg: LlamaConfig) -> np.ndarray:
    """Inverse frequencies (head_dim/2,) in float32, with the llama3 or linear scaling."""
    dim = cfg.head_dim
    inv = (1.0 / (cfg.rope_theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))).astype(np.float32)
    if cfg.rope_type == "linear":
        return (inv / cfg.rope_factor).astype(np.float32)
    if cfg.rope_type != "llama3":
        return inv
    # llama3: long wavelengths slowed by `factor`, short ones kept, a smooth blend in between
    old = cfg.rope_original_max_pos
    lo, hi, factor = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor, cfg.rope_factor
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old / hi) & (wavelen <= old / lo)
    return np.where(medium, blended, scaled).astype(np.float32)


def rope_cos_sin(inv_freq: jnp.ndarray, positions: jnp.ndarray):
    """cos/sin (B, T, head_dim) for integer positions (B, T), split-halves layout."""
    ang = positions.astype(jnp.float32)[..., None] * inv_freq[None, None, :]
    ang = jnp.concatenate([ang, ang], axis=-1)
    return jnp.cos(ang), jnp.sin(ang)

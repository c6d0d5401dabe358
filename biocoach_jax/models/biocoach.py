"""BioCoach / Stream-VLM: LLaMA (+ LoRA) with vision cross-attention, morphology fusion, DoF selector.

    cfg = ModelConfig.from_config(config)                    # ml_collections ConfigDict
    model = build_model(cfg, rngs=nnx.Rngs(0), mesh=mesh)    # or load_streamvlm(converted_dir)
    out = model(batch)                                       # ModelOutput(logits, joint_scores, ...)
    loss, metrics = loss_fn(out, batch, dof_loss_weight=1.0)
    opt = nnx.Optimizer(model, optax.adamw(2e-5), wrt=trainable_filter("biocoach"))

Data flow of one call (DESIGN §2): m = the LLM's own embedding rows of `morph_tokens`;
z = MorphologyFusion(F, m) (z = F exactly when `use_morphology` is off); the decoder runs with a
VisionCrossAttention block after the MLP of each layer in `vision_layers`, where every
`<vision>` position attends to the N tokens of z[b, vision_step[b, l]].
The DoF selector reads the raw features F, not z: the key joints are a property of the exercise
seen in the video, not of the body shape, so the selection (and the C_motion text built from it
before the model runs) does not depend on the morphology switch, as in the paper's data flow.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from biocoach_jax import sharding as shd
from biocoach_jax import skel
from biocoach_jax.models.dof_selector import DoFSelector, balanced_bce, joint_to_dof_mask, select_top_k
from biocoach_jax.models.fusion import MorphologyFusion, VisionCrossAttention
from biocoach_jax.models.llama import (CheckpointError, KVCache, Llama, LlamaConfig, LoRAConfig, LoRAParam,
                                       init_cache, load_llama, read_config, resize_token_embeddings)
from biocoach_jax.models.llama_config import read_json, write_json_atomic
from biocoach_jax.models.llama_io import safetensors_refs, write_safetensors

PAPER_VISION_LAYERS = (6, 8, 10, 12, 14, 16, 18, 20, 22)
MODEL_JSON = "biocoach_model.json"          # ModelConfig of a converted / saved model directory
EXTRA_PARAMS = "extra_params.safetensors"   # LoRA + vision cross-attention (+ fusion, selector)
_DTYPES = {"float32": jnp.float32, "fp32": jnp.float32, "bfloat16": jnp.bfloat16, "bf16": jnp.bfloat16}

# Path filters. The cross-attention blocks live in the LLaMA's `inserted` slots.
VISION_XATTN = nnx.PathContains("inserted")
MORPH_FUSION = nnx.PathContains("morph_fusion")
DOF_SELECTOR = nnx.PathContains("dof_selector")


def _dtype(name):
    if name is None or not isinstance(name, str):
        return name
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r} (have {sorted(_DTYPES)})")
    return _DTYPES[name]


def _get(cfg, dotted: str, default=None):
    """cfg.a.b with a default, for ConfigDicts, dicts and plain objects alike."""
    node = cfg
    for key in dotted.split("."):
        if node is None:
            return default
        node = node.get(key) if isinstance(node, Mapping) or hasattr(node, "get") else getattr(node, key, None)
    return default if node is None else node


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build the model. `llm` (a LlamaConfig) or `llm_path` must be set."""

    llm: LlamaConfig | None = None
    llm_path: str | None = None
    dtype: str = "float32"             # compute dtype
    param_dtype: str | None = None     # storage dtype (default = dtype)
    lora: LoRAConfig | None = LoRAConfig()  # r=32, alpha=16, dropout 0.05 on q, k, v, lm_head
    vision_layers: tuple[int, ...] = PAPER_VISION_LAYERS
    d_vision: int = 1280               # feature channels C
    d_attn: int | None = None          # cross-attention width (default: the LLM's hidden size)
    xattn_capacity: int | None = None  # static bound on <vision> positions per row (default S)
    vocab_size: int | None = None      # grow the LLM vocabulary to this (rounded up to 64)
    use_morphology: bool = True
    use_dof_selection: bool = True
    dof_k: int = 12
    dof_hidden: int = 256
    morph_heads: int = 8

    @classmethod
    def from_config(cls, cfg) -> "ModelConfig":
        """From an ml_collections ConfigDict (configs/README.md field names)."""
        llm_cfg = _get(cfg, "llm.config")
        if llm_cfg is not None and not isinstance(llm_cfg, LlamaConfig):
            d = dict(llm_cfg.to_dict() if hasattr(llm_cfg, "to_dict") else llm_cfg)
            llm_cfg = (LlamaConfig.from_hf_dict(d, "config llm.config") if "num_hidden_layers" in d
                       else LlamaConfig.from_json_dict(d, "config llm.config"))
        lora = _get(cfg, "llm.lora")
        if lora is not None and not isinstance(lora, LoRAConfig):
            rank = int(_get(lora, "rank", _get(lora, "r", 32)))
            lora = None if rank == 0 else LoRAConfig(
                targets=tuple(_get(lora, "targets", ("q", "k", "v", "lm_head"))), rank=rank,
                alpha=float(_get(lora, "alpha", 16.0)), dropout=float(_get(lora, "dropout", 0.05)))
        d_attn, cap, vocab = _get(cfg, "model.d_attn"), _get(cfg, "model.xattn_capacity"), _get(cfg, "model.vocab_size")
        return cls(
            llm=llm_cfg, llm_path=_get(cfg, "llm.path") or None,
            dtype=_get(cfg, "llm.dtype", "float32"), param_dtype=_get(cfg, "llm.param_dtype"),
            lora=lora if _get(cfg, "llm.lora") is not None else LoRAConfig(),
            vision_layers=tuple(int(i) for i in _get(cfg, "llm.vision_layers", PAPER_VISION_LAYERS)),
            d_vision=int(_get(cfg, "model.d_vision", _get(cfg, "vision.out_channels", 1280))),
            d_attn=None if d_attn is None else int(d_attn),
            xattn_capacity=None if not cap else int(cap), vocab_size=None if not vocab else int(vocab),
            use_morphology=bool(_get(cfg, "model.use_morphology", _get(cfg, "data.use_morphology", True))),
            use_dof_selection=bool(_get(cfg, "model.use_dof_selection", True)),
            dof_k=int(_get(cfg, "model.dof_k", 12)), dof_hidden=int(_get(cfg, "model.dof_hidden", 256)),
            morph_heads=int(_get(cfg, "model.morph_heads", 8)))

    def llama_config(self) -> LlamaConfig:
        if self.llm is not None:
            return self.llm
        if self.llm_path:
            return read_config(self.llm_path)[0]
        raise ValueError("ModelConfig: neither llm (a LlamaConfig) nor llm_path is set")

    def to_json_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["llm"] = None if self.llm is None else self.llm.to_json_dict()
        d["lora"] = None if self.lora is None else dataclasses.asdict(self.lora)
        return d

    @classmethod
    def from_json_dict(cls, d: Mapping, source: str = "model config") -> "ModelConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{source}: unknown fields {sorted(unknown)}")
        if d.get("llm") is not None:
            d["llm"] = LlamaConfig.from_json_dict(d["llm"], source)
        if d.get("lora") is not None:
            d["lora"] = LoRAConfig(**{**d["lora"], "targets": tuple(d["lora"]["targets"])})
        if "vision_layers" in d:
            d["vision_layers"] = tuple(d["vision_layers"])
        return cls(**d)


def resolve_vision_layers(layers, num_layers: int) -> tuple[int, ...]:
    """The decoder layers that get a cross-attention block. Rule for models shallower than the
    paper's: layers >= num_layers are skipped (the paper's 6..22 on a 4-layer model would leave
    none, which is an error: a tiny config must name its layers, e.g. [1, 3])."""
    layers = sorted({int(i) for i in layers})
    if any(i < 0 for i in layers):
        raise ValueError(f"vision_layers must be >= 0, got {layers}")
    kept = tuple(i for i in layers if i < num_layers)
    if not kept:
        raise ValueError(f"vision_layers {layers}: none is below the model depth {num_layers}; "
                         f"set llm.vision_layers for this model")
    return kept


class ModelOutput(NamedTuple):
    logits: jax.Array                     # (B, L, V) float32
    joint_scores: jax.Array               # (B, 24) in [0, 1] (all ones with DoF selection off)
    cache: KVCache | None = None          # updated cache when called with `cache=`
    joint_logits: jax.Array | None = None  # (B, 24) pre-sigmoid scores; None with selection off


def _field(batch, name, default=None):
    if isinstance(batch, Mapping):
        value = batch.get(name, default)
    else:
        value = getattr(batch, name, default)
    return default if value is None else value


class BioCoachModel(nnx.Module):
    """`llm` (Llama + LoRA + VisionCrossAttention blocks), `morph_fusion`, `dof_selector`."""

    def __init__(self, cfg: ModelConfig, llm: Llama | None = None, *, rngs: nnx.Rngs):
        dtype = _dtype(cfg.dtype)
        pdtype = _dtype(cfg.param_dtype) or dtype
        lcfg = cfg.llama_config()
        if llm is None:
            if cfg.vocab_size and cfg.vocab_size > lcfg.vocab_size:
                lcfg = dataclasses.replace(lcfg, vocab_size=-(-cfg.vocab_size // 64) * 64)
            llm = Llama(lcfg, dtype=dtype, param_dtype=pdtype, rngs=rngs, lora=cfg.lora)
        d_model = llm.cfg.hidden_size
        kw = dict(dtype=dtype, param_dtype=pdtype, rngs=rngs)
        layers = resolve_vision_layers(cfg.vision_layers, llm.cfg.num_layers)
        llm.insert_blocks({i: VisionCrossAttention(d_model, cfg.d_vision, cfg.d_attn, **kw) for i in layers})
        self.llm = llm
        self.morph_fusion = MorphologyFusion(cfg.d_vision, d_model, num_heads=cfg.morph_heads, **kw)
        self.dof_selector = DoFSelector(cfg.d_vision, cfg.dof_hidden, k=cfg.dof_k, **kw)
        self.cfg, self.vision_layers = cfg, layers

    def fuse(self, features, morph_tokens=None, morph_mask=None):
        """z = F + CrossAttn(F, Embed(C_morph)), or F itself when morphology is off / absent."""
        if not self.cfg.use_morphology or morph_tokens is None:
            return features
        morph_tokens = jnp.asarray(morph_tokens, jnp.int32)
        m = jnp.take(self.llm.embed.get_value(), morph_tokens, axis=0).astype(self.llm.dtype)
        mask = jnp.ones(morph_tokens.shape, bool) if morph_mask is None else morph_mask
        return self.morph_fusion(features, m, mask)

    def __call__(self, batch, *, cache: KVCache | None = None) -> ModelOutput:
        """batch: a Batch (attribute access) or a dict with tokens, attention_mask, vision_mask,
        vision_step, features, step_mask, morph_tokens, morph_mask. With `cache`, `tokens` and
        the per-token fields hold only the new tokens; `vision_step` indexes `features`."""
        tokens = jnp.asarray(_field(batch, "tokens"), jnp.int32)
        b, t = tokens.shape
        features = jnp.asarray(_field(batch, "features"))
        if features.ndim != 4 or features.shape[0] != b or features.shape[-1] != self.cfg.d_vision:
            raise ValueError(f"BioCoachModel: features must be (B={b}, S, N, C={self.cfg.d_vision}), "
                             f"got {tuple(features.shape)}")
        attn = jnp.asarray(_field(batch, "attention_mask", np.ones((b, t), bool))).astype(bool)
        vmask = jnp.asarray(_field(batch, "vision_mask")).astype(bool) & attn
        vstep = jnp.asarray(_field(batch, "vision_step"), jnp.int32)
        step_mask = _field(batch, "step_mask")
        z = self.fuse(features, _field(batch, "morph_tokens"), _field(batch, "morph_mask"))
        cap = self.cfg.xattn_capacity or features.shape[1]
        out = self.llm(tokens, attn, cache=cache, vision_feats=z, vision_step=vstep, vision_mask=vmask,
                       capacity=cap)
        logits, new_cache = out if cache is not None else (out, None)
        if self.cfg.use_dof_selection:
            jl = self.dof_selector.logits(features, step_mask)
            return ModelOutput(logits, jax.nn.sigmoid(jl), new_cache, jl)
        return ModelOutput(logits, jnp.ones((b, skel.NUM_JOINTS), jnp.float32), new_cache, None)


# -- building ------------------------------------------------------------------------------------
def shard_model(model: nnx.Module, mesh) -> nnx.Module:
    """Place every variable by its logical axes (sharding.LOGICAL_RULES); the rest replicated."""
    state = nnx.state(model)
    nnx.update(model, jax.device_put(state, shd.state_shardings(state, mesh)))
    return model


def build_model(model_cfg: ModelConfig, *, rngs: nnx.Rngs, mesh=None, llm_path=None) -> BioCoachModel:
    """A BioCoachModel; the LLaMA comes from `llm_path` (or `model_cfg.llm_path`) via `load_llama`
    when given, else fresh from `model_cfg.llm`. A directory written by `converters.streamvlm` (or
    `save_model`) also restores its LoRA / cross-attention (/ fusion / selector) weights."""
    path = llm_path or model_cfg.llm_path
    llm = None
    if path:
        dtype = _dtype(model_cfg.dtype)
        llm = load_llama(path, dtype, param_dtype=_dtype(model_cfg.param_dtype), mesh=mesh,
                         lora=model_cfg.lora, lora_seed=int(jax.random.randint(rngs.params(), (), 0, 2**30)))
        if model_cfg.vocab_size and model_cfg.vocab_size > llm.cfg.vocab_size:
            resize_token_embeddings(llm, model_cfg.vocab_size)
    model = BioCoachModel(model_cfg, llm, rngs=rngs)
    if path and os.path.exists(os.path.join(path, EXTRA_PARAMS)):
        load_extra_params(model, os.path.join(path, EXTRA_PARAMS))
    return model if mesh is None else shard_model(model, mesh)


def abstract_model(model_cfg: ModelConfig) -> BioCoachModel:
    """Shapes and dtypes only (nothing allocated): for memory footprints of the 7B model."""
    cfg = dataclasses.replace(model_cfg, llm=model_cfg.llama_config(), llm_path=None)
    return nnx.eval_shape(lambda: BioCoachModel(cfg, rngs=nnx.Rngs(0)))


def param_bytes(model: nnx.Module, wrt=nnx.Param) -> tuple[int, int]:
    """(parameter count, bytes) of the variables selected by `wrt` (works on abstract models)."""
    leaves = jax.tree.leaves(nnx.state(model, wrt))
    return (sum(int(np.prod(x.shape)) for x in leaves),
            sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in leaves))


# -- trainable sets ------------------------------------------------------------------------------
def trainable_filter(name: str):
    """nnx filter of the parameters a stage trains (DESIGN §5):
    lm        every base LLaMA weight (embeddings, layers, norm, head; not LoRA, not added blocks)
    streamvlm LoRA adapters + vision cross-attention
    biocoach  vision cross-attention + morphology fusion + DoF selector
    biocoach+lora  the biocoach set + the LoRA adapters (the tiny chain: a tiny LM does not read
              and quote a context segment zero-shot as LLaMA-2-7B does, its adapters must learn to)
    Use as `nnx.Optimizer(model, tx, wrt=trainable_filter(stage))`: others get no state."""
    added = nnx.Any(VISION_XATTN, MORPH_FUSION, DOF_SELECTOR)
    filters = {
        "lm": nnx.All(nnx.Param, nnx.Not(nnx.OfType(LoRAParam)), nnx.Not(added)),
        "streamvlm": nnx.Any(nnx.OfType(LoRAParam), nnx.All(nnx.Param, VISION_XATTN)),
        "biocoach": nnx.All(nnx.Param, added),
        "biocoach+lora": nnx.Any(nnx.OfType(LoRAParam), nnx.All(nnx.Param, added)),
    }
    if name not in filters:
        raise ValueError(f"unknown trainable set {name!r} (have {sorted(filters)})")
    return filters[name]


# -- loss ------------------------------------------------------------------------------------------
def _acc(correct, mask):
    return jnp.sum(correct & mask) / jnp.maximum(jnp.sum(mask), 1)


def loss_fn(output: ModelOutput, batch, *, dof_loss_weight: float = 1.0):
    """(loss, metrics). Token loss = sum(w * ce) / max(sum(w), 1) with w = loss_weights; plus
    dof_loss_weight * balanced BCE of the joint logits against joint_labels on labelled rows
    (only when the model runs its DoF selector, i.e. output.joint_logits is not None).
    Accuracies count positions with w > 0; a target is a <vision> target when the next input
    token is a <vision> position (vision_mask shifted left)."""
    logits = output.logits.astype(jnp.float32)
    targets = jnp.asarray(_field(batch, "targets"), jnp.int32)
    w = jnp.asarray(_field(batch, "loss_weights"), jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    wsum = jnp.sum(w)
    token_loss = jnp.sum(w * ce) / jnp.maximum(wsum, 1.0)
    counted = w > 0
    vmask = jnp.asarray(_field(batch, "vision_mask")).astype(bool)
    vis_target = jnp.concatenate([vmask[:, 1:], jnp.zeros_like(vmask[:, :1])], axis=1) & counted
    correct = jnp.argmax(logits, axis=-1) == targets
    metrics = {"token_loss": token_loss, "weight_sum": wsum, "n_tokens": jnp.sum(counted),
               "token_acc": _acc(correct, counted), "vision_acc": _acc(correct, vis_target),
               "feedback_acc": _acc(correct, counted & ~vis_target)}
    loss = token_loss
    if output.joint_logits is not None:
        labels = jnp.asarray(_field(batch, "joint_labels"), jnp.float32)
        rows = jnp.asarray(_field(batch, "joint_label_mask")).astype(bool)
        dof = balanced_bce(output.joint_logits, labels, jnp.broadcast_to(rows[:, None], labels.shape),
                           from_logits=True)
        metrics["dof_loss"] = dof
        loss = loss + dof_loss_weight * dof
    metrics["loss"] = loss
    return loss, metrics


# -- coach helpers ---------------------------------------------------------------------------------
def select_dofs(model: BioCoachModel, features, step_mask=None) -> jax.Array:
    """(B, 46) bool DoF mask: every DoF of the top-K joints, or all DoFs with selection off."""
    features = jnp.asarray(features)
    if not model.cfg.use_dof_selection:
        return jnp.ones((features.shape[0], skel.NUM_DOFS), bool)
    return joint_to_dof_mask(select_top_k(model.dof_selector(features, step_mask), model.cfg.dof_k))


def init_stream_cache(model: BioCoachModel, batch: int, max_len: int) -> KVCache:
    """An empty KV cache for `model(inputs, cache=...)` streaming (prefill, then one token a step)."""
    return init_cache(model.llm.cfg, batch, max_len, model.llm.dtype)


# -- our checkpoint of the added weights -------------------------------------------------------------
def extra_filter():
    """Everything a model has beyond the base LLaMA: LoRA, cross-attention, fusion, selector."""
    return nnx.Any(nnx.OfType(LoRAParam), nnx.All(nnx.Param, nnx.Any(VISION_XATTN, MORPH_FUSION, DOF_SELECTOR)))


def _flat(model, wrt) -> dict[str, nnx.Variable]:
    return {".".join(str(p) for p in path): v for path, v in nnx.to_flat_state(nnx.state(model, wrt))}


def load_extra_params(model: BioCoachModel, file: str, *, required=None) -> None:
    """Set LoRA / cross-attention / fusion / selector weights from a safetensors file of our
    parameter paths. Every tensor in the file must exist with its shape; the `required` set
    (default: the Stream-VLM set, LoRA + cross-attention) must be present. One error lists all."""
    refs = safetensors_refs(file)
    have = _flat(model, extra_filter())
    need = _flat(model, trainable_filter("streamvlm") if required is None else required)
    problems = [f"unexpected tensor {k}" for k in sorted(set(refs) - set(have))]
    problems += [f"missing tensor {k} (shape {tuple(need[k].get_value().shape)})"
                 for k in sorted(set(need) - set(refs))]
    for k in sorted(set(refs) & set(have)):
        want = tuple(have[k].get_value().shape)
        if tuple(refs[k].shape) != want:
            problems.append(f"tensor {k}: shape {tuple(refs[k].shape)}, expected {want}")
    if problems:
        raise CheckpointError(f"{file}: does not match the model ({len(problems)} problems):\n  - "
                              + "\n  - ".join(problems))
    for k, ref in refs.items():
        var = have[k]
        old = var.get_value()
        var.set_value(jnp.asarray(np.asarray(ref.read()), old.dtype))


def save_extra_params(model: BioCoachModel, file: str, wrt=None) -> None:
    """Write the added weights (default: all of them; e.g. trainable_filter('streamvlm') for a
    Stream-VLM checkpoint) as a safetensors file of our parameter paths (temp file + rename)."""
    wrt = extra_filter() if wrt is None else nnx.All(extra_filter(), wrt)
    tensors = {k: np.asarray(jax.device_get(v.get_value())) for k, v in _flat(model, wrt).items()}
    write_safetensors(file, tensors, {"format": "biocoach"})


def write_model_config(cfg: ModelConfig, directory: str) -> None:
    # the LLaMA config travels in the directory's own biocoach_llama.json
    d = cfg.to_json_dict()
    d.update(llm=None, llm_path=None)
    write_json_atomic(os.path.join(directory, MODEL_JSON), d)


def load_streamvlm(path, *, rngs: nnx.Rngs | None = None, mesh=None, **overrides) -> BioCoachModel:
    """A model from a directory written by `converters.streamvlm` (ModelConfig fields may be
    overridden, e.g. use_morphology=False, dtype='bfloat16')."""
    path = os.fspath(path)
    f = os.path.join(path, MODEL_JSON)
    if not os.path.exists(f):
        raise CheckpointError(f"{path}: no {MODEL_JSON}; not a converted Stream-VLM / BioCoach directory")
    cfg = dataclasses.replace(ModelConfig.from_json_dict(read_json(f), f), llm_path=path, **overrides)
    return build_model(cfg, rngs=rngs or nnx.Rngs(0), mesh=mesh)

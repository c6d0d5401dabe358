"""Build a coach for inference: config file + trained checkpoint -> model, tokenizer, CNN.

The model is rebuilt exactly as `train.py` builds it for the config's stage (same seed, same
`llm.path`, same `init.checkpoint`), then the run's checkpoint fills the parameters it trained.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib


@dataclasses.dataclass
class LoadedCoach:
    cfg: object
    model: object
    tokenizer: object
    vision: object | None      # the causal CNN, None when the config names no checkpoint


def load_config(path):
    """`get_config()` of a config file (overrides are applied by the caller)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    spec = importlib.util.spec_from_file_location(f"_coach_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path}: a config file must define get_config()")
    return module.get_config()


def load_coach(config_path, checkpoint) -> LoadedCoach:
    return coach_from_config(load_config(config_path), checkpoint, where=str(config_path))


def coach_from_config(cfg, checkpoint, *, where: str = "config") -> LoadedCoach:
    """The coach of an already built config (e.g. the demo's, whose paths are its workdir's)."""
    from biocoach_jax.training.checkpoint import load_model_params
    from biocoach_jax.training.vlm_task import VLMTask

    stage = cfg.get("stage", "biocoach")
    if stage not in ("streamvlm", "biocoach"):
        raise ValueError(f"{where}: stage {stage!r} is not a coaching model "
                         "(expected streamvlm or biocoach)")
    task = VLMTask(stage)
    task.prepare(cfg, None)
    model = task.build_model(cfg, None)
    if checkpoint:
        load_model_params(checkpoint, model)
    vision = None
    vpath = cfg.get("vision", {}).get("checkpoint", "")
    if vpath:
        from converters.sense_cnn import load_converted
        vision = load_converted(vpath)
    return LoadedCoach(cfg, model, task.tok, vision)

"""Stages `streamvlm` and `biocoach`: the paper's two training stages on pipeline Batches.

Model: `models.biocoach.build_model` (the LLaMA from `llm.path`, or a fresh one from `llm.config`
for tests), then `init.checkpoint` - the previous stage's run directory - fills the parameters it
saved (e.g. BioCoach starts from the trained Stream-VLM's LoRA and cross-attention).
Trainable set: `models.biocoach.trainable_filter(train.trainable)`.
Loss: `models.biocoach.loss_fn` (weighted token CE, alpha on <vision> targets, + balanced BCE of
the DoF selector times `model.dof_loss_weight`). Data: `data.pipeline` (grain, one Batch a step).
"""
from __future__ import annotations

import pathlib

import numpy as np
from flax import nnx

from biocoach_jax.training.tasks import Task


def _require_path(value: str, field: str, what: str) -> pathlib.Path:
    path = pathlib.Path(value)
    if not path.exists():
        raise FileNotFoundError(f"{field}={value}: {what} not found (see the config's docstring)")
    return path


class VLMTask(Task):
    def __init__(self, stage: str):
        self.name = stage

    def prepare(self, cfg, workdir):
        from biocoach_jax.tokenizer import Tokenizer
        self.tok = Tokenizer.load(_require_path(cfg.tokenizer.path, "tokenizer.path", "tokenizer directory"))

    def model_config(self, cfg):
        from biocoach_jax.models import biocoach as bc
        mcfg = bc.ModelConfig.from_config(cfg)
        import dataclasses
        vocab = max(mcfg.vocab_size or 0, self.tok.padded_vocab_size)
        return dataclasses.replace(mcfg, vocab_size=vocab)

    def build_model(self, cfg, mesh):
        from biocoach_jax.models import biocoach as bc
        from biocoach_jax.training.checkpoint import load_model_params
        llm_path = cfg.llm.get("path", "")
        if llm_path:
            _require_path(llm_path, "llm.path", "LLaMA weights directory")
        model = bc.build_model(self.model_config(cfg), rngs=nnx.Rngs(int(cfg.seed)), mesh=mesh,
                               llm_path=llm_path or None)
        init = cfg.get("init", {}).get("checkpoint", "")
        if init:
            _require_path(init, "init.checkpoint", "previous stage's run directory")
            load_model_params(init, model)
        return model

    def trainable(self, cfg):
        from biocoach_jax.models.biocoach import trainable_filter
        return trainable_filter(cfg.train.get("trainable", self.name))

    def loss_fn(self, cfg):
        from biocoach_jax.models.biocoach import loss_fn as model_loss
        w = float(cfg.model.get("dof_loss_weight", 1.0))

        def loss(model, batch):
            value, metrics = model_loss(model(batch), batch, dof_loss_weight=w)
            return value, dict(metrics, weight=metrics["n_tokens"].astype(np.float32))
        return loss

    def train_iterator(self, cfg, process_index, process_count):
        from biocoach_jax.data import pipeline
        return pipeline.make_train_iterator(cfg, self.tok, process_index=process_index,
                                            process_count=process_count)

    def eval_batches(self, cfg):
        split = cfg.data.get("eval_split", "")
        if not split:
            return []
        from biocoach_jax.data import pipeline
        return list(pipeline.make_eval_batches(cfg, self.tok, split))

    def tokens(self, batch) -> int:
        return int(np.asarray(batch.attention_mask).sum())

    def export_filter(self, cfg):
        from biocoach_jax.models.biocoach import extra_filter
        return extra_filter()

    def export(self, model, cfg, workdir):
        from biocoach_jax.models import biocoach as bc
        out = pathlib.Path(workdir) / "model"
        out.mkdir(parents=True, exist_ok=True)
        bc.save_extra_params(model, str(out / bc.EXTRA_PARAMS))

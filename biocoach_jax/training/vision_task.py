"""Stage `vision`: pretrain the tiny causal 3D CNN on rendered synthetic clips.

Data: for each exercise of the library, `vision_data.tracks_per_exercise` synthetic subjects
do `vision_data.active_s` seconds of it (`data.synth.kinematics`), rendered at the CNN's frame
size (`data.synth.render`). Examples are windows of `vision_data.clip_steps` steps (4 frames a
step) at every step offset. Labels: the exercise (one per clip) and the movement phase of each
step, read at the step's last frame: 0 rest, 1 moving toward the repetition's keyframe, 2
returning from it. Eval uses other subjects (seed + 1).
Model: the CNN plus two linear heads on the spatially pooled per-step features (exercise:
also pooled over steps; phase: per step). Product: `<workdir>/vision_cnn` in
`converters.sense_cnn.save_converted` format, the later stages' `vision.checkpoint`.
"""
from __future__ import annotations

import pathlib

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax.models.vision import VisionCNN, create_vision_cnn, make_config
from biocoach_jax.training import mesh as mesh_lib
from biocoach_jax.training.tasks import Task, process_rows

NUM_PHASES = 3
FRAMES_PER_STEP = 4


def vision_config(cfg):
    v = cfg.vision
    return make_config(width=float(v.width), depth=float(v.depth), out_channels=int(v.out_channels),
                       frame_size=tuple(int(s) for s in v.frame_size))


def _phases(n_frames: int, reps) -> np.ndarray:
    phase = np.zeros(n_frames, np.int32)
    for r in reps:
        phase[r.start:r.key] = 1
        phase[r.key:r.end] = 2
    return phase


def render_bank(cfg, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clips (N, T, H, W, 3) uint8, exercise (N,), phase (N, steps)) of every window."""
    from biocoach_jax.data.synth import kinematics, render, subjects
    from biocoach_jax.exercises.library import list_exercises, load_exercise

    vd, size = cfg.vision_data, tuple(int(s) for s in cfg.vision.frame_size)
    t = int(vd.clip_steps) * FRAMES_PER_STEP
    rng = np.random.default_rng(seed)
    clips, ex_ids, phases = [], [], []
    for e, name in enumerate(list_exercises()):
        for k in range(int(vd.tracks_per_exercise)):
            subject = subjects.sample_subject(rng, f"v{e}_{k}")
            track = kinematics.synthesize(load_exercise(name), subject, rng, active_s=float(vd.active_s))
            frames = render.render_frames(track.poses, subject.segment_lengths, size=size)
            phase = _phases(len(frames), track.reps)
            for s in range(0, len(frames) - t + 1, FRAMES_PER_STEP):
                clips.append(frames[s:s + t])
                ex_ids.append(e)
                phases.append(phase[s + FRAMES_PER_STEP - 1:s + t:FRAMES_PER_STEP])
    return np.stack(clips), np.asarray(ex_ids, np.int32), np.stack(phases).astype(np.int32)


class VisionPretrain(nnx.Module):
    def __init__(self, vcfg, num_classes: int, *, seed: int):
        self.cnn: VisionCNN = create_vision_cnn(vcfg, seed=seed)
        rngs = nnx.Rngs(seed)
        self.exercise_head = nnx.Linear(vcfg.out_channels, num_classes, rngs=rngs)
        self.phase_head = nnx.Linear(vcfg.out_channels, NUM_PHASES, rngs=rngs)

    def __call__(self, frames):
        feats = self.cnn(frames)                      # (B, S, h, w, C)
        pooled = feats.mean(axis=(2, 3))              # (B, S, C)
        return self.exercise_head(pooled.mean(axis=1)), self.phase_head(pooled)


def _as_batch(x: dict) -> dict:
    return {"frames": x["frames"], "exercise": x["exercise"], "phase": x["phase"]}


class VisionTask(Task):
    name = "vision"

    def prepare(self, cfg, workdir):
        from biocoach_jax.exercises.library import list_exercises
        self.num_classes = len(list_exercises())
        clips, ex, ph = render_bank(cfg, int(cfg.seed))
        self.train = {"frames": clips, "exercise": ex, "phase": ph}
        n_eval = int(cfg.vision_data.get("eval_tracks_per_exercise", 0))
        self.eval = None
        if n_eval:
            sub = cfg.copy_and_resolve_references()
            sub.vision_data.tracks_per_exercise = n_eval
            clips, ex, ph = render_bank(sub, int(cfg.seed) + 1)
            self.eval = {"frames": clips, "exercise": ex, "phase": ph}

    def build_model(self, cfg, mesh):
        model = VisionPretrain(vision_config(cfg), self.num_classes, seed=int(cfg.seed))
        return mesh_lib.place(model, mesh)

    def trainable(self, cfg):
        return nnx.Param

    def loss_fn(self, cfg):
        def loss(model, batch):
            frames = batch["frames"].astype(jnp.float32) / 255.0
            ex_logits, ph_logits = model(frames)
            ex_ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(ex_logits), batch["exercise"][:, None], 1))
            ph_lp = jax.nn.log_softmax(ph_logits)
            ph_ce = -jnp.mean(jnp.take_along_axis(ph_lp, batch["phase"][..., None], -1))
            metrics = {"exercise_acc": jnp.mean(jnp.argmax(ex_logits, -1) == batch["exercise"]),
                       "phase_acc": jnp.mean(jnp.argmax(ph_logits, -1) == batch["phase"]),
                       "exercise_loss": ex_ce, "phase_loss": ph_ce,
                       "weight": jnp.float32(batch["exercise"].shape[0])}
            return ex_ce + ph_ce, metrics
        return loss

    def train_iterator(self, cfg, process_index, process_count):
        rows = process_rows(int(cfg.data.batch_size), process_count)
        n = len(self.train["exercise"])
        ds = grain.MapDataset.range(n)[process_index::process_count].shuffle(seed=int(cfg.seed))
        ds = ds.repeat().map(lambda i: {k: v[i] for k, v in self.train.items()})
        return iter(ds.batch(rows, drop_remainder=True).map(_as_batch))

    def eval_batches(self, cfg):
        if self.eval is None:
            return []
        b, n = int(cfg.data.batch_size), len(self.eval["exercise"])
        return [{k: v[i:i + b] for k, v in self.eval.items()} for i in range(0, n - b + 1, b)]

    def tokens(self, batch) -> int:
        f = np.asarray(batch["frames"])
        return int(f.shape[0] * f.shape[1])  # frames

    def export(self, model, cfg, workdir):
        from converters.sense_cnn import save_converted
        save_converted(model.cnn, pathlib.Path(workdir) / "vision_cnn", source=str(workdir))

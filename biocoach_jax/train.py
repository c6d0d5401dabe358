"""Train one stage of BioCoach-JAX: `python -m biocoach_jax.train --config=configs/X.py --workdir=W`.

Every config field can be overridden on the command line (`--config.optimizer.lr=1e-4`); each
config's docstring holds its run command. Stages (config.stage): lm, vision, streamvlm, biocoach
(`training/tasks.py`). The same code runs on a laptop, on fake CPU devices and on a pod.

Read top to bottom: config -> processes -> mesh -> model (sharded) -> trainable filter ->
AdamW -> jitted step -> data -> resume -> loop (log, eval, checkpoint, SIGTERM) -> export.
Workdir: checkpoints/ (orbax), metrics.jsonl, tensorboard/, and the stage's product
(llama/, vision_cnn/ or model/). Restarting with the same workdir resumes exactly.
"""
from __future__ import annotations

import dataclasses
import pathlib
import signal
import threading
import time

import jax
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags
from tqdm import tqdm

from biocoach_jax.training import checkpoint as ckpt_lib
from biocoach_jax.training import mesh as mesh_lib
from biocoach_jax.training import step as step_lib
from biocoach_jax.training.metrics_log import MetricsLogger
from biocoach_jax.training.optim import make_optimizer
from biocoach_jax.training.tasks import get_task


@dataclasses.dataclass
class TrainResult:
    step: int                      # last completed step
    state: dict                    # flat {name: numpy array} of the mutable state (checkpoint names)
    history: list                  # logged train metrics, one dict per log step
    eval: dict                     # last eval metrics ({} if none)
    stopped: bool                  # True when SIGTERM / train.stop_after ended the run early


class _StopFlag:
    """Set by SIGTERM (preemption): the loop saves a checkpoint and returns cleanly."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM: saving a checkpoint and stopping")
        self.requested = True

    def uninstall(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def evaluate(eval_step, mutable, frozen, batches, mesh) -> dict:
    metrics = [jax.device_get(eval_step(mutable, frozen, mesh_lib.shard_batch(b, mesh))) for b in batches]
    return step_lib.mean_metrics(metrics)


def train(cfg, workdir) -> TrainResult:
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh_lib.maybe_initialize_distributed()
    pidx, pcount = jax.process_index(), jax.process_count()
    task = get_task(cfg.stage)
    mesh = mesh_lib.mesh_from_config(cfg.mesh)
    steps, accum = int(cfg.train.steps), int(cfg.train.get("grad_accum", 1))
    logging.info("stage %s, mesh %s, process %d of %d", cfg.stage, dict(mesh.shape), pidx, pcount)

    # model, created sharded; the optimizer holds state for the trainable set only
    task.prepare(cfg, workdir)
    model = task.build_model(cfg, mesh)
    trainable = task.trainable(cfg)
    optimizer = nnx.Optimizer(model, make_optimizer(cfg.optimizer, steps), wrt=trainable)
    mesh_lib.place(optimizer, mesh)
    graphdef, mutable, frozen = step_lib.split_train_state(model, optimizer, trainable)
    del model, optimizer  # from here on the state lives in (mutable, frozen)
    shardings = jax.tree.map(lambda x: x.sharding, mutable)
    loss_fn = task.loss_fn(cfg)
    train_step = step_lib.make_train_step(graphdef, trainable, loss_fn, grad_accum=accum,
                                          mutable_shardings=shardings)
    eval_step = step_lib.make_eval_step(graphdef, loss_fn)

    # data, then resume (the iterator position is part of the checkpoint)
    data = task.train_iterator(cfg, pidx, pcount)
    eval_batches = task.eval_batches(cfg) if int(cfg.train.eval_every) > 0 else []
    checkpoints = ckpt_lib.Checkpointer(workdir / "checkpoints", keep=int(cfg.train.keep_checkpoints),
                                        async_save=bool(cfg.train.get("async_checkpoint", True)))
    start = 0
    if checkpoints.latest_step() is not None:
        mutable, meta = checkpoints.restore(checkpoints.latest_step(), mutable, data)
        start = int(meta["step"])
        logging.info("resumed from %s at step %d", checkpoints.directory, start)
    meta = {"stage": cfg.stage}

    # the loop
    logger = MetricsLogger(workdir)
    stop = _StopFlag()
    stop.install()
    stop_after = int(cfg.train.get("stop_after", 0))
    history, last_eval, step = [], {}, start
    bar = tqdm(total=steps, initial=start, disable=pidx != 0 or not cfg.train.get("progress", True),
               desc=f"train {cfg.stage}", unit="step")
    window_tokens, window_start = 0, time.perf_counter()
    try:
        with jax.set_mesh(mesh):  # the mesh the steps trace and run under
            while step < steps:
                batch = next(data)
                window_tokens += task.tokens(batch)
                mutable, metrics = train_step(mutable, frozen, mesh_lib.shard_batch(batch, mesh))
                step += 1
                bar.update(1)
                done = step == steps or stop.requested or (stop_after and step - start >= stop_after)
                if step % int(cfg.train.log_every) == 0 or done:
                    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    elapsed = time.perf_counter() - window_start
                    metrics["tokens_per_s"] = window_tokens * pcount / max(elapsed, 1e-9)
                    window_tokens, window_start = 0, time.perf_counter()
                    logger.write(step, metrics)
                    history.append(dict(metrics, step=step))
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", tok_s=f"{metrics['tokens_per_s']:.0f}")
                if eval_batches and (step % int(cfg.train.eval_every) == 0 or step == steps):
                    last_eval = evaluate(eval_step, mutable, frozen, eval_batches, mesh)
                    logger.write(step, last_eval, split="eval")
                if step % int(cfg.train.checkpoint_every) == 0 or done:
                    checkpoints.save(step, mutable, data, meta, force=True)
                if done:
                    break
    finally:
        bar.close()
        stop.uninstall()
        checkpoints.close()  # waits for the async save: nothing is left half-written
        logger.close()

    stopped = step < steps
    if not stopped:
        model, _ = nnx.merge(graphdef, mutable, frozen)
        if pcount > 1:  # every process joins the gather; process 0 then writes host arrays
            from jax.experimental import multihost_utils
            part = nnx.state(model, task.export_filter(cfg))
            nnx.update(model, multihost_utils.process_allgather(part, tiled=True))
        if pidx == 0:
            task.export(model, cfg, workdir)
    state = {k: np.asarray(jax.device_get(v)) for k, v in ckpt_lib.state_to_flat(mutable).items()}
    return TrainResult(step, state, history, last_eval, stopped)


_CONFIG = config_flags.DEFINE_config_file("config", None, "config file (configs/*.py)", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, products)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print per-device parameter / optimizer memory "
                             "from shapes only (no weights read, nothing allocated) and exit")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if _DRY_RUN.value:
        from biocoach_jax.training.memory import config_memory_report
        print("\n".join(config_memory_report(_CONFIG.value).lines()))
        return
    result = train(_CONFIG.value, _WORKDIR.value)
    status = "stopped early (resume with the same command)" if result.stopped else "finished"
    logging.info("%s at step %d", status, result.step)
    print(f"{status} at step {result.step}; workdir {_WORKDIR.value}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)

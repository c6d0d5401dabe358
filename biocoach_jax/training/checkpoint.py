"""Orbax checkpoints of a training run: mutable state, data-iterator state and step.

A checkpoint `<workdir>/checkpoints/<step>/` holds three items:
  state  the mutable train state (trainable parameters, optimizer state and step, RNG state)
         as a flat {name: array} dict; names are nnx paths joined by '.', '0.' = model,
         '1.' = optimizer (so `0.layers.3.attn.q_proj.lora.a`);
  data   the grain iterator state (`grain.checkpoint.CheckpointSave`, one file per process);
  meta   JSON: step, stage, and the names of the trainable parameters.
Frozen weights are not saved: they are rebuilt from the run's own initialisation (seed,
`llm.path`, `init.checkpoint`), which is deterministic, so a restart reproduces the run exactly.
Saving is asynchronous; `wait()` before exiting. Mismatched or unreadable checkpoints raise
CheckpointError naming the directory and every problem found.
"""
from __future__ import annotations

import pathlib

import grain.checkpoint as grain_ckpt
import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the model being trained."""


def flat_names(state) -> dict[str, nnx.Variable]:
    return {".".join(map(str, path)): var for path, var in nnx.to_flat_state(state)}


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def state_to_flat(state) -> dict[str, jax.Array]:
    """{name: array}; typed PRNG keys (nnx RNG streams) become their raw uint32 key data."""
    out = {}
    for name, var in flat_names(state).items():
        v = var.get_value()
        out[name] = jax.random.key_data(v) if _is_key(v) else v
    return out


def flat_to_state(template, values: dict) -> nnx.State:
    """A state shaped like `template` with the given values (names as `flat_names`)."""
    pairs = []
    for path, var in nnx.to_flat_state(template):
        old, v = var.get_value(), values[".".join(map(str, path))]
        if _is_key(old):
            v = jax.random.wrap_key_data(v, impl=jax.random.key_impl(old))
        new = var.copy() if hasattr(var, "copy") else var
        new.set_value(v)
        pairs.append((path, new))
    return nnx.from_flat_state(pairs)


def _mismatches(expected: dict, found: dict, where: str) -> list[str]:
    """Compare {name: (shape, dtype)} tables; one line per problem."""
    out = [f"missing {k} {expected[k][0]}" for k in expected if k not in found]
    out += [f"unexpected {k}" for k in found if k not in expected]
    for k in expected.keys() & found.keys():
        (es, ed), (fs, fd) = expected[k], found[k]
        if tuple(es) != tuple(fs) or np.dtype(ed) != np.dtype(fd):
            out.append(f"{k}: checkpoint has {tuple(fs)} {np.dtype(fd)}, model needs "
                       f"{tuple(es)} {np.dtype(ed)}")
    return out


def _report(where, problems, limit=30) -> str:
    lines = problems[:limit] + ([f"... and {len(problems) - limit} more"] if len(problems) > limit else [])
    return f"{where}: checkpoint does not fit this model/config ({len(problems)} problem(s)):\n  " + \
        "\n  ".join(lines)


class Checkpointer:
    """CheckpointManager over `<workdir>/checkpoints`, keeping the newest `keep` steps."""

    def __init__(self, directory, *, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(max_to_keep=int(keep), create=True,
                                            enable_async_checkpointing=async_save)
        # handlers named up front, so a fresh manager can read metadata of an existing run
        handlers = {"state": ocp.StandardCheckpointHandler(), "data": grain_ckpt.CheckpointHandler(),
                    "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=opts, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, mutable, data_iterator, meta: dict, *, force: bool = False) -> bool:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state_to_flat(mutable)),
                                  data=grain_ckpt.CheckpointSave(data_iterator),
                                  meta=ocp.args.JsonSave(dict(meta, step=int(step))))
        return self.manager.save(int(step), args=args, force=force)

    def restore(self, step: int, mutable_template, data_iterator):
        """-> (mutable state, meta); the iterator is set to the saved position in place.
        The template's arrays give the target shapes, dtypes and shardings."""
        where = self.directory / str(step)
        expected = {k: (v.shape, v.dtype) for k, v in state_to_flat(mutable_template).items()}
        try:
            found = {k: (m.shape, m.dtype) for k, m in self.manager.item_metadata(step)["state"].items()}
        except Exception as e:  # orbax raises many types for damaged directories
            raise CheckpointError(f"{where}: unreadable checkpoint metadata "
                                  f"({type(e).__name__}: {e})") from None
        problems = _mismatches(expected, found, str(where))
        if problems:
            raise CheckpointError(_report(where, problems))
        target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=v.sharding)
                  for k, v in state_to_flat(mutable_template).items()}
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target),
                data=grain_ckpt.CheckpointRestore(data_iterator),
                meta=ocp.args.JsonRestore()))
        except Exception as e:
            raise CheckpointError(f"{where}: cannot restore ({type(e).__name__}: "
                                  f"{str(e)[:500]})") from None
        return flat_to_state(mutable_template, out["state"]), out["meta"]

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()


def load_model_params(path, model: nnx.Module, mesh=None) -> list[str]:
    """Initialise `model` (in place) from another run's latest checkpoint: every saved model
    parameter ('0.'-prefixed name) must exist in `model` with the same shape; parameters the
    checkpoint lacks keep their initial values. `path` is a run's workdir or its checkpoints dir.
    Returns the loaded names."""
    path = pathlib.Path(path)
    ckdir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not ckdir.is_dir():
        raise CheckpointError(f"init.checkpoint {path}: no such directory (expected the workdir "
                              "of the previous stage's run)")
    mgr = ocp.CheckpointManager(ckdir.absolute(), options=ocp.CheckpointManagerOptions(read_only=True),
                                item_handlers={"state": ocp.StandardCheckpointHandler()})
    step = mgr.latest_step()
    if step is None:
        raise CheckpointError(f"init.checkpoint {ckdir}: contains no finished checkpoint")
    try:
        saved = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    except Exception as e:
        raise CheckpointError(f"init.checkpoint {ckdir / str(step)}: unreadable "
                              f"({type(e).__name__}: {str(e)[:300]})") from None
    rng_names = set(flat_names(nnx.state(model, nnx.RngState)))  # RNG streams: not weights
    saved = {k[2:]: np.asarray(v) for k, v in saved.items() if k.startswith("0.") and k[2:] not in rng_names}
    params = flat_names(nnx.state(model, nnx.Param))
    problems = [f"unexpected {k} (not in this model)" for k in saved if k not in params]
    problems += [f"{k}: checkpoint {saved[k].shape}, model {params[k].get_value().shape}"
                 for k in saved.keys() & params.keys()
                 if tuple(saved[k].shape) != tuple(params[k].get_value().shape)]
    if problems:
        raise CheckpointError(_report(f"init.checkpoint {ckdir / str(step)}", problems))
    for k, v in saved.items():
        old = params[k].get_value()
        params[k].set_value(jax.device_put(v.astype(old.dtype), old.sharding))
    nnx.update(model, nnx.from_flat_state([(tuple(_key(p) for p in k.split(".")), params[k])
                                           for k in saved]))
    return sorted(saved)


def _key(part: str):
    return int(part) if part.isdigit() else part

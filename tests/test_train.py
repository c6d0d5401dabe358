"""train.py end to end on the `lm` stage (tiny LLaMA, packed text): learning, exact resume,
checkpoint errors, SIGTERM. Each train() call compiles its own step, so runs are few and tiny."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags

from biocoach_jax.train import train
from biocoach_jax.training.checkpoint import CheckpointError
from biocoach_jax.training.metrics_log import read_metrics
from configs.tiny import lm as tiny_lm

REPO = pathlib.Path(__file__).resolve().parents[1]
WORDS = ("keep your knees behind toes good depth lower slowly chest up nice pace extend arms "
         "fully brace core push through heels squeeze at the top").split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A random text corpus (fresh each session) with a small repeated grammar to learn."""
    seed = int(np.random.SeedSequence().entropy % 2**31)
    print(f"corpus seed {seed}")
    rng = np.random.default_rng(seed)
    d = tmp_path_factory.mktemp("lm")
    phrases = [" ".join(rng.choice(WORDS, 4)) for _ in range(12)]  # few phrases: learnable
    lines = [" ".join(rng.choice(phrases, rng.integers(2, 5))) + "." for _ in range(300)]
    (d / "corpus.txt").write_text("\n".join(lines))
    flags.FLAGS.mark_as_parsed()
    return d


def lm_config(corpus: pathlib.Path, **train_overrides):
    c = tiny_lm.get_config()
    c.data.text_file = str(corpus / "corpus.txt")
    c.tokenizer.path = str(corpus / "tokenizer")
    c.tokenizer.vocab_size = 300
    c.llm.config.update(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                        num_kv_heads=1, head_dim=16)
    c.data.max_tokens = 16
    c.data.batch_size = 8
    c.data.eval_rows = 8
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, 1, 1
    c.optimizer.lr = 1e-2
    c.optimizer.warmup_steps = 2
    c.train.update(steps=8, log_every=1, eval_every=0, checkpoint_every=4, progress=False)
    c.train.update(train_overrides)
    return c


def test_loss_falls_and_products(corpus, tmp_path):
    cfg = lm_config(corpus, steps=40, eval_every=40, checkpoint_every=40)
    res = train(cfg, tmp_path / "run")
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 40 and not res.stopped
    # from ~log(vocab) = 5.8 nats to well below: the corpus is a few repeated phrases
    assert np.mean(losses[-5:]) < 0.6 * losses[0], losses
    assert res.eval and res.eval["loss"] < 0.7 * losses[0]
    rows = read_metrics(tmp_path / "run", "train")
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    # the product loads as a LLaMA for the next stage
    from biocoach_jax.models.llama import load_llama
    llm = load_llama(str(tmp_path / "run" / "llama"))
    assert llm.cfg.hidden_size == 32 and llm.cfg.num_layers == 2


def test_kill_and_resume_is_bit_exact(corpus, tmp_path):
    full = train(lm_config(corpus), tmp_path / "full")
    first = train(lm_config(corpus, stop_after=4), tmp_path / "resumed")
    assert first.stopped and first.step == 4
    assert sorted(int(p.name) for p in (tmp_path / "resumed" / "checkpoints").iterdir()
                  if p.name.isdigit()) == [4]
    second = train(lm_config(corpus), tmp_path / "resumed")
    assert second.step == 8 and [h["step"] for h in second.history] == [5, 6, 7, 8]
    assert full.state.keys() == second.state.keys()
    for k in full.state:
        np.testing.assert_array_equal(full.state[k], second.state[k], err_msg=k)
    # the restart saw the same batches: the losses of steps 5..8 agree bit for bit
    assert [h["loss"] for h in full.history[4:]] == [h["loss"] for h in second.history]


def test_mismatched_checkpoint_is_a_clear_error(corpus, tmp_path):
    run = tmp_path / "run"
    train(lm_config(corpus, steps=4), run)
    other = lm_config(corpus, steps=8)
    other.llm.config.intermediate_size = 48
    with pytest.raises(CheckpointError, match=r"(?s)checkpoints/4.*mlp.gate_proj.kernel.*\(32, 48\)"):
        train(other, run)
    # a damaged array store: the error names the checkpoint directory
    state_dir = run / "checkpoints" / "4" / "state"
    for f in state_dir.rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "manifest" not in f.name and f.suffix != ".json":
            f.write_bytes(b"\0garbage")
    with pytest.raises(CheckpointError, match=r"checkpoints/4"):
        train(lm_config(corpus, steps=8), run)
    shutil.rmtree(state_dir)
    with pytest.raises(CheckpointError, match=r"checkpoints/4"):
        train(lm_config(corpus, steps=8), run)


def test_sigterm_saves_and_exits_zero(corpus, tmp_path):
    cfg_args = [f"--config={REPO / 'configs/tiny/lm.py'}", f"--workdir={tmp_path / 'run'}",
                f"--config.data.text_file={corpus / 'corpus.txt'}",
                f"--config.tokenizer.path={corpus / 'tokenizer'}",
                # under xdist this test may be the module's first on its worker: the tokenizer
                # is then trained here, at the size the other tests use
                "--config.tokenizer.vocab_size=300",
                "--config.llm.config.hidden_size=32", "--config.llm.config.intermediate_size=64",
                "--config.llm.config.num_layers=1", "--config.llm.config.num_heads=2",
                "--config.llm.config.num_kv_heads=1", "--config.llm.config.head_dim=16",
                "--config.data.max_tokens=16", "--config.data.batch_size=8",
                "--config.train.steps=100000", "--config.train.log_every=1",
                "--config.train.checkpoint_every=100000", "--config.train.eval_every=0",
                "--config.train.progress=False"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "biocoach_jax.train", *cfg_args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out[-3000:]
    assert "stopped early" in out
    steps = [int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()]
    logged = read_metrics(tmp_path / "run", "train")[-1]["step"]
    assert steps == [logged] and logged >= 3

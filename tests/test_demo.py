"""`python -m biocoach_jax.demo --quick`: the whole chain end to end in a subprocess (one CPU
device), then its artifacts, a resume that skips every finished step, and the demo's own
checks (corpus texts, workdir scale guard). The subprocess run is the slow part (minutes)."""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from biocoach_jax import demo, demo_stages

REPO = pathlib.Path(__file__).resolve().parents[1]
STAGES = ("streamvlm", "streamvlm_colloquial", "biocoach", "no_dof_selection",
          "no_motion_context", "no_morphology", "window_2s")


def _run_demo(workdir: pathlib.Path, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)           # the demo runs on one CPU device, not the tests' eight
    return subprocess.run([sys.executable, "-m", "biocoach_jax.demo", "--quick", "--no-progress",
                           "--workdir", str(workdir), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "w"
    first = _run_demo(workdir)
    assert first.returncode == 0, first.stderr[-4000:]
    return workdir, first


def test_every_stage_leaves_its_checkpoint_and_product(quick_run):
    w, _ = quick_run
    assert (w / "tokenizer" / "tokenizer.model").is_file()
    assert (w / "lm" / "llama" / "config.json").is_file()
    assert any((w / "vision" / "vision_cnn").iterdir())
    for run in ("lm", "vision"):
        assert [p for p in (w / run / "checkpoints").iterdir() if p.name.isdigit()], run
    for key in STAGES:
        run = demo_stages.Context(w, demo_stages.QUICK).run_dir(key)
        assert [p for p in (run / "checkpoints").iterdir() if p.name.isdigit()], key
        assert (run / "model" / "extra_params.safetensors").is_file(), key
    feats = list((w / "data").rglob("*_features.npy"))
    assert len(feats) == demo_stages.QUICK.train_sessions + demo_stages.QUICK.benchmark_sessions


def test_table_has_every_system_with_finite_metrics(quick_run):
    w, first = quick_run
    rows = json.loads((w / "table.json").read_text())
    assert [r["label"] for r in rows] == [label for _, label in demo_stages.SYSTEMS]
    for r in rows:
        for key in ("meteor", "rouge_l", "t_f_score", "bio_all_acc"):
            assert math.isfinite(r["metrics"][key]) and 0.0 <= r["metrics"][key] <= 1.0, (r["label"], key)
    md = (w / "table.md").read_text()
    n_rows = len(demo_stages.SYSTEMS)
    assert n_rows == 8 and len([ln for ln in md.splitlines() if ln.startswith("| ")]) == 1 + n_rows
    assert "BERTScore skipped" in md
    assert md.strip().splitlines()[2].split("|")[1].strip() == "Stream-VLM"
    assert "Stream-VLM" in first.stdout and "rule-based" in first.stdout


def test_summary_lists_losses_accuracies_and_real_time_factor(quick_run):
    w, first = quick_run
    s = json.loads((w / "summary.json").read_text())
    runs = {r["run"]: r for r in s["runs"]}
    assert set(runs) == {"lm", "vision", *STAGES}
    for name, r in runs.items():
        assert math.isfinite(r["train"]["loss"]), name
    assert 0.0 <= runs["lm"]["train"]["token_acc"] <= 1.0
    for key in STAGES:
        assert 0.0 <= runs[key]["train"]["token_acc"] <= 1.0 and "feedback_acc" in runs[key]["train"]
    rtf = s["real_time_factor"]
    assert rtf["real_time_factor"] > 0 and math.isclose(rtf["real_time_factor"],
                                                          rtf["wall_s"] / rtf["media_s"])
    for word in ("loss", "token_acc", "Real-time factor", "checkpoints"):
        assert word in first.stdout
    assert all(t["status"] == "ran" for t in s["steps"])


def test_rerun_skips_every_finished_step(quick_run):
    w, _ = quick_run
    again = _run_demo(w)
    assert again.returncode == 0, again.stderr[-4000:]
    s = json.loads((w / "summary.json").read_text())
    assert s["steps"] and all(t["status"] == "skipped" for t in s["steps"])
    assert again.stdout.count("already done, skipped") == len(s["steps"])


def test_workdir_of_another_scale_is_refused(tmp_path):
    ctx = demo_stages.Context(tmp_path, demo_stages.QUICK)
    demo.check_plan(ctx)
    demo.check_plan(ctx)                                     # same scale: fine
    with pytest.raises(ValueError, match="quick.*another --workdir"):
        demo.check_plan(demo_stages.Context(tmp_path, demo_stages.FULL))


def test_lm_corpus_holds_streams_with_and_without_motion_context(quick_run):
    """The LM's pretraining text: every train feedback line, and per segment its stream with
    C_motion before feedbacks and without it (independent check: the split's own json)."""
    from biocoach_jax.data import qevd
    from biocoach_jax.data.session import split_dir

    w, _ = quick_run
    docs = (w / "lm_corpus.txt").read_text(encoding="utf-8").splitlines()
    root = split_dir(w / "data", "train")
    texts = {s.text for wk in qevd.read_feedbacks_json(root / qevd.RECORDS_FILE, check_files=False)
             for s in wk.spans if s.text}
    assert texts <= set(docs)
    streams = [d for d in docs if d.startswith("You are an expert fitness coaching AI")]
    with_ctx = [d for d in streams if "<motion>" in d]
    assert with_ctx and len(with_ctx) == len(streams) - len(with_ctx)
    for d in with_ctx:                  # a context segment is closed and precedes an answer
        assert d.count("<motion>") == d.count("<motion/>")
        assert "<motion/><answer>" in d.replace(" ", "")
    assert all("<vision>" in d and "<answer>" in d for d in streams)

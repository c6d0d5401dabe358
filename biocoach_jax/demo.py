"""The whole BioCoach chain end to end on a laptop CPU, on the built-in synthetic world:

    python -m biocoach_jax.demo [--workdir ./demo_workdir] [--quick | --long]

synthetic data (QEVD layout, train + benchmark) -> BPE tokenizer -> tiny LLaMA pretrained on the
coaching text (frozen afterwards) -> tiny causal 3D CNN pretrained on rendered clips -> cached
features of both splits -> Stream-VLM stage (LoRA + vision cross-attention), on the anatomical
wording and on the colloquial one (the paper's baseline condition) -> BioCoach stage (from
Stream-VLM) -> the four ablations -> the paper's table on the synthetic benchmark for both
Stream-VLMs, BioCoach, the ablations and the rule-based coach, and the tiny coach's real-time
factor. Every step skips work already in the workdir, so a re-run resumes where it stopped.
Configs: configs/tiny/*.py (paths under the workdir); scale: `demo_stages.FULL` (default,
<= 15 min), `QUICK` (--quick, <= 3 min) or `LONG` (--long: the LM pretrained until it quotes
C_motion, a larger benchmark; the table the project reports).
Writes W/table.md, W/table.json, W/summary.json; prints the summary and the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

from biocoach_jax import demo_stages as st
from biocoach_jax.io_utils import atomic_write_text


def _steps(ctx: st.Context):
    """(name, what, done(), run()) of every step, in order."""
    steps = [
        ("data", "synthetic world (train + benchmark, video, poses, ground truth)",
         lambda: st.data_done(ctx), lambda: st.data_run(ctx)),
        ("tokenizer", "BPE tokenizer on the train split's text",
         lambda: st.tokenizer_done(ctx), lambda: st.tokenizer_run(ctx)),
        ("lm", "pretrain the tiny LLaMA (frozen afterwards)",
         lambda: st.lm_done(ctx), lambda: st.train_stage(ctx, "lm")),
        ("vision", "pretrain the tiny causal 3D CNN",
         lambda: st.vision_done(ctx), lambda: st.train_stage(ctx, "vision")),
        ("features", "cache CNN features of both splits",
         lambda: st.features_done(ctx), lambda: st.features_run(ctx)),
    ]
    for key, label in st.SYSTEMS[:-1]:
        what = {"streamvlm": "Stream-VLM stage (LoRA + vision cross-attention)",
                "streamvlm_colloquial": "Stream-VLM stage, colloquial wording (the paper's baseline)",
                "biocoach": "BioCoach stage (from Stream-VLM, with C_motion and C_morph)"}
        steps.append((key, what.get(key, f"ablation: BioCoach {label}"),
                      lambda k=key: st.run_done(ctx, k), lambda k=key: st.train_stage(ctx, k)))
    segments = []

    def bench():
        if not segments:
            from biocoach_jax.data.session import load_segments
            segments.extend(load_segments(ctx.data_dir, "benchmark"))
        return segments

    for key, label in st.SYSTEMS:
        steps.append((f"eval {key}", f"coach the benchmark: {label}",
                      lambda k=key: st.eval_path(ctx, k).is_file(),
                      lambda k=key, lb=label: st.eval_run(ctx, k, lb, bench())))
    rtf = ctx.root / "real_time_factor.json"
    steps.append(("rtf", "real-time factor of the tiny BioCoach coach", rtf.is_file,
                  lambda: _write_rtf(rtf, st.real_time_factor(ctx, bench()))))
    return steps


def _write_rtf(path: pathlib.Path, rtf: dict) -> str:
    atomic_write_text(path, json.dumps(rtf, indent=1))
    return f"{rtf['real_time_factor']:.3f} ({rtf['wall_s']:.1f} s for {rtf['media_s']:.1f} s of media)"


def run_steps(ctx: st.Context, log=print) -> list[dict]:
    """Run (or skip) every step; returns [{name, status, seconds, note}]."""
    steps = _steps(ctx)
    timings = []
    for i, (name, what, done, run) in enumerate(steps, 1):
        head = f"[{i:2d}/{len(steps)}] {name:<24} {what}"
        if done():
            log(f"{head}: already done, skipped")
            timings.append({"name": name, "status": "skipped", "seconds": 0.0, "note": ""})
            continue
        log(f"{head} ...")
        t0 = time.perf_counter()
        note = run() or ""
        dt = time.perf_counter() - t0
        log(f"{'':8}{name} done in {dt:.1f} s{': ' + note if note else ''}")
        timings.append({"name": name, "status": "ran", "seconds": dt, "note": note})
    return timings


def _last(records: list[dict], split: str) -> dict:
    rows = [r for r in records if r["split"] == split]
    return rows[-1] if rows else {}


def training_summary(ctx: st.Context) -> list[dict]:
    """Last train / eval loss and accuracies of every training run, and where its product is."""
    from biocoach_jax.training.metrics_log import read_metrics

    runs = [("lm", ctx.root / "lm", ctx.root / "lm" / "llama"),
            ("vision", ctx.root / "vision", ctx.root / "vision" / "vision_cnn")]
    runs += [(k, ctx.run_dir(k), ctx.run_dir(k) / "model") for k, _ in st.SYSTEMS[:-1]]
    out = []
    for name, wd, product in runs:
        rec = read_metrics(wd) if (wd / "metrics.jsonl").is_file() else []
        tr, ev = _last(rec, "train"), _last(rec, "eval")
        keys = ("loss", "token_acc", "feedback_acc", "vision_acc", "exercise_acc", "phase_acc")
        out.append({"run": name, "step": tr.get("step"), "checkpoints": str(wd / "checkpoints"),
                    "product": str(product),
                    "train": {k: tr[k] for k in keys if k in tr},
                    "eval": {k: ev[k] for k in keys if k in ev}})
    return out


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()) or "-"


def write_outputs(ctx: st.Context, timings: list[dict], wall_s: float) -> str:
    """table.md / table.json / summary.json; returns the text printed at the end."""
    from biocoach_jax.evaluate import table_markdown, write_table

    rows = [json.loads(st.eval_path(ctx, k).read_text()) for k, _ in st.SYSTEMS]
    write_table(ctx.root, rows)
    table = table_markdown(rows)
    if not ctx.plan.bertscore:
        table += "\n(BERTScore skipped in --quick.)\n"
        atomic_write_text(ctx.root / "table.md", table)
    rtf = json.loads((ctx.root / "real_time_factor.json").read_text())
    runs = training_summary(ctx)
    previous = ctx.root / "summary.json"
    if previous.is_file():   # a resumed run keeps how long the skipped steps took before
        before = {t["name"]: t for t in json.loads(previous.read_text()).get("steps", [])}
        for t in timings:
            old = before.get(t["name"], {})
            if t["status"] == "skipped" and old:
                t["earlier_seconds"] = old.get("earlier_seconds", old.get("seconds", 0.0))
    summary = {"workdir": str(ctx.root), "plan": dataclasses.asdict(ctx.plan),
               "wall_s": wall_s, "steps": timings, "runs": runs, "real_time_factor": rtf,
               "table": [{"label": r["label"], "metrics": {k: v for k, v in r["metrics"].items()
                                                           if isinstance(v, (int, float))}}
                         for r in rows]}
    atomic_write_text(ctx.root / "summary.json", json.dumps(summary, indent=1, default=str))
    lines = ["", "Training runs (last logged step; train / eval):"]
    for r in runs:
        lines.append(f"  {r['run']:<18} step {r['step']}: train {_fmt(r['train'])}; "
                     f"eval {_fmt(r['eval'])}")
        lines.append(f"  {'':<18} checkpoints {r['checkpoints']}, product {r['product']}")
    lines += ["", f"Synthetic benchmark ({ctx.root / 'table.md'}):", "", table.rstrip(), "",
              f"Real-time factor of the tiny BioCoach coach (video + poses, this machine): "
              f"{rtf['real_time_factor']:.3f}", f"Total wall time of this run: {wall_s:.1f} s"]
    return "\n".join(lines)


def check_plan(ctx: st.Context) -> None:
    """A workdir holds one scale: resuming a --quick workdir without --quick (or the other way
    round) would mix worlds, so it is refused."""
    ctx.root.mkdir(parents=True, exist_ok=True)
    path = ctx.root / "plan.json"
    want = json.loads(json.dumps(dataclasses.asdict(ctx.plan)))
    if path.is_file():
        have = json.loads(path.read_text())
        if have != want:
            raise ValueError(f"{path}: this workdir was made by the {have.get('name')!r} demo; "
                             f"use another --workdir for the {ctx.plan.name!r} one")
    else:
        atomic_write_text(path, json.dumps(want, indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m biocoach_jax.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="./demo_workdir", type=pathlib.Path)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="a smaller world and fewer steps (~3 min)")
    scale.add_argument("--long", action="store_true",
                       help="the LM pretrained until it quotes C_motion, a larger benchmark (~25 min)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    from absl import flags, logging as absl_logging
    from biocoach_jax.analyze import _enable_compile_cache

    flags.FLAGS.mark_as_parsed()          # train.py's code reads absl flags
    absl_logging.set_verbosity(absl_logging.WARNING)
    _enable_compile_cache()
    plan = st.QUICK if a.quick else st.LONG if a.long else st.FULL
    ctx = st.Context(a.workdir.resolve(), plan, not a.no_progress)
    t0 = time.perf_counter()
    try:
        check_plan(ctx)
        timings = run_steps(ctx)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 1
    print(write_outputs(ctx, timings, time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

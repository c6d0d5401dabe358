"""Run coaches over a split's single-exercise segments and write the paper's table.

    python -m biocoach_jax.evaluate --data DIR --split benchmark --out OUT_DIR \
        [--config C --checkpoint K [--config C2 --checkpoint K2 ...]] [--rule_based] \
        [--label NAME ...] [--max_segments N] [--no_bertscore] [--from_video] [--report DIR]

One row per system (each --config/--checkpoint pair in order, then --rule_based), with the
columns METEOR, ROUGE-L, BERTScore (MiniLM-L6), T-F-Score, bio-fact accuracy and, when a judge
is configured (BIOCOACH_JUDGE_URL, see metrics.judge.HTTPJudge), LLM-Acc and LLM-Bio-Acc.
Writes OUT_DIR/table.json (every metric of `metrics.evaluate_episodes` per system, plus the
predictions) and OUT_DIR/table.md, atomically.

Bio-fact truths: a session's `ground_truth/<id>.json` (synthetic world) lists `feedbacks`
(session-clock `time_s`, `text`, `facts` with dof / kind / value / unit) and/or
`injected_errors` (dof, kind, value_deg, `time_s` or `t_s`); each ground-truth feedback takes
the entry within 1.5 s with the same text (else the nearest) that has a violation fact; without
one, its own text is parsed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from biocoach_jax.io_utils import atomic_write_text

COLUMNS = (("meteor", "METEOR"), ("rouge_l", "ROUGE-L"), ("bertscore_minilm_l6", "BERTScore(MiniLM)"),
           ("t_f_score", "T-F-Score"), ("meteor_corrective", "METEOR (corrective)"),
           ("bio_all_acc", "bio-fact acc"), ("llm_acc", "LLM-Acc"),
           ("llm_bio_acc", "LLM-Bio-Acc"))
TRUTH_WINDOW_S = 1.5


def _record_truth(r: dict, kinds) -> dict | None:
    """A truth record {"dof", "kind", "value_deg"} from a ground-truth entry: the synthetic
    writer's feedback lines carry `facts` ({"dof", "kind", "value", "unit"}); flat records
    carry dof / kind / value_deg themselves."""
    facts = [f for f in r.get("facts") or [r] if isinstance(f, dict) and f.get("kind") in kinds]
    if not facts:
        return None
    f = facts[0]   # a bilateral line has one fact per side: the first speaks for both
    value = f.get("value_deg", f.get("value") if f.get("unit", "deg") == "deg" else None)
    dofs = [g["dof"] for g in facts if g["kind"] == f["kind"] and g.get("dof") is not None]
    return {"dof": f.get("dof"), "dofs": dofs, "kind": f["kind"], "value_deg": value}


def segment_truths(seg) -> list:
    """One structured truth record (or None) per ground-truth feedback of a segment: that of
    the entry within 1.5 s with the same text, else of the nearest entry with a violation fact."""
    from biocoach_jax.metrics.biofacts import TRUTH_KINDS

    gt = seg.ground_truth or {}
    records = []
    for key in ("feedbacks", "injected_errors"):
        for r in gt.get(key) or []:
            if not isinstance(r, dict):
                continue
            rt = r.get("time_s", r.get("t_s"))
            if isinstance(rt, (int, float)):
                records.append((float(rt), r.get("text"), _record_truth(r, TRUTH_KINDS)))
    out = []
    for t, text in seg.feedbacks:
        when = seg.start_s + t
        near = [r for r in records if abs(r[0] - when) <= TRUTH_WINDOW_S]
        same = [r for r in near if r[1] == text]           # the entry of this very feedback
        pool = same or [r for r in near if r[2] is not None]
        out.append(min(pool, key=lambda r: abs(r[0] - when))[2] if pool else None)
    return out


def coach_segments(segments, loaded=None, *, progress=None,
                   from_video: bool = False) -> tuple[list, list[str]]:
    """Predictions [(time_s, text), ...] per segment, and warnings (segments not coached).
    An LLM coach reads the segment's cached CNN features when it has them (what training saw,
    as Stream-VLM evaluates), or runs the CNN on the video frames (from_video, or no cache)."""
    from biocoach_jax.coaching import run_coach, sources

    preds, warnings = [], []
    for seg in segments:
        where = f"{seg.session_id}/{seg.exercise}@{seg.start_s:.1f}s"
        cached = loaded is not None and not from_video and seg.features_path is not None
        try:
            coach = sources.make_coach(seg.exercise, loaded=loaded, measurements=seg.measurements,
                                       present=None if seg.poses is None else seg.poses.present)
            events = sources.segment_events(seg, with_video=loaded is not None and not cached,
                                            size=sources.frame_size(loaded), cached_features=cached)
        except ValueError as e:
            preds.append([])
            warnings.append(f"{where}: not coached ({e})")
        else:
            run = run_coach(coach, events, end_s=seg.end_s - seg.start_s)
            if run.error is not None:
                warnings.append(f"{where}: stream broke, kept {len(run.feedbacks)} feedback(s): "
                                f"{run.error}")
            preds.append([(float(f.time_s), f.text) for f in run.feedbacks])
        if progress is not None:
            progress.update(1)
    return preds, warnings


def table_markdown(rows: list[dict]) -> str:
    cols = [(k, name) for k, name in COLUMNS if any(k in r["metrics"] for r in rows)]
    lines = ["| system | " + " | ".join(n for _, n in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r['metrics'][k]:.3f}" if k in r["metrics"] else "-" for k, _ in cols]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_systems(segments, systems, *, bertscore: bool = True, judge=None,
                     show_progress: bool = True, from_video: bool = False) -> list[dict]:
    """systems: [(label, LoadedCoach or None for rule-based)] -> one row dict per system."""
    from biocoach_jax.metrics import evaluate_episodes

    gt = [[(float(t), text) for t, text in s.feedbacks] for s in segments]
    truths = [segment_truths(s) for s in segments]
    rows = []
    for label, loaded in systems:
        progress = None
        if show_progress:
            from tqdm import tqdm
            progress = tqdm(total=len(segments), desc=label, unit="segment", file=sys.stderr)
        preds, warnings = coach_segments(segments, loaded, progress=progress, from_video=from_video)
        if progress is not None:
            progress.close()
        metrics = evaluate_episodes(gt, preds, truths=truths, bertscore=bertscore, judge=judge)
        metrics.pop("matched", None)
        rows.append({"label": label, "metrics": metrics, "warnings": warnings,
                     "predictions": [{"session": s.session_id, "exercise": s.exercise,
                                      "start_s": s.start_s, "pred": p, "gt": g}
                                     for s, p, g in zip(segments, preds, gt)]})
    return rows


def write_table(out_dir, rows: list[dict]) -> None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "table.json", json.dumps(rows, indent=1))
    atomic_write_text(out / "table.md", table_markdown(rows))


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m biocoach_jax.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="root with the QEVD-FIT-COACH layout")
    p.add_argument("--split", default="benchmark")
    p.add_argument("--config", action="append", default=[], help="model config (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], help="run dir, one per --config")
    p.add_argument("--rule_based", action="store_true", help="add the rule-based coach")
    p.add_argument("--label", action="append", default=[], help="row names, in system order")
    p.add_argument("--max_segments", type=int, default=0, help="first N segments only (0 = all)")
    p.add_argument("--no_bertscore", action="store_true", help="skip BERTScore (no torch model)")
    p.add_argument("--from_video", action="store_true",
                   help="run the CNN on the video frames instead of reading the cached features")
    p.add_argument("--out", required=True, help="output folder for table.json / table.md")
    p.add_argument("--report", help="also write HTML pages per session here")
    args = p.parse_args(argv)
    if len(args.config) != len(args.checkpoint):
        p.error("give one --checkpoint per --config")
    if not args.config and not args.rule_based:
        p.error("nothing to evaluate: give --config/--checkpoint and/or --rule_based")
    return args


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from biocoach_jax.analyze import _enable_compile_cache
    from biocoach_jax.data.session import load_segments

    _enable_compile_cache()
    try:
        segments = load_segments(args.data, args.split)
        if args.max_segments > 0:
            segments = segments[:args.max_segments]
        systems = []
        for cfg, ckpt in zip(args.config, args.checkpoint):
            from biocoach_jax.coaching.loading import load_coach
            systems.append((pathlib.Path(ckpt).name or ckpt, load_coach(cfg, ckpt)))
        if args.rule_based:
            systems.append(("rule-based", None))
        if args.label:
            if len(args.label) != len(systems):
                raise ValueError(f"{len(args.label)} --label for {len(systems)} systems")
            systems = [(name, s) for name, (_, s) in zip(args.label, systems)]
        judge = None
        if os.environ.get("BIOCOACH_JUDGE_URL"):
            from biocoach_jax.metrics import HTTPJudge
            judge = HTTPJudge()
        rows = evaluate_systems(segments, systems, bertscore=not args.no_bertscore, judge=judge,
                                from_video=args.from_video)
        write_table(args.out, rows)
        print(table_markdown(rows), end="")
        for r in rows:
            for w in r["warnings"]:
                print(f"warning [{r['label']}]: {w}", file=sys.stderr)
        if args.report:
            from biocoach_jax.report import write_reports
            index = write_reports(args.report, segments, rows)
            print(f"report: {index}")
        return 0
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

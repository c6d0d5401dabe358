"""Analyse a pose recording without any model: reps, cycle quality, violations, plot, C_motion.

    python -m biocoach_jax.analyze FILE [--exercise NAME|auto] [--format text|json] [--plot OUT.png]

FILE: OpenSim `.mot`/`.sto`, HSMR `.npy` or `.npz` (poses (T,46) radians + timestamps or fps).
`--format json` prints exactly one JSON object on stdout; warnings go to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m biocoach_jax.analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="pose recording (.mot, .sto, .npy from HSMR, .npz)")
    p.add_argument("--exercise", default="auto", help="library exercise name, or 'auto' (default)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--plot", metavar="OUT.png", help="write a plot of the analysed DoFs")
    p.add_argument("--fps", type=float, default=16.0, help="analysis rate in Hz (default 16)")
    return p.parse_args(argv)


def _enable_compile_cache() -> None:
    """Reuse compiled kernels across invocations (the first run compiles for ~10 s)."""
    import jax
    cache = pathlib.Path(os.environ.get("BIOCOACH_JAX_CACHE",
                                        pathlib.Path.home() / ".cache" / "biocoach_jax" / "jax"))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except OSError:
        pass  # a read-only home only costs compile time


def _text(report) -> str:
    lines = [f"{report.source} ({report.format}, {report.fps:g} Hz, {report.duration_s:.2f} s)",
             f"exercise: {report.exercise}; driving DoF: {report.driving_dof}; reps: {report.reps}",
             f"selected joints: {', '.join(report.selected_joints)}"]
    for c in report.cycles:
        kv = c.key_values_deg.get(report.driving_dof)
        lines.append(f"  rep {c.index + 1}: {c.start_s:6.2f}-{c.end_s:6.2f} s, keyframe {c.keyframe_s:6.2f} s, "
                     f"{report.driving_dof} {kv:.1f}°, score {c.score:.2f}"
                     + ("" if c.complete else "  [incomplete]"))
    js = report.to_json()["violations"]
    lines.append(f"violations: {len(js)}")
    lines += [f"  rep {v['cycle'] + 1 if v['cycle'] is not None else '-'} @ {v['time_s']:.2f} s: "
              f"{v['message']}" for v in js]
    lines.append("context: " + report.context)
    return "\n".join(lines)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    _enable_compile_cache()
    from .analysis import analyze_recording
    from .data.poses import read_poses
    from .exercises import ExerciseError

    try:
        report = analyze_recording(read_poses(args.file), args.exercise, fps=args.fps)
    except (ValueError, KeyError, FileNotFoundError, ExerciseError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"analyze: error: {msg}", file=sys.stderr)
        return 2
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.plot:
        from .plots import plot_analysis
        plot_analysis(report, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report.to_json()))
    else:
        print(_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

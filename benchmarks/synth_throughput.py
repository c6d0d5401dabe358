"""Throughput of the synthetic world: one ~30 s exercise segment (poses, HSMR noise, coaching
text, 224x160 video rendered and H.264-encoded) on ONE core.

    python -m benchmarks.synth_throughput [--repeats 5] [--size 224x160] [--exercise squat]

Threads are pinned to one core (BLAS/OpenMP env vars before numpy is imported, and the
process's CPU affinity, which also holds libx264's threads). Prints per-stage medians and, last,
`RESULT synth seconds_per_segment=<median>` (target <= 3 s).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from biocoach_jax.data.synth import feedback as F  # noqa: E402
from biocoach_jax.data.synth import hsmr_out  # noqa: E402
from biocoach_jax.data.synth.kinematics import FPS, dof_models, synthesize  # noqa: E402
from biocoach_jax.data.synth.subjects import sample_subject  # noqa: E402
from biocoach_jax.exercises import load_exercise  # noqa: E402


def one_segment(ex, rng, size, tmp: pathlib.Path) -> dict[str, float]:
    from biocoach_jax.data.synth.render import Appearance, Camera, body_points, render_frames
    from biocoach_jax.data.video import write_video
    t = {}
    t0 = time.perf_counter()
    subj = sample_subject(rng, "bench")
    track = synthesize(ex, subj, rng, active_s=28.0)
    lines = F.schedule(F.exercise_lines(ex, track, subj, rng, 0, FPS, dof_models(ex)), FPS)
    t["poses+text"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    est = hsmr_out.estimated_poses(track.poses, rng, FPS)
    hsmr_out.hsmr_frames(est, subj.betas, rng, size, FPS)
    t["hsmr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = subj.segment_lengths
    cam = Camera.sample(rng, points=body_points(track.poses[::8], seg), segment_lengths=seg, size=size)
    frames = render_frames(track.poses, seg, cam, Appearance.sample(rng), size=size)
    t["render"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_video(tmp / "seg.mp4", frames, FPS)
    t["encode"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    t["video_s"] = len(track.poses) / FPS
    t["lines"] = len(lines)
    return t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", default="224x160")
    p.add_argument("--exercise", default="squat")
    a = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    size = tuple(int(x) for x in a.size.split("x"))
    ex = load_exercise(a.exercise)
    rng = np.random.default_rng(0)
    runs = []
    with tempfile.TemporaryDirectory() as d:
        one_segment(ex, rng, size, pathlib.Path(d))   # warm-up (imports, body model)
        for _ in range(a.repeats):
            runs.append(one_segment(ex, rng, size, pathlib.Path(d)))
    for k in ("poses+text", "hsmr", "render", "encode", "total", "video_s"):
        print(f"{k:>11s}: median {statistics.median(r[k] for r in runs):.3f}"
              f" (min {min(r[k] for r in runs):.3f}, max {max(r[k] for r in runs):.3f})")
    print(f"RESULT synth seconds_per_segment={statistics.median(r['total'] for r in runs):.3f}")


if __name__ == "__main__":
    main()

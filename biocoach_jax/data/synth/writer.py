"""Write a synthetic split in the QEVD-FIT-COACH layout (see data/session.py for the layout).

    DIR/QEVD-FIT-COACH/ (train) or DIR/QEVD-FIT-COACH-Benchmark/ (benchmark)
      feedbacks_long_range_colloquial.json           the same lines, colloquial wording
      feedbacks_long_range.json                      written LAST (the index; anatomical wording)
      long_range_videos/<id>.mp4, <id>_timestamps.npy (int64 ns; QEVD clock = ns/1e9 + 8 h)
      HSMR_outputs/HSMR-<id>.npy                      HSMR format, estimation noise (hsmr_out.py)
      morphometrics/<id>.json                         height_m, mass_kg, chest_m, waist_m, hip_m
      ground_truth/<id>.json                          written last per session (see `_ground_truth`)
Determinism: session i of a split draws everything from SeedSequence([seed, split code, i])
(independent streams for the motion, the pose-estimate noise and the rendering), so the bytes do
not depend on --workers, on --no-video, or on which sessions were already on disk.
Resume: a session whose files all exist is not written again (it is re-simulated, which is
cheap, only to rebuild its index record); every file is written atomically.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from biocoach_jax.data import qevd
from biocoach_jax.io_utils import atomic_path, atomic_save_npy, atomic_write_text

from . import hsmr_out
from .kinematics import FPS
from .subjects import sample_subject
from .workout import Workout, make_workout

SPLIT_DIRS = {"train": qevd.TRAIN_DIR, "benchmark": qevd.BENCHMARK_DIR}
SPLIT_CODES = {"train": 0, "benchmark": 1}
BASE_CAPTURE_S = 1_650_000_000       # capture clock of session 0 (seconds since the epoch)
NS_PER_FRAME = 62_500_000            # 1/16 s, exact in integer nanoseconds
GENERATOR_VERSION = 2   # 2: counts / encouragement quote the pose; the colloquial index


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    out: pathlib.Path
    split: str = "train"
    sessions: int = 1
    seed: int = 0
    size: tuple[int, int] = (224, 160)    # (H, W)
    video: bool = True

    def __post_init__(self):
        if self.split not in SPLIT_DIRS:
            raise ValueError(f"unknown split {self.split!r}; expected one of {sorted(SPLIT_DIRS)}")
        if self.sessions < 1:
            raise ValueError(f"--sessions must be >= 1, got {self.sessions}")
        h, w = self.size
        if h < 16 or w < 16 or h % 2 or w % 2:
            raise ValueError(f"--size must be even and >= 16 (H.264 yuv420p), got {h}x{w}")

    @property
    def root(self) -> pathlib.Path:
        return pathlib.Path(self.out) / SPLIT_DIRS[self.split]


def session_id(index: int) -> str:
    return f"{index:04d}"


def session_paths(cfg: SynthConfig, sid: str) -> dict[str, pathlib.Path]:
    r = cfg.root
    paths = {"timestamps": r / "long_range_videos" / f"{sid}_timestamps.npy",
             "hsmr": r / "HSMR_outputs" / f"HSMR-{sid}.npy",
             "morph": r / "morphometrics" / f"{sid}.json",
             "gt": r / "ground_truth" / f"{sid}.json"}
    if cfg.video:
        paths["video"] = r / "long_range_videos" / f"{sid}.mp4"
    return paths


def _streams(cfg: SynthConfig, index: int):
    ss = np.random.SeedSequence([int(cfg.seed), SPLIT_CODES[cfg.split], int(index)])
    return [np.random.default_rng(s) for s in ss.spawn(3)]   # motion, estimate, render


def frame_times_ns(index: int, n: int) -> np.ndarray:
    return (BASE_CAPTURE_S + 3600 * int(index)) * 1_000_000_000 + NS_PER_FRAME * np.arange(n, dtype=np.int64)


def simulate(cfg: SynthConfig, index: int) -> Workout:
    rng, _, _ = _streams(cfg, index)
    subject = sample_subject(rng, f"{cfg.split}-{session_id(index)}")
    return make_workout(subject, rng)


def qevd_workout(w: Workout, sid: str, ns: np.ndarray, colloquial: bool = False) -> qevd.Workout:
    t = qevd.ns_to_qevd_seconds(ns)
    spans = [qevd.Span(a, b, text, float(t[a]), tr) for a, b, text, tr in w.spans(colloquial)]
    return qevd.Workout(sid, f"long_range_videos/{sid}.mp4",
                        f"long_range_videos/{sid}_timestamps.npy", w.num_frames, spans)


def _ground_truth(cfg: SynthConfig, index: int, w: Workout, ns: np.ndarray, hsmr_summary) -> dict:
    from biocoach_jax.exercises import load_exercise
    t = qevd.ns_to_qevd_seconds(ns)
    segments, flat = [], []
    for name, track, off, tr in zip(w.exercises, w.tracks, w.offsets, w.transitions):
        ex = load_exercise(name)
        errs = [dict(e.to_json(off, w.fps), exercise=name) for e in track.errors]
        flat += errs
        segments.append({
            "exercise": name, "transition_frame": tr.start, "start_frame": off,
            "end_frame": off + len(track.poses) - 1,
            "active_start_frame": off + track.active[0], "active_end_frame": off + track.active[1] - 1,
            "num_reps": len(track.reps), "reps": [r.to_json(off, w.fps) for r in track.reps],
            "key_values_deg": [{k: round(v, 3) for k, v in kv.items()} for kv in track.key_values],
            "injected_errors": errs, "key_joints": list(ex.key_joints),
            "targets": {k: v.to_json() for k, v in track.targets.items()}})
    return {
        "session_id": session_id(index), "split": cfg.split, "seed": cfg.seed,
        "generator_version": GENERATOR_VERSION, "fps": w.fps, "n_frames": w.num_frames,
        "clock_origin_qevd_s": float(t[0]), "subject": w.subject.to_json(),
        "measurements": w.subject.measurements, "exercises": w.exercises, "segments": segments,
        "injected_errors": flat,
        "feedbacks": [dict(ln.to_json(w.fps), time_qevd_s=float(t[ln.start]),
                           is_transition=ln.kind == "transition") for ln in w.lines],
        "hsmr": hsmr_summary}


def _save_object_npy(path: pathlib.Path, frames: list) -> None:
    arr = np.empty(len(frames), dtype=object)
    arr[:] = frames
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr, allow_pickle=True)


def _render(cfg: SynthConfig, w: Workout, rng, path: pathlib.Path) -> None:
    try:
        from .render import Appearance, Camera, body_points, render_frames
    except ImportError as e:
        raise RuntimeError(f"{path}: the synthetic renderer (data/synth/render.py) is not "
                           f"available ({e}); run with --no-video") from None
    from biocoach_jax.data.video import write_video
    seg = w.subject.segment_lengths
    # frame the whole clip (lying exercises included) from a view drawn per session
    cam = Camera.sample(rng, points=body_points(w.poses[::8], seg), segment_lengths=seg,
                        size=cfg.size)
    look = Appearance.sample(np.random.default_rng(w.subject.appearance_seed))
    write_video(path, render_frames(w.poses, seg, cam, look, size=cfg.size), w.fps)


def build_session(cfg: SynthConfig, index: int) -> tuple[tuple[dict, dict], bool]:
    """Simulate session `index` and write its files unless all exist. Returns (its QEVD records:
    anatomical and colloquial wording, whether anything was written)."""
    sid = session_id(index)
    _, est_rng, render_rng = _streams(cfg, index)
    w = simulate(cfg, index)
    ns = frame_times_ns(index, w.num_frames)
    record = tuple(qevd_workout(w, sid, ns, colloquial).to_record() for colloquial in (False, True))
    paths = session_paths(cfg, sid)
    if all(p.is_file() for p in paths.values()):
        return record, False
    atomic_save_npy(paths["timestamps"], ns)
    est = hsmr_out.estimated_poses(w.poses, est_rng, w.fps)
    frames, summary = hsmr_out.hsmr_frames(est, w.subject.betas, est_rng, cfg.size, w.fps)
    _save_object_npy(paths["hsmr"], frames)
    qevd.write_morphometrics(paths["morph"], w.subject.measurements)
    if cfg.video:
        _render(cfg, w, render_rng, paths["video"])
    gt = _ground_truth(cfg, index, w, ns, summary)
    atomic_write_text(paths["gt"], json.dumps(gt, indent=1))
    return record, True


def _job(args):
    return build_session(*args)


def write_split(cfg: SynthConfig, workers: int = 1, progress: bool = True) -> pathlib.Path:
    """Write (or finish) a split; returns the path of its feedbacks_long_range.json."""
    from tqdm import tqdm
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    cfg.root.mkdir(parents=True, exist_ok=True)
    jobs = [(cfg, i) for i in range(cfg.sessions)]
    bar = tqdm(total=len(jobs), desc=f"synth {cfg.split}", unit="session", disable=not progress)
    records = []
    if workers == 1:
        for j in jobs:
            records.append(_job(j)[0])
            bar.update()
    else:
        # spawn: workers start clean (no inherited jax/XLA threads from the parent)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for rec, _ in pool.map(_job, jobs, chunksize=1):
                records.append(rec)
                bar.update()
    bar.close()
    # the colloquial index first: the anatomical one, written last, marks a complete split
    atomic_write_text(cfg.root / qevd.COLLOQUIAL_RECORDS_FILE,
                      json.dumps([r[1] for r in records], indent=1))
    index = cfg.root / qevd.RECORDS_FILE
    atomic_write_text(index, json.dumps([r[0] for r in records], indent=1))
    return index

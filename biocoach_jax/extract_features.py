"""Cache the causal 3D CNN's features of every video of a QEVD-layout dataset.

    python -m biocoach_jax.extract_features --config configs/tiny.py --data DIR [--split train|benchmark|all]
        [--config.vision.checkpoint=CKPT_DIR] [--chunk_frames 256]

For each workout of the split(s) (as listed in `feedbacks_long_range.json`), writes into
`<split dir>/efficientnet_features/` (Stream-VLM's folder, which the session loaders search):
  <video>_features.npy    (T, C, h, w) float32; index 0 is an all-zero step (Stream-VLM's
                          layout), index j >= 1 is the CNN output completed by decoded frame 4j - 1
  <video>_timestamps.npy  (T,) float64 step times on the QEVD clock (seconds): index j >= 1 the
                          time of the frame that completes step j, index 0 the first frame's time
Video frames are decoded at config.data.fps and cropped/resized to the CNN's frame size. The CNN
runs on windows of `chunk_frames` new frames plus an overlap of past frames at least as long as
its temporal receptive field, so every kept step equals the whole-video forward while memory
stays at one window. Weights: config.vision.checkpoint (a directory written by
converters/sense_cnn.py) or, if it is "", a fresh seeded CNN (a warning says so: such features
are only good for tests and the synthetic demo).
Files whose two outputs already exist and read back consistently are skipped; outputs are
written atomically, so an interrupted run keeps every finished video and leaves no half file.
"""
from __future__ import annotations

import logging
import pathlib
import sys
from typing import Iterator

import numpy as np

from biocoach_jax.data import qevd
from biocoach_jax.data.session import FEATURES_DIR, SPLITS, split_dir
from biocoach_jax.data.video import VideoError, iter_video_frames
from biocoach_jax.io_utils import atomic_save_npy

log = logging.getLogger(__name__)


class ExtractionError(RuntimeError):
    """A video that could not be processed; names the video (finished files are kept)."""


def temporal_receptive_field(vision_config) -> int:
    """Frames of past context any output step can depend on: each temporally shifted block looks
    (taps - 1) input frames back, at the frame period its input runs at."""
    from biocoach_jax.models.vision_layers import TAPS

    period, frames = 1, 0
    for b in vision_config.blocks():
        if b.temporal_shift:
            frames += (TAPS - 1) * period
        period *= b.time_stride
    return frames


def load_vision_model(cfg):
    """The CNN of config.vision: converted checkpoint, or a fresh seeded one if it is ""."""
    from biocoach_jax.models.vision import create_vision_cnn, make_config

    ckpt = str(cfg.vision.get("checkpoint", "") or "")
    if ckpt:
        from converters.sense_cnn import load_converted
        return load_converted(ckpt)
    vc = make_config(width=float(cfg.vision.width), depth=float(cfg.vision.depth),
                     out_channels=int(cfg.vision.out_channels),
                     frame_size=tuple(int(x) for x in cfg.vision.frame_size))
    log.warning("config.vision.checkpoint is empty: features come from a RANDOMLY initialised "
                "CNN (seed %d); fine for tests and the synthetic demo, meaningless otherwise",
                int(cfg.get("seed", 0)))
    return create_vision_cnn(vc, seed=int(cfg.get("seed", 0)))


def chunked_steps(frames: Iterator[np.ndarray], forward, time_stride: int, overlap: int,
                  chunk: int) -> Iterator[np.ndarray]:
    """Run `forward` ((1, W, H, W, 3) -> (1, W // stride, h, w, C)) over windows of W = overlap +
    chunk frames; yields the steps (n, h, w, C) of the new frames of each window, in order.
    The first window has no history; the last one is padded by repeating its last frame (later
    frames never change earlier steps) and only steps of real frames are kept."""
    if overlap % time_stride or chunk % time_stride or chunk <= 0:
        raise ValueError(f"overlap {overlap} and chunk {chunk} must be multiples of {time_stride}")
    width = overlap + chunk
    buf: list[np.ndarray] = []
    hist = 0
    for f in frames:
        buf.append(f)
        if len(buf) == width:
            yield np.asarray(forward(np.stack(buf)[None]))[0, hist // time_stride:]
            buf = buf[len(buf) - overlap:] if overlap else []
            hist = len(buf)
    if len(buf) > hist:
        real = len(buf)
        buf += [buf[-1]] * (width - real)
        yield np.asarray(forward(np.stack(buf)[None]))[0, hist // time_stride: real // time_stride]


def outputs_for(split_root: pathlib.Path, video_file: str) -> tuple[pathlib.Path, pathlib.Path]:
    stem = video_file[:-4] if video_file.endswith(".mp4") else video_file
    base = split_root / FEATURES_DIR
    return base / f"{stem}_features.npy", base / f"{stem}_timestamps.npy"


def is_done(features_path: pathlib.Path, timestamps_path: pathlib.Path) -> bool:
    """Both outputs present, readable, and of one length."""
    try:
        f = np.load(features_path, mmap_mode="r", allow_pickle=False)
        t = np.load(timestamps_path, allow_pickle=False)
    except (OSError, ValueError):
        return False
    return f.ndim == 4 and t.ndim == 1 and len(f) == len(t) and len(f) >= 1


def extract_video(model, forward, video: pathlib.Path, frame_times: np.ndarray, fps: float,
                  chunk_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (T, C, h, w) with the zero step first, step times (T,)) of one video."""
    cfgv = model.config
    stride = cfgv.time_stride
    overlap = -(-temporal_receptive_field(cfgv) // stride) * stride
    chunk = max(stride, chunk_frames // stride * stride)
    src_index: list[int] = []

    def frames():
        for fr in iter_video_frames(video, fps, tuple(cfgv.frame_size)):
            if fr.source_index >= len(frame_times):
                raise VideoError(f"{video}: decoded frame {fr.source_index} but the timestamps "
                                 f"file lists {len(frame_times)} frames")
            src_index.append(fr.source_index)
            yield fr.image.astype(np.float32) / 255.0

    steps = list(chunked_steps(frames(), forward, stride, overlap, chunk))
    h, w = cfgv.feature_map_size
    body = (np.concatenate(steps) if steps else
            np.zeros((0, h, w, cfgv.out_channels), np.float32))       # (n, h, w, C)
    n = len(body)
    feats = np.zeros((n + 1, cfgv.out_channels, h, w), np.float32)
    feats[1:] = np.moveaxis(body, -1, 1)                                # Stream-VLM (C, h, w)
    idx = np.asarray(src_index, np.int64)
    times = np.empty(n + 1, np.float64)
    times[0] = frame_times[idx[0]] if len(idx) else frame_times[0]
    times[1:] = frame_times[idx[np.arange(n) * stride + stride - 1]]
    return feats, times


def extract_split(cfg, data_dir, split: str, *, model=None, chunk_frames: int = 256,
                  progress: bool = True) -> dict:
    """Extract every video of one split; returns counts {'done', 'skipped'}."""
    from tqdm import tqdm

    from biocoach_jax.models.vision import jit_forward

    root = split_dir(data_dir, split)
    workouts = qevd.read_feedbacks_json(root / qevd.RECORDS_FILE, check_files=True)
    model = model if model is not None else load_vision_model(cfg)
    forward = jit_forward(model)
    fps = float(cfg.data.get("fps", 16.0))
    counts = {"done": 0, "skipped": 0}
    for w in tqdm(workouts, desc=f"features {split}", unit="video", disable=not progress):
        f_path, t_path = outputs_for(root, w.video_file)
        if is_done(f_path, t_path):
            counts["skipped"] += 1
            continue
        video = root / w.video_file
        frame_times = qevd.read_video_timestamps(root / w.timestamps_file)
        try:
            feats, times = extract_video(model, forward, video, frame_times, fps, chunk_frames)
        except VideoError as e:
            raise ExtractionError(f"{video}: cannot decode ({e}); {counts['done']} video(s) "
                                  f"finished in this run are kept") from None
        atomic_save_npy(f_path, feats)
        atomic_save_npy(t_path, times)
        counts["done"] += 1
    return counts


def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "ml_collections config file", lock_config=True)
    flags.DEFINE_string("data", None, "QEVD-layout root (holds QEVD-FIT-COACH/ ...)")
    flags.DEFINE_enum("split", "all", ["train", "benchmark", "all"], "which split(s)")
    flags.DEFINE_integer("chunk_frames", 256, "new frames per CNN window")
    flags.mark_flags_as_required(["config", "data"])
    return flags.FLAGS


def main(argv) -> int:
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    splits = ["train", "benchmark"] if FLAGS.split == "all" else [FLAGS.split]
    model = load_vision_model(FLAGS.config)
    for split in splits:
        root = pathlib.Path(FLAGS.data) / SPLITS[split]
        if FLAGS.split == "all" and not (root / qevd.RECORDS_FILE).is_file():
            log.info("no %s split under %s, skipped", split, FLAGS.data)
            continue
        try:
            counts = extract_split(FLAGS.config, FLAGS.data, split, model=model,
                                   chunk_frames=FLAGS.chunk_frames)
        except (ExtractionError, qevd.QEVDFormatError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        log.info("%s: %d video(s) extracted, %d already done", split, counts["done"],
                 counts["skipped"])
    return 0


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))

"""Video I/O with PyAV: decode (rotation, fps resampling, Stream-VLM crop/resize) and write H.264.

Reading: frames come out RGB uint8 in display orientation (the container's display matrix,
`frame.rotation`, is applied, so phone videos filmed upright come out upright). With `fps` set,
the stream is resampled onto the grid t0 + k/fps (t0 = first frame's time, k = 0.. while the grid
time is <= the last frame's time) by taking, for each grid time, the decoded frame with the
nearest timestamp (ties: the earlier frame); the grid times are returned. With `size=(H, W)`
each frame is centre-cropped to the aspect H/W = 1.4 Stream-VLM's vision backbone expects and
resized bilinearly (PIL) to (H, W), e.g. (224, 160).
Writing: libx264, yuv420p (even sizes), fixed crf/preset, one thread, `+faststart` (index first, so a cut
file fails loudly instead of silently losing its index). Identical input gives identical bytes on
a quiet machine; under heavy CPU contention libx264 was seen to differ by a few bytes (decoded
pixels agree to well under one grey level on average).
"""
from __future__ import annotations

import pathlib
from fractions import Fraction
from typing import Iterator, NamedTuple

import numpy as np

from biocoach_jax.io_utils import atomic_path, atomic_save_npy

CROP_ASPECT = 1.4  # H / W
STREAM_VLM_SIZE = (224, 160)  # (H, W)


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


class DecodedFrame(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8 RGB, display orientation
    time_s: float  # grid time when resampling, else the frame's own presentation time
    source_index: int  # index of the decoded frame it came from (row of a per-frame .npy)


# ---- per-frame helpers -------------------------------------------------------------------------
def rotate_to_display(image: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Apply a display-matrix rotation (counter-clockwise degrees, as `frame.rotation`)."""
    k = int(round(rotation_deg / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def centre_crop_aspect(image: np.ndarray, aspect: float = CROP_ASPECT) -> np.ndarray:
    """Largest centred crop with height / width == aspect."""
    h, w = image.shape[:2]
    if h > aspect * w:
        new_h = max(1, int(round(w * aspect)))
        top = (h - new_h) // 2
        return image[top:top + new_h]
    new_w = max(1, int(round(h / aspect)))
    left = (w - new_w) // 2
    return image[:, left:left + new_w]


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def _prepare(image: np.ndarray, size) -> np.ndarray:
    return image if size is None else resize_rgb(centre_crop_aspect(image), size)


# ---- reading -----------------------------------------------------------------------------------
def _open(path: pathlib.Path):
    import av

    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, EOFError) as e:
        raise VideoError(f"{path}: cannot open as a video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream (truncated or not a video file)")
    return container


def _decoded(path: pathlib.Path) -> Iterator[tuple[np.ndarray, float]]:
    """Every frame in presentation order, rotated, with its time; errors name the frame."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        n, last_t = 0, -np.inf
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else n / rate
                if t <= last_t:
                    raise VideoError(f"{path}: frame {n} time {t:.6f}s does not increase")
                image = rotate_to_display(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
                yield image, t
                n, last_t = n + 1, t
        except (av.FFmpegError, EOFError) as e:
            raise VideoError(f"{path}: decoding failed after {n} frames ({e})") from None
        if n == 0:
            raise VideoError(f"{path}: no decodable frames (empty video)")
        if stream.frames and n < stream.frames:
            raise VideoError(f"{path}: stream ends after {n} of {stream.frames} frames "
                             "(truncated file?)")
    finally:
        container.close()


def iter_video_frames(path, fps: float | None = 16.0,
                      size: tuple[int, int] | None = None) -> Iterator[DecodedFrame]:
    """Stream frames in order (see module doc); memory stays at two decoded frames."""
    path = pathlib.Path(path)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if fps is None:
        for i, (image, t) in enumerate(_decoded(path)):
            yield DecodedFrame(_prepare(image, size), t, i)
        return
    prev = None  # (image, t, index) of the last decoded frame
    k, t0 = 0, None
    for i, (image, t) in enumerate(_decoded(path)):
        if t0 is None:
            t0 = t
        # resolve every grid time up to this frame: the nearest of the previous frame and this one
        while (g := t0 + k / fps) <= t + 1e-9:
            if prev is not None and g - prev[1] <= t - g:
                yield DecodedFrame(_prepare(prev[0], size), g, prev[2])
            else:
                yield DecodedFrame(_prepare(image, size), g, i)
            k += 1
        prev = (image, t, i)


def read_video(path, fps: float | None = 16.0, size: tuple[int, int] | None = None,
               *, return_indices: bool = False):
    """Decode a whole video: (frames (T, H, W, 3) uint8 RGB, times (T,) float64 seconds)
    [, source frame indices (T,) int]."""
    frames, times, idx = [], [], []
    for f in iter_video_frames(path, fps, size):
        frames.append(f.image)
        times.append(f.time_s)
        idx.append(f.source_index)
    out = (np.stack(frames), np.asarray(times, dtype=np.float64))
    return out + (np.asarray(idx, dtype=np.int64),) if return_indices else out


def video_info(path) -> dict:
    """Container facts without decoding: frames declared, rate, coded size, rotation."""
    path = pathlib.Path(path)
    container = _open(path)
    try:
        s = container.streams.video[0]
        return {"n_frames": int(s.frames), "fps": float(s.average_rate or 0),
                "width": s.codec_context.width, "height": s.codec_context.height}
    finally:
        container.close()


# ---- writing -----------------------------------------------------------------------------------
def write_video(path, frames: np.ndarray, fps: float, *, crf: int = 18,
                rotation_deg: int = 0) -> None:
    """Write RGB uint8 frames (T, H, W, 3) as H.264 mp4, atomically. `rotation_deg` stores a
    display rotation (counter-clockwise, as read back by `frame.rotation`), like a phone does."""
    import av

    path = pathlib.Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VideoError(f"{path}: expected uint8 frames (T>0, H, W, 3), got "
                         f"{frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise VideoError(f"{path}: yuv420p needs even sizes, got H={h} W={w}")
    if not fps > 0:
        raise VideoError(f"{path}: fps must be positive, got {fps}")
    with atomic_path(path, suffix=".mp4") as tmp:
        container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            # one encoder thread, set both on the codec context and as an x264 option: with
            # automatic (frame/slice) threading the bitstream depends on scheduling, so the
            # same frames could give different bytes from run to run
            stream.options = {"crf": str(int(crf)), "preset": "medium", "threads": "1"}
            stream.thread_count = 1
            stream.codec_context.thread_count = 1
            if rotation_deg:
                stream.set_display_rotation(rotation_deg)
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()


def write_timestamps_ns(path, t_seconds, *, offset_s: float = 0.0) -> None:
    """Per-frame times as an int64 nanosecond `.npy` (the QEVD layout; QEVD's own clock adds
    8 h, see `qevd.write_video_timestamps`)."""
    t = np.asarray(t_seconds, dtype=np.float64) - offset_s
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise ValueError(f"{path}: timestamps must be a finite 1-D array")
    atomic_save_npy(path, np.round(t * 1e9).astype(np.int64))

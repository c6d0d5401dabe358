"""What the CLI and `evaluate` feed a coach: event streams of a segment / files, and the coach.

Segment clock: seconds after the segment start (the feedback times of the ground truth use the
same clock), so a segment's video frames with start < t <= end are shifted by the start.
"""
from __future__ import annotations

import pathlib

import numpy as np

from biocoach_jax.coaching.stream import Event, hsmr_events, merge_events, pose_events, video_events


def segment_events(seg, *, with_video: bool, size=None, cached_features: bool = False) -> "iter[Event]":
    """Events of one `data.session.SegmentSample`: poses and, optionally, its video frames
    (with_video) or the cached CNN features of its steps (cached_features, instead of frames)."""
    sources = []
    if seg.poses is not None:
        sources.append(pose_events(seg.poses.poses, seg.poses.timestamps, str(seg.poses.source)))
    if with_video and cached_features:
        raise ValueError("segment_events: give video frames or cached features, not both")
    if with_video:
        sources.append(_shifted(video_events(seg.video_path, size=size), seg.start_s, seg.end_s))
    if cached_features:
        sources.append(feature_events(seg))
    if not sources:
        raise ValueError(f"segment {seg.session_id}/{seg.exercise}: no poses (HSMR_outputs) and "
                         "no video requested: nothing to coach from")
    return merge_events(*sources)


def feature_events(seg, step_s: float = 0.25) -> "iter[Event]":
    """The segment's steps 1.. from its `<video>_features.npy` (the rows training reads, see
    `data.pipeline.segment_rows`), step k at segment time k * step_s, when the coach uses it.
    These features come from the CNN run over the whole video, as in training; streaming the
    frames instead restarts the CNN at the segment start."""
    from biocoach_jax.data.pipeline import checked_step_times, feature_tokens, segment_rows

    if seg.features_path is None:
        raise ValueError(f"segment {seg.session_id}/{seg.exercise}: {seg.video_path} has no cached "
                         "features (<video>_features.npy); run biocoach_jax.extract_features")
    # checked now, not when the stream reaches them: a bad file is not a media stream breaking
    rows = segment_rows(checked_step_times(seg.video_path, seg.features_path), seg.start_s, seg.end_s)
    maps = np.load(seg.features_path, mmap_mode="r")
    return (Event(k * step_s, "feature", feature_tokens(maps[row:row + 1])[0], k)
            for k, row in enumerate(rows, 1))


def _shifted(events, start_s: float, end_s: float):
    for e in events:
        if e.time_s > end_s:
            return
        if e.time_s > start_s:
            yield e._replace(time_s=e.time_s - start_s)


def file_events(video=None, poses=None, *, fps: float = 16.0, size=None):
    """Events of `--video V.mp4 --poses HSMR.npy`. Pose times come from the video's
    `<stem>_timestamps.npy` (nanoseconds, QEVD layout) when it lies beside the video, else k/fps."""
    sources = []
    if poses is not None:
        times = None
        if video is not None:
            ts = pathlib.Path(video).with_name(pathlib.Path(video).stem + "_timestamps.npy")
            if ts.is_file():
                from biocoach_jax.io_utils import safe_load_npy
                ns = np.asarray(safe_load_npy(ts), np.float64)
                times = (ns - ns[0]) * 1e-9
        sources.append(hsmr_events(poses, times, fps=fps))
    if video is not None:
        sources.append(video_events(video, fps=fps, size=size))
    if not sources:
        raise ValueError("give --video and/or --poses (or --session)")
    return merge_events(*sources)


def make_coach(exercise_name: str, *, loaded=None, measurements=None, present=None):
    """The LLM coach of `loaded` (a `loading.LoadedCoach`), or the rule-based coach (None)."""
    from biocoach_jax.data.sequence import library_exercise

    ex = library_exercise(exercise_name)
    if loaded is None:
        from biocoach_jax.coaching.rule_based import RuleBasedCoach
        if ex is None:
            raise ValueError(f"exercise {exercise_name!r} is not in the exercise library: the "
                             "rule-based coach has no cues for it")
        return RuleBasedCoach(ex, present=present)
    from biocoach_jax.coaching.llm_coach import LLMCoach, cnn_features

    data = loaded.cfg.get("data", {})
    kw = dict(window_s=float(data.get("window_s", 3.0)), fps=float(data.get("fps", 16.0)),
              use_motion_context=bool(data.get("use_motion_context", True)),
              motion_policy=str(data.get("motion_placement", "before_answer")))   # as trained
    if data.get("max_steps"):
        kw["max_steps"] = int(data.get("max_steps")) * 4    # long streams: a generous buffer
    features_fn = None if loaded.vision is None else cnn_features(loaded.vision)
    spatial = 35 if loaded.vision is None else int(np.prod(loaded.vision.config.feature_map_size))
    return LLMCoach(loaded.model, loaded.tokenizer, exercise_name, exercise=ex,
                    features_fn=features_fn, measurements=measurements, present=present,
                    spatial=spatial, **kw)


def frame_size(loaded):
    """(H, W) the CNN wants, or None (frames are then decoded but not resized)."""
    return None if loaded is None or loaded.vision is None else tuple(loaded.vision.config.frame_size)

"""grain pipelines: the training iterator and the evaluation batches (Batch rows = episodes).

    EpisodeSource (RandomAccessDataSource: one single-exercise segment per index, its tokenised
                   stream cached)
      -> [process_index::process_count]   per-process shard (disjoint, covering the split)
      -> shuffle(seed) -> repeat()         a new permutation every epoch, same for a given seed
      -> map(LoadFeatures)                 features of the segment from `<video>_features.npy`
      -> batch(batch_size, collate)        static shapes (B, L, S, N, C, M), see data/batch.py
      -> to_iter_dataset (thread prefetch) -> mp_prefetch(workers)   when data.workers > 0

The tokenised text of every segment (prompt, feedbacks, C_motion texts, morph tokens) is built
once, in the calling process, when the source is made (one batched biomech-kernel call per
segment); worker processes only read features and pad. The iterator is checkpointable:
`it.get_state()` / `it.set_state(state)` (the trainer saves it with orbax through
`grain.checkpoint.CheckpointSave/CheckpointRestore`). Workers are separate processes: scripts
that use data.workers > 0 must guard their entry point with `if __name__ == "__main__":`.

Features: `<split>/efficientnet_features/<video>_features.npy` (T, C, h, w) with step 0 = the
all-zero step, and `<video>_timestamps.npy` beside it (T,) step times on the QEVD clock (seconds,
or int nanoseconds), as written by `python -m biocoach_jax.extract_features`. A segment gets the
file's steps k >= 1 with segment start < time <= segment end (FitCoach's cut), after a fresh
all-zero step 0.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Iterator

import grain
import numpy as np

from biocoach_jax.data import qevd
from biocoach_jax.data.batch import Batch
from biocoach_jax.data.sequence import Episode, attach_features, build_episode_tokens, collate
from biocoach_jax.data.session import load_split, session_segments
from biocoach_jax.io_utils import safe_load_npy
from biocoach_jax.tokenizer import Tokenizer


class FeatureFileError(ValueError):
    """Missing or inconsistent cached features; the message names the video and the file."""


@dataclasses.dataclass(frozen=True)
class _Item:
    episode: Episode            # tokens etc., no features
    features_path: str
    rows: np.ndarray            # rows of the features file for steps 1.. of the episode


def feature_step_times(features_path: pathlib.Path) -> np.ndarray:
    """Step times (QEVD-clock seconds) of a features file, from its `_timestamps.npy`."""
    ts_path = features_path.with_name(features_path.name.replace("_features.npy", "_timestamps.npy"))
    if not ts_path.is_file():
        raise FeatureFileError(f"{ts_path}: step timestamps of {features_path.name} not found")
    ts = safe_load_npy(ts_path)
    if not isinstance(ts, np.ndarray) or ts.ndim != 1 or ts.dtype.kind not in "iuf":
        raise FeatureFileError(f"{ts_path}: expected a 1-D numeric array of step times")
    return qevd.ns_to_qevd_seconds(ts) if ts.dtype.kind in "iu" else ts.astype(np.float64)


def checked_step_times(video_path: pathlib.Path, features_path: pathlib.Path) -> np.ndarray:
    """Step times of the features file, after checking they describe its rows."""
    ts = feature_step_times(features_path)
    shape = np.load(features_path, mmap_mode="r").shape
    if len(shape) != 4 or shape[0] != len(ts):
        raise FeatureFileError(
            f"{features_path}: features of video {pathlib.Path(video_path).name} have shape "
            f"{shape}; expected (T, C, h, w) with T = {len(ts)} step timestamps")
    return ts


def segment_rows(step_times: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Rows of a features file for steps 1.. of a segment: start < time <= end (FitCoach's
    cut), never the file's own step 0 (the zero step)."""
    rows = np.flatnonzero((step_times > start_s) & (step_times <= end_s))
    return rows[rows >= 1]


def feature_tokens(steps: np.ndarray) -> np.ndarray:
    """(n, C, h, w) feature maps -> (n, h*w, C) tokens, row-major over (h, w)."""
    n, c = steps.shape[:2]
    return np.moveaxis(np.asarray(steps, np.float32), 1, -1).reshape(n, -1, c)


def _items(cfg, tokenizer: Tokenizer, split: str) -> list[_Item]:
    data_dir = cfg.data.data_dir
    items = []
    records = cfg.data.get("records_file", qevd.RECORDS_FILE)   # which wording the coach learns
    for session in load_split(data_dir, split, records_file=records):
        fpath = session.features_path
        if fpath is None:
            raise FeatureFileError(
                f"{session.video_path}: no cached features (<video>_features.npy); run "
                f"`python -m biocoach_jax.extract_features --config ... --data {data_dir}` first")
        ts = checked_step_times(session.video_path, fpath)
        for seg, sample in zip(session.segments, session_segments(session)):
            rows = segment_rows(ts, seg.start_s, seg.end_s)
            ep = build_episode_tokens(sample, 1 + len(rows), tokenizer, cfg,
                                      episode_index=len(items))
            items.append(_Item(ep, str(fpath), rows))
    if not items:
        raise ValueError(f"{data_dir}: split {split!r} has no single-exercise segment")
    return items


class EpisodeSource:
    """grain RandomAccessDataSource: index -> the segment's cached `Episode` (no features)."""

    def __init__(self, items: list[_Item]):
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> _Item:
        return self._items[int(index)]

    @property
    def episodes(self) -> list[Episode]:
        return [it.episode for it in self._items]


def load_features(item: _Item) -> Episode:
    """The item's episode with its feature rows (zero step + the segment's steps) attached."""
    f = np.load(item.features_path, mmap_mode="r")
    tokens = feature_tokens(f[item.rows])                        # (n, h*w, C)
    feats = np.concatenate([np.zeros((1,) + tokens.shape[1:], np.float32), tokens])
    return attach_features(item.episode, feats)


@dataclasses.dataclass(frozen=True)
class _Collate:
    """Picklable batch_fn (worker processes get a copy)."""
    shapes: dict
    pad_id: int
    batch_size: int

    def __call__(self, episodes) -> Batch:
        return collate(list(episodes), self.shapes, batch_size=self.batch_size, pad_id=self.pad_id)


def _collate_fn(cfg, tokenizer: Tokenizer) -> _Collate:
    d = cfg.data
    shapes = {"data": {"max_tokens": int(d.max_tokens), "max_steps": int(d.max_steps),
                       "max_morph_tokens": int(d.max_morph_tokens)}}
    return _Collate(shapes, int(tokenizer.pad_id), int(d.batch_size))


def make_source(cfg, tokenizer: Tokenizer, split: str) -> EpisodeSource:
    return EpisodeSource(_items(cfg, tokenizer, split))


def train_dataset(source: EpisodeSource, cfg, tokenizer: Tokenizer, process_index: int,
                  process_count: int) -> grain.IterDataset:
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    ds = grain.MapDataset.source(source)[process_index::process_count]
    if len(ds) == 0:
        raise ValueError(f"process {process_index} of {process_count} gets no episode "
                         f"({len(source)} in the split)")
    ds = ds.shuffle(seed=int(cfg.seed)).repeat(None).map(load_features)
    ds = ds.batch(int(cfg.data.batch_size), drop_remainder=True, batch_fn=_collate_fn(cfg, tokenizer))
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))
    workers = int(cfg.data.get("workers", 0))
    if workers > 0:
        from absl import flags
        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return it


def make_train_iterator(cfg, tokenizer: Tokenizer, process_index: int | None = None,
                        process_count: int | None = None, *, source: EpisodeSource | None = None):
    """Infinite, checkpointable iterator of `Batch` for this process's shard of data.split."""
    if process_index is None or process_count is None:
        import jax
        process_index, process_count = jax.process_index(), jax.process_count()
    source = source or make_source(cfg, tokenizer, cfg.data.split)
    return iter(train_dataset(source, cfg, tokenizer, int(process_index), int(process_count)))


class EvalBatches:
    """Deterministic batches over a split (no shuffle, no repeat); the last batch is filled
    with padding rows (episode_index = -1). `episodes[i]` is the episode with index i (its
    ground-truth feedbacks and contexts); iterating reads features lazily."""

    def __init__(self, source: EpisodeSource, collate_fn: _Collate):
        self.source, self._collate = source, collate_fn
        self.episodes = source.episodes

    def __len__(self) -> int:
        return -(-len(self.source) // self._collate.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        B = self._collate.batch_size
        for a in range(0, len(self.source), B):
            items = [self.source[i] for i in range(a, min(a + B, len(self.source)))]
            yield self._collate([load_features(it) for it in items])


def make_eval_batches(cfg, tokenizer: Tokenizer, split: str | None = None) -> EvalBatches:
    split = split or cfg.data.get("eval_split", "benchmark")
    return EvalBatches(make_source(cfg, tokenizer, split), _collate_fn(cfg, tokenizer))

"""The demo's text corpora, built from the synthetic train split (no model involved).

* `tokenizer_lines`: every kind of text the coach will read or write - the feedback lines
  (transitions included, `split_texts`), the system prompt of each exercise, C_morph of each subject and
  C_motion texts sampled every second of each segment (the DoFs of the exercise's key joints
  and all DoFs, so the no-DoF-selection ablation's longer contexts are covered too).
* `lm_documents`: the documents the tiny LLaMA is pretrained on. Besides the plain feedback
  lines, each segment gives its coaching stream as text - the system prompt, then every
  feedback as `<answer> ... <answer/>` between the `<vision>` steps (`data.sequence`'s stream,
  so the very same texts and timing), once with the C_motion segments that precede the
  feedbacks (`<motion> ... <motion/>`) and once without. The LM never sees features: it learns
  the stream's grammar and base rates, the later stages learn when to speak. This is the tiny
  stand-in for a general LLM's ability to read evidence in its context and quote it; both the
  Stream-VLM and the BioCoach stages then start from the same frozen LM.
"""
from __future__ import annotations

import math

import numpy as np

from biocoach_jax import context, skel
from biocoach_jax.data.motion_context import motion_contexts
from biocoach_jax.data.sequence import build_episode_tokens, library_exercise, system_prompt

CONTEXT_EVERY_S = 1.0


def _morph_text(measurements) -> str:
    known = {k for k, _, _ in context.MORPH_FIELDS}
    return context.render_morph({k: v for k, v in (measurements or {}).items() if k in known})


def _grid(poses, fps: float) -> np.ndarray:
    """Poses at k / fps (zero-order hold: the last frame at or before each grid time)."""
    t = np.asarray(poses.timestamps, np.float64)
    g = np.arange(int(math.floor(t[-1] * fps + 1e-9)) + 1) / fps
    idx = np.clip(np.searchsorted(t, g + 1e-9, side="right") - 1, 0, len(t) - 1)
    return np.asarray(poses.poses, np.float64)[idx]


def _segment_contexts(seg, window_s: float, fps: float) -> list[str]:
    ex = library_exercise(seg.exercise)
    if ex is None or seg.poses is None or len(seg.poses.timestamps) == 0:
        return []
    grid = _grid(seg.poses, fps)
    times = list(np.arange(window_s, len(grid) / fps, CONTEXT_EVERY_S))
    if not times:
        return []
    return [text for mask in (skel.dof_mask(ex.key_joints), np.ones(skel.NUM_DOFS, bool))
            for text in motion_contexts(grid, seg.poses.present, ex, times, window_s=window_s,
                                        fps=fps, dof_mask=mask)]


def split_texts(data_dir, split: str = "train") -> list[str]:
    """Every feedback line of a split's workouts, transitions between exercises included
    (those fall outside the single-exercise segments)."""
    from biocoach_jax.data.session import load_split
    return [text for s in load_split(data_dir, split, load_poses=False) for _, text, _ in s.feedbacks]


def tokenizer_lines(segments, feedback_texts=(), *, window_s: float = 3.0,
                    fps: float = 16.0) -> list[str]:
    """Distinct lines of every text kind of the split (order fixed: deterministic training)."""
    lines: dict[str, None] = dict.fromkeys(feedback_texts)
    for seg in segments:
        for _, text in seg.feedbacks:
            lines[text] = None
        lines[system_prompt(seg.exercise)] = None
        lines[_morph_text(seg.measurements)] = None
        for text in _segment_contexts(seg, window_s, fps):
            lines[text] = None
    return [ln for ln in lines if ln]


def _stream_text(seg, tok, cfg) -> str:
    """The segment's training token stream as text (BOS left out: the LM task adds it)."""
    duration = float(seg.end_s - seg.start_s)
    ep = build_episode_tokens(seg, int(duration * float(cfg.data.step_hz)) + 1, tok, cfg)
    return tok.decode([int(i) for i in ep.tokens[1:]]).strip()


def lm_documents(segments, tok, cfg, feedback_texts=()) -> list[str]:
    """Pretraining documents (one per line): feedback lines (`feedback_texts`, e.g.
    `split_texts`) + each segment's stream with and without C_motion."""
    with_ctx, without = cfg.copy_and_resolve_references(), cfg.copy_and_resolve_references()
    with_ctx.data.use_motion_context, with_ctx.data.context_dofs = True, "labels"
    without.data.use_motion_context = False
    docs = list(feedback_texts)
    for seg in segments:
        if seg.feedbacks:
            docs.append(_stream_text(seg, tok, with_ctx))
            docs.append(_stream_text(seg, tok, without))
    return [d for d in docs if d]

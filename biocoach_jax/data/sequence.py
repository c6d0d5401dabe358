"""The streaming token sequence of one single-exercise episode (Stream-VLM's format + BioCoach's
motion context), and its padding into `Batch` rows.

Layout (step k = the k-th 0.25 s feature step of the segment; step 0 = Stream-VLM's prepended
all-zero step; a feedback at time t, seconds after the segment start, belongs to step
floor(t * step_hz)):

    <s> SYSTEM PROMPT
    <vision>                                              step 0
    <vision>                                              step 1
    ...
    <vision>                                              step k  (the step containing t)
    [<motion> C_motion at time k / step_hz <motion/>]     only with use_motion_context, and
                                                          only when the text differs from the
                                                          last one sent (DESIGN §4)
    <answer> feedback text <answer/>
    <vision>                                              step k + 1 + floor(n * step_hz / 12)
    ...                                                   (one <vision> per remaining step)

SYSTEM PROMPT is REFERENCE §2's single-exercise text with the segment's exercise name.
Speaking time (Stream-VLM): after a feedback of n text tokens (not counting <answer>/<answer/>)
the coach cannot watch for n / 12 s, so the next floor(n * step_hz / 12) steps get NO <vision>
token: the step pointer jumps over them. A feedback whose own step was jumped over (it came
while the previous one was being spoken) is placed right after the next <vision> emitted
(delayed; so two feedbacks always have at least one <vision> between them), and if steps run
out, after the last one. Several feedbacks are placed in time order.
C_motion for a feedback is computed at the time of the <vision> step it follows (k / step_hz),
from the poses of the causal window [that time - window_s, that time] only.
`data.motion_placement` says where a context goes: "before_answer" (above; the model decides
to speak without it, from vision and the stream so far) or "on_change": right after EVERY
<vision> whose step's C_motion differs from the last one sent (a rep passed its keyframe, a
violation entered or left the window), so the decision after it (<answer> or the next
<vision>) reads the kinematic evidence, as a coach who notices a fault speaks about it.

Vision alignment: the episode keeps only the feature steps that got a <vision> token, in order
(`step_index` lists the segment step of each), so the k-th <vision> of the token sequence
attends to row k of `Episode.features` (`vision_step` = k), exactly as the `Batch` contract says;
skipped steps never reach the model. Row 0 is always the zero step.

Loss weights (position i predicts tokens[i + 1]): alpha where that target is a <vision>, 1 where
it is a feedback token, <answer> or <answer/>, 1 where it is the <motion> that opens a context
before an answer (before_answer: that token is the decision to speak, the coach predicts it
after a <vision> and answers; on_change contexts are input, weight 0), 0 where it is prompt or
the context itself (its text and <motion/>) and on the last position. C_morph
(`context.render_morph` of the measurements) is tokenised without BOS into `morph_tokens` when
use_morphology. Joint labels: the library exercise's key joints (none, masked, for exercises
not in the library).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
from typing import Sequence

import numpy as np

from biocoach_jax import context, skel
from biocoach_jax.data.batch import Batch, empty_batch
from biocoach_jax.data.motion_context import motion_contexts
from biocoach_jax.exercises import Exercise, list_exercises, load_exercise
from biocoach_jax.tokenizer import SPECIAL_TOKENS, Tokenizer

log = logging.getLogger(__name__)

SPEECH_TOKENS_PER_S = 12.0  # Stream-VLM's INFERENCE_SPEED
SYSTEM_PROMPT = ("You are an expert fitness coaching AI who coaches users as they exercise. "
                 "You assess their performance, count repetitions, and proactively provide "
                 "feedback. The user should be doing {exercise}.")
# Token roles, used for the loss weights (by role, never by id: a feedback may reuse prompt ids).
PROMPT, VISION, CONTEXT, FEEDBACK = 0, 1, 2, 3
MOTION_PLACEMENTS = ("before_answer", "on_change")
_ALIASES = {"pushup": "push_up", "press_up": "push_up", "curl": "bicep_curl",
            "biceps_curl": "bicep_curl", "sit_stand": "sit_to_stand"}


@dataclasses.dataclass
class Episode:
    """One episode, unpadded. Arrays of length L0 (tokens) / S0 (steps) / M0 (morph)."""
    session_id: str
    exercise: str
    episode_index: int
    tokens: np.ndarray          # (L0,) int32
    roles: np.ndarray           # (L0,) int8 PROMPT / VISION / CONTEXT / FEEDBACK
    loss_weights: np.ndarray    # (L0,) float32, weight of predicting tokens[i + 1]
    vision_mask: np.ndarray     # (L0,) bool
    vision_step: np.ndarray     # (L0,) int32: k at the k-th <vision>, 0 elsewhere
    step_index: np.ndarray      # (S0,) int32 segment step of each feature row (0 = zero step)
    morph_tokens: np.ndarray    # (M0,) int32
    joint_labels: np.ndarray    # (24,) float32
    has_joint_labels: bool
    feedbacks: list[tuple[float, str]]   # ground truth (seconds after the segment start, text)
    contexts: list[tuple[float, str]]    # C_motion segments sent (time, text)
    features: np.ndarray | None = None   # (S0, N, C) float32 once attached

    @property
    def num_steps(self) -> int:
        return len(self.step_index)


def _data_field(cfg, name: str, default):
    if isinstance(cfg, dict):
        data = cfg.get("data", cfg)
    else:
        data = cfg.data if hasattr(cfg, "data") else cfg
    return data.get(name, default) if hasattr(data, "get") else getattr(data, name, default)


def library_exercise(name: str) -> Exercise | None:
    """The library exercise a QEVD exercise name refers to ('squats' -> squat), or None."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    known = set(list_exercises())
    cands = [key]
    for suffix in ("s", "es"):  # plural words: 'squats', 'push_ups', 'shoulder_presses'
        cands.append("_".join(w[:-len(suffix)] if w.endswith(suffix) and len(w) > len(suffix) + 1
                              else w for w in key.split("_")))
    for cand in cands + [_ALIASES.get(c) for c in cands]:
        if cand in known:
            return load_exercise(cand)
    return None


def system_prompt(exercise_name: str) -> str:
    return SYSTEM_PROMPT.format(exercise=exercise_name)


def _encode_text(tokenizer: Tokenizer, text: str, where: str) -> list[int]:
    for tok in SPECIAL_TOKENS:
        if tok in text:
            raise ValueError(f"{where}: text contains the stream token {tok!r}: {text!r}")
    return tokenizer.encode(text, bos=False)


def plan_stream(feedback_steps: Sequence[int], feedback_lengths: Sequence[int], num_steps: int,
                step_hz: float = 4.0, speech_rate: float = SPEECH_TOKENS_PER_S):
    """Events of the stream: ('vision', step) and ('answer', feedback index, step it follows).

    feedback_steps must be in time order; see the module doc for the rules."""
    if num_steps < 1:
        raise ValueError(f"plan_stream: need at least one step (the zero step), got {num_steps}")
    events, nxt = [], 0
    for i, (k, n) in enumerate(zip(feedback_steps, feedback_lengths)):
        # a feedback whose step was skipped (it came while the previous one was spoken) waits
        # for the next step that gets a <vision>
        k = min(max(int(k), nxt), num_steps - 1)
        while nxt <= k:
            events.append(("vision", nxt))
            nxt += 1
        last = [e for e in events if e[0] == "vision"][-1][1]
        events.append(("answer", i, last))
        nxt += int(math.floor(n * step_hz / speech_rate + 1e-9))
    while nxt < num_steps:
        events.append(("vision", nxt))
        nxt += 1
    return events


def grid_poses(poses, fps: float) -> np.ndarray:
    """A recording's poses on the grid k / fps up to its last frame, zero-order hold: each grid
    time takes the last pose frame at or before it (the first frame before it exists), never a
    later one."""
    t = np.asarray(poses.timestamps, np.float64)
    g = np.arange(int(math.floor(t[-1] * fps + 1e-9)) + 1) / fps
    idx = np.clip(np.searchsorted(t, g + 1e-9, side="right") - 1, 0, len(t) - 1)
    return np.asarray(poses.poses, np.float64)[idx]


def segment_contexts(segment, times: Sequence[float], cfg) -> list[str | None]:
    """C_motion at each time (seconds after the segment start) as `cfg.data` asks for it (the
    DoFs of the exercise's labelled joints or all of them, tau, fps); None for every time when
    there is no context (motion context off, no poses, an exercise outside the library)."""
    times = [float(t) for t in times]
    ex = library_exercise(segment.exercise)
    if not times or ex is None or segment.poses is None or not _data_field(cfg, "use_motion_context", True):
        return [None] * len(times)
    fps = float(_data_field(cfg, "fps", 16.0))
    which = _data_field(cfg, "context_dofs", "labels")
    if which not in ("labels", "all"):
        raise ValueError(f"config data.context_dofs must be 'labels' or 'all', got {which!r}")
    mask = skel.dof_mask(ex.key_joints) if which == "labels" else np.ones(skel.NUM_DOFS, bool)
    # the whole recording (not just up to the last query): the texts are causal either way,
    # and one array per segment lets every caller share motion_contexts' memory
    grid = grid_poses(segment.poses, fps)
    return motion_contexts(grid, segment.poses.present, ex, times,
                           window_s=float(_data_field(cfg, "window_s", 3.0)), fps=fps, dof_mask=mask)


def build_episode_tokens(segment, num_steps: int, tokenizer: Tokenizer, cfg, *,
                         episode_index: int = -1) -> Episode:
    """Everything of the episode but its features (`num_steps` = feature steps incl. step 0)."""
    where = f"segment {segment.session_id}/{segment.exercise}@{segment.start_s:.2f}s"
    step_hz = float(_data_field(cfg, "step_hz", 4.0))
    alpha = float(_data_field(cfg, "alpha", 0.1))
    ex = library_exercise(segment.exercise)
    fbs = sorted(segment.feedbacks, key=lambda f: f[0])
    fb_ids = [_encode_text(tokenizer, text, where) for _, text in fbs]
    steps = [int(math.floor(t * step_hz + 1e-9)) for t, _ in fbs]
    events = plan_stream(steps, [len(x) for x in fb_ids], num_steps, step_hz)
    placement = _data_field(cfg, "motion_placement", "before_answer")
    if placement not in MOTION_PLACEMENTS:
        raise ValueError(f"config data.motion_placement must be one of {MOTION_PLACEMENTS}, "
                         f"got {placement!r}")
    # C_motion is computed at the time of the <vision> step it follows: every watched step
    # (on_change) or the step each feedback follows (before_answer); ev[-1] is that step
    at = [e for e in events if (e[0] == "vision") == (placement == "on_change")]
    ctx_of = dict(zip([e[1] for e in at],
                      segment_contexts(segment, [e[-1] / step_hz for e in at], cfg)))

    toks = [tokenizer.bos_id] + _encode_text(tokenizer, system_prompt(segment.exercise), where)
    roles = [PROMPT] * len(toks)
    vstep, step_index, sent, last_ctx = [0] * len(toks), [], [], None

    def put(ids, role):
        toks.extend(ids)
        roles.extend([role] * len(ids))
        vstep.extend([0] * len(ids))

    for ev in events:
        if ev[0] == "vision":
            put([tokenizer.vision_id], VISION)
            vstep[-1] = len(step_index)
            step_index.append(ev[1])
        if (ev[0] == "vision") == (placement == "on_change"):
            text = ctx_of[ev[1]]
            if text is not None and text != last_ctx:
                put([tokenizer.motion_id] + _encode_text(tokenizer, text, where)
                    + [tokenizer.motion_end_id], CONTEXT)
                sent.append((ev[-1] / step_hz, text))
                last_ctx = text
        if ev[0] == "answer":
            put([tokenizer.answer_id] + fb_ids[ev[1]] + [tokenizer.answer_end_id], FEEDBACK)

    roles_a = np.asarray(roles, np.int8)
    weights = np.zeros(len(toks), np.float32)
    nxt = roles_a[1:]
    speak = nxt == FEEDBACK
    if placement == "before_answer":   # the <motion> that opens a context is the decision
        speak |= (nxt == CONTEXT) & (np.asarray(toks[1:]) == tokenizer.motion_id)
    weights[:-1] = np.where(nxt == VISION, alpha, np.where(speak, 1.0, 0.0))
    morph: list[int] = []
    if _data_field(cfg, "use_morphology", True) and segment.measurements:
        known = {k for k, _, _ in context.MORPH_FIELDS}
        morph = _encode_text(tokenizer, context.render_morph(
            {k: v for k, v in segment.measurements.items() if k in known}), where)
    labels = np.zeros(skel.NUM_JOINTS, np.float32)
    if ex is not None:
        labels[[skel.joint_index(j) for j in ex.key_joints]] = 1.0
    return Episode(
        session_id=segment.session_id, exercise=segment.exercise, episode_index=int(episode_index),
        tokens=np.asarray(toks, np.int32), roles=roles_a, loss_weights=weights,
        vision_mask=roles_a == VISION, vision_step=np.asarray(vstep, np.int32),
        step_index=np.asarray(step_index, np.int32), morph_tokens=np.asarray(morph, np.int32),
        joint_labels=labels, has_joint_labels=ex is not None, feedbacks=list(fbs), contexts=sent)


def attach_features(ep: Episode, features) -> Episode:
    """The episode with its feature rows: features (S, N, C) of the segment (row 0 = zero step)."""
    f = np.asarray(features, np.float32)
    if f.ndim != 3:
        raise ValueError(f"episode {ep.session_id}/{ep.exercise}: features must be (S, N, C), "
                         f"got {f.shape}")
    if len(ep.step_index) and ep.step_index.max() >= len(f):
        raise ValueError(f"episode {ep.session_id}/{ep.exercise}: tokens need step "
                         f"{ep.step_index.max()} but features have {len(f)} steps")
    return dataclasses.replace(ep, features=f[ep.step_index])


def build_episode(segment_sample, features, tokenizer: Tokenizer, cfg, *,
                  episode_index: int = -1) -> Episode:
    """Tokens, weights, masks, morph tokens and labels of one segment, with its features
    (S, N, C) (row 0 = the all-zero step). See the module doc for the layout."""
    f = np.asarray(features)
    ep = build_episode_tokens(segment_sample, len(f), tokenizer, cfg, episode_index=episode_index)
    return attach_features(ep, f)


# ---- batch rows ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Truncation:
    episode_index: int
    tokens: tuple[int, int]   # (kept, total)
    steps: tuple[int, int]


def _cut(ep: Episode, max_tokens: int, max_steps: int) -> tuple[int, int]:
    """(tokens kept, steps kept): whole steps only (a step's <vision> with the context and
    feedback after it), the longest prefix within both limits."""
    starts = list(np.flatnonzero(ep.vision_mask)) + [len(ep.tokens)]
    if starts[0] + 1 > max_tokens or max_steps < 1:
        raise ValueError(f"episode {ep.session_id}/{ep.exercise}: the prompt and first <vision> "
                         f"({starts[0] + 1} tokens) do not fit data.max_tokens={max_tokens}")
    k = len(starts) - 1
    while k > 1 and (starts[k] > max_tokens or k > max_steps):
        k -= 1
    if starts[k] > max_tokens:  # even one whole step (with its feedback) is too long
        raise ValueError(f"episode {ep.session_id}/{ep.exercise}: its first step needs "
                         f"{starts[k]} tokens > data.max_tokens={max_tokens}")
    return int(starts[k]), k


def episode_to_batch_row(ep: Episode, out: Batch, row: int) -> Truncation | None:
    """Write `ep` into row `row` of the preallocated batch `out`; returns what was truncated."""
    L, S, M = out.tokens.shape[1], out.features.shape[1], out.morph_tokens.shape[1]
    if ep.features is None:
        raise ValueError(f"episode {ep.session_id}/{ep.exercise}: no features attached")
    if ep.features.shape[1:] != out.features.shape[2:]:
        raise ValueError(f"episode {ep.session_id}/{ep.exercise}: features {ep.features.shape[1:]} "
                         f"do not match the batch's (N, C) = {out.features.shape[2:]}")
    n, k = _cut(ep, L, S)
    out.tokens[row, :n] = ep.tokens[:n]
    # targets[i] = tokens[i + 1]; after a cut the last kept position still predicts the next
    # (real) <vision>; the episode's own last token has no target (stays pad, weight 0).
    t = min(n, len(ep.tokens) - 1)
    out.targets[row, :t] = ep.tokens[1:t + 1]
    out.loss_weights[row, :n] = ep.loss_weights[:n]
    out.attention_mask[row, :n] = True
    out.vision_mask[row, :n] = ep.vision_mask[:n]
    out.vision_step[row, :n] = ep.vision_step[:n]
    out.features[row, :k] = ep.features[:k]
    out.step_mask[row, :k] = True
    m = min(M, len(ep.morph_tokens))
    out.morph_tokens[row, :m] = ep.morph_tokens[:m]
    out.morph_mask[row, :m] = True
    out.joint_labels[row] = ep.joint_labels
    out.joint_label_mask[row] = ep.has_joint_labels
    out.episode_index[row] = ep.episode_index
    if n < len(ep.tokens) or k < ep.num_steps:
        return Truncation(ep.episode_index, (n, len(ep.tokens)), (k, ep.num_steps))
    return None


def collate(episodes: Sequence[Episode], cfg, *, batch_size: int | None = None,
            pad_id: int | None = None, truncations: list | None = None) -> Batch:
    """Pad/truncate episodes to (batch_size or len(episodes), L, S, M) from cfg.data.max_*;
    missing rows are padding (episode_index -1). Truncations are logged (and appended to
    `truncations` when given)."""
    if not episodes:
        raise ValueError("collate: no episodes")
    B = len(episodes) if batch_size is None else int(batch_size)
    if len(episodes) > B:
        raise ValueError(f"collate: {len(episodes)} episodes for a batch of {B}")
    N, C = episodes[0].features.shape[1:]
    pad = int(_data_field(cfg, "pad_id", 0) if pad_id is None else pad_id)
    out = empty_batch(B, int(_data_field(cfg, "max_tokens", 1024)),
                      int(_data_field(cfg, "max_steps", 256)), N, C,
                      int(_data_field(cfg, "max_morph_tokens", 64)), pad)
    for r, ep in enumerate(episodes):
        note = episode_to_batch_row(ep, out, r)
        if note is not None:
            log.warning("episode %d (%s/%s) truncated: tokens %d of %d, steps %d of %d",
                        ep.episode_index, ep.session_id, ep.exercise, *note.tokens, *note.steps)
            if truncations is not None:
                truncations.append(note)
    return out

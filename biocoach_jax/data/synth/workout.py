"""A synthetic workout like QEVD's long-range videos: 2-4 exercises of ~25-30 s each.

Timeline (frames at 16 fps): a transition line ("First up are squats!") starts each exercise;
the body blends from the previous exercise's last pose to the next one's first pose (cosine,
BLEND_S) while it is spoken; then the exercise track (rest, repetitions, rest) plays; after the
last exercise an end line ("That's the end of the workout!") closes the session. Transition
lines are fixed first, then every other line is scheduled around them (feedback.schedule).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from biocoach_jax.exercises import list_exercises, load_exercise

from . import feedback as F
from .kinematics import FPS, ExerciseTrack, dof_models, synthesize
from .subjects import Subject
from .templates import END, FIRST, NEXT, SPOKEN_NAMES

BLEND_S = 1.5
LEAD_IN_S = 0.5
TAIL_S = 2.5


@dataclasses.dataclass
class Workout:
    subject: Subject
    poses: np.ndarray                 # (T, 46) radians, true motion
    fps: float
    exercises: list[str]
    tracks: list[ExerciseTrack]
    offsets: list[int]                # first frame of each track in the workout
    transitions: list[F.Line]         # n_exercises + 1 (the last one ends the session)
    lines: list[F.Line]               # every scheduled line, time order (transitions included)

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    def spans(self, colloquial: bool = False) -> list[tuple[int, int, str, bool]]:
        """(start_frame, end_frame inclusive, text, is_transition) in time order; the
        colloquial wording of each line instead of the anatomical one if asked."""
        return [(ln.start, ln.end, ln.colloquial if colloquial else ln.text,
                 ln.kind == "transition") for ln in self.lines]


def _blend(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (n + 1))
    return a[None] + (b - a)[None] * w[:, None]


def choose_exercises(rng: np.random.Generator, names=None) -> list[str]:
    pool = list(names) if names is not None else list(list_exercises())
    k = int(rng.integers(2, min(4, len(pool)) + 1))
    return [pool[i] for i in rng.permutation(len(pool))[:k]]


def make_workout(subject: Subject, rng: np.random.Generator, exercises=None) -> Workout:
    """Simulate one workout for `subject` (exercise names drawn when not given)."""
    names = list(exercises) if exercises is not None else choose_exercises(rng)
    if not names:
        raise ValueError("make_workout: at least one exercise is needed")
    pieces, tracks, offsets, transitions, lines = [], [], [], [], []
    t = int(round(LEAD_IN_S * FPS))
    prev_last = None
    for i, name in enumerate(names):
        ex = load_exercise(name)
        text = (FIRST if i == 0 else NEXT).format(name=SPOKEN_NAMES.get(name, name))
        tr_line = F.Line("transition", text, t, t, [{"kind": "transition", "exercise": name}])
        transitions.append(tr_line)
        track = synthesize(ex, subject, rng)
        first = track.poses[0]
        n_speech = F.speech_frames(text, FPS)
        n_gap = max(n_speech + F.GAP_FRAMES + 2, int(round(BLEND_S * FPS)))
        before = (t - sum(len(p) for p in pieces))           # frames until the transition
        if prev_last is None:
            pieces.append(np.tile(first, (before + n_gap, 1)))
        else:
            pieces.append(np.tile(prev_last, (before, 1)))
            pieces.append(_blend(prev_last, first, n_gap))
        offset = sum(len(p) for p in pieces)
        pieces.append(track.poses)
        tracks.append(track)
        offsets.append(offset)
        lines += F.exercise_lines(ex, track, subject, rng, offset, FPS, dof_models(ex))
        prev_last = track.poses[-1]
        t = offset + len(track.poses) + int(rng.integers(2, 8))
    end_line = F.Line("transition", END, t, t, [{"kind": "end"}])
    transitions.append(end_line)
    total = t + F.speech_frames(END, FPS) + int(round(TAIL_S * FPS))
    done = sum(len(p) for p in pieces)
    pieces.append(np.tile(prev_last, (total - done, 1)))
    poses = np.concatenate(pieces)
    # lines that would run past the end of the video cannot be shown
    lines = [ln for ln in lines if ln.latest + 4 * FPS < total]
    placed = F.schedule(lines, FPS, fixed=transitions)
    placed = [ln for ln in placed if ln.end < total]
    return Workout(subject, poses, FPS, names, tracks, offsets, transitions, placed)

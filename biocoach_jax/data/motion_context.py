"""C_motion over causal windows: the motion-quality text at given times of a recording.

`motion_contexts(poses, present, exercise, query_times_s)` returns, for every query time t, the
C_motion text computed from the poses up to t only: frame i is at time i / fps and is never used
before its time. The rep count comes from the whole history [0, t]; everything else ONLY from
the causal window [t - window_s, t] (the frames i with t - window_s <= i / fps <= t). All
windows run through the biomech kernel as padded batches of a fixed number of rows (time = the
static window length), and all histories as others (time padded up to a power of two), so a
whole episode's contexts cost two kernel calls and a handful of compiles.

What a query reports (rendered by `context.render_motion`, so the wording lives in one place):
  * the rep count: the repetitions so far in the history (the rules below, with the history's
    own cycles; at least the window's);
  * reps: the cycles the kernel finds in the window that are whole repetitions seen inside it:
    valid; with a driving-DoF range of motion of at least MIN_REP_FRACTION of the exercise's
    reference range (in a short window the kernel's relative thresholds would otherwise take
    noise for cycles); and not a fragment cut by the window: an incomplete cycle (the kernel's
    flag: it does not start and end at rest) that starts within EDGE_S of the beginning of a
    window cut by tau (the rep began before the window; its keyframe and duration would be the
    fragment's) or ends within EDGE_S of t and has not yet passed its keyframe (below). So a rep
    longer than tau is never reported whole: tau must exceed the rep duration (the paper's 3 s
    does for most);
  * a rep under way (it reaches t) counts once it is past its keyframe: the keyframe lies at
    least EDGE_S before t and the driving DoF has since come back by at least
    PAST_KEY_FRACTION of its rise into the keyframe. Its keyframe values are final then, and so
    are its keyframe violations (intervals, asymmetry, anatomical limits) and a static DoF's
    movement beyond its bound (movement only grows); its tempo and its completeness are not
    known yet, so those kinds wait for the end of the rep. A coach speaks about a rep right
    after its keyframe (the bottom of a squat), long before the rep ends;
  * the latest such rep's key values: driving DoF, the DoFs with an interval (as `analyze`) and
    the other analysed DoFs that moved at least MOVING_ROM_DEG in it;
  * the violations of those reps, numbered as in the count (the latest one is rep `count`).
DoFs analysed: `dof_mask` (e.g. the DoFs of the selected / labelled joints) restricted to the
DoFs the recording has; None = the exercise's own selection (`analysis.build_spec`).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
from typing import Sequence

import numpy as np

from biocoach_jax import context, skel
from biocoach_jax.analysis import build_spec
from biocoach_jax.biomech import analyze_batch, violations_to_records
from biocoach_jax.exercises import Exercise

MIN_REP_FRACTION = 0.25
MOVING_ROM_DEG = 10.0   # a DoF with at least this range in the latest rep is part of its pose state
EDGE_S = 0.25  # an incomplete cycle this close to an edge of the window is a fragment of a rep
PAST_KEY_FRACTION = 0.1   # ... once back this much of its rise (ROM-relative: far above noise)
UNDER_WAY_LATER_KINDS = ("tempo_fast", "tempo_slow", "incomplete")   # known at the rep's end only
_ROWS = 16            # queries run in batches of exactly this many rows (one compiled shape),
                      # except that a single query (the streaming coach's) runs alone
_MIN_HISTORY = 512    # history lengths are padded to a power of two >= this (few compiles)
_HISTORY_CYCLES = 64  # cycle slots of a history (a segment with more reps counts 64)


def window_frames(window_s: float, fps: float) -> int:
    """Frames in a full causal window [t - window_s, t] (both ends included)."""
    if not (window_s > 0 and fps > 0):
        raise ValueError(f"window_s and fps must be > 0, got {window_s}, {fps}")
    return int(math.floor(window_s * fps + 1e-9)) + 1


def _spec(exercise: Exercise, present: np.ndarray, dof_mask):
    spec = build_spec(exercise, present)
    if dof_mask is None:
        return spec
    mask = np.asarray(dof_mask, bool)
    if mask.shape != (skel.NUM_DOFS,):
        raise ValueError(f"dof_mask must have shape ({skel.NUM_DOFS},), got {mask.shape}")
    sel = mask & present
    return dataclasses.replace(spec, selected=sel, dynamic=np.asarray(spec.dynamic) & sel,
                               static=np.asarray(spec.static) & sel,
                               ref_mask=np.asarray(spec.ref_mask) & sel)


def _windows(poses: np.ndarray, query_times_s, fps: float, W: int | None):
    """(rows, W, 46) windows ending at each query (padded with the last frame), lengths,
    and whether each window was cut by tau (it does not reach back to frame 0). W=None: the
    whole history up to each query, W = a power of two >= every history."""
    T = len(poses)
    q = np.asarray(query_times_s, np.float64)
    ends = np.minimum(np.floor(q * fps + 1e-9).astype(np.int64), T - 1)
    if W is None:
        W = max(_MIN_HISTORY, 1 << int(ends.max()).bit_length())
    starts = np.maximum(ends - W + 1, 0)
    rows = 1 if len(q) == 1 else _ROWS
    out = np.zeros((rows, W, skel.NUM_DOFS), np.float32)
    lengths = np.ones(rows, np.int32)
    for r, (a, e) in enumerate(zip(starts, ends)):
        n = e - a + 1
        out[r, :n] = poses[a:e + 1]
        out[r, n:] = poses[e]
        lengths[r] = n
    out[len(q):] = poses[0]
    return out, lengths, starts > 0


def _reference_rom(exercise: Exercise, drive: int) -> float:
    ref = np.asarray(exercise.arrays().reference[drive])
    return float(ref.max() - ref.min())


def _reps(exercise, spec, result, row: int, length: int, cut: bool,
          fps: float) -> list[tuple[int, bool]]:
    """(cycle slot, under way) of the repetitions of `row` seen inside it: whole ones, and the
    one under way at t once it is past its keyframe (module doc)."""
    c = result.cycles
    drive = int(np.argmax(np.abs(np.asarray(spec.drive_weights))))
    rom_min = MIN_REP_FRACTION * _reference_rom(exercise, drive)
    valid, start, end, key, complete = (np.asarray(a[row]) for a in
                                        (c.valid, c.start, c.end, c.key, c.complete))
    rom = np.asarray(result.rom[row])
    y = np.asarray(result.drive[row], np.float64) * float(np.asarray(c.polarity[row]))
    margin = int(round(EDGE_S * fps))
    out = []
    for i in np.flatnonzero(valid):
        if rom[i, drive] < rom_min or (not complete[i] and cut and start[i] <= margin):
            continue                                        # too small, or began before the window
        under_way = not complete[i] and end[i] >= length - 1 - margin
        if under_way:
            rise = y[key[i]] - y[start[i]]
            past_key = (key[i] <= length - 1 - margin
                        and y[key[i]] - y[length - 1] >= PAST_KEY_FRACTION * rise)
            if not past_key:
                continue                                    # still on its way to the keyframe
        out.append((int(i), bool(under_way)))
    return out


def _window_text(exercise, spec, result, row: int, length: int, cut: bool, fps: float,
                 count: int) -> str:
    found = _reps(exercise, spec, result, row, length, cut, fps)
    if not found:
        return context.render_motion(exercise, count, {}, [])
    reps = [s for s, _ in found]
    under_way = {s for s, u in found if u}
    count = max(count, len(reps))
    rom = np.asarray(result.rom[row])
    drive = int(np.argmax(np.abs(np.asarray(spec.drive_weights))))
    number = {s: count - len(reps) + n for n, s in enumerate(reps)}   # the latest is rep `count`
    viol = type(result.violations)(*(np.asarray(a[row]) for a in result.violations))
    violations = [dataclasses.replace(v, cycle=number[v.cycle])
                  for v in violations_to_records(viol, fps)
                  if v.cycle in number
                  and not (v.cycle in under_way and v.kind in UNDER_WAY_LATER_KINDS)]
    # pose state of the latest rep: the driving DoF, the DoFs with an interval, and every other
    # analysed DoF that moved in it (so the DoFs the selector keeps decide what is described)
    bounded = np.isfinite(np.asarray(spec.key_lo)) | np.isfinite(np.asarray(spec.key_hi))
    moved = rom[reps[-1]] >= math.radians(MOVING_ROM_DEG)
    shown = np.asarray(spec.selected) & (bounded | moved)
    shown[drive] = True
    key = np.asarray(result.key_values[row])[reps[-1]]
    state = {skel.DOF_NAMES[d]: math.degrees(float(key[d])) for d in np.flatnonzero(shown)}
    return context.render_motion(exercise, count, state, violations)


class _Memo:
    """In-process memory of computed texts, one per (recording, exercise, settings, query time):
    the training sources of several stages, the LM corpus and the tokenizer ask for the same
    contexts again, and each costs a kernel call. A query's text depends on nothing else (the
    batch it ran in only pads it), so a repeated query is answered from here."""

    def __init__(self, max_entries: int = 50_000):
        self.texts: collections.OrderedDict = collections.OrderedDict()
        self.exercises: dict[int, Exercise] = {}   # keeps keyed exercises alive (ids stay unique)
        self.max_entries = max_entries

    def key(self, poses, present, exercise, window_s, fps, dof_mask) -> tuple:
        self.exercises[id(exercise)] = exercise
        mask = None if dof_mask is None else np.asarray(dof_mask, bool).tobytes()
        digest = hashlib.blake2b(poses.tobytes(), digest_size=16).digest()
        return (digest, poses.shape, present.tobytes(), id(exercise), float(window_s), float(fps), mask)

    def get(self, key, t):
        text = self.texts.get((key, t))
        if text is not None:
            self.texts.move_to_end((key, t))
        return text

    def put(self, key, t, text: str) -> None:
        self.texts[(key, t)] = text
        while len(self.texts) > self.max_entries:
            self.texts.popitem(last=False)


_MEMO = _Memo()


def motion_contexts(poses, present, exercise: Exercise, query_times_s: Sequence[float], *,
                    window_s: float = 3.0, fps: float = 16.0, dof_mask=None) -> list[str]:
    """C_motion text at each query time from the poses up to it (count: the whole history; the
    rest: the causal window before it; module doc). Texts already computed in this process
    for the same inputs are reused (`_Memo`).

    poses: (T, 46) radians, frame i at time i / fps; present: (46,) bool DoFs the recording has;
    query_times_s: seconds on the same clock (>= 0).
    """
    poses = np.asarray(poses, np.float64)
    present = np.asarray(present, bool)
    if poses.ndim != 2 or poses.shape[1] != skel.NUM_DOFS or len(poses) == 0:
        raise ValueError(f"motion_contexts: poses must be (T>0, {skel.NUM_DOFS}), got {poses.shape}")
    if present.shape != (skel.NUM_DOFS,):
        raise ValueError(f"motion_contexts: present must be ({skel.NUM_DOFS},), got {present.shape}")
    if not np.isfinite(poses).all():
        raise ValueError("motion_contexts: poses contain NaN/inf")
    q = np.asarray(query_times_s, np.float64).reshape(-1)
    if len(q) == 0:
        return []
    if not np.isfinite(q).all() or (q < 0).any():
        raise ValueError(f"motion_contexts: query times must be finite and >= 0, got {q}")
    key = _MEMO.key(poses, present, exercise, window_s, fps, dof_mask)
    todo = sorted({float(t) for t in q if _MEMO.get(key, float(t)) is None})
    if todo:
        for t, text in zip(todo, _compute(poses, present, exercise, np.asarray(todo), window_s,
                                          fps, dof_mask)):
            _MEMO.put(key, t, text)
    return [_MEMO.get(key, float(t)) for t in q]


def _compute(poses, present, exercise, q, window_s, fps, dof_mask) -> list[str]:
    if len(q) > _ROWS:
        return [text for a in range(0, len(q), _ROWS)
                for text in _compute(poses, present, exercise, q[a:a + _ROWS], window_s, fps, dof_mask)]
    spec = _spec(exercise, present, dof_mask)
    hist, hist_len, _ = _windows(poses, q, fps, None)
    hspec = dataclasses.replace(spec, max_cycles=_HISTORY_CYCLES, max_peaks=2 * _HISTORY_CYCLES)
    hres = _to_numpy(analyze_batch(hist, hist_len, hspec, float(fps)))
    counts = [len(_reps(exercise, hspec, hres, r, int(hist_len[r]), False, fps))
              for r in range(len(q))]
    batch, lengths, cut = _windows(poses, q, fps, window_frames(window_s, fps))
    # One device -> host transfer of the whole result, then plain numpy per row.
    result = _to_numpy(analyze_batch(batch, lengths, spec, float(fps)))
    return [_window_text(exercise, spec, result, r, int(lengths[r]), bool(cut[r]), fps, counts[r])
            for r in range(len(q))]


def _to_numpy(x):
    if isinstance(x, tuple):
        return type(x)(*(_to_numpy(y) for y in x))
    return np.asarray(x)

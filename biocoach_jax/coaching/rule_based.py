"""The rule-based coach: speaks from the kinematics alone through the exercise library's cues.

Every 0.25 s step it runs the biomech kernel on the causal window (the last `window_s` seconds
of poses seen so far, resampled to the analysis rate; fixed shape, so one compile), finds the
repetitions whose end is settled (the trailing boundary lies at least `settle_s` before the
newest pose, so it no longer moves as poses arrive), and for each repetition it has not reported
yet says the most severe violation's cue with the measured number ("Rep 3. Squat deeper: bend
your knees to at least 90° (now 72°)."), or, for a clean rep, its count and the driving DoF at
the keyframe ("Rep 4, right knee flexion 95°, good form!"). Speaking takes
n / 12 s (`state_machine.Speaker`), so feedbacks never overlap.

The window is longer than the model's tau = 3 s because a whole repetition (up to the
exercise's tempo maximum, 6 s for a squat) must fit in it to be measured.
A baseline for the LLM coach and a fallback when no checkpoint is available.
"""
from __future__ import annotations

import math

import jax
import numpy as np

from biocoach_jax import context, skel
from biocoach_jax.analysis import DEFAULT_FPS, build_spec
from biocoach_jax.biomech import analyze_batch, violations_to_records
from biocoach_jax.coaching.state_machine import Feedback, Speaker, estimate_tokens
from biocoach_jax.coaching.stream import CausalPoseBuffer, Event
from biocoach_jax.data.motion_context import MIN_REP_FRACTION
from biocoach_jax.exercises import Exercise

CORRECTION, COUNT = 1, 0      # speaking priorities


class RuleBasedCoach:
    step_s = 0.25
    needs_frames = False

    def __init__(self, exercise: Exercise, *, present: np.ndarray | None = None,
                 fps: float = DEFAULT_FPS, window_s: float = 10.0, settle_s: float = 0.25,
                 count_tokens=estimate_tokens, speak_clean_reps: bool = True):
        self.exercise = exercise
        present = np.ones(skel.NUM_DOFS, bool) if present is None else np.asarray(present, bool)
        self.spec = build_spec(exercise, present)
        self.fps = float(fps)
        self.window = int(round(window_s * fps))
        self.settle = int(math.ceil(settle_s * fps))
        # keyframes of distinct reps are >= min_period_s apart; between two windows the same
        # keyframe moves by a frame or two at most
        self.same_rep = 0.5 * self.spec.min_period_s * fps
        # a "rep" whose driving-DoF range is a small part of the exercise's reference range is
        # noise that the kernel's relative thresholds picked up (e.g. standing still at the
        # start); the training contexts use the same rule (data.motion_context)
        a = exercise.arrays()
        self.drive = a.driving_index
        self.min_rom = MIN_REP_FRACTION * float(np.ptp(a.reference[self.drive]))
        self.buffer = CausalPoseBuffer(fps)
        self.speaker = Speaker(count_tokens)
        self.speak_clean_reps = speak_clean_reps
        self.reps = 0                      # completed repetitions reported so far
        self.last_key = -math.inf          # grid index of the last reported keyframe
        self.reported: list[dict] = []     # one record per reported repetition (for reports)
        self._analysed = 0                 # buffer size at the last kernel run

    def warmup(self) -> None:
        """Compile the kernel for the window shape (so the real-time factor measures streaming,
        not the one-off compilation)."""
        poses = np.zeros((1, self.window, skel.NUM_DOFS), np.float32)
        jax.block_until_ready(analyze_batch(poses, np.array([8], np.int32), self.spec, self.fps))

    def push(self, event: Event) -> None:
        if event.kind == "pose":
            self.buffer.push(event.time_s, event.value)

    def step(self, t: float) -> list[Feedback]:
        """Advance to step time t (every event with time <= t has been pushed)."""
        self.buffer.fill_until(t)
        if self.buffer.count > self._analysed and self.buffer.count >= 8:
            self._analysed = self.buffer.count
            for rep in self._new_reps():
                self._offer(t, rep)
        said = self.speaker.speak(t)
        return [] if said is None else [said]

    def _new_reps(self) -> list[dict]:
        poses, n, start = self.buffer.window(self.window)
        res = jax.device_get(analyze_batch(poses[None], np.array([n], np.int32), self.spec,
                                           self.fps))   # one transfer, then numpy
        c = res.cycles
        valid, complete = np.asarray(c.valid[0]), np.asarray(c.complete[0])
        end, key = np.asarray(c.end[0]), np.asarray(c.key[0])
        rom = np.asarray(res.rom[0])[:, self.drive]
        drive_key = np.asarray(res.key_values[0])[:, self.drive]   # radians, smoothed
        records = None
        out = []
        for slot in np.flatnonzero(valid):
            key_abs = start + int(key[slot])
            if end[slot] > n - 1 - self.settle or key_abs <= self.last_key + self.same_rep:
                continue
            if rom[slot] < self.min_rom:
                continue
            if records is None:
                arrays = type(res.violations)(*(a[0] for a in res.violations))
                records = violations_to_records(arrays, self.fps)
            viol = [v for v in records if v.cycle == slot]
            self.last_key = key_abs
            self.reps += int(complete[slot])
            out.append({"rep": self.reps, "complete": bool(complete[slot]),
                        "key_s": key_abs / self.fps, "end_s": (start + int(end[slot])) / self.fps,
                        "drive_key_rad": float(drive_key[slot]),
                        "violations": context.sort_violations(viol)})
        return out

    def _offer(self, t: float, rep: dict) -> None:
        self.reported.append(rep)
        if rep["violations"]:
            cue = context.violation_message(self.exercise, rep["violations"][0])
            text = f"Rep {rep['rep']}. {cue}" if rep["complete"] else cue
            self.speaker.offer(t, text, CORRECTION)
        elif self.speak_clean_reps and rep["complete"]:
            pose = context.pose_phrase(skel.DOF_NAMES[self.drive], rep["drive_key_rad"])
            self.speaker.offer(t, f"Rep {rep['rep']}, {pose}, good form!", COUNT)

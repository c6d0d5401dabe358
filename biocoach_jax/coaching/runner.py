"""Drive a coach over a time-ordered event stream: steps every 0.25 s, feedback as produced.

A coach is any object with `step_s`, `push(event)` and `step(t) -> list[Feedback]` (and an
optional `warmup()`, run before the clock starts). Step k
happens at t = k * step_s after every event with time <= t was pushed and before any later one,
which is what makes a coach causal: nothing it says at t can depend on media after t.
A `StreamError` from the sources stops the run; what was said before it is kept in the result.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Iterable

from biocoach_jax.coaching.state_machine import Feedback
from biocoach_jax.coaching.stream import Event, StreamError


@dataclasses.dataclass
class CoachRun:
    feedbacks: list[Feedback]
    media_s: float                 # media time covered
    wall_s: float                  # processing time
    error: StreamError | None = None

    @property
    def real_time_factor(self) -> float:
        return self.wall_s / self.media_s if self.media_s > 0 else math.inf


def run_coach(coach, events: Iterable[Event], *, end_s: float | None = None,
              realtime: bool = False,
              on_feedback: Callable[[Feedback], None] | None = None) -> CoachRun:
    """Stream `events` through `coach`. realtime: pace events to the wall clock (a live feed);
    otherwise as fast as possible. end_s: run the steps up to this media time at the end."""
    said: list[Feedback] = []
    k, last_t = 0, 0.0
    if hasattr(coach, "warmup"):       # one-off compilation is not streaming time
        coach.warmup()
    start = time.perf_counter()

    def steps_until(t: float, inclusive: bool) -> None:
        nonlocal k
        while (k * coach.step_s < t - 1e-9) or (inclusive and k * coach.step_s <= t + 1e-9):
            for fb in coach.step(k * coach.step_s):
                said.append(fb)
                if on_feedback is not None:
                    on_feedback(fb)
            k += 1

    error = None
    try:
        for ev in events:
            if realtime:
                wait = start + ev.time_s - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            steps_until(ev.time_s, inclusive=False)
            coach.push(ev)
            last_t = max(last_t, ev.time_s)
    except StreamError as e:
        error = e
    if error is None:
        steps_until(max(last_t, end_s or 0.0), inclusive=True)
    wall = time.perf_counter() - start
    return CoachRun(said, last_t if error is not None else max(last_t, end_s or 0.0), wall, error)

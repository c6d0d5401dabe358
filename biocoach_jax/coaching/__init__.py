"""The streaming coach's parts: media stream, Stream-VLM rules, rule-based and LLM coaches, runner.

`biocoach_jax.coach` is the command line over these; `biocoach_jax.evaluate` runs them over a split.
"""
from biocoach_jax.coaching.rule_based import RuleBasedCoach
from biocoach_jax.coaching.runner import CoachRun, run_coach
from biocoach_jax.coaching.state_machine import Feedback
from biocoach_jax.coaching.stream import (Event, StreamError, hsmr_events, merge_events,
                                          pose_events, video_events)

__all__ = ["RuleBasedCoach", "CoachRun", "run_coach", "Feedback", "Event", "StreamError",
           "hsmr_events", "merge_events", "pose_events", "video_events"]

"""Exercise library: per-exercise joint intervals, reference cycles and coaching cues.

Definitions are TOML files in `data/` (schema and conventions in README.md); `library.py` loads
and validates them and gives the kernel a numpy view in radians and SKEL order.
"""
from biocoach_jax.exercises.library import (  # noqa: F401
    CUE_FIELDS, VIOLATION_KINDS, Asymmetry, DofSpec, Driving, Exercise, ExerciseArrays,
    ExerciseError, Interval, Keyframe, Tempo, Tolerance, exercise_arrays, list_exercises,
    load_exercise, load_exercise_file)

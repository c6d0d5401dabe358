"""The synthetic QEVD-format world: subjects, kinematics with injected errors, coaching text,
workouts, and a writer of the QEVD-FIT-COACH layout (`python -m biocoach_jax.data.synth`).
Rendering (`render.py`, `fk.py`) lives beside these modules; nothing here imports jax."""
from .kinematics import FPS, ExerciseTrack, InjectedError, Rep, synthesize
from .morphology import Target, targets
from .subjects import Subject, sample_subject, subject_from_betas
from .workout import Workout, make_workout
from .writer import SynthConfig, build_session, write_split

__all__ = ["FPS", "ExerciseTrack", "InjectedError", "Rep", "synthesize", "Target", "targets",
           "Subject", "sample_subject", "subject_from_betas", "Workout", "make_workout",
           "SynthConfig", "build_session", "write_split"]

"""BioCoach-JAX: streaming fitness coaching grounded in 3D skeletal kinematics (JAX/Flax NNX)."""

__version__ = "0.1.0"

"""Body shape models (SMPL-format files, a built-in procedural body) and SHAPY measurements."""
from biocoach_jax.body.measurements import (
    BODY_DENSITY_KG_M3, LANDMARK_NAMES, Measurements, MeshError, circumference_at,
    convex_hull_perimeter, mass_kg, measure, section_points, signed_volume)
from biocoach_jax.body.procedural import ProceduralBody, SegmentLengths
from biocoach_jax.body.shape_model import ShapeModel, as_betas, measure_body
from biocoach_jax.body.smpl_file import SMPL_LANDMARKS, SMPLFileModel

__all__ = [
    "BODY_DENSITY_KG_M3", "LANDMARK_NAMES", "Measurements", "MeshError", "circumference_at",
    "convex_hull_perimeter", "mass_kg", "measure", "section_points", "signed_volume",
    "ProceduralBody", "SegmentLengths", "ShapeModel", "as_betas", "measure_body",
    "SMPL_LANDMARKS", "SMPLFileModel",
]

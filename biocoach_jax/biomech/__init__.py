"""The biomechanics kernel: pure jax.numpy, jit + vmap, fixed shapes with masks.

smooth -> peaks -> cycles -> align/quality -> constraints, batched in pipeline.analyze_batch.
"""
from .align import DEFAULT_QUALITY_WEIGHTS, cycle_quality, quality_terms, resample_cycle, resample_cycles
from .constraints import KINDS, Violation, ViolationArrays, check_constraints, violations_to_records
from .cycles import CycleResult, auto_polarity, detect_cycles
from .peaks import PeakResult, find_peaks, peak_prominences
from .pipeline import (Activity, KernelResult, Segmentation, analyze_batch, dof_activity,
                       segment_batch)
from .sharding import analyze_batch_sharded, data_mesh
from .smooth import gaussian_smooth
from .spec import KernelSpec, make_spec

__all__ = [
    "DEFAULT_QUALITY_WEIGHTS", "cycle_quality", "quality_terms", "resample_cycle", "resample_cycles",
    "KINDS", "Violation", "ViolationArrays", "check_constraints", "violations_to_records",
    "CycleResult", "auto_polarity", "detect_cycles", "PeakResult", "find_peaks", "peak_prominences",
    "Activity", "KernelResult", "Segmentation", "analyze_batch", "dof_activity", "segment_batch",
    "analyze_batch_sharded", "data_mesh", "gaussian_smooth", "KernelSpec", "make_spec",
]

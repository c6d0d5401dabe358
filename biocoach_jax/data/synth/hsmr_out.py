"""HSMR-format output for a synthetic session: estimation noise, dropped frames, bystanders.

What a per-frame pose estimator does to the true motion (REFERENCE §4 gives the file format):
  * correlated angle noise: an AR(1) process per DoF (std NOISE_DEG, correlation time
    NOISE_TAU_S) plus small white jitter, then clamped to the SKEL/HSMR limits as HSMR's own
    optimisation does - a few degrees, like a good monocular estimate, not enough to move a
    clean repetition across a bound;
  * betas re-estimated per frame: the true betas plus N(0, 0.05);
  * dropped frames: a few short runs (1-4 frames) with zero people (occlusion, blur);
  * a bystander: occasional runs where a second, smaller person (a box 35-65 % of the
    subject's) is also detected, so readers must pick the largest box.
`full_cam_t` follows HSMR's convention (focal 5000 px, principal point at the image centre):
the subject's root sits CAM_DEPTH_M in front of a camera, with a slow sway.
"""
from __future__ import annotations

import numpy as np

from biocoach_jax import skel

NOISE_DEG, NOISE_TAU_S, WHITE_DEG = 1.2, 0.25, 0.4
BETA_NOISE = 0.05
FOCAL_PX = 5000.0


def estimated_poses(poses: np.ndarray, rng: np.random.Generator, fps: float) -> np.ndarray:
    """(T, 46) radians -> noisy estimate (T, 46) radians, inside the anatomical limits."""
    T = len(poses)
    a = float(np.exp(-1.0 / (NOISE_TAU_S * fps)))
    e = rng.normal(0.0, 1.0, (T, skel.NUM_DOFS)) * np.sqrt(1 - a * a)
    ar = np.empty_like(e)
    ar[0] = rng.normal(0.0, 1.0, skel.NUM_DOFS)
    for t in range(1, T):
        ar[t] = a * ar[t - 1] + e[t]
    noise = np.radians(NOISE_DEG * ar + WHITE_DEG * rng.normal(0.0, 1.0, ar.shape))
    lim = skel.limits()
    return np.clip(poses + noise, lim[:, 0], lim[:, 1])


def _runs(rng, T: int, count: int, length: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(T, bool)
    for _ in range(count):
        n = int(rng.integers(length[0], length[1] + 1))
        a = int(rng.integers(0, max(1, T - n)))
        mask[a:a + n] = True
    return mask


def hsmr_frames(est: np.ndarray, betas, rng: np.random.Generator, size: tuple[int, int],
                fps: float) -> tuple[list[dict], dict]:
    """Per-frame HSMR dicts for an estimated track, and a summary of what was done to it."""
    T = len(est)
    H, W = size
    betas = np.asarray(betas, np.float64)
    dropped = _runs(rng, T, int(rng.integers(0, 4)), (1, 4))
    dropped[0] = False  # the reader fills leading gaps from the first valid frame; keep it simple
    bystander = _runs(rng, T, int(rng.integers(0, 3)), (8, 40)) & ~dropped
    t = np.arange(T) / fps
    sway = 0.04 * np.sin(2 * np.pi * t / rng.uniform(6.0, 12.0) + rng.uniform(0, 2 * np.pi))
    depth = rng.uniform(8.0, 11.0)                          # metres from the camera
    box = 0.85 * H * (1 + 0.03 * np.sin(2 * np.pi * t / 9.0))
    other_scale = rng.uniform(0.35, 0.65)
    frames = []
    for k in range(T):
        if dropped[k]:
            frames.append({"poses": np.zeros((0, skel.NUM_DOFS), np.float32),
                           "betas": np.zeros((0, 10), np.float32),
                           "patch_cam_t": np.zeros((0, 3), np.float32),
                           "full_cam_t": np.zeros((0, 3), np.float32),
                           "bbx_cs": np.zeros((0, 3), np.float32)})
            continue
        cx = W / 2 + sway[k] * FOCAL_PX / depth
        people = [(est[k], betas + rng.normal(0, BETA_NOISE, 10),
                   [sway[k], 0.25, depth], [cx, H / 2, box[k]])]
        if bystander[k]:
            other_box = other_scale * box[k]
            ox = W * (0.12 if cx > W / 2 else 0.88)
            other_pose = np.clip(rng.normal(0, 0.05, skel.NUM_DOFS), *skel.limits().T)
            people.append((other_pose, rng.normal(0, 0.8, 10),
                           [(ox - W / 2) * depth / FOCAL_PX / other_scale, 0.25, depth / other_scale],
                           [ox, H / 2 + 0.1 * H, other_box]))
        frames.append({
            "poses": np.stack([p[0] for p in people]).astype(np.float32),
            "betas": np.stack([p[1] for p in people]).astype(np.float32),
            "patch_cam_t": np.array([[0.0, 0.25, 2 * FOCAL_PX / (256 * 0.85)]] * len(people),
                                    np.float32),
            "full_cam_t": np.array([p[2] for p in people], np.float32),
            "bbx_cs": np.array([p[3] for p in people], np.float32)})
    summary = {"dropped_frames": np.flatnonzero(dropped).tolist(),
               "bystander_frames": int(bystander.sum()),
               "noise": {"ar1_std_deg": NOISE_DEG, "ar1_tau_s": NOISE_TAU_S,
                         "white_std_deg": WHITE_DEG, "beta_std": BETA_NOISE}}
    return frames, summary

"""Z-buffered rasteriser of projected tapered capsules, vectorised over frames and pixels.

Each capsule is drawn in one numpy pass over all frames: a window of the same size for every
frame (the largest on-screen box of that capsule over the clip), placed per frame at its own
box, so the only Python loop is over the ~25 parts. A pixel is inside a capsule when its
distance to the projected axis segment is below the projected radius (interpolated along the
axis). Its depth is the axis depth minus the bulge of a round cross-section, and its normal
is the matching point of that cross-section (screen offset / radius, and the bulge toward the
camera), which gives Lambert shading without any mesh.
"""
from __future__ import annotations

import numpy as np

NEAR = 0.05  # metres; capsules with an end closer to the camera plane are skipped
NO_PART = 255


class Canvas:
    """Per-pixel depth, shade and part id for T frames of size (H, W)."""

    def __init__(self, num_frames: int, size: tuple[int, int]):
        self.size = size
        h, w = size
        self.depth = np.full(num_frames * h * w, np.inf, dtype=np.float32)
        self.shade = np.zeros(num_frames * h * w, dtype=np.float32)
        self.part = np.full(num_frames * h * w, NO_PART, dtype=np.uint8)

    def draw(self, part_id: int, a_uv, b_uv, za, zb, ra_px, rb_px, ra, rb, light_cam,
             ambient: float) -> None:
        """Draw one capsule in every frame.

        a_uv, b_uv (T, 2) projected end centres (pixels); za, zb (T,) their depths (m);
        ra_px, rb_px (T,) projected radii (pixels); ra, rb world radii (m); light_cam (3,) unit
        vector toward the light in camera axes (x right, y down, z forward).
        """
        h, w = self.size
        lo = np.floor(np.minimum(a_uv - ra_px[:, None], b_uv - rb_px[:, None])).astype(np.int64)
        hi = np.ceil(np.maximum(a_uv + ra_px[:, None], b_uv + rb_px[:, None])).astype(np.int64)
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, (w - 1, h - 1))
        keep = (za > NEAR) & (zb > NEAR) & np.all(hi >= lo, axis=1)
        frames = np.flatnonzero(keep)
        if frames.size == 0:
            return
        lo, hi = lo[frames], hi[frames]
        bw, bh = (hi - lo + 1).max(axis=0)
        x0 = np.minimum(lo[:, 0], w - bw)  # same-size windows that stay inside the image
        y0 = np.minimum(lo[:, 1], h - bh)
        f32 = np.float32
        ax, ay = a_uv[frames, 0].astype(f32), a_uv[frames, 1].astype(f32)
        ex = (b_uv[frames, 0] - a_uv[frames, 0]).astype(f32)
        ey = (b_uv[frames, 1] - a_uv[frames, 1]).astype(f32)
        # pixel centres relative to end a: (n, 1, bw) and (n, bh, 1)
        dx = (x0[:, None] + np.arange(bw) + 0.5).astype(f32)[:, None, :] - ax[:, None, None]
        dy = (y0[:, None] + np.arange(bh) + 0.5).astype(f32)[:, :, None] - ay[:, None, None]
        ex, ey = ex[:, None, None], ey[:, None, None]
        inv_len2 = 1.0 / np.maximum(ex * ex + ey * ey, f32(1e-6))
        t = np.clip((dx * ex + dy * ey) * inv_len2, 0.0, 1.0)
        cx = dx - t * ex  # offset of the pixel from the nearest axis point
        cy = dy - t * ey
        rpx_a = ra_px[frames].astype(f32)[:, None, None]
        rpx = rpx_a + t * (rb_px[frames].astype(f32)[:, None, None] - rpx_a)
        d2 = (cx * cx + cy * cy) / np.maximum(rpx * rpx, f32(1e-6))
        inside = d2 < 1.0
        if not inside.any():
            return
        bulge = np.sqrt(np.maximum(1.0 - d2, 0.0))
        z_a = za[frames].astype(f32)[:, None, None]
        z_b = zb[frames].astype(f32)[:, None, None]
        z = z_a + t * (z_b - z_a) - (f32(ra) + t * f32(rb - ra)) * bulge  # front surface
        flat = ((frames[:, None, None] * h + y0[:, None, None] + np.arange(bh)[None, :, None]) * w
                + x0[:, None, None] + np.arange(bw)[None, None, :])
        sel = inside & (z < self.depth[flat])
        idx = flat[sel]
        inv_r = 1.0 / np.maximum(rpx, f32(1e-6))
        lx, ly, lz = (f32(v) for v in light_cam)
        lambert = (cx * inv_r * lx + cy * inv_r * ly - bulge * lz)[sel]
        self.depth[idx] = z[sel]
        self.shade[idx] = f32(ambient) + f32(1.0 - ambient) * np.maximum(lambert, 0.0)
        self.part[idx] = part_id

    def compose(self, part_colours: np.ndarray, background: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3): shaded part colours over a fixed (H, W, 3) background in [0, 1].

        Shades are quantised to 256 levels and looked up in a (parts, 256, 3) colour table, so
        only the covered pixels are touched.
        """
        h, w = self.size
        out = np.empty((len(self.part) // (h * w), h, w, 3), dtype=np.uint8)
        out[:] = _to_uint8(background)
        covered = np.flatnonzero(self.part != NO_PART)
        level = _to_uint8(self.shade[covered])
        table = _to_uint8(np.asarray(part_colours)[:, None, :]
                          * (np.arange(256) / 255.0)[None, :, None])
        out.reshape(-1, 3)[covered] = table[self.part[covered], level]
        return out


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded to nearest."""
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

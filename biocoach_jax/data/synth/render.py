"""Synthetic exercise video: SKEL poses -> RGB frames of a capsule body in a simple room.

`render_frames(poses, segment_lengths, camera, appearance, size)` runs forward kinematics
(`fk.py`), places ~25 tapered capsules on the bones (`render_body.py`), projects them with a
pinhole `Camera` and draws them with a z-buffer and Lambert shading (`render_raster.py`) over
a background of a wall and a tiled floor. Pure numpy, vectorised over frames and pixels;
deterministic: the same inputs give the same bytes.

World frame: y up, the subject faces +z at the origin, its left is +x (see `fk.py`).
Camera axes: x right, y down (image rows), z forward.
"""
from __future__ import annotations

import colorsys
import dataclasses
import math

import numpy as np

from biocoach_jax import skel
from biocoach_jax.data.synth import fk
from biocoach_jax.data.synth.render_body import MATERIALS, body_parts, part_endpoints
from biocoach_jax.data.synth.render_raster import Canvas

DEFAULT_SIZE = (224, 160)  # (H, W), Stream-VLM's input
_CHUNK = 96  # frames drawn together: keeps the per-pixel buffers small
RGB = tuple[float, float, float]


def _check(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise fk.FKError(f"{where}: {message}")


def _as_size(size) -> tuple[int, int]:
    _check(len(tuple(size)) == 2 and all(int(s) == s and s >= 8 for s in size),
           "render_frames", f"size must be (H, W) integers >= 8, got {size!r}")
    return int(size[0]), int(size[1])


@dataclasses.dataclass(frozen=True)
class Camera:
    """Pinhole camera on a sphere around `target`, looking at it, with no roll.

    azimuth 0 is in front of the subject (on +z); positive azimuth moves toward the subject's
    left (+x). elevation is above the horizontal through the target. focal_px is the focal
    length in pixels; the principal point is the image centre.
    """
    azimuth_deg: float = 0.0
    elevation_deg: float = 10.0
    distance_m: float = 3.6
    focal_px: float = 260.0
    target: tuple[float, float, float] = (0.0, 0.935, 0.0)

    def __post_init__(self):
        vals = (self.azimuth_deg, self.elevation_deg, self.distance_m, self.focal_px, *self.target)
        _check(len(self.target) == 3 and all(math.isfinite(v) for v in vals), "Camera",
               f"all fields must be finite, target (x, y, z); got {self}")
        _check(self.distance_m > 0 and self.focal_px > 0, "Camera",
               "distance_m and focal_px must be positive")
        _check(abs(self.elevation_deg) < 89.0, "Camera", "elevation must be within +-89 deg")

    def position(self) -> np.ndarray:
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        offset = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        return np.asarray(self.target, dtype=np.float64) + self.distance_m * offset

    def axes(self) -> np.ndarray:
        """(3, 3) rows: camera right, down and forward in world coordinates."""
        forward = np.asarray(self.target, dtype=np.float64) - self.position()
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        return np.stack([right, np.cross(forward, right), forward])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera coordinates (..., 3)."""
        return (np.asarray(points) - self.position()) @ self.axes().T

    def project(self, points: np.ndarray, size=DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coordinates (..., 2) (x, y) and depth (...) in metres."""
        p = self.to_camera(points)
        h, w = size
        z = p[..., 2]
        safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
        uv = self.focal_px * p[..., :2] / safe[..., None] + np.array([w / 2.0, h / 2.0])
        return uv, z

    def framed(self, points: np.ndarray, size=DEFAULT_SIZE, fill: float = 0.8,
               margin_m: float = 0.12) -> "Camera":
        """Same view, distance set so the points (plus a margin) reach `fill` of the image."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        _check(0 < fill <= 1 and len(pts) > 0, "Camera.framed", "need points and 0 < fill <= 1")
        h, w = size

        def extent(d: float) -> float:  # largest |offset| from the centre / half size
            uv, z = dataclasses.replace(self, distance_m=d).project(pts, size)
            if np.any(z <= margin_m):
                return np.inf
            pad = self.focal_px * margin_m / z
            ex = (np.abs(uv[:, 0] - w / 2) + pad) / (w / 2)
            ey = (np.abs(uv[:, 1] - h / 2) + pad) / (h / 2)
            return float(max(ex.max(), ey.max()))

        lo, hi = 0.3, 100.0  # extent decreases with distance: bisect
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if extent(mid) > fill else (lo, mid)
        return dataclasses.replace(self, distance_m=hi)

    @classmethod
    def sample(cls, rng: np.random.Generator, points: np.ndarray | None = None,
               segment_lengths=None, size=DEFAULT_SIZE) -> "Camera":
        """Random view: azimuth -60..60 deg, elevation 0..25 deg, vertical field of view
        35..55 deg, distance so the body fills 60..85 % of the frame.

        points: world points the view must frame, e.g. `body_points(...)` of the clip; the
        camera then looks at their mean (near the pelvis for a whole body). Default: the
        standing zero pose, looked at from its pelvis.
        """
        seg = fk.as_segment_lengths(segment_lengths)
        if points is None:
            points = body_points(np.zeros((1, skel.NUM_DOFS)), seg)
            target = (0.0, fk.pelvis_rest_height(seg), 0.0)
        else:
            points = np.asarray(points, dtype=np.float64)
            target = tuple(float(v) for v in points.reshape(-1, 3).mean(axis=0))
        h, _ = size
        vfov = math.radians(rng.uniform(35.0, 55.0))
        cam = cls(azimuth_deg=float(rng.uniform(-60.0, 60.0)),
                  elevation_deg=float(rng.uniform(0.0, 25.0)),
                  focal_px=float(h / 2 / math.tan(vfov / 2)), target=target)
        return cam.framed(points, size, fill=float(rng.uniform(0.6, 0.85)))


def _rgb(rng, h, s, v) -> RGB:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(rng.uniform(*h), rng.uniform(*s),
                                                         rng.uniform(*v)))


@dataclasses.dataclass(frozen=True)
class Appearance:
    """Colours (RGB in [0, 1]), light and build of the rendered scene.

    light_dir: toward the light in camera axes (x right, y down, z forward): (0, -1, -1) is
    light from above and from the camera. ambient: shade of surfaces facing away from it.
    girth scales every capsule radius. The floor has 0.5 m tiles whose brightness alternates
    by floor_checker; the wall stands wall_distance_m behind the subject, facing the camera.
    """
    skin: RGB = (0.87, 0.70, 0.58)
    hair: RGB = (0.20, 0.14, 0.10)
    top: RGB = (0.20, 0.40, 0.80)
    bottom: RGB = (0.15, 0.15, 0.20)
    shoes: RGB = (0.90, 0.90, 0.90)
    wall_top: RGB = (0.85, 0.85, 0.82)
    wall_bottom: RGB = (0.70, 0.70, 0.68)
    floor: RGB = (0.55, 0.45, 0.35)
    floor_checker: float = 0.06
    wall_distance_m: float = 2.5
    light_dir: tuple[float, float, float] = (-0.4, -0.6, -0.7)
    ambient: float = 0.35
    girth: float = 1.0
    long_sleeves: bool = False
    long_pants: bool = True

    def __post_init__(self):
        for name in ("skin", "hair", "top", "bottom", "shoes", "wall_top", "wall_bottom", "floor"):
            c = getattr(self, name)
            _check(len(c) == 3 and all(0.0 <= v <= 1.0 for v in c), "Appearance",
                   f"{name} must be 3 values in [0, 1], got {c!r}")
        _check(0.0 <= self.ambient <= 1.0 and 0.0 <= self.floor_checker <= 0.5, "Appearance",
               "ambient must be in [0, 1] and floor_checker in [0, 0.5]")
        _check(0.3 <= self.girth <= 3.0 and self.wall_distance_m > 0, "Appearance",
               "girth must be in [0.3, 3] and wall_distance_m positive")
        _check(len(self.light_dir) == 3 and np.linalg.norm(self.light_dir) > 1e-6
               and all(math.isfinite(v) for v in self.light_dir), "Appearance",
               f"light_dir must be a non-zero 3-vector, got {self.light_dir!r}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Appearance":
        tone = rng.uniform()  # light .. dark skin, linear in RGB between two tones
        skin = tuple(float((1 - tone) * a + tone * b)
                     for a, b in zip((0.95, 0.80, 0.70), (0.36, 0.23, 0.16)))
        light = (rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.2), -1.0)
        return cls(
            skin=skin, hair=_rgb(rng, (0.02, 0.12), (0.3, 0.8), (0.05, 0.6)),
            top=_rgb(rng, (0.0, 1.0), (0.2, 0.9), (0.3, 0.95)),
            bottom=_rgb(rng, (0.0, 1.0), (0.0, 0.6), (0.1, 0.6)),
            shoes=_rgb(rng, (0.0, 1.0), (0.0, 0.5), (0.2, 1.0)),
            wall_top=_rgb(rng, (0.0, 1.0), (0.0, 0.25), (0.6, 0.95)),
            wall_bottom=_rgb(rng, (0.0, 1.0), (0.0, 0.25), (0.5, 0.85)),
            floor=_rgb(rng, (0.05, 0.15), (0.1, 0.6), (0.25, 0.7)),
            floor_checker=float(rng.uniform(0.0, 0.12)),
            wall_distance_m=float(rng.uniform(1.5, 4.0)),
            light_dir=tuple(float(v) for v in light), ambient=float(rng.uniform(0.25, 0.5)),
            girth=float(rng.uniform(0.85, 1.25)), long_sleeves=bool(rng.uniform() < 0.4),
            long_pants=bool(rng.uniform() < 0.6))

    def material_colours(self) -> np.ndarray:
        """(len(MATERIALS), 3) colours in `render_body.MATERIALS` order."""
        return np.array([getattr(self, m) for m in MATERIALS], dtype=np.float64)


def background(camera: Camera, appearance: Appearance, size=DEFAULT_SIZE) -> np.ndarray:
    """(H, W, 3) float image of the room: a tiled floor (y = 0) and a wall behind the subject."""
    h, w = _as_size(size)
    right, down, forward = camera.axes()
    u = (np.arange(w) + 0.5 - w / 2) / camera.focal_px
    v = (np.arange(h) + 0.5 - h / 2) / camera.focal_px
    rays = forward + u[None, :, None] * right + v[:, None, None] * down  # (H, W, 3)
    origin = camera.position()
    # The wall faces the camera's horizontal direction, wall_distance_m beyond the target.
    normal = np.array([-forward[0], 0.0, -forward[2]])
    normal /= np.linalg.norm(normal)
    wall_point = np.asarray(camera.target) - appearance.wall_distance_m * normal
    toward_wall = rays @ normal
    s_wall = np.where(toward_wall < -1e-9, ((wall_point - origin) @ normal)
                      / np.minimum(toward_wall, -1e-9), np.inf)
    s_floor = np.where(rays[..., 1] < -1e-9, -origin[1] / np.minimum(rays[..., 1], -1e-9), np.inf)
    on_floor = s_floor < s_wall
    hit = origin + np.minimum(s_floor, s_wall)[..., None] * rays
    hit = np.where(np.isfinite(hit), hit, 0.0)  # rays that hit nothing show the wall top
    tile = (np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 2] / 0.5)) % 2
    floor = np.asarray(appearance.floor) * (1.0 - appearance.floor_checker * tile)[..., None]
    up = np.clip(np.where(np.isfinite(s_wall), hit[..., 1], 3.0) / 3.0, 0.0, 1.0)[..., None]
    wall = (1 - up) * np.asarray(appearance.wall_bottom) + up * np.asarray(appearance.wall_top)
    return np.where(on_floor[..., None], floor, wall)


def _posed(poses, seg, root):
    """FK with `root`, or grounded (lowest joint on the floor each frame) when root is None."""
    pos, rot = fk.forward_kinematics(poses, seg, (0.0, 0.0, 0.0) if root is None else root)
    if root is None:
        pos = pos + fk.ground_root(pos)[:, None, :]
    return pos, rot


def body_points(poses, segment_lengths=None, root=None, *, girth: float = 1.0) -> np.ndarray:
    """(T * P * 2, 3) world centres of every capsule end (for framing a camera on a clip)."""
    seg = fk.as_segment_lengths(segment_lengths)
    pos, rot = _posed(poses, seg, root)
    a, b = part_endpoints(body_parts(seg, girth=girth), pos, rot)
    return np.concatenate([a, b], axis=1).reshape(-1, 3)


def render_frames(poses, segment_lengths=None, camera: Camera | None = None,
                  appearance: Appearance | None = None, size=DEFAULT_SIZE,
                  root=None) -> np.ndarray:
    """Render SKEL poses (T, 46) radians as uint8 RGB frames (T, H, W, 3).

    segment_lengths: `SegmentLengths` or a mapping with `fk.SEGMENT_KEYS` (None: average
    adult). root: pelvis translation (3,) or (T, 3) added to the standing pelvis position;
    None keeps the lowest joint on the floor in every frame (poses given without one).
    camera / appearance default to `Camera()` looking at the standing pelvis and `Appearance()`.
    """
    seg = fk.as_segment_lengths(segment_lengths)
    h, w = _as_size(size)
    camera = camera or Camera(target=(0.0, fk.pelvis_rest_height(seg), 0.0))
    appearance = appearance or Appearance()
    pos, rot = _posed(poses, seg, root)
    parts = body_parts(seg, girth=appearance.girth, long_sleeves=appearance.long_sleeves,
                       long_pants=appearance.long_pants)
    ends_a, ends_b = part_endpoints(parts, pos, rot)
    a_uv, za = camera.project(ends_a, (h, w))
    b_uv, zb = camera.project(ends_b, (h, w))
    f = camera.focal_px
    ra_px = f * parts.ra / np.maximum(za, 1e-6)
    rb_px = f * parts.rb / np.maximum(zb, 1e-6)
    light = np.asarray(appearance.light_dir, dtype=np.float64)
    light /= np.linalg.norm(light)
    colours = appearance.material_colours()[parts.material]
    bg = background(camera, appearance, (h, w))
    out = np.empty((len(pos), h, w, 3), dtype=np.uint8)
    for start in range(0, len(pos), _CHUNK):
        sl = slice(start, start + _CHUNK)
        canvas = Canvas(len(pos[sl]), (h, w))
        for p in range(len(parts.names)):
            canvas.draw(p, a_uv[sl, p], b_uv[sl, p], za[sl, p], zb[sl, p], ra_px[sl, p],
                        rb_px[sl, p], parts.ra[p], parts.rb[p], light, appearance.ambient)
        out[sl] = canvas.compose(colours, bg)
    return out

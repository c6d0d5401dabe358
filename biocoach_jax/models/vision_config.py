"""Configuration of the causal 3D CNN (Stream-VLM's visual encoder, quic/sense
`StridedInflatedEfficientNet`).

The network is a stem conv, a list of MobileNetV2-style inverted-residual blocks and a final 1x1
conv. It is described here as stages (as in MobileNetV2 / EfficientNet tables) so that width
and depth can be scaled for tiny test configs; `VisionConfig.blocks()` expands the stages into
the flat block list whose order matches the original `nn.Sequential` (`cnn.1` ... `cnn.N`).

Facts of the original (full config): stem 3->32, 3x3, stride 2; 30 blocks in 7 stages; head
448->1280 1x1; depthwise kernels 3 or 5; temporal shift (a 3-tap causal temporal conv in the
1x1 expansion) in 8 blocks, two of which are temporally strided (stride 2 in time), so the
network emits one step per 4 frames. Input 224x160 (HxW) gives a 7x5 map.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """`num_blocks` inverted residuals; the first has `spatial_stride` and changes channels.
    `shift_at` / `tstride_at` are block indices inside the stage that carry the temporal conv
    (and, for `tstride_at`, a stride of 2 in time; a strided block always has the temporal conv)."""
    expand_ratio: int
    channels: int
    num_blocks: int
    spatial_stride: int
    kernel: int
    shift_at: tuple[int, ...] = ()
    tstride_at: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block, as the flat list `cnn.1..cnn.N` of the original."""
    in_channels: int
    out_channels: int
    kernel: int
    spatial_stride: int
    expand_ratio: int
    temporal_shift: bool
    temporal_stride: bool

    @property
    def hidden(self) -> int:
        # Python's round, as the original (`round(in_planes * expand_ratio)`).
        return int(round(self.in_channels * self.expand_ratio))

    @property
    def use_residual(self) -> bool:
        return self.spatial_stride == 1 and self.in_channels == self.out_channels

    @property
    def time_stride(self) -> int:
        return 2 if self.temporal_stride else 1


# The original StridedInflatedEfficientNet, stage by stage (see module doc).
SENSE_EFFICIENTNET_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 24, 1, 1, 3),
    StageSpec(6, 32, 4, 2, 3, shift_at=(1,)),
    StageSpec(6, 56, 4, 2, 5, shift_at=(1,), tstride_at=(1,)),
    StageSpec(6, 112, 6, 2, 3, shift_at=(1, 4), tstride_at=(4,)),
    StageSpec(6, 160, 6, 1, 5, shift_at=(1, 4)),
    StageSpec(6, 272, 8, 2, 5, shift_at=(1, 3)),
    StageSpec(6, 448, 1, 1, 3),
)


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Architecture and input geometry of the causal 3D CNN.

    frame_size: (H, W) of the input frames (the original uses 224x160).
    precision: passed to every conv / matmul (None = backend default; "highest" for exact
      float32 on GPU/TPU, where the default may use reduced-precision matmuls).
    """
    stem_channels: int = 32
    stages: tuple[StageSpec, ...] = SENSE_EFFICIENTNET_STAGES
    out_channels: int = 1280
    frame_size: tuple[int, int] = (224, 160)
    precision: Optional[str] = None

    def __post_init__(self):
        blocks = self.blocks()  # validates the stages
        if len(self.frame_size) != 2 or min(self.frame_size) < 1:
            raise ValueError(f"VisionConfig: frame_size must be (H, W) > 0, got {self.frame_size}")
        if self.out_channels < 1 or self.stem_channels < 1:
            raise ValueError("VisionConfig: channel counts must be positive")
        if not blocks:
            raise ValueError("VisionConfig: at least one block is needed")

    def blocks(self) -> tuple[BlockSpec, ...]:
        out, c_in = [], self.stem_channels
        for si, st in enumerate(self.stages):
            bad = [i for i in (*st.shift_at, *st.tstride_at) if not 0 <= i < st.num_blocks]
            if st.num_blocks < 1 or st.spatial_stride not in (1, 2) or st.kernel % 2 != 1 or bad:
                raise ValueError(f"VisionConfig: invalid stage {si}: {st}")
            for i in range(st.num_blocks):
                tstride = i in st.tstride_at
                shift = tstride or i in st.shift_at
                if shift and st.expand_ratio == 1:
                    # The temporal conv lives in the 1x1 expansion, which ratio 1 does not have.
                    raise ValueError(f"VisionConfig: stage {si} has a temporal conv but expand_ratio 1")
                out.append(BlockSpec(c_in, st.channels, st.kernel, st.spatial_stride if i == 0 else 1,
                                     st.expand_ratio, shift, tstride))
                c_in = st.channels
        return tuple(out)

    @property
    def last_block_channels(self) -> int:
        return self.blocks()[-1].out_channels

    @property
    def time_stride(self) -> int:
        """Frames per output step (4 in the original: two blocks with stride 2 in time)."""
        return math.prod(b.time_stride for b in self.blocks())

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """(h, w) of the output map: every stride-2 conv maps n -> floor((n - 1) / 2) + 1 with
        PyTorch's symmetric padding (k - 1) / 2."""
        h, w = self.frame_size
        for s in [2] + [b.spatial_stride for b in self.blocks()]:
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
        return h, w

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VisionConfig":
        try:
            stages = tuple(StageSpec(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in s.items()}) for s in d["stages"])
            return cls(stem_channels=int(d["stem_channels"]), stages=stages,
                       out_channels=int(d["out_channels"]), frame_size=tuple(d["frame_size"]),
                       precision=d.get("precision"))
        except (KeyError, TypeError) as e:
            raise ValueError(f"VisionConfig.from_dict: malformed config ({type(e).__name__}: {e})") from None


def _make_divisible(c: float, divisor: int = 8) -> int:
    # MobileNet rounding: nearest multiple of `divisor`, never below 90% of the request.
    v = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return v + divisor if v < 0.9 * c else v


def make_config(width: float = 1.0, depth: float = 1.0, out_channels: int = 1280,
                frame_size: tuple[int, int] = (224, 160), precision: Optional[str] = None) -> VisionConfig:
    """The original architecture scaled in width (channels, rounded to multiples of 8) and depth
    (blocks per stage, rounded up). width = depth = 1 is exactly the original; shift / stride
    positions past a shortened stage's end move to its last block, so every config keeps the
    temporal structure (two strided blocks -> one step per 4 frames)."""
    if width <= 0 or depth <= 0:
        raise ValueError(f"make_config: width and depth must be > 0, got {width}, {depth}")
    stages = []
    for st in SENSE_EFFICIENTNET_STAGES:
        n = max(1, math.ceil(st.num_blocks * depth))
        clamp = lambda idx: tuple(sorted({min(i, n - 1) for i in idx}))  # noqa: E731
        ch = st.channels if width == 1.0 else _make_divisible(st.channels * width)
        stages.append(dataclasses.replace(st, channels=ch, num_blocks=n,
                                          shift_at=clamp(st.shift_at), tstride_at=clamp(st.tstride_at)))
    stem = 32 if width == 1.0 else _make_divisible(32 * width)
    return VisionConfig(stem_channels=stem, stages=tuple(stages), out_channels=out_channels,
                        frame_size=tuple(frame_size), precision=precision)

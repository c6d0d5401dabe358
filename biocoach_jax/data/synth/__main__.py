"""python -m biocoach_jax.data.synth --out DIR --split train|benchmark --sessions N --seed S
[--size HxW] [--workers K] [--no-video]: write a synthetic QEVD-format split (writer.py)."""
from __future__ import annotations

import argparse
import pathlib
import sys

from .writer import SynthConfig, write_split


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 224x160 (HxW), got {text!r}")
    return h, w


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m biocoach_jax.data.synth", description=__doc__)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--split", default="train", choices=("train", "benchmark"))
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=(224, 160), help="video H x W, e.g. 224x160")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--no-video", action="store_true", help="skip rendering the mp4 files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        cfg = SynthConfig(a.out, a.split, a.sessions, a.seed, a.size, not a.no_video)
        index = write_split(cfg, a.workers, progress=not a.quiet)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.sessions} session(s) to {cfg.root} (index {index.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

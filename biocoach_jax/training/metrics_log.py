"""Training metrics to TensorBoard event files (tensorboardX) and `<workdir>/metrics.jsonl`.

Only process 0 writes. Each JSONL line is one flushed record {"step", "split", name: value}, so
a crashed run keeps every line it logged; a resumed run appends.
"""
from __future__ import annotations

import json
import math
import pathlib

import jax


class MetricsLogger:
    def __init__(self, workdir, *, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tb = None
        if self.enabled:
            from tensorboardX import SummaryWriter  # imported here: only process 0 needs it
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))
            self._file = open(self.path, "a", buffering=1)  # line-buffered: one flush per record

    def write(self, step: int, metrics: dict, split: str = "train") -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items()}
        for k, v in clean.items():
            if math.isfinite(v):
                self._tb.add_scalar(f"{split}/{k}", v, int(step))
        rec = {"step": int(step), "split": split}
        rec.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
        self._file.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        if self.enabled:
            self._tb.flush()
            self._tb.close()
            self._file.close()
            self.enabled = False


def read_metrics(workdir, split: str | None = None) -> list[dict]:
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]

"""Plots a person looks at: joint-angle trajectories with cycles, keyframes, intervals, violations."""
from __future__ import annotations

import math

import numpy as np

from . import skel
from .io_utils import atomic_path

_MAX_PANELS = 8
_CYCLE_KINDS = ("tempo_fast", "tempo_slow", "incomplete")   # about the rep, not one angle


def _panel_dofs(report) -> list[str]:
    """The driving DoF first, then DoFs with violations, then bounded ones, then the most moving."""
    bounded = [d for d in report.selected_dofs
               if np.isfinite(report.interval_lo[skel.dof_index(d)])
               or np.isfinite(report.interval_hi[skel.dof_index(d)])]
    rom = {d: np.ptp(report.raw[:, skel.dof_index(d)]) for d in report.selected_dofs}
    candidates = ([report.driving_dof]
                  + [v.dof for v in report.violations if v.dof in report.selected_dofs]
                  + bounded + sorted(rom, key=rom.get, reverse=True))
    return list(dict.fromkeys(candidates))[:_MAX_PANELS]   # unique, first occurrence kept


def plot_analysis(report, out_path) -> None:
    """Write a PNG: one panel per DoF (raw and smoothed degrees), cycles shaded (incomplete in
    red), keyframes marked, the exercise's interval as a band, violations annotated."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dofs = _panel_dofs(report)
    fig, axes = plt.subplots(len(dofs), 1, figsize=(10, 1.9 * len(dofs) + 0.8), sharex=True,
                             squeeze=False)
    t = report.t
    for ax, dof in zip(axes[:, 0], dofs):
        i = skel.dof_index(dof)
        ax.plot(t, np.degrees(report.raw[:, i]), color="0.65", lw=0.8, label="raw")
        ax.plot(t, np.degrees(report.smoothed[:, i]), color="C0", lw=1.4, label="smoothed")
        lo, hi = report.interval_lo[i], report.interval_hi[i]
        if np.isfinite(lo) or np.isfinite(hi):
            ylo = math.degrees(lo) if np.isfinite(lo) else ax.get_ylim()[0]
            yhi = math.degrees(hi) if np.isfinite(hi) else ax.get_ylim()[1]
            ax.axhspan(ylo, yhi, color="C2", alpha=0.12, label="interval at keyframe")
        for c in report.cycles:
            ax.axvspan(c.start_s, c.end_s, color="C0" if c.complete else "C3", alpha=0.07)
            ax.axvline(c.keyframe_s, color="C1", lw=0.8, ls="--")
        labels: dict[int | None, tuple[float, list[str]]] = {}
        for v in report.violations:
            if v.dof != dof or v.kind in _CYCLE_KINDS:
                continue
            frame = int(np.clip(np.searchsorted(t, v.time_s), 0, len(t) - 1))
            ax.plot([v.time_s], [np.degrees(report.smoothed[frame, i])], "x", color="C3", ms=8, mew=2)
            labels.setdefault(v.cycle, (v.time_s, []))[1].append(v.kind.replace("_", " "))
        for when, kinds in labels.values():   # one label per cycle, kinds joined
            ax.annotate(", ".join(dict.fromkeys(kinds)), (when, ax.get_ylim()[1]), fontsize=7,
                        color="C3", ha="center", va="top")
        ax.set_ylabel(f"{skel.dof_label(dof)}\n(deg)", fontsize=8)
        ax.grid(alpha=0.3)
    for v in report.violations:
        if v.kind in _CYCLE_KINDS:
            axes[0, 0].annotate(v.kind.replace("_", " "), (v.time_s, axes[0, 0].get_ylim()[0]),
                                fontsize=7, color="C3", ha="center", va="bottom")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{report.exercise}: {report.reps} reps, {len(report.violations)} violations "
                 f"- {report.source.split('/')[-1]}", fontsize=10)
    fig.tight_layout()
    with atomic_path(out_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

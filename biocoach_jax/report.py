"""HTML reports of coached sessions: one page per session, PNGs beside it, and an index.html.

Each segment of a session gets the angle plots of its poses (`plots.plot_analysis`: cycles,
keyframes, intervals, violations) and a timeline of predicted against ground-truth feedback
times (one lane per system), followed by the texts. Pages are self-contained folders (relative
links only), viewable in a browser; every file is written atomically.
"""
from __future__ import annotations

import html
import pathlib
import re

from biocoach_jax.io_utils import atomic_path, atomic_write_text

_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
          "vertical-align:top}img{max-width:100%}.warn{color:#a40}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def plot_timeline(lanes: list[tuple[str, list]], duration_s: float, out_path) -> None:
    """lanes: [(name, [(time_s, text), ...])]; the first lane is the ground truth."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.6 * len(lanes) + 1.0))
    for y, (name, fbs) in enumerate(lanes):
        times = [t for t, _ in fbs]
        ax.scatter(times, [y] * len(times), marker="|" if y == 0 else "o", s=200 if y == 0 else 30,
                   color="k" if y == 0 else f"C{y}", zorder=3)
        for t in times if y == 0 else []:
            ax.axvspan(t - 1.5, t + 1.5, color="0.85", zorder=1)   # T-F-Score tolerance
    ax.set_yticks(range(len(lanes)), [n for n, _ in lanes])
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(0, max(duration_s, 1.0))
    ax.set_xlabel("time from segment start (s); grey: +-1.5 s match window")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _angle_plot(seg, png) -> str | None:
    """Write the segment's angle plot; returns a warning instead when it cannot be analysed."""
    if seg.poses is None:
        return "no poses for this segment"
    from biocoach_jax.analysis import analyze_recording
    from biocoach_jax.data.sequence import library_exercise
    from biocoach_jax.plots import plot_analysis

    ex = library_exercise(seg.exercise)
    try:
        rep = analyze_recording(seg.poses, ex.name if ex is not None else "auto")
    except ValueError as e:
        return f"angle plot skipped: {e}"
    plot_analysis(rep, png)
    return None


def _fb_table(lanes) -> str:
    rows = []
    for name, fbs in lanes:
        for t, text in fbs:
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{t:.2f}</td>"
                        f"<td>{html.escape(text)}</td></tr>")
    return ("<table><tr><th>source</th><th>time (s)</th><th>feedback</th></tr>"
            + "".join(rows) + "</table>")


def write_session_page(out_dir, session_id: str, items) -> pathlib.Path:
    """items: [(segment, [(system label, predictions)])] of one session -> its page."""
    folder = pathlib.Path(out_dir) / _slug(session_id)
    folder.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>Session {html.escape(session_id)}</h1><p><a href='../index.html'>index</a></p>"]
    for n, (seg, systems) in enumerate(items):
        stem = f"seg{n:02d}_{_slug(seg.exercise)}"
        lanes = [("ground truth", list(seg.feedbacks))] + [(lab, p) for lab, p in systems]
        plot_timeline(lanes, seg.end_s - seg.start_s, folder / f"{stem}_timeline.png")
        warn = _angle_plot(seg, folder / f"{stem}_angles.png")
        angles = (f"<p class='warn'>{html.escape(warn)}</p>" if warn else
                  f"<img src='{stem}_angles.png' alt='joint angles'>")
        parts.append(f"<h2>{html.escape(seg.exercise)} ({seg.start_s:.1f}-{seg.end_s:.1f} s)</h2>"
                     f"<img src='{stem}_timeline.png' alt='feedback timeline'>{angles}"
                     f"{_fb_table(lanes)}")
    page = folder / "index.html"
    atomic_write_text(page, _html(f"Session {session_id}", "".join(parts)))
    return page


def _html(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body>{body}</body></html>\n")


def write_reports(out_dir, segments, rows) -> pathlib.Path:
    """Pages for every session of `segments` with the predictions of `rows` (evaluate's rows,
    `predictions` in segment order); returns the index.html path."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_session: dict[str, list] = {}
    for i, seg in enumerate(segments):
        systems = [(r["label"], [tuple(p) for p in r["predictions"][i]["pred"]]) for r in rows]
        by_session.setdefault(seg.session_id, []).append((seg, systems))
    links = []
    for sid, items in by_session.items():
        page = write_session_page(out, sid, items)
        n_gt = sum(len(s.feedbacks) for s, _ in items)
        links.append(f"<li><a href='{page.parent.name}/index.html'>{html.escape(sid)}</a>: "
                     f"{len(items)} segment(s), {n_gt} ground-truth feedback(s)</li>")
    index = out / "index.html"
    atomic_write_text(index, _html("BioCoach report", "<h1>Sessions</h1><ul>" + "".join(links)
                                   + "</ul>"))
    return index

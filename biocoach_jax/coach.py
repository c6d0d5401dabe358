"""Stream a workout through the coach and print each feedback with its time as it is produced.

    python -m biocoach_jax.coach --config C --checkpoint K --video V.mp4 --poses HSMR.npy \
        --exercise squat [--measurements M.json] [--realtime]
    python -m biocoach_jax.coach --rule_based --poses HSMR.npy --exercise squat
    python -m biocoach_jax.coach --rule_based --session DATA_DIR:ID [--split benchmark]

`--rule_based` speaks from the kinematics alone through the exercise library's cues (no model):
a baseline and a fallback. `--realtime` paces the media to the wall clock (a live feed);
by default it runs as fast as possible. The last line is the real-time factor (processing time
/ media duration). A video or pose file that breaks mid-stream stops the run with an error
naming the file and the frame/time reached (exit code 2); the feedback already given stays
printed above it.
"""
from __future__ import annotations

import argparse
import sys


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m biocoach_jax.coach", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="model config file (configs/...py)")
    p.add_argument("--checkpoint", help="training run directory (or its checkpoints/)")
    p.add_argument("--rule_based", action="store_true", help="no model: library cues from C_motion")
    p.add_argument("--video", help="workout video (.mp4)")
    p.add_argument("--poses", help="HSMR output (.npy), one entry per video frame")
    p.add_argument("--measurements", help="body measurements JSON (morphometrics layout)")
    p.add_argument("--exercise", help="exercise name (library name or QEVD name, e.g. squats)")
    p.add_argument("--session", metavar="DATA_DIR:ID", help="a recorded workout of a QEVD split")
    p.add_argument("--split", default="benchmark", help="split of --session (default benchmark)")
    p.add_argument("--realtime", action="store_true", help="pace to the wall clock")
    args = p.parse_args(argv)
    if not args.rule_based and not (args.config and args.checkpoint):
        p.error("give --config and --checkpoint, or --rule_based")
    if args.session is None and not (args.video or args.poses):
        p.error("give --video/--poses, or --session DATA_DIR:ID")
    if args.session is None and not args.exercise:
        p.error("--exercise is needed with --video/--poses")
    if args.rule_based and args.session is None and not args.poses:
        p.error("the rule-based coach needs --poses")
    return args


def _say(fb) -> None:
    print(f"[{fb.time_s:8.2f} s] {fb.text}", flush=True)


def _jobs(args, loaded):
    """(title, exercise, events, measurements, end_s) per stream to coach."""
    from biocoach_jax.coaching import sources

    size = sources.frame_size(loaded)
    if args.session is None:
        meas = None
        if args.measurements:
            from biocoach_jax.data.qevd import read_morphometrics
            meas = read_morphometrics(args.measurements)
        yield (args.video or args.poses, args.exercise,
               sources.file_events(args.video, args.poses, size=size), meas, None)
        return
    from biocoach_jax.data.session import load_split, session_segments

    data_dir, _, sid = args.session.rpartition(":")
    if not data_dir or not sid:
        raise ValueError(f"--session must be DATA_DIR:ID, got {args.session!r}")
    sessions = {s.session_id: s for s in load_split(data_dir, args.split)}
    if sid not in sessions:
        raise ValueError(f"{data_dir} ({args.split}): no session {sid!r}; have "
                         f"{', '.join(sorted(sessions)[:20])}")
    for seg in session_segments(sessions[sid]):
        events = sources.segment_events(seg, with_video=loaded is not None, size=size)
        yield (f"{sid} {seg.exercise} @ {seg.start_s:.2f} s (times from the segment start)",
               seg.exercise, events, seg.measurements, seg.end_s - seg.start_s)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from biocoach_jax.analyze import _enable_compile_cache
    from biocoach_jax.coaching import run_coach, sources

    _enable_compile_cache()
    loaded = None
    try:
        if not args.rule_based:
            from biocoach_jax.coaching.loading import load_coach
            loaded = load_coach(args.config, args.checkpoint)
        wall = media = 0.0
        for title, exercise, events, meas, end_s in _jobs(args, loaded):
            print(f"== {title}", flush=True)
            coach = sources.make_coach(exercise, loaded=loaded, measurements=meas)
            run = run_coach(coach, events, end_s=end_s, realtime=args.realtime, on_feedback=_say)
            wall, media = wall + run.wall_s, media + run.media_s
            if run.error is not None:
                print(f"error: {run.error}\n({len(run.feedbacks)} feedback(s) given before the "
                      f"stream broke are printed above)", file=sys.stderr, flush=True)
                return 2
        print(f"real-time factor: {wall / media if media > 0 else float('nan'):.3f}", flush=True)
        return 0
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The synthetic world agrees with the kernel: on 50 benchmark sessions, `analyze` run on each
segment of the HSMR-format pose estimates finds the generated repetitions exactly and the
injected errors with >= 90% recall at <= 10% false alarms (the confusion is printed)."""
import collections
import json
import subprocess
import sys

import numpy as np
import pytest

from biocoach_jax import skel
from biocoach_jax.analysis import analyze_recording
from biocoach_jax.data.hsmr import read_hsmr

SESSIONS = 50


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    print(f"[synth seed {seed}]")
    subprocess.run([sys.executable, "-m", "biocoach_jax.data.synth", "--out", str(out),
                    "--split", "benchmark", "--sessions", str(SESSIONS), "--seed", str(seed),
                    "--no-video", "--quiet"], check=True, capture_output=True)
    return out / "QEVD-FIT-COACH-Benchmark"


def _segment(rec, seg):
    keep = slice(seg["start_frame"], seg["end_frame"] + 1)
    return rec.__class__(**{**rec.__dict__, "poses": rec.poses[keep],
                            "timestamps": rec.timestamps[keep]})


def _same(v_dof, e_dof, kind):
    # asymmetry is reported on the right DoF of a pair; the generator may record either side
    return v_dof == e_dof or (kind == "asymmetry" and skel.mirror_name(v_dof) == e_dof)


def test_kernel_recovers_reps_and_injected_errors(world):
    confusion = collections.Counter()
    rep_mismatches, n_segments = [], 0
    for gt_path in sorted((world / "ground_truth").glob("*.json")):
        gt = json.loads(gt_path.read_text())
        rec = read_hsmr(world / "HSMR_outputs" / f"HSMR-{gt['session_id']}.npy", fps=gt["fps"])
        for seg in gt["segments"]:
            n_segments += 1
            report = analyze_recording(_segment(rec, seg), seg["exercise"], fps=gt["fps"])
            # the same number of reps, each detected keyframe inside its generated rep (keyframes
            # of reps with a hold at the top, e.g. a glute bridge, are a plateau, not a point)
            reps = seg["reps"]
            if len(report.cycles) != len(reps) or not all(
                    r["start_s"] <= c.keyframe_s <= r["end_s"] for c, r in zip(report.cycles, reps)):
                rep_mismatches.append((gt["session_id"], seg["exercise"], len(report.cycles), len(reps)))
                continue
            found = [False] * len(report.violations)
            for e in seg["injected_errors"]:
                hit = [i for i, v in enumerate(report.violations)
                       if v.cycle == e["rep"] and v.kind == e["kind"] and _same(v.dof, e["dof"], v.kind)]
                confusion[(e["kind"], "detected" if hit else "missed")] += 1
                for i in hit:
                    found[i] = True
            for v, ok in zip(report.violations, found):
                if not ok:
                    confusion[(v.kind, "false_alarm")] += 1
    print(f"\n{n_segments} segments; repetition mismatches: {rep_mismatches}")
    print(f"{'kind':18s} {'detected':>9s} {'missed':>7s} {'false_alarm':>12s}")
    for kind in sorted({k for k, _ in confusion}):
        print(f"{kind:18s} {confusion[(kind, 'detected')]:9d} {confusion[(kind, 'missed')]:7d} "
              f"{confusion[(kind, 'false_alarm')]:12d}")
    detected = sum(n for (k, what), n in confusion.items() if what == "detected")
    missed = sum(n for (k, what), n in confusion.items() if what == "missed")
    false = sum(n for (k, what), n in confusion.items() if what == "false_alarm")
    recall = detected / max(detected + missed, 1)
    false_rate = false / max(detected + false, 1)
    print(f"recall {recall:.3f}  false-alarm share of detections {false_rate:.3f}")
    assert not rep_mismatches
    assert detected + missed > 100          # the sample really holds injected errors
    assert recall >= 0.90
    assert false_rate <= 0.10

"""evaluate: the table on a tiny QEVD-layout split whose ground truth is hand-made from the
coach's own output (so the expected scores are known exactly), and the HTML report."""
import json

import numpy as np
import pytest

from biocoach_jax.data import qevd

FPS = 16.0


def _write_split(root, world, feedbacks_s):
    """One workout: 'First up are squats!', the feedbacks (seconds after the workout start),
    then the closing transition. world: (poses at 16 fps, absolute frame times)."""
    from tests.test_coach import _write_hsmr

    poses, t_abs = world
    n = len(poses)
    spans = [qevd.Span(0, 3, "First up are squats!", float(t_abs[0]), True)]
    for k, (t, text) in enumerate(feedbacks_s):
        f = int(np.clip(round(t * FPS), spans[-1].end_frame + 2, n - 12))
        spans.append(qevd.Span(f, f, text, float(t_abs[0] + t), False))
    spans.append(qevd.Span(n - 8, n - 1 - 1, "That's the end of the workout!", float(t_abs[n - 8]), True))
    w = qevd.Workout("0001", "long_range_videos/0001.mp4", "long_range_videos/0001_timestamps.npy", n, spans)
    (root / "long_range_videos").mkdir(parents=True, exist_ok=True)
    (root / w.video_file).write_bytes(b"not decoded by the rule-based coach")
    qevd.write_video_timestamps(root / w.timestamps_file, t_abs)
    qevd.write_feedbacks_json(root / qevd.RECORDS_FILE, [w])
    (root / "HSMR_outputs").mkdir(exist_ok=True)
    _write_hsmr(root / "HSMR_outputs/HSMR-0001.npy", poses)


@pytest.fixture(scope="module")
def coached(tmp_path_factory):
    """(data dir, rule-based predictions on its one segment, segment start)."""
    from biocoach_jax.data.session import load_segments
    from biocoach_jax.evaluate import coach_segments

    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % 2**32))
    data = tmp_path_factory.mktemp("qevd")
    root = data / qevd.BENCHMARK_DIR
    from tests.test_coach import squat_stream

    # reps every 4.4 s (2 s rest): far enough apart for the shifted-truth test below
    poses, times, _ = squat_stream(rng, 4, 1, FPS, scale=0.7, rest_s=2.0)
    world = (poses, 1.7e9 + rng.uniform(0, 1e4) + times)
    _write_split(root, world, [(2.0, "placeholder")])
    segs = load_segments(data, "benchmark")
    assert len(segs) == 1 and segs[0].exercise == "squats"
    preds, warnings = coach_segments(segs)
    assert not warnings and len(preds[0]) >= 3
    return data, world, preds[0], segs[0].start_s


def test_table_is_perfect_when_ground_truth_is_the_prediction(coached, tmp_path):
    from biocoach_jax.evaluate import main

    data, world, pred, start = coached
    root = data / qevd.BENCHMARK_DIR
    # ground truth := the coach's own feedback (times on the workout clock), then evaluate
    _write_split(root, world, [(start + t, text) for t, text in pred])
    assert main(["--data", str(data), "--split", "benchmark", "--rule_based", "--no_bertscore",
                 "--label", "rules", "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out/table.json").read_text())
    m = rows[0]["metrics"]
    assert rows[0]["label"] == "rules"
    assert m["t_f_score"] == pytest.approx(1.0) and m["n_matched"] == len(pred)
    assert m["rouge_l"] == pytest.approx(1.0)
    assert m["meteor"] > 0.95
    md = (tmp_path / "out/table.md").read_text()
    assert md.splitlines()[0].startswith("| system | METEOR | ROUGE-L |")
    assert "| rules | " in md and "1.000" in md


def test_half_the_ground_truth_shifted_out_of_tolerance(coached, tmp_path):
    from biocoach_jax.evaluate import main

    data, world, pred, start = coached
    root = data / qevd.BENCHMARK_DIR
    # every second ground-truth feedback 2 s later than said: |dt| >= 1.5 s, so unmatched
    # (and the greedy matcher's nearest prediction for it is never closer than 1.5 s)
    gt = [(start + t + (2.0 if i % 2 else 0.0), text) for i, (t, text) in enumerate(pred)]
    p_abs = np.array([start + t for t, _ in pred])
    for i, (t, _) in enumerate(gt):
        if i % 2 and np.abs(p_abs - t).min() < 1.6:
            pytest.skip(f"a shifted truth lands near another prediction: {pred}")
    _write_split(root, world, gt)
    out = tmp_path / "out"
    assert main(["--data", str(data), "--split", "benchmark", "--rule_based", "--no_bertscore",
                 "--out", str(out), "--report", str(tmp_path / "report")]) == 0
    m = json.loads((out / "table.json").read_text())[0]["metrics"]
    n = len(pred)
    kept = (n + 1) // 2
    assert m["t_recall"] == pytest.approx(kept / n) and m["t_precision"] == pytest.approx(kept / n)
    assert m["t_f_score"] == pytest.approx(kept / n)
    # the report: an index and one page per session with its PNGs
    index = (tmp_path / "report/index.html").read_text()
    assert "0001/index.html" in index
    page = (tmp_path / "report/0001/index.html").read_text()
    pngs = sorted(p.name for p in (tmp_path / "report/0001").glob("*.png"))
    assert any(p.endswith("_timeline.png") for p in pngs) and any(p.endswith("_angles.png") for p in pngs)
    for p in pngs:
        assert p in page and (tmp_path / "report/0001" / p).read_bytes()[:4] == b"\x89PNG"
    assert pred[0][1].replace("'", "&#x27;") in page or pred[0][1] in page


def test_segment_truths_pick_the_fact_of_the_same_feedback():
    from types import SimpleNamespace

    from biocoach_jax.evaluate import segment_truths

    gt = {"feedbacks": [
        {"time_s": 10.2, "text": "Bend your knees more!", "facts": [
            {"dof": "knee_angle_r", "kind": "below_interval", "value": 71.5, "unit": "deg"},
            {"dof": "knee_angle_l", "kind": "below_interval", "value": 73.0, "unit": "deg"}]},
        {"time_s": 10.4, "text": "3 reps", "facts": [{"kind": "count", "value": 3}]},
        {"time_s": 14.0, "text": "Slow down", "facts": [
            {"dof": "knee_angle_r", "kind": "tempo_fast", "value": 0.9, "unit": "s"}]}]}
    seg = SimpleNamespace(start_s=8.0, ground_truth=gt, feedbacks=[
        (2.3, "Bend your knees more!"), (2.4, "3 reps"), (6.1, "Slow down"), (20.0, "Nice"), (5.5, "Too quick")])
    got = segment_truths(seg)
    # a bilateral line: the first fact speaks for the line, both DoFs are named
    assert got[0] == {"dof": "knee_angle_r", "dofs": ["knee_angle_r", "knee_angle_l"],
                      "kind": "below_interval", "value_deg": 71.5}
    assert got[1] is None        # its own entry (same text) has no violation fact
    assert got[2] == {"dof": "knee_angle_r", "dofs": ["knee_angle_r"], "kind": "tempo_fast",
                      "value_deg": None}
    assert got[3] is None
    assert got[4] == got[2]      # no entry of its own: the nearest violation within 1.5 s

"""grain pipeline (data/pipeline.py) over a tiny QEVD-layout world written by the test."""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
import pytest

from biocoach_jax.data import pipeline as pl
from biocoach_jax.data import qevd
from biocoach_jax.data.video import write_video
from biocoach_jax.tokenizer import train_bpe_tokenizer
from test_sequence import CORPUS, squat_rep

FPS = 16
BASE_S = 1.7e9 + 0.25   # QEVD clock of the first frame
N_FEAT, C_FEAT = 6, 4   # features (C, h, w) = (4, 3, 2) -> 6 tokens of 4 channels
FEEDBACKS = ["Great job, keep your chest up!", "Squat deeper, bend your knees more.",
             "Nice pace, three more reps to go.", "Keep your back straight and your knees out."]


def write_world(root, rng, n_videos: int, *, video_size=None, features=True):
    """n_videos workouts of ~20 s at 16 fps: squats then burpees, 2-3 feedbacks each, HSMR poses,
    measurements; a real tiny mp4 when video_size=(H, W), else a placeholder file; features
    whose step k of video v holds the value 1000 v + k everywhere (so a test can read back
    which steps a batch carries)."""
    split = root / qevd.TRAIN_DIR
    (split / "long_range_videos").mkdir(parents=True)
    workouts = []
    for v in range(n_videos):
        n = int(rng.integers(300, 340))
        vid, ts_file = f"long_range_videos/{v:04d}.mp4", f"long_range_videos/{v:04d}_timestamps.npy"
        t = BASE_S + 100 * v + np.arange(n) / FPS
        qevd.write_video_timestamps(split / ts_file, t)
        if video_size is None:
            (split / vid).write_bytes(b"placeholder")
        else:
            write_video(split / vid, rng.integers(0, 256, (n, *video_size, 3), dtype=np.uint8), FPS)
        mid, last = int(rng.integers(140, 170)), n - 12
        spans = [(0, 7, "First up are squats!", True)]
        for a in sorted(rng.choice(np.arange(12, mid - 10, 9), 3, replace=False)):
            spans.append((int(a), int(a) + 5, FEEDBACKS[int(rng.integers(4))], False))
        spans.append((mid, mid + 7, "Moving on to burpees!", True))
        for a in sorted(rng.choice(np.arange(mid + 12, last - 10, 9), 2, replace=False)):
            spans.append((int(a), int(a) + 5, FEEDBACKS[int(rng.integers(4))], False))
        spans.append((last, last + 7, "Moving on to the cooldown!", True))
        # touching spans with equal text would merge: make every text unique per workout
        spans = [(a, b, f"{txt} ({i})" if not tr else txt, tr) for i, (a, b, txt, tr) in enumerate(spans)]
        workouts.append(qevd.Workout(f"{v:04d}", vid, ts_file, n,
                                     [qevd.Span(a, b, txt, float(t[a]), tr) for a, b, txt, tr in spans]))
        reps = [squat_rep(int(rng.integers(28, 36)), rng.uniform(0.5, 1.0)) for _ in range(12)]
        poses = np.concatenate(reps)[:n]
        (split / "HSMR_outputs").mkdir(exist_ok=True)
        frames = [{"poses": p[None].astype(np.float32), "betas": np.zeros((1, 10), np.float32)}
                  for p in poses]
        np.save(split / f"HSMR_outputs/HSMR-{v:04d}.npy", np.array(frames, dtype=object),
                allow_pickle=True)
        (split / "morphometrics").mkdir(exist_ok=True)
        qevd.write_morphometrics(split / f"morphometrics/{v:04d}.json", {
            "height_m": rng.uniform(1.5, 1.9), "mass_kg": rng.uniform(50, 90), "chest_m": 0.95,
            "waist_m": 0.8, "hip_m": 1.0})
        if features:
            steps = n // 4
            f = np.zeros((steps + 1, C_FEAT, 3, 2), np.float32)
            f[1:] = (1000 * v + np.arange(1, steps + 1))[:, None, None, None]
            st = np.concatenate([[t[0]], t[np.arange(steps) * 4 + 3]])
            out = split / "efficientnet_features/long_range_videos"
            out.mkdir(parents=True, exist_ok=True)
            np.save(out / f"{v:04d}_features.npy", f)
            np.save(out / f"{v:04d}_timestamps.npy", st)
    qevd.write_feedbacks_json(split / qevd.RECORDS_FILE, workouts)
    return split, workouts


def make_cfg(data_dir, **kw):
    d = dict(data_dir=str(data_dir), split="train", eval_split="train", fps=16.0, step_hz=4.0,
             window_s=3.0, alpha=0.1, use_motion_context=True, context_dofs="labels",
             use_morphology=True, max_tokens=1200, max_steps=80, max_morph_tokens=32,
             batch_size=2, workers=0, shuffle_buffer=0)
    d.update(kw)
    return ml_collections.ConfigDict({"seed": 3, "data": d})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    rng = np.random.default_rng(int.from_bytes(np.random.bytes(4), "little"))
    root = tmp_path_factory.mktemp("world")
    split, workouts = write_world(root, rng, 3)
    tok = train_bpe_tokenizer(CORPUS + FEEDBACKS * 4, 400, root / "tok", seed=0)
    cfg = make_cfg(root)
    source = pl.make_source(cfg, tok, "train")
    return root, workouts, tok, cfg, source


def _same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _take(it, n):
    return [next(it) for _ in range(n)]


def _segments(root, workouts):
    """The split's segments in load order (workouts, then their exercises)."""
    out = []
    for v, w in enumerate(workouts):
        t = qevd.read_video_timestamps(root / qevd.TRAIN_DIR / w.timestamps_file)
        out += [(v, seg) for seg in qevd.segment_workout(w, t)]
    return out


def test_batches_carry_the_segment_steps(world):
    root, workouts, tok, cfg, source = world
    segs = _segments(root, workouts)
    assert len(source) == len(segs) == 6
    ev = pl.make_eval_batches(cfg, tok, "train")
    batches = list(ev)
    assert len(batches) == len(ev) == 3
    assert np.concatenate([b.episode_index for b in batches]).tolist() == list(range(6))
    for b in batches:
        assert b.tokens.shape == (2, 1200) and b.features.shape == (2, 80, N_FEAT, C_FEAT)
        for r in range(2):
            i = int(b.episode_index[r])
            ep, (v, seg) = source.episodes[i], segs[i]
            assert ep.exercise == seg.exercise
            k = int(b.step_mask[r].sum())
            assert k == b.vision_mask[r].sum() <= ep.num_steps
            assert np.all(b.features[r, 0] == 0) and np.all(b.features[r, k:] == 0)
            steps = b.features[r, 1:k, 0, 0] - 1000 * v              # file steps read back
            assert np.all(b.features[r, 1:k] == b.features[r, 1:k, :1, :1])
            step_time = lambda j: BASE_S + 100 * v + (4 * j - 1) / FPS  # noqa: E731
            first = next(j for j in range(1, 999) if step_time(j) > seg.start_s + 1e-6)
            np.testing.assert_array_equal(steps, first + ep.step_index[1:k] - 1)
            assert np.all(step_time(steps) <= seg.end_s + 1e-6)
            assert b.joint_label_mask[r] == (seg.exercise == "squats")
            # squats get C_motion, burpees (not in the library) do not
            assert (b.tokens[r] == tok.motion_id).any() == (seg.exercise == "squats")
            n = int(b.attention_mask[r].sum())
            np.testing.assert_array_equal(b.tokens[r, :n], ep.tokens[:n])


def test_seed_determinism_epochs_and_resume(world):
    _, _, tok, cfg, source = world
    a = _take(pl.make_train_iterator(cfg, tok, 0, 1, source=source), 6)
    b = _take(pl.make_train_iterator(cfg, tok, 0, 1, source=source), 6)
    for x, y in zip(a, b):
        _same(x, y)
    epoch1 = np.concatenate([x.episode_index for x in a[:3]])
    epoch2 = np.concatenate([x.episode_index for x in a[3:]])
    assert sorted(epoch1) == sorted(epoch2) == list(range(6))
    other = cfg.copy_and_resolve_references()
    other.seed = 4
    c = _take(pl.make_train_iterator(other, tok, 0, 1, source=source), 6)
    orders = [np.concatenate([x.episode_index for x in run]).tolist() for run in (a, c)]
    assert orders[0] != orders[1]
    # resume: the state after two batches gives exactly the third
    it = pl.make_train_iterator(cfg, tok, 0, 1, source=source)
    _take(it, 2)
    state = it.get_state()
    expected = next(it)
    fresh = pl.make_train_iterator(cfg, tok, 0, 1, source=source)
    fresh.set_state(state)
    _same(next(fresh), expected)
    assert epoch1.tolist() != epoch2.tolist() or orders[0][:6] != orders[1][:6]


def test_process_shards_are_disjoint_and_cover(world):
    _, _, tok, cfg, source = world
    cfg1 = cfg.copy_and_resolve_references()
    cfg1.data.batch_size = 1
    seen = []
    for p in range(2):
        it = pl.make_train_iterator(cfg1, tok, p, 2, source=source)
        seen.append({int(next(it).episode_index[0]) for _ in range(3)})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(6))
    with pytest.raises(ValueError, match="process_index"):
        pl.make_train_iterator(cfg1, tok, 2, 2, source=source)


def test_workers_match_in_process(world):
    _, _, tok, cfg, source = world
    cfg2 = cfg.copy_and_resolve_references()
    cfg2.data.workers = 2
    ref = _take(pl.make_train_iterator(cfg, tok, 0, 1, source=source), 4)
    got = _take(pl.make_train_iterator(cfg2, tok, 0, 1, source=source), 4)
    for x, y in zip(ref, got):
        _same(x, y)


def test_missing_features_name_the_video(tmp_path, rng):
    write_world(tmp_path, rng, 1, features=False)
    tok = train_bpe_tokenizer(CORPUS, 400, tmp_path / "tok", seed=0)
    with pytest.raises(pl.FeatureFileError, match="0000.mp4.*extract_features"):
        pl.make_source(make_cfg(tmp_path), tok, "train")


def test_records_file_chooses_the_wording(world):
    """data.records_file: the coach learns the lines of the index it names (the synthetic
    world's colloquial wording sits beside the anatomical one, same times)."""
    root, workouts, tok, cfg, source = world
    other = [dataclasses.replace(w, spans=[s._replace(text=s.text if s.is_transition
                                                      else f"Plain {s.text}") for s in w.spans])
             for w in workouts]
    qevd.write_feedbacks_json(root / qevd.TRAIN_DIR / qevd.COLLOQUIAL_RECORDS_FILE, other)
    plain = pl.make_source(make_cfg(root, records_file=qevd.COLLOQUIAL_RECORDS_FILE), tok, "train")
    assert len(plain) == len(source)
    for a, b in zip(source.episodes, plain.episodes):
        assert [t for t, _ in a.feedbacks] == [t for t, _ in b.feedbacks] and a.feedbacks
        assert [f"Plain {x}" for _, x in a.feedbacks] == [x for _, x in b.feedbacks]

"""Streaming token sequence (data/sequence.py) and causal motion context (data/motion_context.py)."""
from __future__ import annotations

import math
import re

import ml_collections
import numpy as np
import pytest

from biocoach_jax import context, skel
from biocoach_jax.data import sequence as sq
from biocoach_jax.data.motion_context import EDGE_S, motion_contexts, window_frames
from biocoach_jax.data.poses import PoseRecording
from biocoach_jax.data.session import SegmentSample
from biocoach_jax.exercises import load_exercise
from biocoach_jax.tokenizer import train_bpe_tokenizer

FPS = 16.0
SQUAT = load_exercise("squat")
CORPUS = [
    sq.system_prompt("squats"), sq.system_prompt("burpees"),
    "Great job, keep your chest up!", "Squat deeper, bend your knees more.",
    "Nice pace, three more reps to go.", "Keep your back straight and your knees out.",
    "Squat, rep 2. At bottom: right knee flexion 99°, left knee flexion 98°. No violations.",
    "Rep 1: insufficient right knee flexion: 56° detected, 90° required.",
    "Height 1.78 m, Mass 73.2 kg, Chest 0.98 m, Waist 0.84 m, Hip 0.99 m.",
    "Squat, no completed rep yet. lower back flexion hip abduction ankle dorsiflexion",
] * 6


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_bpe_tokenizer(CORPUS, 400, tmp_path_factory.mktemp("tok"), seed=0)


def make_cfg(**kw):
    d = dict(fps=FPS, step_hz=4.0, window_s=3.0, alpha=0.1, use_motion_context=True,
             context_dofs="labels", use_morphology=True, max_tokens=4096, max_steps=512,
             max_morph_tokens=64)
    d.update(kw)
    return ml_collections.ConfigDict({"data": d})


def squat_rep(n: int, scale: float) -> np.ndarray:
    """One squat repetition of n frames from the library reference, its depth scaled."""
    ref = SQUAT.arrays().reference
    u = np.linspace(0, ref.shape[1] - 1, n)
    cyc = np.stack([np.interp(u, np.arange(ref.shape[1]), r) for r in ref], 1)
    return ref[:, 0] + scale * (cyc - ref[:, 0])


def squat_session(rng, scales):
    """Rest, then one rep per scale (random durations), then rest; returns poses and rep spans."""
    rest = lambda n: np.tile(SQUAT.arrays().reference[:, 0], (n, 1))  # noqa: E731
    parts, spans, t = [rest(int(rng.integers(12, 20)))], [], 0
    t = len(parts[0])
    for s in scales:
        n = int(rng.integers(28, 38))
        parts.append(squat_rep(n, s))
        spans.append((t, t + n - 1))
        t += n
    parts.append(rest(20))
    poses = np.concatenate(parts) + np.radians(0.2) * rng.normal(size=(t + 20, skel.NUM_DOFS))
    return poses, spans


def segment(poses=None, feedbacks=(), exercise="squats", measurements=None):
    rec = None
    if poses is not None:
        rec = PoseRecording(poses=poses, present=np.ones(skel.NUM_DOFS, bool),
                            timestamps=(np.arange(len(poses)) + 1) / FPS, fps=FPS, betas=None,
                            source="mem", format="npz")
    return SegmentSample(session_id="s0", exercise=exercise, start_s=0.0, end_s=30.0,
                         feedbacks=list(feedbacks), frame_indices=np.arange(1), video_path=None,
                         features_path=None, poses=rec, measurements=measurements,
                         ground_truth=None)


# ---- motion context ----------------------------------------------------------------------------
def test_motion_context_reports_shallow_rep_and_is_causal(rng):
    scale = rng.uniform(0.4, 0.6)
    poses, spans = squat_session(rng, [1.0, scale, 1.0])
    (a0, e0), (a1, e1), (a2, e2) = spans
    t_after_shallow = (e1 + 3) / FPS                      # the shallow rep just finished
    t_mid_third = (a2 + (e2 - a2) // 2) / FPS             # the third rep is under way
    q = [0.3, t_after_shallow, t_mid_third]
    texts = motion_contexts(poses, np.ones(46, bool), SQUAT, q)
    assert "no completed rep yet" in texts[0]
    # the shallow rep: insufficient knee flexion, with its depth (reference peak 100 deg, rest 3)
    m = re.search(r"insufficient right knee flexion: (\d+)° detected, 90° required", texts[1])
    assert m, texts[1]
    true_peak = 3 + scale * 97
    assert abs(int(m.group(1)) - true_peak) <= 2.5
    # a rep in progress is not a completed rep: the text at mid-third-rep is the shallow rep's
    assert re.search(r"insufficient right knee flexion", texts[2])
    # causality: frames after t never matter
    for t, text in zip(q, texts):
        e = int(math.floor(t * FPS + 1e-9))
        changed = poses.copy()
        changed[e + 1:] += rng.normal(0, 0.5, changed[e + 1:].shape)
        assert motion_contexts(changed, np.ones(46, bool), SQUAT, [t]) == [text]
        assert motion_contexts(poses[:e + 1], np.ones(46, bool), SQUAT, [t]) == [text]


def test_motion_context_memo_and_batching_change_nothing(rng):
    """A query's text is the same whether it runs in a batch of 8, alone, or comes back from the
    in-process memory of earlier calls (mixed with new queries in a smaller batch)."""
    from biocoach_jax.data import motion_context as mc

    poses, _ = squat_session(rng, [1.0, rng.uniform(0.4, 0.6), 1.0])
    present = np.ones(46, bool)
    q = sorted(float(t) for t in rng.uniform(0.2, len(poses) / FPS, 7))
    mc._MEMO.texts.clear()
    batch = motion_contexts(poses, present, SQUAT, q)          # one padded batch of 8 rows
    mc._MEMO.texts.clear()
    alone = [motion_contexts(poses, present, SQUAT, [t])[0] for t in q]
    mc._MEMO.texts.clear()
    first = motion_contexts(poses, present, SQUAT, q[::2])
    mixed = motion_contexts(poses, present, SQUAT, q)          # half remembered, half computed
    assert alone == batch and first == batch[::2] and mixed == batch
    assert len(mc._MEMO.texts) == len(set(q))
    assert len({t for t in batch}) > 1                          # the queries do differ


def test_motion_context_window_and_dof_mask(rng):
    poses, spans = squat_session(rng, [rng.uniform(0.4, 0.55), 1.0])
    # The window starts 3 frames before the shallow rep ends (its bottom is out of the window,
    # and what is left of it is near rest) and reaches past the end of the full rep.
    first = spans[1][0] - 3
    t = (first + window_frames(3.0, FPS) - 1) / FPS
    assert t * FPS > spans[1][1] + 0.25 * FPS
    text = motion_contexts(poses, np.ones(46, bool), SQUAT, [t])[0]
    # the shallow rep is counted (the count reads the whole history) but out of the window
    assert "rep 2." in text and "insufficient" not in text
    # frames before the window change the count only: without the shallow rep, rep 1. (Frozen
    # at a point near the shallow rep's bottom, the history would start in a squat: an
    # incomplete first rep, rightly counted.)
    assert int(math.floor(t * FPS + 1e-9)) - window_frames(3.0, FPS) + 1 == first
    changed = poses.copy()
    changed[:first] = changed[first]
    assert motion_contexts(changed, np.ones(46, bool), SQUAT, [t])[0] == text.replace("rep 2.", "rep 1.")
    # only the arm DoFs selected: no leg angle may appear, the driving knee is still shown
    arms = skel.dof_mask(["humerus_r", "humerus_l"])
    text = motion_contexts(poses, np.ones(46, bool), SQUAT, [t], dof_mask=arms)[0]
    assert "hip flexion" not in text and "knee flexion" in text
    # a DoF outside the exercise's intervals appears in the pose state iff it moved >= 10 deg in
    # the rep and the mask keeps it (what DoF selection changes); the kernel's smoothing leaves
    # a 15 deg / 5 deg elbow swing on the rep's frames above / below that line
    a, e = spans[1]
    for swing, shown in ((15.0, True), (5.0, False)):
        moved = poses.copy()
        moved[a:e + 1, skel.dof_index("elbow_flexion_r")] += np.radians(swing) * np.sin(
            np.linspace(0, np.pi, e - a + 1))
        for mask, want in ((np.ones(46, bool), shown), (skel.dof_mask(SQUAT.key_joints), False)):
            got = motion_contexts(moved, np.ones(46, bool), SQUAT, [t], dof_mask=mask)[0]
            assert ("right elbow flexion" in got) == want, (swing, got)
    assert window_frames(3.0, 16.0) == 49
    with pytest.raises(ValueError, match="poses"):
        motion_contexts(np.zeros((10, 45)), np.ones(46, bool), SQUAT, [0.1])
    with pytest.raises(ValueError, match="query"):
        motion_contexts(poses, np.ones(46, bool), SQUAT, [-1.0])


def test_clean_reps_never_report_window_fragments(rng):
    """Windows cut reps at both ends (begun before the window, still under way at t); none of
    those fragments may read as a shallow, fast or incomplete rep."""
    poses, spans = squat_session(rng, [1.0, 1.0, 1.0, 1.0])
    times = np.arange(0.25, len(poses) / FPS, 0.25)
    texts = []
    for a in range(0, len(times), 8):  # 8 queries a call: the same compiled batch shape
        texts += motion_contexts(poses, np.ones(46, bool), SQUAT, times[a:a + 8])
    for t, text in zip(times, texts):
        assert "No violations." in text, (t, text)
    # until the first rep is EDGE_S past its keyframe (the bottom) nothing is reported; once the
    # knees have come half way back up, the rep under way is rep 1 with its bottom values
    a0, e0 = spans[0]
    knee = poses[a0:e0 + 1, skel.dof_index("knee_angle_r")]
    key = a0 + int(np.argmax(knee))
    early = times < (key - 2 + 1) / FPS + EDGE_S   # the smoothed bottom may sit 2 frames earlier
    assert early.any() and all("no completed rep" in x for x, e in zip(texts, early) if e)
    half_up = key + int(np.argmax(knee[key - a0:] <= knee.min() + 0.5 * (knee.max() - knee.min())))
    t_half = (half_up + 1) / FPS
    assert t_half < e0 / FPS
    m = re.search(r"rep 1\. At bottom: .*right knee flexion (\d+)°",
                  motion_contexts(poses, np.ones(46, bool), SQUAT, [t_half])[0])
    assert m and abs(int(m.group(1)) - math.degrees(knee.max())) <= 2.5
    assert any("rep 1." in x for x in texts)
    # the count reads the whole history (4 reps, a window holds at most 2): it never drops
    counts = [int(m.group(1)) if (m := re.search(r"rep (\d+)\.", x)) else 0 for x in texts]
    assert counts == sorted(counts) and counts[-1] == 4, counts


# ---- sequence layout -------------------------------------------------------------------------
def _expected_steps(fb_steps, fb_lens, S):
    """Hand rule: visions up to each feedback's step, then skip floor(n / 3) steps."""
    out, nxt = [], 0
    for k, n in zip(fb_steps, fb_lens):
        k = max(k, nxt)  # its step was skipped: the next step that is shown
        while nxt <= k:
            out.append(nxt)
            nxt += 1
        nxt += n // 3
    return out + list(range(nxt, S))


def test_layout_skips_and_weights(tok, rng):
    texts = ["Great job, keep your chest up!", "Squat deeper, bend your knees more.",
             "Nice pace, three more reps to go."]
    t1 = rng.uniform(1.0, 3.0)
    times = [t1, t1 + 0.3, rng.uniform(8.0, 12.0)]  # the 2nd comes while the 1st is spoken
    S = int(rng.integers(60, 80))
    cfg = make_cfg(alpha=0.25)
    ep = sq.build_episode_tokens(segment(None, list(zip(times, texts))), S, tok, cfg)
    lens = [len(tok.encode(t, bos=False)) for t in texts]
    steps = [int(math.floor(t * 4)) for t in times]
    assert ep.step_index.tolist() == _expected_steps(steps, lens, S)
    prompt = [tok.bos_id] + tok.encode(sq.system_prompt("squats"), bos=False)
    assert ep.tokens[:len(prompt)].tolist() == prompt
    assert ep.tokens[len(prompt)] == tok.vision_id
    vis = np.flatnonzero(ep.tokens == tok.vision_id)
    assert ep.vision_mask.tolist() == (ep.tokens == tok.vision_id).tolist()
    assert ep.vision_step[vis].tolist() == list(range(len(vis)))
    assert len(vis) == ep.num_steps
    # each answer follows the <vision> of its step (or the next one emitted after a skip)
    ans = np.flatnonzero(ep.tokens == tok.answer_id)
    ends = np.flatnonzero(ep.tokens == tok.answer_end_id)
    for a, b, text, k in zip(ans, ends, texts, steps):
        assert tok.decode(ep.tokens[a + 1:b]).strip() == text
        seen = ep.step_index[ep.vision_step[vis[vis < a][-1]]]
        assert seen >= k
    assert ep.step_index[ep.vision_step[vis[vis < ans[0]][-1]]] == steps[0]
    assert ep.step_index[ep.vision_step[vis[vis < ans[1]][-1]]] > steps[1]  # delayed
    # loss weights by the next token
    nxt = ep.tokens[1:]
    w = ep.loss_weights
    assert np.allclose(w[:-1][nxt == tok.vision_id], 0.25) and w[-1] == 0
    in_fb = np.zeros(len(ep.tokens), bool)
    for a, b in zip(ans, ends):
        in_fb[a:b + 1] = True
    assert np.array_equal(w[:-1] == 1.0, in_fb[1:])
    assert w[:len(prompt) - 1].sum() == 0
    assert (w == 1.0).sum() == sum(n + 2 for n in lens)
    assert ep.feedbacks == sorted(zip(times, texts))


def test_motion_segments_morph_and_labels(tok, rng):
    poses, spans = squat_session(rng, [1.0, rng.uniform(0.4, 0.55)])
    t_shallow = (spans[1][1] + 4) / FPS
    # two feedbacks before the first rep is over: both see "no completed rep yet"
    fbs = [(0.1, "Great job, keep your chest up!"), (0.2, "Nice pace, three more reps to go."),
           (t_shallow, "Squat deeper, bend your knees more.")]
    meas = {"height_m": 1.78, "mass_kg": 73.2, "chest_m": 0.98, "waist_m": 0.84, "hip_m": 0.99}
    seg = segment(poses, fbs, measurements=meas)
    ep = sq.build_episode_tokens(seg, 40, tok, make_cfg())
    opens = np.flatnonzero(ep.tokens == tok.motion_id)
    closes = np.flatnonzero(ep.tokens == tok.motion_end_id)
    # the two early feedbacks share the same context ("no completed rep yet"): sent once
    assert len(opens) == 2 == len(ep.contexts)
    for o, c in zip(opens, closes):
        assert ep.tokens[c + 1] == tok.answer_id
        # the <motion> after a <vision> is the decision to speak (weight 1); its text is input
        assert ep.tokens[o - 1] == tok.vision_id and ep.loss_weights[o - 1] == 1.0
        assert ep.loss_weights[o:c].sum() == 0
    last = tok.decode(ep.tokens[opens[1] + 1:closes[1]])
    assert "insufficient right knee flexion" in last
    assert last.strip() == ep.contexts[1][1]
    assert tok.decode(ep.morph_tokens).strip() == context.render_morph(meas)
    want = np.isin(np.arange(skel.NUM_JOINTS), [skel.joint_index(j) for j in SQUAT.key_joints])
    assert ep.has_joint_labels and np.array_equal(ep.joint_labels > 0, want)
    # switches off
    off = sq.build_episode_tokens(seg, 40, tok, make_cfg(use_motion_context=False,
                                                         use_morphology=False))
    assert tok.motion_id not in off.tokens and len(off.morph_tokens) == 0
    # unknown exercise: no context, no labels
    unk = sq.build_episode_tokens(segment(poses, fbs, exercise="burpees"), 40, tok, make_cfg())
    assert tok.motion_id not in unk.tokens and not unk.has_joint_labels
    assert sq.library_exercise("Jumping Jacks").name == "jumping_jack"
    assert sq.library_exercise("push-ups").name == "push_up"
    assert sq.library_exercise("shoulder presses").name == "shoulder_press"
    with pytest.raises(ValueError, match="stream token"):
        sq.build_episode_tokens(segment(None, [(1.0, "bad <vision> text")]), 10, tok, make_cfg())


def test_on_change_contexts_follow_every_change_and_are_input(tok, rng):
    """data.motion_placement = "on_change": a context after each <vision> whose step's C_motion
    differs from the last one sent (weight 0: input, not a decision), the decision to speak
    read after it; the stream without its contexts is the before_answer one without its own."""
    poses, spans = squat_session(rng, [1.0, rng.uniform(0.4, 0.55), 1.0])
    n_steps = int(len(poses) / FPS * 4) + 1
    t_shallow = (spans[1][1] + int(rng.integers(2, 8))) / FPS
    fbs = [(0.3, "Great job, keep your chest up!"), (t_shallow, "Squat deeper, bend your knees more.")]
    seg = segment(poses, fbs)
    ep = sq.build_episode_tokens(seg, n_steps, tok, make_cfg(motion_placement="on_change"))
    toks, w = ep.tokens, ep.loss_weights
    visions = np.flatnonzero(toks == tok.vision_id)
    opens = np.flatnonzero(toks == tok.motion_id)
    closes = np.flatnonzero(toks == tok.motion_end_id)
    # the contexts are those of every watched step, sent when they change
    every = sq.segment_contexts(seg, [k / 4.0 for k in ep.step_index], make_cfg())
    want = [(k / 4.0, t) for i, (k, t) in enumerate(zip(ep.step_index, every))
            if i == 0 or t != every[i - 1]]
    assert ep.contexts == want and len(want) >= 4     # no rep yet, then >= one per rep
    assert len(opens) == len(closes) == len(want)
    for (t, text), o, c in zip(want, opens, closes):
        assert toks[o - 1] == tok.vision_id and w[o - 1] == 0.0    # input: never a target
        assert w[o:c].sum() == 0 and tok.decode(toks[o + 1:c]).strip() == text
        k = ep.step_index[np.searchsorted(visions, o) - 1]
        assert k / 4.0 == t
        if c + 1 == len(toks):   # the stream may end on a context (its last step changed it)
            continue
        # after <motion/> the decision: <answer> (weight 1) or the next <vision> (alpha)
        assert toks[c + 1] in (tok.answer_id, tok.vision_id)
        assert w[c] == (1.0 if toks[c + 1] == tok.answer_id else 0.1)
    # the last context the model read before the correction reports the shallow rep
    a = np.flatnonzero(toks == tok.answer_id)[1]
    assert "insufficient right knee flexion" in ep.contexts[int(np.sum(opens < a)) - 1][1]
    # without contexts both placements give the same stream
    ba = sq.build_episode_tokens(seg, n_steps, tok, make_cfg())
    strip = lambda e: e.tokens[e.roles != sq.CONTEXT]  # noqa: E731
    assert np.array_equal(strip(ep), strip(ba)) and np.array_equal(ep.step_index, ba.step_index)
    with pytest.raises(ValueError, match="motion_placement"):
        sq.build_episode_tokens(seg, n_steps, tok, make_cfg(motion_placement="always"))


def test_collate_pads_and_truncates_whole_steps(tok, rng):
    N, C, S = 5, 3, int(rng.integers(30, 45))
    fbs = [(rng.uniform(0.5, 9.0), "Great job, keep your chest up!") for _ in range(4)]
    feats = rng.normal(size=(S, N, C)).astype(np.float32)
    feats[0] = 0
    ep = sq.build_episode(segment(None, fbs), feats, tok, make_cfg(), episode_index=7)
    np.testing.assert_array_equal(ep.features, feats[ep.step_index])
    full = sq.collate([ep], make_cfg(max_tokens=len(ep.tokens) + 5, max_steps=S),
                      batch_size=3, pad_id=tok.pad_id)
    n = len(ep.tokens)
    assert full.tokens.shape == (3, n + 5)
    np.testing.assert_array_equal(full.tokens[0, :n], ep.tokens)
    np.testing.assert_array_equal(full.targets[0, :n - 1], ep.tokens[1:])
    assert (full.targets[0, n - 1:] == tok.pad_id).all() and (full.tokens[0, n:] == tok.pad_id).all()
    assert full.attention_mask[0].sum() == n and full.step_mask[0].sum() == ep.num_steps
    assert full.episode_index.tolist() == [7, -1, -1]
    assert not full.attention_mask[1:].any() and not full.joint_label_mask[1:].any()
    # truncation: a limit that falls inside the last feedback cuts before its step
    last_answer = int(np.flatnonzero(ep.tokens == tok.answer_id)[-1])
    notes = []
    cut = sq.collate([ep], make_cfg(max_tokens=last_answer + 2, max_steps=S), pad_id=tok.pad_id,
                     truncations=notes)
    kept = int(cut.attention_mask[0].sum())
    assert kept <= last_answer + 2 and ep.tokens[kept] == tok.vision_id
    row = cut.tokens[0, :kept]
    assert (row == tok.answer_id).sum() == (row == tok.answer_end_id).sum()
    assert cut.targets[0, kept - 1] == tok.vision_id  # still predicts the next step
    assert cut.step_mask[0].sum() == (row == tok.vision_id).sum()
    assert notes and notes[0].tokens == (kept, n)
    # the step limit binds too
    few = sq.collate([ep], make_cfg(max_steps=5), pad_id=tok.pad_id)
    assert few.vision_mask[0].sum() == 5 and few.step_mask[0].sum() == 5
    with pytest.raises(ValueError, match="max_tokens"):
        sq.collate([ep], make_cfg(max_tokens=10), pad_id=tok.pad_id)

"""The LLM coach with a tiny random BioCoach model: causality, grammar and timing of its output."""
import numpy as np
import pytest

pytest.importorskip("flax")

from biocoach_jax.coaching import pose_events, run_coach  # noqa: E402
from biocoach_jax.exercises import load_exercise  # noqa: E402

D_VISION, SPATIAL, VOCAB = 8, 6, 64
ANSWER_SCALE = 1.5


class CharTokenizer:
    """Stand-in tokenizer: ids 3..7 are the stream tokens, one id per character otherwise."""
    bos_id, eos_id, pad_id = 1, 2, 0
    vision_id, answer_id, answer_end_id, motion_id, motion_end_id = 3, 4, 5, 6, 7

    def encode(self, text, bos=True):
        return ([1] if bos else []) + [8 + ord(c) % (VOCAB - 8) for c in text]

    def decode(self, ids, skip_special=False):
        return "".join(chr(97 + (i - 8) % 26) for i in ids if i >= 8)


@pytest.fixture(scope="module")
def model():
    from flax import nnx
    from biocoach_jax.models.biocoach import ModelConfig, build_model
    from biocoach_jax.models.llama import LlamaConfig

    cfg = ModelConfig(llm=LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=24,
                                      num_layers=2, num_heads=2, num_kv_heads=1, head_dim=8),
                      lora=None, vision_layers=(1,), d_vision=D_VISION, dof_hidden=16,
                      morph_heads=2, dof_k=4)
    return build_model(cfg, rngs=nnx.Rngs(0))


class HashStream:
    """Stand-in for the KV-cached model: logits are a deterministic function of EVERYTHING fed
    so far (tokens and features), so any peek at the future would change them. After a
    <vision> it answers about a third of the time; inside a feedback it says 2-9 characters."""

    def __init__(self, model, *, max_len, max_steps, spatial, morph_ids=None):
        import hashlib
        self.h = hashlib.sha256(b"start")
        self.features = np.zeros((1, max_steps, spatial, D_VISION), np.float32)
        self.rows, self.inside = 0, -1
        self.trace: list[bytes] = []          # the digest after each feed: what was fed, in order
        self.tokens: list[int] = []           # the tokens fed, in order

    def feed(self, tokens, feature=None):
        if np.ndim(tokens):                       # a run: fed one by one, the last one answers
            for tok in tokens[:-1]:
                self.feed(tok)
            tokens = tokens[-1]
        token = int(tokens)
        self.tokens.append(token)
        self.h.update(np.int64(token).tobytes())
        if feature is not None:
            self.features[0, self.rows] = feature
            self.rows += 1
            self.h.update(np.asarray(feature, np.float32).tobytes())
        self.trace.append(self.h.digest())
        r = np.random.default_rng(int.from_bytes(self.h.digest()[:8], "little"))
        logits = r.normal(size=VOCAB)
        if token == CharTokenizer.answer_id:
            self.inside = int(r.integers(2, 10))
        if self.inside > 0:
            self.inside -= 1
            logits[:8] = -10.0                    # text only (no stream or control ids)
        elif self.inside == 0:
            self.inside = -1
            logits[3] = 10.0                      # the grammar closes the feedback
        else:
            logits[3 if r.uniform() > 0.35 else 4] = 10.0
        return logits


def _run(model, poses, times, feats, events=None, policy="before_answer"):
    """Coach the poses with `feats[k]` as step k's feature (pushed up front), or with the
    given event stream (poses and features) instead."""
    from biocoach_jax.coaching.llm_coach import LLMCoach

    coach = LLMCoach(model, CharTokenizer(), "squats", exercise=load_exercise("squat"),
                     max_len=3000, max_steps=96, spatial=SPATIAL, motion_policy=policy,
                     measurements={"height_m": 1.8, "mass_kg": 80.0, "chest_m": 1.0,
                                   "waist_m": 0.85, "hip_m": 1.0})
    if events is None:
        for k in range(1, len(feats)):
            coach.push_feature(k, feats[k])
        events = pose_events(poses, times)
    return coach, run_coach(coach, events)


def _squat_session(rng, reps: int, errors: int):
    """A random 16 Hz squat session and step features 0..(its last pose's step + 1)."""
    from tests.test_coach import squat_stream

    poses, times, _ = squat_stream(rng, reps, errors, 16.0)
    feats = rng.normal(0, 1.0, (int(times[-1] * 4) + 2, SPATIAL, D_VISION)).astype(np.float32)
    return poses, times, feats


def test_llm_coach_runs_the_real_model(model, rng):
    """The KV-cached BioCoach model path end to end (a random model mostly stays silent)."""
    poses, times, feats = _squat_session(rng, 2, 0)
    coach, run = _run(model, poses, times, feats)
    assert run.error is None and coach.stream.rows >= int(times[-1] * 4) - 12
    assert coach.dof_mask is not None and coach.dof_mask.sum() > 0      # selected once


@pytest.mark.parametrize("policy", ["before_answer", "on_change"])
def test_llm_coach_is_causal_and_follows_the_grammar(model, monkeypatch, rng, policy):
    """Everything fed to the model before step k_cut + 1 (tokens, features, contexts) is the same
    when the poses after k_cut / 4 s and the features after step k_cut change; contexts go
    where the policy (= the training's data.motion_placement) puts them."""
    from biocoach_jax.coaching import llm_coach

    monkeypatch.setattr(llm_coach, "ModelStream", HashStream)
    fed_before = []                       # per run: step k -> feeds made before step k ran
    step = llm_coach.LLMCoach.step

    def recording_step(self, t):
        fed_before[-1][int(round(t * 4))] = len(self.stream.trace)
        return step(self, t)

    monkeypatch.setattr(llm_coach.LLMCoach, "step", recording_step)
    poses, times, feats = _squat_session(rng, 3, 1)
    fed_before.append({})
    coach_a, a = _run(model, poses, times, feats, policy=policy)
    fed = np.array(coach_a.stream.tokens)
    opens, closes = np.flatnonzero(fed == 6), np.flatnonzero(fed == 7)
    assert len(opens) == len(closes) >= 2 and np.all(fed[opens - 1] == 3)   # after a <vision>
    if policy == "before_answer":
        assert np.all(fed[closes[closes + 1 < len(fed)] + 1] == 4)      # then the feedback
    assert a.feedbacks, "the biased random model should speak at least once"
    # the cut: a watched step (one not skipped while speaking) 0.6-1.5 s after the first feedback
    k = int(np.floor((a.feedbacks[0].time_s + float(rng.uniform(0.6, 1.5))) * 4))
    watched = [s for s in sorted(fed_before[0]) if s + 1 in fed_before[0]
               and fed_before[0][s + 1] > fed_before[0][s]]
    k_cut = min((s for s in watched if s >= k), default=watched[-1])
    cut = k_cut / 4
    feats2, poses2 = feats.copy(), poses.copy()
    feats2[k_cut + 1:] = rng.normal(0, 1.0, feats2[k_cut + 1:].shape)
    poses2[times > cut] += rng.normal(0, 0.3, poses2[times > cut].shape)
    fed_before.append({})
    coach_b, b = _run(model, poses2, times, feats2, policy=policy)
    n = fed_before[0][k_cut + 1]
    assert fed_before[1][k_cut + 1] == n and coach_a.stream.trace[:n] == coach_b.stream.trace[:n]
    # so does what was said: a feedback is stamped with the media time of its step
    upto = lambda fbs: [f for f in fbs if f.time_s <= cut]  # noqa: E731
    assert upto(a.feedbacks) and upto(a.feedbacks) == upto(b.feedbacks)
    assert a.feedbacks != b.feedbacks           # the stand-in does look at what it is fed
    # timing: on the step grid; after a feedback of n characters (= n tokens, spoken at 12 per
    # second) the next floor(n / 3) steps are not watched, so the next feedback comes at least
    # 1 + floor(n / 3) steps later, never before the previous one has been said
    t = np.array([f.time_s for f in a.feedbacks])
    np.testing.assert_allclose(t * 4, np.round(t * 4), atol=1e-5)   # times are rounded to 1 us
    n = np.array([len(f.text) for f in a.feedbacks[:-1]])
    assert np.all(np.round(np.diff(t) * 4) >= 1 + n // 3) and np.all(np.diff(t) >= n / 12)
    assert all(2 <= len(f.text) <= 9 for f in a.feedbacks)


def test_cached_feature_events_feed_the_coach_like_pushed_features(model, monkeypatch, tmp_path, rng):
    """`sources.feature_events` reads a segment's rows of a `<video>_features.npy` (C, h, w maps,
    step times beside it) as step k's feature at k / 4 s: the coach says exactly what it says
    when the same features are pushed directly. The file runs one step past the segment's end
    (its last pose), which the cut must leave out."""
    import types
    from biocoach_jax.coaching import llm_coach, merge_events
    from biocoach_jax.coaching.sources import feature_events

    monkeypatch.setattr(llm_coach, "ModelStream", HashStream)
    poses, times, feats = _squat_session(rng, 2, 1)
    steps = int(times[-1] * 4)                        # the segment's steps: k / 4 <= last pose
    _, a = _run(model, poses, times, feats[:steps + 1])
    # the file: steps before the segment, then the segment's, (T, C, h, w) with h * w = SPATIAL
    before = int(rng.integers(1, 6))
    start = 100.0 + rng.uniform(0, 1)
    maps = np.concatenate([rng.normal(size=(before, SPATIAL, D_VISION)), feats[1:]]).astype(np.float32)
    maps = np.concatenate([np.zeros((1, SPATIAL, D_VISION), np.float32), maps])
    path = tmp_path / "v_features.npy"
    np.save(path, np.moveaxis(maps.reshape(len(maps), 2, 3, D_VISION), -1, 1))
    np.save(tmp_path / "v_timestamps.npy", start + (np.arange(len(maps)) - before) * 0.25)
    seg = types.SimpleNamespace(features_path=path, video_path=tmp_path / "v.mp4", start_s=start,
                                end_s=start + times[-1], session_id="s", exercise="squats")
    _, b = _run(model, poses, times, feats,
                events=merge_events(pose_events(poses, times), feature_events(seg)))
    assert b.error is None and a.feedbacks and b.feedbacks == a.feedbacks


def test_llm_coach_without_selector_uses_every_dof(model, rng):
    """The no-DoF-selection ablation trains on contexts over all DoFs (data.context_dofs =
    'all'); its coach must do the same, not fall back to the exercise's labelled key joints."""
    import dataclasses
    from flax import nnx
    from biocoach_jax import skel

    off = nnx.clone(model)
    off.cfg = dataclasses.replace(model.cfg, use_dof_selection=False)
    poses, times, feats = _squat_session(rng, 2, 0)
    coach, run = _run(off, poses, times, feats)
    assert run.error is None
    key = skel.dof_mask(load_exercise("squat").key_joints)
    assert coach.dof_mask.shape == (skel.NUM_DOFS,) and coach.dof_mask.all() and not key.all()


def test_model_stream_runs_and_steps_equal_the_full_forward(model, rng, monkeypatch):
    """ModelStream feeds runs of tokens in one padded call and `<vision>` steps alone with only
    their own step's feature, growing its KV cache as it fills: its logits after every feed equal
    the full (uncached) forward of the whole sequence with all features, and splitting a run
    differently changes nothing."""
    import jax.numpy as jnp
    from biocoach_jax.coaching import llm_coach
    from biocoach_jax.coaching.llm_coach import ModelStream

    monkeypatch.setattr(llm_coach, "_FIRST_CACHE", 16)   # grows 16 -> 32 -> ... on the way

    V = CharTokenizer.vision_id
    n_steps = 5
    feats = rng.normal(size=(n_steps, SPATIAL, D_VISION)).astype(np.float32)
    morph = [int(x) for x in rng.integers(8, VOCAB, 7)]
    # prompt run, then per step: <vision> alone, then a text run of random (odd) length
    runs = [[int(x) for x in rng.integers(8, VOCAB, 11)]]
    for k in range(n_steps):
        runs += [("v", k), [int(x) for x in rng.integers(8, VOCAB, int(rng.integers(1, 20)))]]
    tokens, vmask, vstep = [], [], []
    for r in runs:
        if isinstance(r, tuple):
            tokens.append(V), vmask.append(True), vstep.append(r[1])
        else:
            tokens += r
            vmask += [False] * len(r)
            vstep += [0] * len(r)
    L = len(tokens)
    full = model({"tokens": jnp.asarray([tokens]), "attention_mask": jnp.ones((1, L), bool),
                  "vision_mask": jnp.asarray([vmask]), "vision_step": jnp.asarray([vstep]),
                  "features": jnp.asarray(feats[None]), "morph_tokens": jnp.asarray([morph]),
                  "morph_mask": jnp.ones((1, len(morph)), bool)}).logits[0]
    for split in (False, True):
        stream = ModelStream(model, max_len=L + 400, max_steps=8, spatial=SPATIAL, morph_ids=morph)
        pos = 0
        for r in runs:
            if isinstance(r, tuple):
                got = [stream.feed(V, feats[r[1]])]
                pos += 1
            else:
                parts = [r[:len(r) // 2], r[len(r) // 2:]] if split and len(r) > 1 else [r]
                got = [stream.feed(p) for p in parts]
                pos += len(r)
            np.testing.assert_allclose(got[-1], np.asarray(full[pos - 1]), atol=2e-5)
        assert stream.used == L and stream.rows == n_steps and stream.cache.valid.shape[1] > 16
        np.testing.assert_array_equal(stream.features[0, :n_steps], feats)

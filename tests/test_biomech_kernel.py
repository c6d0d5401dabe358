"""Cycles on real recordings, quality score, constraints, batching/sharding of the biomech kernel."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from biocoach_jax import biomech as bm, skel

FPS = 100.0
T_REAL = 1100                      # every real recording padded to one width: one compile
_CYC = jax.jit(lambda s, L, pol: bm.detect_cycles(bm.gaussian_smooth(s, 0.05, FPS, L), L, FPS,
                                                  polarity=pol, max_cycles=8, max_peaks=16))


def _read_mot(path):
    lines = path.read_text().splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip() == "endheader")
    names = [c.strip() for c in lines[head + 1].split("\t")]
    table = np.loadtxt(lines[head + 2:], ndmin=2)
    return {n: np.deg2rad(table[:, i]).astype(np.float32) for i, n in enumerate(names)}


def _cycles(sig, polarity=0):
    padded = np.pad(sig, (0, T_REAL - sig.size), mode="edge")
    r = _CYC(jnp.asarray(padded), sig.size, polarity)
    n = int(r.count)
    return n, jax.tree.map(lambda a: np.asarray(a)[:n] if np.ndim(a) else np.asarray(a), r)


def test_squat_five_cycles_polarity_and_truncation(data_dir):
    knee = _read_mot(data_dir / "opencap_squats1_videoAndMocap.mot")["knee_angle_r"]
    n, r = _cycles(knee)
    assert n == 5 and int(r.polarity) == 1 and r.complete.all()
    peaks_deg = np.rad2deg(knee[r.key])
    assert (peaks_deg > 75).all() and (peaks_deg < 88).all()
    assert (r.start < r.key).all() and (r.key < r.end).all() and (r.end[:-1] == r.start[1:]).all()
    # Negated squat: auto polarity flips and finds the same cycles; forcing +1 must not.
    n_neg, r_neg = _cycles(-knee)
    assert n_neg == 5 and int(r_neg.polarity) == -1
    np.testing.assert_array_equal(r_neg.key, r.key)
    assert _cycles(-knee, polarity=1)[1].key.tolist() != r.key.tolist()
    # Recording cut 0.3 s after the 5th bottom (still deep in the squat): last cycle incomplete.
    cut = int(r.key[-1]) + 30
    n_cut, r_cut = _cycles(knee[:cut])
    assert n_cut == 5 and r_cut.complete[:4].all() and not r_cut.complete[4]


@pytest.mark.parametrize("name", ["rmr_thoracoscapular_ABD01", "rmr_thoracoscapular_ABD02",
                                  "rmr_thoracoscapular_FLX01"])
def test_shoulder_single_cycle(data_dir, name):
    cols = _read_mot(data_dir / f"{name}.mot")
    for dof in ("shoulder_elv", "scapula_upward_rot"):
        n, r = _cycles(cols[dof])
        assert n == 1, (dof, n)
        assert r.complete[0] and np.rad2deg(cols[dof][r.key[0]] - cols[dof][r.start[0]]) > 40


def test_quality_score():
    R = 50
    ref = np.sin(np.linspace(0, np.pi, R)).astype(np.float32)
    q = jax.jit(bm.cycle_quality)
    assert abs(float(q(ref, ref)) - 1.0) < 1e-5
    distorted = {"half amplitude": 0.5 * ref, "offset": ref + 0.5, "reversed": -ref,
                 "time-warped": np.sin(np.linspace(0, np.pi, R) ** 2 / np.pi).astype(np.float32),
                 "noisy": ref + np.random.default_rng(0).normal(size=R).astype(np.float32) * 0.3}
    scores = {k: float(q(v, ref)) for k, v in distorted.items()}
    assert all(0.0 <= s < 0.97 for s in scores.values()), scores
    assert scores["reversed"] < scores["half amplitude"]
    # Hand-worked on a zero-mean reference: a half-scaled copy keeps cos = corr = 1,
    # vel = 1 - 0.5 / 1.5, rom = 0.5; a constant offset of it lowers cos only.
    z = np.sin(np.linspace(0, 2 * np.pi, R)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(bm.quality_terms(0.5 * z, z)), [1, 1, 2 / 3, 0.5], atol=1e-5)
    shifted = np.asarray(bm.quality_terms(z + 1.0, z))
    np.testing.assert_allclose(shifted[1:], [1, 1, 1], atol=1e-5)
    np.testing.assert_allclose(shifted[0], np.sqrt(z @ z / (z @ z + R)), atol=1e-5)


def _synthetic_batch(rng, B=3, T=97, fps=16.0):
    t = np.arange(T) / fps
    poses = (rng.normal(size=(B, T, 46)) * 0.002).astype(np.float32)
    knee, hip, lum = skel.dof_index("knee_angle_r"), skel.dof_index("hip_flexion_r"), skel.dof_index("lumbar_extension")
    for b in range(B):
        wave = 0.75 * (1 - np.cos(2 * np.pi * t / (1.5 + 0.2 * b)))
        poses[b, :, knee] += wave
        poses[b, :, skel.dof_index("knee_angle_l")] += wave
        poses[b, :, hip] += 0.8 * wave
        poses[b, :, skel.dof_index("hip_flexion_l")] += 0.8 * wave
        poses[b, :, lum] += 0.05
    lengths = np.array([T, T - 14, T - 27][:B], np.int32)
    return poses, lengths


def test_constraints_each_kind_fires_only_on_its_case(rng):
    fps = 16.0
    poses, lengths = _synthetic_batch(rng)
    knee, knee_l = skel.dof_index("knee_angle_r"), skel.dof_index("knee_angle_l")
    lum, wrist = skel.dof_index("lumbar_extension"), skel.dof_index("wrist_flexion_r")
    static = np.zeros(46, bool); static[lum] = True
    dynamic = ~static
    lo = np.full(46, np.nan); hi = np.full(46, np.nan)
    clean = dict(selected=np.ones(46, bool), dynamic=dynamic, static=static, key_lo=lo, key_hi=hi,
                 tempo_s=(0.5, 5.0), limits_source="skel+hsmr", references=np.zeros((46, 16)),
                 ref_len=16, max_cycles=8)
    # Clean: hsmr limits with knee in [0, 3pi/4]; other DoFs ~0 within limits except scapula_elevation
    # (limits below 0) -> deselect the DoFs whose limits exclude the rest pose.
    lim = skel.limits()
    rest_bad = ~((lim[:, 0] <= -0.01) & (lim[:, 1] >= 0.01)) & (np.arange(46) != knee) & (np.arange(46) != knee_l)
    sel = ~rest_bad
    clean["selected"] = sel
    clean["dynamic"] = dynamic & sel
    base = bm.make_spec("knee_angle_r", **clean)
    run = lambda p, L, s: bm.analyze_batch(p, L, s, fps)  # noqa: E731  (shares the compile below)
    out = run(jnp.asarray(poses), jnp.asarray(lengths), base)
    assert (np.asarray(out.cycles.count) >= 2).all()
    assert not np.asarray(out.violations.flags).any(), bm.violations_to_records(
        jax.tree.map(lambda a: a[0], out.violations), fps)

    def kinds_fired(spec_kw=None, p=poses):
        kw = dict(clean, **(spec_kw or {}))
        r = run(jnp.asarray(p), jnp.asarray(lengths), bm.make_spec("knee_angle_r", **kw))
        recs = bm.violations_to_records(jax.tree.map(lambda a: a[0], r.violations), fps)
        return {(v.kind, v.dof) for v in recs}, recs

    k_lo = lo.copy(); k_lo[knee] = 1.6                      # bottom reaches 1.5 rad < 1.6
    assert kinds_fired(dict(key_lo=k_lo))[0] == {("below_interval", "knee_angle_r")}
    k_hi = hi.copy(); k_hi[knee] = 1.2
    fired, recs = kinds_fired(dict(key_hi=k_hi))
    assert fired == {("above_interval", "knee_angle_r")}
    assert all(v.hi == pytest.approx(1.2) and v.lo is None and v.value > 1.2 for v in recs)
    p_asym = poses.copy(); p_asym[:, :, knee_l] *= 0.6     # left knee bends much less
    assert kinds_fired(p=p_asym)[0] == {("asymmetry", "knee_angle_r")}
    p_inst = poses.copy(); p_inst[:, :, lum] += 0.4 * np.sin(np.arange(poses.shape[1]) / 3.0)
    assert kinds_fired(p=p_inst)[0] == {("instability", "lumbar_extension")}
    p_lim = poses.copy(); p_lim[:, 42:47, wrist] = -3.0    # beyond -pi/2 mid-cycle, not at a keyframe
    fired, recs = kinds_fired(p=p_lim)
    assert fired == {("anatomical_limit", "wrist_flexion_r")}
    assert all(v.value < -np.pi / 2 and v.lo == pytest.approx(-np.pi / 2) for v in recs)
    assert kinds_fired(dict(tempo_s=(2.0, 5.0)))[0] == {("tempo_fast", "knee_angle_r")}
    assert kinds_fired(dict(tempo_s=(0.2, 1.0)))[0] == {("tempo_slow", "knee_angle_r")}
    # Just after the 3rd bottom the movement stops deep in the squat (held to the end): the last cycle is incomplete.
    fired, recs = kinds_fired(p=np.concatenate([poses[:, :64], np.repeat(poses[:, 63:64], 33, 1)], 1))
    assert ("incomplete", "knee_angle_r") in fired and fired <= {("incomplete", "knee_angle_r"), ("tempo_slow", "knee_angle_r")}
    assert all(r.kind in bm.KINDS and isinstance(r.value, float) for r in recs)


def test_sharded_equals_unsharded_and_dof_vmap(rng):
    fps = 16.0
    poses, lengths = _synthetic_batch(rng)
    R = 16
    refs = np.stack([np.interp(np.linspace(0, 1, R), np.linspace(0, 1, 24), poses[0, :24, d]) for d in range(46)])
    spec = bm.make_spec("knee_angle_r", references=refs, ref_len=R, max_cycles=8, tempo_s=(0.5, 5.0))
    out = bm.analyze_batch(poses, lengths, spec, fps)
    q = np.asarray(out.quality_overall)
    assert np.isfinite(q[np.asarray(out.cycles.valid)]).all() and (q[np.asarray(out.cycles.valid)] <= 1).all()
    mesh = bm.data_mesh(8)
    sh = bm.analyze_batch_sharded(poses, lengths, spec, fps, mesh)          # B=3 padded to 8
    same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True), out, sh)
    assert all(jax.tree.leaves(same))
    # Padding frames do not matter: garbage after each session's length changes nothing valid.
    junk = poses.copy()
    for b, L in enumerate(lengths):
        junk[b, L:] = rng.normal(size=junk[b, L:].shape) * 3
    out2 = bm.analyze_batch(junk, lengths, spec, fps)
    for a, b in zip(jax.tree.leaves(out.cycles) + [out.rom, out.key_values, out.quality, out.violations.flags],
                    jax.tree.leaves(out2.cycles) + [out2.rom, out2.key_values, out2.quality, out2.violations.flags]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Quality vmapped over DoFs equals a per-DoF loop.
    c0 = bm.resample_cycles(out.smoothed[0], out.cycles.start[0], out.cycles.end[0], R)[0]
    loop = [float(bm.cycle_quality(c0[d], refs[d])) for d in range(0, 46, 9)]
    np.testing.assert_allclose(np.asarray(out.quality[0, 0, ::9]), loop, rtol=1e-5, atol=1e-6)


def test_dof_activity_picks_driver_and_bad_input(rng):
    poses, lengths = _synthetic_batch(rng)
    act = bm.dof_activity(poses, lengths, 16.0)
    best = np.asarray(jnp.argmax(act.score, axis=1))
    assert set(best) <= {skel.dof_index("knee_angle_r"), skel.dof_index("knee_angle_l")}
    assert (np.asarray(act.periodicity)[:, skel.dof_index("knee_angle_r")] > 0.5).all()
    spec = bm.make_spec("knee_angle_r")
    with pytest.raises(ValueError, match="shape"):
        bm.analyze_batch(poses[:, :, :40], lengths, spec, 16.0)
    bad = poses.copy(); bad[1, 3, 5] = np.nan
    with pytest.raises(ValueError, match="session 1, frame 3"):
        bm.analyze_batch(bad, lengths, spec, 16.0)
    with pytest.raises(ValueError, match="lengths"):
        bm.analyze_batch(poses, lengths * 0, spec, 16.0)
    with pytest.raises(ValueError, match="both dynamic and static"):
        bm.make_spec("knee_angle_r", static=np.ones(46, bool))


def test_cycles_match_numpy_reference_despite_noisy_rest(rng):
    """Many small noise peaks at rest (more than the peak slots) must not crowd out later
    repetitions: cycles equal the numpy/scipy reference (no slot limit) on fresh random signals."""
    from benchmarks.biomech_vs_scipy import ref_cycles
    fps, T, P = 16.0, 1120, 16           # T fits the longest draw (90 + 9 * (50 + 60) frames)
    cyc = jax.jit(lambda s, L: bm.detect_cycles(s, L, fps, max_cycles=12, max_peaks=P))
    spec_np = dict(prominence_frac=0.3, min_period_s=0.5, max_cycles=12, onset_frac=0.05,
                   max_period_s=10.0)
    for _ in range(3):
        n_reps = int(rng.integers(5, 10))
        parts = [rng.normal(0, 0.01, int(rng.integers(40, 90)))]      # noisy rest: many maxima
        for _ in range(n_reps):
            n = int(rng.integers(30, 50))
            amp = rng.uniform(0.6, 1.0) * (0.6 if rng.random() < 0.3 else 1.0)
            parts.append(amp * np.sin(np.linspace(0, np.pi, n)) + rng.normal(0, 0.01, n))
            parts.append(rng.normal(0, 0.01, int(rng.integers(15, 60))))
        raw = np.concatenate(parts).astype(np.float32)
        L = raw.size
        y = np.asarray(bm.gaussian_smooth(jnp.asarray(raw), 0.1, fps, L))     # as the kernel does
        r = cyc(jnp.asarray(np.pad(y, (0, T - L), mode="edge")), L)
        assert int(r.n_candidates) <= P < len(np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] > y[2:])))
        n = int(r.count)
        ours = list(zip(*(np.asarray(a)[:n].tolist() for a in (r.start, r.end, r.key))))
        assert ours == [tuple(map(int, c)) for c in ref_cycles(y.astype(np.float64), fps, spec_np)]
        assert n == n_reps

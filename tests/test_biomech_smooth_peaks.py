"""Parity of the biomech smoothing and peak finder with scipy (the independent oracle)."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
import scipy.ndimage as ndi
import scipy.signal as ss

from biocoach_jax.biomech import find_peaks, gaussian_smooth

T_PAD = 255          # one padded width for every random case: few compiles
P = 128              # >= T_PAD // 2: every local maximum fits (results exact)
CASES = {
    "plain": {},
    "height_pair": dict(height=(-0.5, 1.0)),
    "distance": dict(distance=4.5),
    "prominence": dict(prominence=(0.3, 2.0)),
    "all": dict(height=-1.0, distance=6, prominence=0.4),
}
_JIT = {name: jax.jit(lambda x, L, kw=kw: find_peaks(x, L, max_peaks=P, **kw)) for name, kw in CASES.items()}


def _run_jitter(x, rng):
    """Give every run of equal samples its own tiny offset: plateaus stay, exact height ties
    between different peaks vanish (scipy's distance rule breaks ties by numpy's unstable sort)."""
    run = np.concatenate([[0], np.cumsum(x[1:] != x[:-1])])
    return x + rng.permutation(run.max() + 1)[run] * 1e-3


def _signal(kind, T, rng):
    if kind == "noise":
        return rng.normal(size=T)
    if kind == "walk_plateaus":      # rounded random walk: many flat plateaus
        return _run_jitter(np.round(np.cumsum(rng.normal(size=T)) * 2) / 2, rng)
    if kind == "quantised":          # few levels: long and short plateaus everywhere
        return _run_jitter(np.round(rng.normal(size=T) * 1.5), rng)
    if kind == "edges":              # maxima at/near both edges
        x = rng.normal(size=T) * 0.2
        x[0], x[1], x[-1], x[-2] = 3.0, 2.5, 2.9, 3.1
        x[2], x[-3] = 2.0, 2.0
        return x


def _check(res, x, kw):
    want, props = ss.find_peaks(x.astype(np.float64), **kw)
    prom, lb, rb = ss.peak_prominences(x, want)
    n = int(res.count)
    got = np.asarray(res.indices)
    assert int(res.n_candidates) <= P
    np.testing.assert_array_equal(got[:n], want)
    assert not np.asarray(res.valid)[n:].any() and (got[n:] == -1).all()
    np.testing.assert_allclose(np.asarray(res.prominences)[:n], prom, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(res.left_bases)[:n], lb)
    np.testing.assert_array_equal(np.asarray(res.right_bases)[:n], rb)


@pytest.mark.parametrize("kind", ["noise", "walk_plateaus", "quantised", "edges"])
def test_find_peaks_matches_scipy_random(kind, rng):
    for _ in range(6):
        T = int(rng.integers(3, T_PAD // 2)) * 2 + 1                     # odd lengths
        x = _signal(kind, T, rng).astype(np.float32)
        padded = np.concatenate([x, rng.normal(size=T_PAD - T).astype(np.float32) * 5])
        for name, kw in CASES.items():
            _check(_JIT[name](jnp.asarray(padded), T), x, kw)


def test_find_peaks_batched_padding_does_not_matter(rng):
    """A padded batch (vmapped over leading dims) with garbage padding equals per-series scipy."""
    lengths = rng.integers(5, T_PAD, size=(3, 2)) | 1
    xs = rng.normal(size=(3, 2, T_PAD)).astype(np.float32)
    res = _JIT["all"](jnp.asarray(xs), jnp.asarray(lengths))
    assert res.indices.shape == (3, 2, P)
    for i in range(3):
        for j in range(2):
            L = lengths[i, j]
            _check(jax.tree.map(lambda a: a[i, j], res), xs[i, j, :L], CASES["all"])
    xs2 = xs.copy()
    for i in range(3):
        for j in range(2):
            xs2[i, j, lengths[i, j]:] = 1e3                                # huge padding values
    res2 = _JIT["all"](jnp.asarray(xs2), jnp.asarray(lengths))
    chex_equal = jax.tree.map(lambda a, b: np.array_equal(a, b), res, res2)
    assert all(jax.tree.leaves(chex_equal))


def test_find_peaks_hand_cases():
    f = jax.jit(lambda x: find_peaks(x, max_peaks=8))
    # Plateau of even width 4 at [2..5]: middle rounded down = 3; plateau touching the end is no peak.
    r = f(jnp.array([0, 1, 2, 2, 2, 2, 1, 0, 3, 3], jnp.float32))
    assert int(r.count) == 1 and int(r.indices[0]) == 3
    assert float(r.prominences[0]) == 2.0 and int(r.left_bases[0]) == 0 and int(r.right_bases[0]) == 7
    # Equal heights within `distance`: the later peak is kept (stable-order tie rule).
    r = jax.jit(lambda x: find_peaks(x, distance=3, max_peaks=8))(jnp.array([0, 1, 0, 1, 0], jnp.float32))
    assert int(r.count) == 1 and int(r.indices[0]) == 3


def test_find_peaks_rejects_bad_arguments():
    with pytest.raises(ValueError, match="distance"):
        find_peaks(jnp.zeros(5), distance=0.5)
    with pytest.raises(ValueError, match="height"):
        find_peaks(jnp.zeros(5), height=(1, 2, 3))


def test_gaussian_smooth_matches_scipy(rng):
    fps = 16.0
    for sigma_s in (0.05, 0.13, 0.6):       # sub-sample, typical, and a kernel wider than short series
        lengths = (rng.integers(2, 60, size=5) * 2 + 1)
        T = 121
        x = rng.normal(size=(5, T)).astype(np.float32) * 3 + 10
        got = np.asarray(gaussian_smooth(jnp.asarray(x), sigma_s, fps, jnp.asarray(lengths)))
        for i, L in enumerate(lengths):
            want = ndi.gaussian_filter1d(x[i, :L], sigma_s * fps, mode="nearest", truncate=4.0)
            np.testing.assert_allclose(got[i, :L], want, rtol=1e-5, atol=1e-5)
        full = np.asarray(gaussian_smooth(jnp.asarray(x), sigma_s, fps))
        np.testing.assert_allclose(full, ndi.gaussian_filter1d(x, sigma_s * fps, axis=-1, mode="nearest"),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_smooth(jnp.zeros(4), 0.0, fps)


def test_find_peaks_time_major_equals_find_peaks(rng):
    """The kernel's time-major entry point (T, N) gives find_peaks' results on the rows, and
    scipy's on each valid prefix (noise plus plateau signals, odd lengths, garbage padding)."""
    from biocoach_jax.biomech.peaks import find_peaks_time_major
    kinds = ["noise", "walk_plateaus", "quantised", "edges"] * 2
    lengths = np.array([int(rng.integers(3, T_PAD // 2)) * 2 + 1 for _ in kinds])
    xs = rng.normal(size=(len(kinds), T_PAD)).astype(np.float32) * 5
    for n, (kind, L) in enumerate(zip(kinds, lengths)):
        xs[n, :L] = _signal(kind, L, rng)
    prom = rng.uniform(0.0, 0.5, size=len(kinds)).astype(np.float32)
    kw = dict(distance=4.5, max_peaks=P)
    tm = jax.jit(lambda xT, L, p: find_peaks_time_major(xT, L, prominence=p, **kw))(
        jnp.asarray(xs.T), jnp.asarray(lengths), jnp.asarray(prom))
    rows = jax.jit(lambda x, L, p: find_peaks(x, L, prominence=p, **kw))(
        jnp.asarray(xs), jnp.asarray(lengths), jnp.asarray(prom))
    for a, b in zip(tm, rows):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for n, L in enumerate(lengths):
        _check(jax.tree.map(lambda a: a[n], tm), xs[n, :L], dict(distance=4.5, prominence=float(prom[n])))


def test_smooth_along_time_axis_matches_scipy(rng):
    """Smoothing (B, T, D) along axis 1 (the kernel's layout) equals scipy per series."""
    from biocoach_jax.biomech.smooth import smooth_along
    fps, T = 16.0, 97
    lengths = rng.integers(1, T + 1, size=4)
    x = rng.normal(size=(4, T, 3)).astype(np.float32)
    got = np.asarray(jax.jit(lambda x, L: smooth_along(x, 0.1, fps, L[:, None], axis=1))(
        jnp.asarray(x), jnp.asarray(lengths)))
    for b, L in enumerate(lengths):
        want = ndi.gaussian_filter1d(x[b, :L], 0.1 * fps, axis=0, mode="nearest", truncate=4.0)
        np.testing.assert_allclose(got[b, :L], want, rtol=1e-5, atol=1e-5)
    assert np.isfinite(got).all()                                      # padding frames too


def test_extreme_quantiles_equal_sorted_quantiles(rng):
    """The top_k-based quantiles are bit for bit those of the full sort (both signs), for
    every valid count, including counts below the selection size and ties."""
    from biocoach_jax.biomech.ops import extreme_quantiles, sorted_quantiles
    T = 61
    x = np.round(rng.normal(size=(40, T)) * 4).astype(np.float32) / 4        # many ties
    n = np.concatenate([np.arange(1, 21), rng.integers(1, T + 1, size=20)])
    m = np.arange(T)[None, :] < n[:, None]
    q = (0.0, 0.05, 0.5, 0.95, 1.0)
    pos, neg = extreme_quantiles(jnp.asarray(x), jnp.asarray(m), jnp.asarray(n), q, both_signs=True)
    xs = jnp.sort(jnp.where(jnp.asarray(m), jnp.asarray(x), jnp.inf), axis=-1)
    np.testing.assert_array_equal(np.asarray(pos), np.asarray(sorted_quantiles(xs, jnp.asarray(n), q)))
    np.testing.assert_array_equal(np.asarray(neg), np.asarray(sorted_quantiles(xs, jnp.asarray(n), q, True)))
    for i in range(x.shape[0]):
        np.testing.assert_allclose(np.asarray(pos[i]), np.quantile(x[i, :n[i]], q), rtol=1e-6, atol=1e-6)


def test_find_peaks_and_sides_equal_separate_calls(rng):
    """One lifting pass for peaks + sides (used by the cycles) equals find_peaks + peak_sides."""
    from biocoach_jax.biomech.peaks import find_peaks_and_sides, peak_sides
    x = rng.normal(size=(6, T_PAD)).astype(np.float32)
    L = jnp.asarray(rng.integers(5, T_PAD, size=6))
    h = jnp.asarray(rng.uniform(-1, 1, size=6).astype(np.float32))
    pk, sd, top = jax.jit(lambda x, L, h: find_peaks_and_sides(x, L, height=h, distance=3, max_peaks=P))(
        jnp.asarray(x), L, h)
    ref = find_peaks(jnp.asarray(x), L, height=h, distance=3, max_peaks=P)
    for a, b in zip(pk, ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    want = peak_sides(jnp.asarray(x), jnp.maximum(ref.indices, 0), L)
    ok = np.asarray(ref.valid)
    for a, b in zip(sd, want):
        np.testing.assert_array_equal(np.asarray(a)[ok], np.asarray(b)[ok])
    np.testing.assert_array_equal(np.asarray(top)[ok], np.take_along_axis(x, np.asarray(ref.indices), -1)[ok])


def test_peaks_on_real_recordings(data_dir, mot_reader):
    """Raw and smoothed real joint-angle columns: identical peaks/prominences to scipy."""
    f = jax.jit(lambda x, L: find_peaks(x, L, prominence=1e-3, max_peaks=600))
    fd = jax.jit(lambda x, L: find_peaks(x, L, distance=25, max_peaks=600))
    for path in sorted(data_dir.glob("*.mot")):
        cols = mot_reader(path)
        for name in ("knee_angle_r", "hip_flexion_r", "shoulder_elv", "plane_elv"):
            if name not in cols:
                continue
            x = np.deg2rad(cols[name]).astype(np.float32)
            xs = ndi.gaussian_filter1d(x, 3.0, mode="nearest").astype(np.float32)
            for sig in (x, xs):
                xp = np.pad(sig, (0, 1100 - sig.size), mode="edge")
                _check(f(jnp.asarray(xp), sig.size), sig, dict(prominence=1e-3))
                _check(fd(jnp.asarray(xp), sig.size), sig, dict(distance=25))


@pytest.fixture
def mot_reader():
    def read(path):
        lines = path.read_text().splitlines()
        head = next(i for i, line in enumerate(lines) if line.strip() == "endheader")
        names = [c.strip() for c in lines[head + 1].split("\t")]
        table = np.loadtxt(lines[head + 2:], ndmin=2)
        return {n: table[:, i] for i, n in enumerate(names)}
    return read


def _structure_reference(x, L, S):
    """The V-piece structure of one series x[:L] by definition (runs, maxima, piece minima)."""
    x = x[:L]
    runs, a = [], 0
    for t in range(1, L + 1):
        if t == L or x[t] != x[a]:
            runs.append((a, t - 1))
            a = t
    maxima = [(l, r) for l, r in runs if l >= 1 and r <= L - 2 and x[l - 1] < x[l] and x[r + 1] < x[r]]
    frames = [0] + [(l + r) // 2 for l, r in maxima] + [L - 1]
    piece_ends = [r for _, r in maxima] + [L - 1]
    out = np.zeros((5, S))
    out[1], out[2], out[1, 0] = -np.inf, np.inf, x[0]        # fills; slot 0 is frame 0
    start = 0
    for s in range(1, min(len(frames), S)):
        piece = x[start:piece_ends[s - 1] + 1]
        at_min = np.nonzero(piece == piece.min())[0] + start
        out[:, s] = frames[s], x[frames[s]], piece.min(), at_min[0], at_min[-1]
        start = piece_ends[s - 1] + 1
    return out, len(frames)


def test_valley_structure_matches_reference(rng):
    """The time-major structure scan (boundaries, piece valleys) equals the definition per series:
    plateaus, lengths 1..T, garbage padding, and too few slots (boundaries past S dropped)."""
    from biocoach_jax.biomech.peaks import _structure
    T, N = 67, 48
    x = np.round(rng.normal(size=(T, N)) * 1.3).astype(np.float32)             # many plateaus
    x[:, ::3] = rng.normal(size=(T, (N + 2) // 3)).astype(np.float32)
    L = rng.integers(1, T + 1, size=N).astype(np.int32)
    L[:3] = (1, 2, T)
    for S in (4, 9, T + 2):
        got = jax.jit(lambda x, L: _structure(x, L, S))(jnp.asarray(x), jnp.asarray(L))
        for n in range(N):
            want, n_b = _structure_reference(x[:, n], int(L[n]), S)
            assert int(got[5][n]) == n_b
            np.testing.assert_array_equal(np.stack([np.asarray(f)[:, n] for f in got[:5]]), want)


def test_materialize_is_identity(rng):
    from biocoach_jax.biomech.ops import materialize
    f = rng.normal(size=(7, 5)).astype(np.float32)
    f[0, :3] = (-np.inf, np.inf, np.finfo(np.float32).min)
    i = rng.integers(-2**31, 2**31 - 1, size=(3, 4, 5), dtype=np.int64).astype(np.int32)
    b = rng.random(11) < 0.5
    for v in (f, i, b):
        got = np.asarray(jax.jit(materialize)(jnp.asarray(v)))
        assert got.dtype == v.dtype
        np.testing.assert_array_equal(got, v)


def test_kernel_smoothing_layout_equals_smooth_along(rng):
    """The segmentation kernel's chunked smoothing is smooth_along bit for bit (B not a multiple
    of the chunk, lengths from 1 to T)."""
    from biocoach_jax.biomech.pipeline import smooth_chunks
    from biocoach_jax.biomech.smooth import smooth_along
    B, T, D = 11, 53, 5
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    L = rng.integers(1, T + 1, size=B).astype(np.int32)
    L[:2] = (1, T)
    xs, ll = jax.jit(lambda x, L: smooth_chunks(x, L, 0.13, 16.0, chunk=4))(jnp.asarray(x), jnp.asarray(L))
    assert xs.shape == (3, 4, T, D) and ll.shape == (12,)
    want = jax.jit(lambda x, L: smooth_along(x, 0.13, 16.0, L[:, None], axis=1))(jnp.asarray(x), jnp.asarray(L))
    np.testing.assert_array_equal(np.asarray(xs).reshape(12, T, D)[:B], np.asarray(want))

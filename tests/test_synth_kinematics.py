"""Synthetic kinematics: injected errors lie beyond their bounds, clean reps inside, morphology
rules change targets and text. The oracle is the exercise library read directly (intervals,
tolerances, tempo, asymmetry threshold) and the rule table as documented in morphology.py."""
import math

import numpy as np
import pytest

from biocoach_jax import skel
from biocoach_jax.data.synth import feedback as F
from biocoach_jax.data.synth import morphology
from biocoach_jax.data.synth.kinematics import FPS, dof_models, synthesize
from biocoach_jax.data.synth.subjects import sample_subject, subject_from_betas
from biocoach_jax.exercises import list_exercises, load_exercise
from biocoach_jax.exercises.conventions import mirror_sign

CLEAN_MARGIN = 5.0


def _deg(track, frame, dof):
    return math.degrees(track.poses[frame, skel.dof_index(dof)])


def _check_track(ex, subj, track):
    err = {(e.rep, e.dof, e.kind) for e in track.errors}
    err_dofs = {(e.rep, e.dof) for e in track.errors}
    kf = ex.keyframe().name
    assert np.all(np.isfinite(track.poses))
    lim = skel.limits()
    assert np.all(track.poses >= lim[:, 0] - 1e-9) and np.all(track.poses <= lim[:, 1] + 1e-9)
    tgt = morphology.targets(ex, subj)
    for rep in track.reps:
        tempo_err = any(e.rep == rep.index and e.kind.startswith("tempo") for e in track.errors)
        if not tempo_err:
            assert ex.tempo.min_s < rep.duration_s < ex.tempo.max_s
        for spec in ex.dofs:
            iv = spec.interval(kf) if spec.dof_class == "dynamic" else None
            v = _deg(track, rep.key, spec.dof)
            if iv is not None and (rep.index, spec.dof) not in err_dofs:
                # clean: inside the LIBRARY interval with margin (hence inside the subject's too)
                assert iv.lo_deg + CLEAN_MARGIN <= v <= iv.hi_deg - CLEAN_MARGIN, (spec.dof, v, iv)
            if spec.dof_class == "static" and (rep.index, spec.dof, "instability") not in err:
                x = np.degrees(track.poses[rep.start:rep.end, skel.dof_index(spec.dof)])
                assert np.abs(x - x[0]).max() <= spec.tolerance.deg - CLEAN_MARGIN
        if ex.bilateral and ex.asymmetry is not None:
            for spec in ex.dofs:
                if spec.mirrored_from or skel.side(spec.dof) != "r" or spec.dof_class != "dynamic":
                    continue
                left = skel.mirror_name(spec.dof)
                diff = abs(_deg(track, rep.key, spec.dof)
                           - mirror_sign(left) * _deg(track, rep.key, left))
                if (rep.index, spec.dof, "asymmetry") not in err:
                    assert diff <= ex.asymmetry.threshold_deg - CLEAN_MARGIN, (spec.dof, diff)
    for e in track.errors:
        rep = track.reps[e.rep]
        if e.kind in ("below_interval", "above_interval"):
            v = _deg(track, rep.key, e.dof)
            assert v == pytest.approx(e.value, abs=1e-6)
            iv = ex.dof(e.dof).interval(kf)
            t = tgt[e.dof]
            if e.kind == "below_interval":
                assert e.bound == pytest.approx(t.lo_deg) and v <= t.lo_deg - 5.9 and v < iv.lo_deg
            else:
                assert e.bound == pytest.approx(t.hi_deg) and v >= t.hi_deg + 5.9 and v > iv.hi_deg
            assert e.value - e.bound == pytest.approx(v - e.bound)
        elif e.kind == "asymmetry":
            left = skel.mirror_name(e.dof)
            diff = abs(_deg(track, rep.key, e.dof) - mirror_sign(left) * _deg(track, rep.key, left))
            assert diff == pytest.approx(e.value, abs=1e-6)
            assert diff >= ex.asymmetry.threshold_deg + 5.9
            for d in (e.dof, left):  # both sides individually clean
                iv = ex.dof(d).interval(kf)
                assert iv.lo_deg + CLEAN_MARGIN <= _deg(track, rep.key, d) <= iv.hi_deg - CLEAN_MARGIN
        elif e.kind == "instability":
            x = np.degrees(track.poses[rep.start:rep.end, skel.dof_index(e.dof)])
            assert np.abs(x - x[0]).max() == pytest.approx(e.value, abs=1e-6)
            assert e.value >= ex.dof(e.dof).tolerance.deg + 5.9
        elif e.kind == "tempo_fast":
            assert rep.duration_s == pytest.approx(e.value) and e.value <= 0.8 * ex.tempo.min_s
        elif e.kind == "tempo_slow":
            assert rep.duration_s == pytest.approx(e.value) and e.value >= 1.2 * ex.tempo.max_s
        else:
            raise AssertionError(f"unexpected kind {e.kind}")


@pytest.mark.parametrize("name", list_exercises())
def test_errors_beyond_bounds_and_clean_inside(name, rng):
    ex = load_exercise(name)
    for _ in range(3):
        subj = sample_subject(rng, "t")
        track = synthesize(ex, subj, rng)
        assert 3 <= len(track.reps) <= 15
        # repetitions tile the active part back to back at 16 fps
        assert [r.start for r in track.reps[1:]] == [r.end for r in track.reps[:-1]]
        assert all(r.duration_s == pytest.approx((r.end - r.start) / FPS) for r in track.reps)
        _check_track(ex, subj, track)


@pytest.mark.parametrize("name", list_exercises())
def test_accessory_dofs_move_with_each_rep_outside_the_key_joints(name, rng):
    """Every exercise moves some DoFs it never coaches (real bodies do): each lies outside the
    exercise's key joints, swings >= 10 deg (the C_motion report threshold) in every rep, both
    sides of a pair together, and keeps still where no rep is under way."""
    ex = load_exercise(name)
    key = np.asarray(skel.dof_mask(ex.key_joints))
    track = synthesize(ex, sample_subject(rng, "t"), rng)
    deg = np.degrees(track.poses)
    moving = [d for d in range(skel.NUM_DOFS) if not key[d]
              and all(np.ptp(deg[r.start:r.end, d]) >= 10.0 for r in track.reps)]
    assert moving, f"{name}: no DoF outside the key joints moves with the reps"
    for d in moving:
        mirror = skel.dof_index(skel.mirror_name(skel.DOF_NAMES[d]))
        assert mirror in moving
        before = deg[: track.reps[0].start, d]
        assert np.ptp(before) < 5.0, skel.DOF_NAMES[d]


def test_many_errors_when_unskilled(rng):
    """A skill-0 subject gets errors on a large share of reps, of several kinds."""
    ex = load_exercise("squat")
    subj = subject_from_betas(np.zeros(10), skill=0.0)
    kinds, reps_with, reps = set(), 0, 0
    for _ in range(4):
        track = synthesize(ex, subj, rng)
        _check_track(ex, subj, track)
        kinds |= {e.kind for e in track.errors}
        reps_with += len({e.rep for e in track.errors})
        reps += len(track.reps)
    assert reps_with / reps > 0.3 and len(kinds) >= 3


def test_same_seed_same_track():
    ex = load_exercise("lunge")
    a = synthesize(ex, subject_from_betas(np.full(10, 0.3)), np.random.default_rng(7))
    b = synthesize(ex, subject_from_betas(np.full(10, 0.3)), np.random.default_rng(7))
    assert np.array_equal(a.poses, b.poses)
    assert [e.to_json() for e in a.errors] == [e.to_json() for e in b.errors]


def _expected_relax(height, bmi, rules):
    """The documented rule table, re-derived by hand (the oracle)."""
    tall = 8.0 if height >= 1.86 else 5.0 if height >= 1.80 else 0.0
    heavy = 8.0 if bmi >= 28.5 else 5.0 if bmi >= 26.0 else 0.0
    return min((tall if "tall" in rules else 0.0) + (heavy if "bmi" in rules else 0.0), 12.0)


def test_morphology_changes_targets_and_text(rng):
    ex = load_exercise("squat")
    short = subject_from_betas(np.r_[-1.5, np.zeros(9)])
    tall = subject_from_betas(np.r_[2.0, 0.0, 0.0, 2.0, np.zeros(6)])
    heavy = subject_from_betas(np.r_[0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0])
    assert tall.height_m >= 1.86 and short.height_m < 1.80 and heavy.bmi >= 26.0
    base = ex.dof("knee_angle_r").interval("bottom").lo_deg
    for subj in (short, tall, heavy):
        t = morphology.targets(ex, subj)["knee_angle_r"]
        want = _expected_relax(subj.height_m, subj.bmi, ("tall", "bmi"))
        assert t.lo_deg == pytest.approx(base - want) and t.hi_deg == t.base_hi_deg
        # exercises without a rule never change
        assert all(not x.relaxed for x in morphology.targets(load_exercise("bicep_curl"), subj).values())
    assert morphology.targets(ex, tall)["knee_angle_r"].lo_deg < \
        morphology.targets(ex, short)["knee_angle_r"].lo_deg
    assert "height" in morphology.targets(ex, tall)["knee_angle_r"].reason
    # the same depth error reads differently for the two bodies: the relaxed bound and the
    # reason appear only in the tall subject's line
    models = dof_models(ex)
    texts = {}
    for who, subj in (("short", short), ("tall", tall)):
        t = morphology.targets(ex, subj)["knee_angle_r"]
        from biocoach_jax.data.synth.kinematics import InjectedError
        e = InjectedError(0, "knee_angle_r", "below_interval", t.lo_deg - 12.0, t.lo_deg, "lo", 10, 0)
        assert F.label_for(ex, e, models["knee_angle_r"].excursion) == "insufficient_range"
        texts[who] = F.error_text(ex, [e], "insufficient_range", np.random.default_rng(1),
                                   subj, t)
        assert f"{round(t.lo_deg)}°" in texts[who] and f"{round(t.lo_deg - 12.0)}°" in texts[who]
    assert "height" in texts["tall"] and "height" not in texts["short"]
    assert any(c in texts["tall"] for c in morphology.STANCE_CUES)

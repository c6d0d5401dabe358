"""C_motion / C_morph text: golden strings for hand-built inputs, ordering, rounding, cues."""
import dataclasses
import math
import re

import pytest

from biocoach_jax.context import (
    describe_violation, render_morph, render_motion, round_half_away, sort_violations,
    violation_message)
from biocoach_jax.exercises import load_exercise

R = math.radians


@dataclasses.dataclass
class V:  # any object with these attributes is a violation
    cycle: int | None
    dof: str | None
    kind: str
    value: float
    lo: float | None = None
    hi: float | None = None
    time_s: float = 0.0


@pytest.fixture(scope="module")
def squat():
    return load_exercise("squat")


def test_paper_style_squat_golden(squat):
    vs = [V(2, "lumbar_extension", "below_interval", R(-45.2), R(-30), R(15), 4.1),
          V(2, "knee_angle_r", "below_interval", R(85), R(90), R(135), 4.1)]
    text = render_motion(squat, 3, {"lumbar_extension": -45.2, "knee_angle_r": 85.0}, vs)
    assert text == (
        "Squat, rep 3. At bottom: right knee flexion 85°, lower back flexion 45°. "
        "Rep 3: excessive lower back flexion: 45° detected, at most 30° allowed; "
        "insufficient right knee flexion: 85° detected, 90° required.")


def test_ordering_grouping_and_truncation(squat):
    vs = [
        V(None, "knee_angle_l", "asymmetry", R(16), None, R(15)),
        V(1, "knee_angle_l", "above_interval", R(140), R(90), R(135)),
        V(0, "lumbar_twist", "instability", R(-20), None, R(15)),
        V(0, None, "tempo_fast", 0.84, 1.2, 6.0),
        V(0, "knee_angle_r", "below_interval", R(80), R(90), R(135)),
        V(0, "knee_angle_l", "below_interval", R(80), R(90), R(135)),
        V(0, None, "incomplete", 0.0),
    ]
    text = render_motion(squat, 2, {}, vs, max_violations=6)
    assert text == (
        "Squat, rep 2. "
        "Rep 1: incomplete repetition; rep too fast: 0.8 s, at least 1.2 s expected; "
        "insufficient right knee flexion: 80° detected, 90° required; "
        "insufficient left knee flexion: 80° detected, 90° required; "
        "unstable lower back twist: 20° of movement, at most 15° allowed. "
        "Rep 2: excessive left knee flexion: 140° detected, at most 135° allowed. "
        "(1 more violation not shown.)")
    full = render_motion(squat, 2, {}, vs, max_violations=10)
    assert full.endswith("Overall: left-right difference in knee flexion: 16°, at most 15° allowed.")
    # the order does not depend on the input order
    assert render_motion(squat, 2, {}, vs[::-1], max_violations=10) == full


def test_no_reps_no_violations(squat):
    assert render_motion(squat, 0, {}, []) == "Squat, no completed rep yet. No violations."


def test_sign_words_and_directionless_dofs():
    press = load_exercise("shoulder_press")
    assert describe_violation(V(0, "shoulder_l_x", "above_interval", R(-80), R(-176), R(-90))) == \
        "insufficient left shoulder abduction: 80° detected, 90° required"
    assert describe_violation(V(0, "lumbar_extension", "above_interval", R(20), R(-10), R(12))) == \
        "excessive lower back extension: 20° detected, at most 12° allowed"
    assert describe_violation(V(0, "lumbar_bending", "above_interval", R(14), R(-10), R(10))) == \
        "lower back side bend 14° above the accepted -10° to 10°"
    assert describe_violation(V(0, "knee_angle_r", "anatomical_limit", R(141), R(0), R(135))) == \
        "right knee flexion 141° beyond the anatomical limit of 135°"
    assert describe_violation(V(0, "knee_angle_r", "below_interval", R(-4), R(0), R(15))) == \
        "excessive right knee hyperextension: 4° detected, at most 0° allowed"
    assert describe_violation(V(0, None, "tempo_slow", 7.25, 1.2, 6.0)) == \
        "rep too slow: 7.2 s, at most 6.0 s expected"
    text = render_motion(press, 4, {"shoulder_l_x": -101.4, "elbow_flexion_l": 12.5}, [])
    assert text == ("Shoulder press, rep 4. At top: left shoulder abduction 101°, "
                    "left elbow flexion 13°. No violations.")


def test_rounding_is_half_away_from_zero(rng):
    for x in rng.uniform(-200, 200, size=50):
        r = round_half_away(x)
        assert abs(x - r) <= 0.5 + 1e-12 and (abs(x - r) < 0.5 or abs(r) > abs(x))
    assert (round_half_away(84.5), round_half_away(-84.5), round_half_away(-0.4)) == (85, -85, 0)


def test_random_knee_violations_quote_their_numbers(squat, rng):
    """Property: the numbers in the text are the rounded degrees of the inputs."""
    for _ in range(20):
        lo = float(rng.uniform(60, 100))
        value = lo - float(rng.uniform(1, 50))
        text = describe_violation(V(0, "knee_angle_r", "below_interval", R(value), R(lo), R(135)))
        nums = [int(n) for n in re.findall(r"-?\d+", text)]
        assert nums == [round_half_away(value), round_half_away(lo)]


def test_violation_messages_from_cues(squat):
    assert violation_message(squat, V(2, "knee_angle_r", "below_interval", R(85), R(90), R(135))) == \
        "Squat deeper: bend your knees to at least 90° (now 85°)."
    assert violation_message(squat, V(2, "lumbar_extension", "below_interval", R(-45), R(-30), R(15))) == \
        "Keep your chest up and your lower back neutral; avoid rounding it."
    assert violation_message(squat, V(2, "hip_adduction_l", "above_interval", R(9), R(-35), R(5))) == \
        "Push your left knee out over your toes; do not let it cave in."
    assert violation_message(squat, V(1, None, "tempo_fast", 0.84, 1.2, 6.0)) == \
        "Slow down: that rep took 0.8 s, aim for at least 1.2 s."
    # no side: the '{side}' gap is closed
    assert violation_message(squat, V(1, "lumbar_twist", "instability", R(-20), None, R(15))) == \
        "Keep your lower back steady through the whole rep."
    assert violation_message(squat, V(1, "knee_angle_l", "asymmetry", R(-17), None, R(15))) == \
        "Keep both sides even: your knee differs by 17° between left and right."


def test_render_morph():
    full = {"height_m": 1.7849, "mass_kg": 73.22, "chest_m": 0.981, "waist_m": 0.8449, "hip_m": 0.996}
    assert render_morph(full) == "Height 1.78 m, Mass 73.2 kg, Chest 0.98 m, Waist 0.84 m, Hip 1.00 m."
    assert render_morph({"hip_m": 1.0, "height_m": 1.6}) == "Height 1.60 m, Hip 1.00 m."
    assert render_morph({}) == ""
    with pytest.raises(ValueError, match="unknown measurement"):
        render_morph({"height": 1.7})
    with pytest.raises(ValueError, match="mass_kg"):
        render_morph({"mass_kg": float("nan")})


def test_unknown_kind_or_dof_is_a_clear_error(squat):
    with pytest.raises(ValueError, match="unknown violation kind"):
        describe_violation(V(0, "knee_angle_r", "too_deep", 1.0))
    with pytest.raises(KeyError, match="unknown SKEL DoF"):
        sort_violations([V(0, "knee", "below_interval", 1.0, 2.0, 3.0)])


def test_interval_violation_without_its_bound_is_rejected():
    with pytest.raises(ValueError, match="needs its lo bound"):
        describe_violation(V(0, "knee_angle_r", "below_interval", R(80), None, R(135)))

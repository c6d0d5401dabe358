"""Biomechanical fact accuracy: sentence parsing and per-criterion scoring."""
import pytest

from biocoach_jax import skel
from biocoach_jax.metrics import bio_fact_accuracy, parse_facts
from biocoach_jax.metrics.biofacts import KIND_TO_DIRECTION, facts_from_truth

KNEE_TRUTH = {"dof": "knee_angle_r", "kind": "below_interval", "value_deg": 72.0}
KNEE_PRED = "Your right knee only reached 72° of flexion at the bottom; aim for at least 90°."


@pytest.mark.parametrize("sentence,joints,direction,value", [
    (KNEE_PRED, (("knee", "r"),), "too_little", 72.0),
    ("Keep your lower back neutral, you are over-arching it by 20 degrees.",
     (("trunk", None),), "too_much", 20.0),
    ("Your left hip drops lower than your right hip: the movement is uneven.",
     (("hip", "l"), ("hip", "r")), "asymmetry", None),
    ("Slow down, you are rushing the descent.", (), "too_fast", None),
    ("Speed up a little, you are moving too slowly.", (), "too_slow", None),
    ("knee_angle_l exceeded its limit at 150 deg", (("knee", "l"),), "too_much", 150.0),
    ("Try to keep your elbows steady, they are wobbling.", (("elbow", None),), "instability", None),
    ("Your torso leans too far forward, about 35.5 degrees", (("trunk", None),), "too_much", 35.5),
    ("Bend the knee on the right side more", (("knee", "r"),), None, None),
    ("Keep your neck in line with your spine", (("neck", None), ("trunk", None)), None, None),
    ("Great job, keep it up!", (), None, None),
    # the exercise library's cue shapes (the rule-based coach speaks them)
    ("Lower your chest further: bend your right shoulder to 20° (now 12°).",
     (("trunk", None), ("shoulder", "r")), "too_little", 12.0),
    ("Keep both sides even: your shoulder differs by 28° between left and right.",
     (("shoulder", None),), "asymmetry", 28.0),
    ("Your hips differ by 12 degrees between sides", (("hip", None),), "asymmetry", 12.0),
    ("Even it out: there's a 35° difference between your left and right shoulders.",
     (("shoulder", None),), "asymmetry", 35.0),
    ("Keep a steady rhythm - 2.2 s is longer than 1.6 s.", (), "too_slow", None),
    ("Too much movement at your lower back: 25° of extension.", (("trunk", None),), "instability", 25.0),
])
def test_parse_facts_hand_written(sentence, joints, direction, value):
    f = parse_facts(sentence)
    assert f.joints == joints
    assert f.direction == direction
    assert f.value_deg == value


def test_the_briefs_example_is_fully_correct():
    r = bio_fact_accuracy([("ignored when a truth record is given", KNEE_PRED)], [KNEE_TRUTH])
    assert r["joint_acc"] == r["direction_acc"] == r["number_acc"] == r["all_acc"] == 1.0
    assert (r["n_pairs"], r["n_scored"], r["n_number"]) == (1, 1, 1)


@pytest.mark.parametrize("pred,ok", [
    ("Your left knee only reached 72° of flexion.", {"joint": 0, "direction": 1, "number": 1}),
    ("Your right hip only reached 72° of flexion.", {"joint": 0, "direction": 1, "number": 1}),
    ("Your right knee bends too much, 72°.", {"joint": 1, "direction": 0, "number": 1}),
    ("Your right knee only reached 78° of flexion.", {"joint": 1, "direction": 1, "number": 0}),
    ("Your right knee only reached 77° of flexion.", {"joint": 1, "direction": 1, "number": 1}),
    ("Your right knee only reached 67° of flexion.", {"joint": 1, "direction": 1, "number": 1}),
    ("Your right knee is not bending enough.", {"joint": 1, "direction": 1, "number": 0}),
])
def test_each_criterion_separately(pred, ok):
    r = bio_fact_accuracy([("", pred)], [KNEE_TRUTH])
    for name, want in ok.items():
        assert r[f"{name}_acc"] == want, name
    assert r["all_acc"] == float(all(ok.values()))


def test_unsided_truth_accepts_any_side_and_missing_value_is_not_scored():
    truth = {"dof": "lumbar_extension", "kind": "instability", "value_deg": None}
    r = bio_fact_accuracy([("", "Your lower back wobbles at the top."),
                           ("", "Your left knee is wobbly.")], [truth, truth])
    assert r["joint_acc"] == 0.5 and r["direction_acc"] == 1.0
    assert r["n_number"] == 0 and r["number_acc"] == 0.0
    assert r["all_acc"] == 0.5


def test_truth_parsed_from_reference_text_and_unscorable_pairs():
    pairs = [("Your right knee only reached 72° of flexion.", "Right knee: only reached 70°."),
             ("Great job!", "Your right knee only reached 72°."),          # truth has no fact
             ("Your left elbow flexes too much.", "Your left elbow flexes too much.")]
    r = bio_fact_accuracy(pairs)  # no records: parse the reference text
    assert r["n_pairs"] == 3 and r["n_scored"] == 2
    assert r["joint_acc"] == 1.0 and r["direction_acc"] == 1.0
    assert r["n_number"] == 1 and r["number_acc"] == 1.0
    # records may be mixed with None (= parse that pair's reference text)
    r2 = bio_fact_accuracy(pairs[:1], [None])
    assert r2["all_acc"] == 1.0


def test_random_truths_rendered_to_text(rng):
    """Random DoF/kind/value truths, rendered with the skel label; the number verdict follows
    |offset| <= 5 and joint/direction are always recovered."""
    phrases = {"too_little": "did not bend enough", "too_much": "went too far",
               "asymmetry": "is uneven", "instability": "is wobbling",
               "too_fast": "moves too fast", "too_slow": "moves too slowly"}
    pairs, truths, want_number = [], [], []
    for _ in range(25):
        dof = str(rng.choice(skel.DOF_NAMES))
        kind = str(rng.choice(sorted(KIND_TO_DIRECTION)))
        value = float(rng.integers(10, 150))   # value + offset > 0: texts write magnitudes
        offset = float(rng.choice([-9.0, -6.0, -4.5, -2.0, 0.0, 3.0, 5.0, 7.5]))
        label = skel.dof_label(dof)
        pred = f"Your {label} {phrases[KIND_TO_DIRECTION[kind]]}: {value + offset:g} degrees."
        pairs.append(("", pred))
        truths.append({"dof": dof, "kind": kind, "value_deg": value})
        want_number.append(abs(offset) <= 5.0)
    r = bio_fact_accuracy(pairs, truths)
    assert r["joint_acc"] == 1.0 and r["direction_acc"] == 1.0
    assert r["number_acc"] == pytest.approx(sum(want_number) / len(want_number))
    assert r["all_acc"] == r["number_acc"]


def test_pose_truth_scores_joint_and_number_not_direction():
    """An "in_range" truth (a count quoting the rep's pose) has no direction to get right."""
    truth = {"dof": "elbow_flexion_l", "kind": "in_range", "value_deg": 94.6}
    said = ["Rep 4, left elbow flexion 97°.", "Rep 4, your left elbow is too shallow at 91°.",
            "Rep 4, right elbow flexion 95°.", "Rep 4, left elbow flexion 101°."]
    r = bio_fact_accuracy([("", s) for s in said], [truth] * len(said))
    assert r["n_scored"] == 4 and r["n_direction"] == 0 and r["n_number"] == 4
    assert r["joint_acc"] == 0.75 and r["number_acc"] == 0.75 and r["all_acc"] == 0.5
    assert facts_from_truth(truth).direction is None


def test_numbers_compare_as_magnitudes():
    """Feedback writes "10 degrees of dorsiflexion", not "-10 degrees": a truth of -10 (signed
    SKEL angle) is met by 7-15 written either way, and not by 4 or 16."""
    truth = {"dof": "ankle_angle_r", "kind": "below_interval", "value_deg": -10.0}
    said = [f"Your right ankle did not bend enough: {v:g} degrees." for v in (7, -15, 4, 16)]
    verdicts = [bio_fact_accuracy([("", s)], [truth])["number_acc"] for s in said]
    assert verdicts == [1.0, 1.0, 0.0, 0.0]


def test_every_skel_dof_maps_to_a_named_joint():
    for dof in skel.DOF_NAMES:
        truth = facts_from_truth({"dof": dof, "kind": "asymmetry"})
        assert parse_facts(f"Check your {skel.dof_label(dof)}.").joints[:1] == truth.joints
        assert truth.joints[0][1] == skel.side(dof)


def test_bad_truth_records_raise_value_errors():
    with pytest.raises(ValueError, match="kind"):
        bio_fact_accuracy([("", "x")], [{"dof": "knee_angle_r", "kind": "wrong"}])
    with pytest.raises(ValueError, match="SKEL DoF"):
        bio_fact_accuracy([("", "x")], [{"dof": "knee", "kind": "asymmetry"}])
    with pytest.raises(ValueError, match="value_deg"):
        bio_fact_accuracy([("", "x")], [{"dof": None, "kind": "asymmetry", "value_deg": "lots"}])
    with pytest.raises(ValueError, match="truths has 2"):
        bio_fact_accuracy([("", "x")], [None, None])


@pytest.mark.parametrize("sentence, measured", [
    ("Squat deeper: bend your knees to at least 90° (now 78°).", 78.0),
    ("Excessive lower back flexion: 45° detected, at most 30° allowed.", 45.0),
    ("Aim for 90°, you reached 80°.", 80.0),
    ("Your right knee only reached 72° of flexion; aim for at least 90°.", 72.0),
    ("No more than 15° of difference please, it was 24°.", 24.0),
    ("Keep your knee at 100 degrees.", 100.0),     # only a target: the first angle is used
])
def test_the_measured_angle_is_scored_not_the_target(sentence, measured):
    assert parse_facts(sentence).value_deg == measured


# every error family of the synthetic coach (data/synth/templates.py) and its direction
FAMILY_DIRECTION = {"insufficient_range": "too_little", "excess_range": "too_much",
                    "trunk_flexion": "too_much", "back_arch": "too_much", "knee_valgus": "too_much",
                    "elbow_flare": "too_much", "asymmetry": "asymmetry", "instability": "instability",
                    "tempo_fast": "too_fast", "tempo_slow": "too_slow"}


@pytest.mark.parametrize("family", sorted(FAMILY_DIRECTION))
def test_every_synthetic_coach_template_reads_back(family, rng):
    """The metric understands the language of the synthetic world's own coach: each template,
    filled with random values, parses to its family's direction and its measured value (never
    the bound), and names the joint it was filled with."""
    from biocoach_jax.data.synth.templates import FAMILIES

    direction = FAMILY_DIRECTION[family]
    for template in FAMILIES[family]:
        v, b, diff = (int(x) for x in rng.integers(5, 150, 3))
        bound = int(rng.integers(5, 150))
        target = (f"at least {bound}° of flexion" if direction == "too_little"
                  else f"at most {bound}° of flexion")
        dur, lim = f"{rng.uniform(0.5, 9):.1f}", f"{rng.uniform(0.5, 9):.1f}"
        joint = str(rng.choice(["right knee", "left elbow", "shoulders", "hips"]))
        text = template.format(joint=joint, motion="flexion", v=v, target=target, b=b, diff=diff,
                               kf="at the bottom", dur=dur, lim=lim)
        f = parse_facts(text)
        assert f.direction == direction, text
        if direction in ("too_fast", "too_slow"):
            assert f.value_deg is None, text
        else:
            assert f.value_deg == (diff if direction == "asymmetry" else v), text
        if "{joint}" in template:
            key = {"knee": "knee", "elbo": "elbow", "shou": "shoulder", "hips": "hip"}[joint.split()[-1][:4]]
            assert key in [k for k, _ in f.joints], text


def test_bilateral_truth_accepts_plural_and_either_side():
    """A bilateral error ("your shoulders") is one truth over both DoFs: the plural, either side
    or no side names it; a sided truth is still missed by the other side only."""
    truth = {"dof": "shoulder_r_x", "dofs": ["shoulder_r_x", "shoulder_l_x"], "kind": "below_interval",
             "value_deg": 42.0}
    preds = ["Your shoulders only reached 41° of abduction.",
             "Your left shoulder only reached 41° of abduction.",
             "Your shoulder only reached 41° of abduction.",
             "Your hips only reached 41° of abduction."]
    r = bio_fact_accuracy([("", p) for p in preds], [truth] * 4)
    assert r["joint_acc"] == 0.75 and r["all_acc"] == 0.75
    right_only = {"dof": "knee_angle_r", "kind": "below_interval", "value_deg": 72.0}
    r = bio_fact_accuracy([("", "Your knee only reached 72°."), ("", "Your left knee only reached 72°.")],
                          [right_only] * 2)
    assert r["joint_acc"] == 0.5

"""Synthetic coaching text: speech timing, non-overlapping schedule, placement after the
keyframe, paraphrase variety, and the quantitative facts behind each error line."""
import math
import re

import numpy as np
import pytest

from biocoach_jax.data.synth import feedback as F
from biocoach_jax.data.synth.subjects import sample_subject
from biocoach_jax.data.synth.templates import COLLOQUIAL, FAMILIES
from biocoach_jax.data.synth.workout import make_workout

FPS = 16.0


def test_speech_time_hand_worked():
    # 2 words -> ceil(2.6) = 3 tokens -> 0.25 s -> 4 frames at 16 fps
    assert F.speech_seconds("That's 5!") == pytest.approx(3 / 12)
    assert F.speech_frames("That's 5!", FPS) == 4
    # 10 words -> 13 tokens -> 13/12 s -> ceil(17.33) = 18 frames
    assert F.speech_frames("one two three four five six seven eight nine ten", FPS) == 18


def test_every_family_has_six_paraphrases_that_format():
    assert set(COLLOQUIAL) == {*FAMILIES} - {"encourage_plain", "morph_reason"}
    for name, tpls in COLLOQUIAL.items():   # the colloquial wording: no joint angles
        assert len(set(tpls)) == len(tpls) >= 6 and all("°" not in t for t in tpls), name
    fields = dict(joint="right knee", joint_cap="Right knee", motion="flexion", v=72,
                  target="at least 90°", kf="at the bottom", b=90, diff=20, dur="0.9", lim="1.2",
                  n=5, reason="for your height", reason_cap="For your height")
    for name, tpls in [*FAMILIES.items(), *COLLOQUIAL.items()]:
        assert len(tpls) >= 6, name
        assert len(set(tpls)) == len(tpls), name
        for t in tpls:
            out = t.format(**fields)
            assert "{" not in out and out.strip()


def test_schedule_priority_delay_and_drop():
    # a fixed transition at frame 10; an error wanting frame 12 must wait after it;
    # a count wanting the same frame with a short window is dropped
    tr = F.Line("transition", "Moving on to squats!", 10, 10)
    n_tr = F.speech_frames(tr.text, FPS)
    err = F.Line("error", "Your right knee only reached 72° of flexion.", 12, 60)
    cnt = F.Line("count", "That's 5!", 12, 14)
    placed = F.schedule([cnt, err], FPS, fixed=[tr])
    assert [p.kind for p in placed] == ["transition", "error"]
    assert placed[1].start == 10 + n_tr - 1 + F.GAP_FRAMES + 1
    assert placed[1].end - placed[1].start + 1 == F.speech_frames(err.text, FPS)


def _check_no_overlap(lines):
    for a, b in zip(lines[:-1], lines[1:]):
        assert a.end + F.GAP_FRAMES < b.start, (a.text, b.text)
    for ln in lines:
        assert ln.end - ln.start + 1 == F.speech_frames(ln.text, FPS)


def test_workout_lines_spacing_and_facts(rng):
    subj = sample_subject(rng, "f")
    w = make_workout(subj, rng, ["squat", "push_up", "lunge"])
    _check_no_overlap(w.lines)
    assert all(ln.end < w.num_frames for ln in w.lines)
    kinds = [ln.kind for ln in w.lines]
    assert kinds[0] == "transition" and kinds[-1] == "transition"
    assert sum(k == "transition" for k in kinds) == 4
    assert w.lines[0].text == "First up are squats!"
    assert w.lines[-1].text == "That's the end of the workout!"
    assert any(ln.text == "Moving on to lunges!" for ln in w.lines)
    n_err = 0
    for ln in w.lines:
        if ln.kind != "error":
            continue
        n_err += 1
        i = next(k for k, off in enumerate(w.offsets[::-1]) if off <= ln.start)
        track = w.tracks[len(w.offsets) - 1 - i]
        off = w.offsets[len(w.offsets) - 1 - i]
        key = off + track.reps[ln.rep].key
        assert key + 0.5 * FPS <= ln.start <= key + 1.5 * FPS
        # the quantities in the text are the facts (rounded half up)
        f = ln.facts[0]
        numbers = [int(x) for x in re.findall(r"(\d+)°", ln.text)]
        if f["unit"] == "deg" and f["kind"] != "asymmetry":
            assert math.floor(abs(f["value"]) + 0.5) in numbers, (ln.text, f)
        if f["kind"].startswith("tempo"):
            assert f"{f['value']:.1f} s" in ln.text or f"{f['value']:.1f} seconds" in ln.text
    # errors were injected somewhere in three exercises of a mid-skill subject
    assert n_err == 0 or all(ln.facts for ln in w.lines if ln.kind == "error")
    counts = [ln for ln in w.lines if ln.kind == "count"]
    assert all(re.search(str(ln.facts[0]["value"]), ln.text) for ln in counts)


def test_counts_and_encouragement_quote_the_pose_and_state_no_error(rng):
    """QEVD-bio style: counts and praise name the driving joint and its keyframe angle (the
    fact), and parse to no error direction - a reader must not take them for corrections."""
    from biocoach_jax.exercises import load_exercise
    from biocoach_jax.metrics.biofacts import facts_from_truth, judge_facts, parse_facts

    for family in ("count", "encourage", "encourage_plain"):
        for tpl in FAMILIES[family]:
            for joint in ("right knee", "left shoulder"):
                text = tpl.format(n=3, joint=joint, joint_cap=joint.capitalize(), v=41,
                                  motion="flexion", kf="at the top")
                assert parse_facts(text).direction is None, text
    n_counts = 0
    for name in ("squat", "bicep_curl", "lateral_raise", "high_knees"):
        w = make_workout(sample_subject(rng, "m"), rng, [name])
        track, off = w.tracks[0], w.offsets[0]
        drive = load_exercise(name).driving[0].dof
        quoted = [ln for ln in w.lines if ln.kind in ("count", "encourage") and ln.facts
                  and ln.facts[-1]["kind"] == "in_range"]
        n_counts += sum(ln.kind == "count" for ln in quoted)
        for ln in quoted:
            f = ln.facts[-1]
            assert f["dof"] == drive and f["rep"] == ln.rep
            assert f["value"] == pytest.approx(track.key_values[ln.rep][drive], abs=1e-3)
            assert ln.start >= off + track.reps[ln.rep].key     # said after the pose it quotes
            said = parse_facts(ln.text)
            assert said.direction is None, ln.text
            verdict = judge_facts(facts_from_truth({**f, "value_deg": f["value"]}), said)
            assert verdict == {"joint": True, "direction": None, "number": True}, ln.text
        clean_reps = {r.index for r in track.reps} - {e.rep for e in track.errors}
        assert all(ln.rep in clean_reps for ln in quoted if ln.kind == "encourage")
    assert n_counts >= 4   # ~0.75 of ~40 reps get a count (fewer when errors crowd them out)


def test_wording_varies_across_sessions(rng):
    texts = set()
    for _ in range(3):
        w = make_workout(sample_subject(rng, "v"), rng, ["squat"])
        texts |= {ln.text for ln in w.lines if ln.kind == "count"}
    assert len(texts) >= 4

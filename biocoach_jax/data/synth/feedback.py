"""Timestamped coaching lines for a synthetic exercise, and their non-overlapping schedule.

Lines (QEVD-bio style: anatomically precise, quantitative):
  * error lines: one per injected mistake (both sides of a bilateral error are one line),
    wanted 0.5-1.5 s after the repetition's keyframe and never later; their ground truth
    carries the structured facts (dof, kind, value_deg, bound_deg, rep) of every DoF involved;
    a relaxed morphology target adds the reason ("... for your height"), and squat subjects
    with long thighs get the stance cue on depth / trunk lines (morphology.py);
  * repetition counts shortly after most repetitions end, quoting the repetition's driving DoF
    at its keyframe ("That's 5! Your right knee reached 92° of flexion at the bottom.");
  * encouragement now and then, quoting the latest clean repetition the same way (plain before
    the first one). QEVD-bio-fit-coach rewrote every line of QEVD-fit-coach into anatomical
    language, so its counts and praise name joints and angles too; their facts have kind
    "in_range" (a measured pose, not an error).
Every line also has its colloquial wording (`Line.plain`, templates.COLLOQUIAL: "Knees out!",
"That's 5!"), the QEVD-fit-coach text the bio rewrite started from, at the same time.
Speech timing: a line of w words is spoken in ceil(1.3 w) / 12 s (1.3 tokens per English word
on average for LLaMA-style BPE tokenizers, 12 tokens/s = Stream-VLM's INFERENCE_SPEED). A line
is shown for that long; lines never overlap and keep GAP_FRAMES between them. Scheduling is by
priority (transitions 4 > errors 3 > counts 2 > encouragement 1): each line takes the earliest
free slot inside its window, else it is dropped (the injected error stays in the ground truth).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from biocoach_jax import skel
from biocoach_jax.exercises import Exercise
from biocoach_jax.exercises.conventions import joint_label, joint_label_unsided, motion_words

from . import morphology
from .templates import COLLOQUIAL, FAMILIES, KEYFRAME_PHRASES, PLURAL_JOINTS

TOKENS_PER_WORD, TOKENS_PER_S = 1.3, 12.0
GAP_FRAMES = 2
PRIORITY = {"transition": 4, "error": 3, "count": 2, "encourage": 1}
COUNT_PROB = 0.75


@dataclasses.dataclass
class Line:
    kind: str                 # transition | error | count | encourage
    text: str
    want: int                 # desired first frame
    latest: int               # latest acceptable first frame
    facts: list = dataclasses.field(default_factory=list)
    rep: int | None = None
    label: str | None = None  # error family (insufficient_range, knee_valgus, ...)
    start: int = -1           # scheduled frames (inclusive), -1 = not placed
    end: int = -1
    plain: str | None = None  # the colloquial wording (QEVD-fit-coach style); None = `text`

    @property
    def colloquial(self) -> str:
        return self.text if self.plain is None else self.plain

    def to_json(self, fps: float) -> dict:
        return {"kind": self.kind, "text": self.text, "start_frame": self.start,
                "end_frame": self.end, "time_s": self.start / fps, "rep": self.rep,
                "label": self.label, "facts": self.facts, "colloquial_text": self.colloquial}


def speech_seconds(text: str) -> float:
    return math.ceil(TOKENS_PER_WORD * len(text.split())) / TOKENS_PER_S


def speech_frames(text: str, fps: float) -> int:
    return max(1, math.ceil(speech_seconds(text) * fps))


# ---- wording -----------------------------------------------------------------------------------
def _num(x: float) -> int:
    return int(math.floor(abs(x) + 0.5))


def _joint(dofs) -> str:
    if len(dofs) == 2:
        base = joint_label_unsided(dofs[0])
        return PLURAL_JOINTS.get(base, base)
    return joint_label(dofs[0])


def _keyframe_phrase(ex: Exercise) -> str:
    """'at the bottom' for the exercise's keyframe."""
    return KEYFRAME_PHRASES.get(ex.keyframe().name, "at the " + ex.keyframe().name)


def _motion(dof: str, value: float) -> str:
    pos, neg = motion_words(dof)
    return pos if value >= 0 else neg


def label_for(ex: Exercise, err, excursion: float) -> str:
    """Text family of an injected error (a record of kinematics.InjectedError)."""
    if err.kind not in ("below_interval", "above_interval"):
        return err.kind
    base = err.dof.replace("_r", "").replace("_l", "") if skel.side(err.dof) else err.dof
    below = err.kind == "below_interval"
    if base == "lumbar_extension":
        return "trunk_flexion" if below else "back_arch"
    if base == "hip_adduction" and not below and ex.name == "squat":
        return "knee_valgus"
    if ex.name == "push_up" and err.dof == "shoulder_r_x" and not below:
        return "elbow_flare"
    toward_rest = (-1.0 if below else 1.0) * excursion < 0
    return "insufficient_range" if toward_rest else "excess_range"


def _target(side: str, bound: float, dof: str) -> str:
    """'at least 90°' / 'at most 15°' in the DoF's anatomical direction of the bound."""
    pos, neg = motion_words(dof)
    mag = _num(bound)
    word = "" if pos == neg else (" of " + (pos if bound >= 0 else neg))
    if (side == "lo") == (bound >= 0 or pos == neg):
        return f"at least {mag}°{word}"
    return f"at most {mag}°{word}"


def error_text(ex: Exercise, group: list, label: str, rng, subject=None,
               target=None) -> str:
    """One sentence for one injected mistake (group = its records, right side first)."""
    e = group[0]
    tpl = FAMILIES[label][int(rng.integers(len(FAMILIES[label])))]
    fields = dict(joint=_joint([g.dof for g in group]), kf=_keyframe_phrase(ex), b=_num(e.bound))
    if e.kind in ("tempo_fast", "tempo_slow"):
        fields.update(dur=f"{e.value:.1f}", lim=f"{e.bound:.1f}")
    elif e.kind == "asymmetry":
        fields.update(diff=_num(e.value), joint=_joint([e.dof, skel.mirror_name(e.dof)]))
    elif e.kind == "instability":
        fields.update(v=_num(e.value), motion=_motion(e.dof, 1.0))
    else:
        fields.update(v=_num(e.value), motion=_motion(e.dof, e.value),
                      target=_target(e.bound_side, e.bound, e.dof))
    text = tpl.format(**fields)
    if target is not None and target.relaxed and e.bound_side == "lo" and label == "insufficient_range":
        reason = target.reason
        extra = FAMILIES["morph_reason"][int(rng.integers(len(FAMILIES["morph_reason"])))]
        text += extra.format(reason=reason, reason_cap=reason[:1].upper() + reason[1:],
                             b=_num(e.bound))
    if subject is not None and label in ("insufficient_range", "trunk_flexion") and \
            morphology.wants_stance_cue(ex.name, subject):
        text += " " + morphology.STANCE_CUES[int(rng.integers(len(morphology.STANCE_CUES)))]
    return text


# ---- lines for one exercise track --------------------------------------------------------------
def exercise_lines(ex: Exercise, track, subject, rng, offset: int, fps: float,
                   models: dict) -> list[Line]:
    """Unscheduled lines for a track placed at frame `offset` of the workout."""
    lines = []
    talk = rng.spawn(1)[0]    # the colloquial wording's own draws: the anatomical lines' stay put

    def say(family: str, **fields) -> str:
        options = COLLOQUIAL[family]
        return options[int(talk.integers(len(options)))].format(**fields)

    groups: dict[int, list] = {}
    for e in track.errors:
        groups.setdefault(e.group, []).append(e)
    for g in groups.values():
        e = g[0]
        label = label_for(ex, e, models[e.dof].excursion)
        text = error_text(ex, g, label, rng, subject, track.targets.get(e.dof))
        key = offset + e.key_frame if e.kind != "instability" else offset + track.reps[e.rep].key
        lo, hi = key + int(math.ceil(0.5 * fps)), key + int(1.5 * fps)
        facts = [{"dof": x.dof, "kind": x.kind, "value": round(x.value, 3),
                  "bound": round(x.bound, 3), "unit": "s" if x.kind.startswith("tempo") else "deg",
                  "rep": x.rep} for x in g]
        lines.append(Line("error", text, int(rng.integers(lo, hi + 1)), hi, facts, e.rep, label,
                          plain=say(label)))
    drive = ex.driving[0].dof
    erring = {e.rep for e in track.errors}
    for rep in track.reps:
        if rng.random() < COUNT_PROB:
            n = rep.index + 1
            text, fact = _pose_line("count", ex, drive, track.key_values[rep.index], rep.index,
                                    rng, n=n)
            want = offset + rep.end + int(rng.integers(1, 8))
            facts = [{"kind": "count", "value": n}, fact]
            lines.append(Line("count", text, want, want + int(1.5 * fps), facts, rep.index,
                              plain=say("count", n=n)))
    a, b = offset + track.active[0], offset + track.active[1]
    for _ in range(int(rng.integers(1, 3))):
        want = int(rng.integers(a, max(a + 1, b - int(2 * fps))))
        # the latest clean repetition whose keyframe is half a second old quotes its pose
        seen = [r for r in track.reps
                if r.index not in erring and offset + r.key + fps // 2 <= want]
        if seen:
            r = seen[-1]
            text, fact = _pose_line("encourage", ex, drive, track.key_values[r.index], r.index, rng)
            lines.append(Line("encourage", text, want, want + int(2 * fps), [fact], r.index,
                              plain=say("encourage")))
        else:
            plain = FAMILIES["encourage_plain"]
            lines.append(Line("encourage", plain[int(rng.integers(len(plain)))], want,
                              want + int(2 * fps)))
    return lines


def _pose_line(family: str, ex: Exercise, dof: str, key_values: dict, rep: int, rng,
               **fields) -> tuple[str, dict]:
    """A count / encouragement sentence quoting `dof` at the repetition's keyframe, and its fact
    (kind "in_range": a measured pose, no error)."""
    value = key_values[dof]
    joint = _joint([dof])
    tpl = FAMILIES[family][int(rng.integers(len(FAMILIES[family])))]
    text = tpl.format(joint=joint, joint_cap=joint[:1].upper() + joint[1:], v=_num(value),
                      motion=_motion(dof, value), kf=_keyframe_phrase(ex), **fields)
    return text, {"dof": dof, "kind": "in_range", "value": round(value, 3), "unit": "deg",
                  "rep": rep}


def schedule(lines: list[Line], fps: float, fixed: list[Line] = ()) -> list[Line]:
    """Place lines (see module doc); `fixed` lines keep their `want` frame. Returns the placed
    lines in time order (fixed ones included)."""
    busy: list[tuple[int, int]] = []   # occupied [start, end + GAP] frame ranges

    def free(s: int, e: int) -> bool:
        return all(e + GAP_FRAMES < a or s > b for a, b in busy)

    placed = []
    for ln in list(fixed):
        n = speech_frames(ln.text, fps)
        ln.start, ln.end = ln.want, ln.want + n - 1
        busy.append((ln.start, ln.end + GAP_FRAMES))
        placed.append(ln)
    order = sorted(lines, key=lambda x: (-PRIORITY[x.kind], x.want))
    for ln in order:
        n = speech_frames(ln.text, fps)
        cands = sorted({ln.want} | {b + 1 for _, b in busy if ln.want <= b + 1 <= ln.latest})
        slot = next((s for s in cands if free(s, s + n - 1)), None)
        if slot is None:
            continue
        ln.start, ln.end = slot, slot + n - 1
        busy.append((ln.start, ln.end + GAP_FRAMES))
        placed.append(ln)
    return sorted(placed, key=lambda x: x.start)

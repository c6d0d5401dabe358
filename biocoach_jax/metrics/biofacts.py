"""Biomechanical fact accuracy (our addition to the paper's metrics).

A coaching sentence is read as a small set of facts: which joint it names (SKEL names such as
`knee_angle_r`, or plain English: knee, hip, ankle, elbow, shoulder, lower back/trunk/torso/spine,
neck, wrist, ...) and on which side, the direction of the error (too little / too much range,
asymmetry, instability, too fast / too slow) and the first angle written in degrees.

For each matched (ground truth, prediction) pair the truth is either a structured record from the
synthetic world, e.g. `{"dof": "knee_angle_r", "kind": "below_interval", "value_deg": 72.0}`, or,
for real data, the facts parsed from the reference text. The prediction is then checked on three
criteria, each only where the truth says something about it:
- joint: the prediction names the truth's joint (with the same side when the truth has a side);
- direction: the prediction's first direction cue equals the truth's direction;
- number: the prediction's first angle is within `tol_deg` (default 5) of the truth's value
  (magnitudes: feedback text writes "10 degrees of dorsiflexion", not "-10 degrees").
"all" means every applicable criterion holds. A pair whose truth yields no fact at all (e.g.
"Great job!") is not scored and is counted as such.

Parsing is deterministic keyword matching (regular expressions), documented in the tables below,
so that the metric is reproducible and inspectable; it is a proxy, not language understanding.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, Sequence

from biocoach_jax import skel

# Plain-English joint vocabulary: key -> synonyms (regex fragments, matched as whole words).
JOINT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "trunk": (r"lower back", r"upper back", r"back", r"trunk", r"torso", r"spine", r"spinal",
              r"lumbar", r"thorax", r"thoracic", r"chest"),
    "neck": (r"neck", r"head"),
    "pelvis": (r"pelvis", r"pelvic"),
    "hip": (r"hips?",),
    "knee": (r"knees?",),
    "ankle": (r"ankles?", r"subtalar"),
    "toes": (r"toes?", r"mtp"),
    "shoulder": (r"shoulder blades?", r"shoulders?", r"scapulae?"),
    "elbow": (r"elbows?",),
    "forearm": (r"forearms?", r"pro sup", r"pronation", r"supination"),
    "wrist": (r"wrists?",),
}

# SKEL joint (bone) -> plain-English joint key above.
SKEL_JOINT_TO_KEY: dict[str, str] = {
    "pelvis": "pelvis", "femur": "hip", "tibia": "knee", "talus": "ankle", "calcn": "ankle",
    "toes": "toes", "lumbar_body": "trunk", "thorax": "trunk", "head": "neck",
    "scapula": "shoulder", "humerus": "shoulder", "ulna": "elbow", "radius": "forearm",
    "hand": "wrist",
}

DIRECTIONS = ("too_little", "too_much", "asymmetry", "instability", "too_fast", "too_slow")

# Truth kinds of the synthetic world -> direction of the error.
KIND_TO_DIRECTION: dict[str, str] = {
    "below_interval": "too_little", "incomplete": "too_little",
    "above_interval": "too_much", "anatomical_limit": "too_much",
    "asymmetry": "asymmetry", "instability": "instability",
    "tempo_fast": "too_fast", "tempo_slow": "too_slow",
}

# Direction cues; the EARLIEST cue in the sentence decides. "slow down" means too fast, "speed
# up" too slow, "aim for more" too little.
DIRECTION_CUES: dict[str, tuple[str, ...]] = {
    "too_little": (r"insufficient\w*", r"not (?:\w+ )?enough", r"only (?:reached|got|went|bent|"
                   r"came|hit|made it)", r"aim for (?:at least|more)", r"at least",
                   r"too (?:little|shallow)", r"more (?:depth|range|flexion|extension|bend\w*)",
                   r"deeper", r"incomplete", r"partial", r"short of", r"limited",
                   r"under-?(?:flex|extend|rotat)\w*", r"(?:bend|flex|extend|open|lift|raise|"
                   r"straighten|lower) (?:\w+ ){0,2}(?:more|further)"),
    "too_much": (r"too much", r"excessive\w*", r"too far", r"over-?(?:flex|extend|rotat|arch|"
                 r"bend|reach|stretch)\w*", r"hyper-?extend\w*", r"beyond", r"exceed\w*",
                 r"past (?:the |your |its )?(?:safe )?(?:limit|range)", r"aim for less",
                 r"less (?:flexion|extension|bend\w*|lean\w*|arch\w*|rotation)", r"reduce"),
    "asymmetry": (r"asymmetr\w*", r"uneven\w*", r"imbalance\w*", r"unbalanced", r"lopsided",
                  r"than (?:the|your) other side", r"differ\w* (?:by [\d.]+\s*(?:°|degrees?) )?between",
                  r"one side", r"both sides even"),
    "instability": (r"instab\w*", r"unstable", r"wobbl\w*", r"shak\w*", r"sway\w*",
                    r"steady", r"stabili[sz]\w*"),
    "too_fast": (r"too fast", r"too quick\w*", r"rush\w*", r"slow down", r"slower",
                 r"more slowly", r"control the (?:descent|tempo)"),
    "too_slow": (r"too slow\w*", r"speed up", r"pick up the pace", r"faster", r"more quickly"),
}

_WORD = r"(?<![a-z_]){}(?![a-z_])"
_JOINT_RE = re.compile("|".join(
    f"(?P<{key}>{_WORD.format('(?:' + '|'.join(syns) + ')')})"
    for key, syns in JOINT_SYNONYMS.items()))
# SKEL DoF and joint names written verbatim (longest first, so knee_angle_r beats a prefix).
_SKEL_NAMES = sorted(set(skel.DOF_NAMES) | set(skel.JOINT_NAMES), key=len, reverse=True)
_SKEL_RE = re.compile(_WORD.format("(" + "|".join(map(re.escape, _SKEL_NAMES)) + ")"))
_DIRECTION_RE = re.compile("|".join(
    f"(?P<{d}>{_WORD.format('(?:' + '|'.join(cues) + ')')})"
    for d, cues in DIRECTION_CUES.items()))
_ANGLE_RE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:°|º|degrees?\b|degs?\b)")
# Words right before an angle that mark it as the target/bound rather than the measured value
# ("aim for at least 90°", "at most 30° allowed"): the measured number is what is scored.
_TARGET_BEFORE_RE = re.compile(r"(?:at least|at most|aim for|aim to|target|no more than|"
                               r"no less than|up to|keep it (?:to|under|below|above)|limit|"
                               r"required|allowed|beyond|instead of|rather than|goal)\W*(?:about\s+)?$")
# "... to 90° (now 78°)": the angle before "(now" is the target, the one after it the measurement.
_TARGET_AFTER_RE = re.compile(r"^\s*(?:required|allowed|is the target|is the goal|or more|or less|"
                              r"\(now\b)")
_SIDE_BEFORE_RE = re.compile(r"\b(left|right)\b(?:[ -]+[a-z']+){0,2}[ -]*$")
_SIDE_AFTER_RE = re.compile(r"^\s+on (?:the|your) (left|right)\b")


@dataclasses.dataclass(frozen=True)
class Facts:
    """What one sentence (or one truth record) says. Each field may be None or empty."""
    joints: tuple[tuple[str, str | None], ...] = ()  # (joint key, side 'r'/'l'/None), in order
    direction: str | None = None
    value_deg: float | None = None

    @property
    def empty(self) -> bool:
        return not self.joints and self.direction is None and self.value_deg is None


def _skel_joint_key(skel_joint: str) -> tuple[str, str | None]:
    side = skel.side(skel_joint)
    base = skel_joint[:-2] if side is not None else skel_joint
    return SKEL_JOINT_TO_KEY[base], side


def _side_near(text: str, start: int, end: int) -> str | None:
    m = _SIDE_BEFORE_RE.search(text[max(0, start - 30):start])
    if m is None:
        m = _SIDE_AFTER_RE.match(text[end:end + 25])
    return None if m is None else m.group(1)[0]  # 'r' or 'l'


def parse_facts(sentence: str) -> Facts:
    """Joints (with sides), first direction cue and the measured angle (degrees) of a sentence:
    the first angle that is not written as a target or bound, else the first angle."""
    if not isinstance(sentence, str):
        raise ValueError(f"feedback must be a str, got {type(sentence).__name__}")
    text = sentence.lower()
    found: list[tuple[int, tuple[str, str | None]]] = []
    for m in _SKEL_RE.finditer(text):
        name = m.group(1)
        joint = skel.dof_joint(name) if name in skel.DOF_NAMES else name
        found.append((m.start(), _skel_joint_key(joint)))
    for m in _JOINT_RE.finditer(text):
        found.append((m.start(), (m.lastgroup, _side_near(text, m.start(), m.end()))))
    found.sort(key=lambda x: x[0])
    joints = tuple(dict.fromkeys(j for _, j in found))  # de-duplicated, first mention first
    d = _DIRECTION_RE.search(text)
    angles = list(_ANGLE_RE.finditer(text))
    measured = [a for a in angles if not _TARGET_BEFORE_RE.search(text[max(0, a.start() - 24):a.start()])
                and not _TARGET_AFTER_RE.search(text[a.end():a.end() + 24])]
    a = (measured or angles or [None])[0]
    return Facts(joints=joints, direction=None if d is None else d.lastgroup,
                 value_deg=None if a is None else float(a.group(1)))


def facts_from_truth(truth: Mapping) -> Facts:
    """Facts of a structured truth record {"dof", "kind", "value_deg"} (dof/value may be None)."""
    if not isinstance(truth, Mapping):
        raise ValueError(f"truth must be a dict with dof/kind/value_deg, got {truth!r}")
    kind = truth.get("kind")
    if kind not in KIND_TO_DIRECTION:
        raise ValueError(f"truth kind must be one of {sorted(KIND_TO_DIRECTION)}, got {kind!r}")
    dof = truth.get("dof")
    joints: tuple = ()
    if dof is not None:
        if dof not in skel.DOF_NAMES:
            raise ValueError(f"truth dof {dof!r} is not a SKEL DoF name")
        joints = (_skel_joint_key(skel.dof_joint(dof)),)
    value = truth.get("value_deg")
    if value is not None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"truth value_deg must be a number or None, got {value!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"truth value_deg must be finite, got {value}")
    return Facts(joints=joints, direction=KIND_TO_DIRECTION[kind], value_deg=value)


def judge_facts(truth: Facts, pred: Facts, tol_deg: float = 5.0) -> dict:
    """Per-criterion verdicts: True/False, or None where the truth says nothing about it."""
    joint = None
    if truth.joints:
        want_key, want_side = truth.joints[0]
        joint = any(k == want_key and (want_side is None or s == want_side)
                    for k, s in pred.joints)
    direction = None if truth.direction is None else pred.direction == truth.direction
    number = None
    if truth.value_deg is not None:
        number = (pred.value_deg is not None
                  and abs(abs(pred.value_deg) - abs(truth.value_deg)) <= tol_deg + 1e-9)
    return {"joint": joint, "direction": direction, "number": number}


def bio_fact_accuracy(pairs: Sequence[tuple[str, str]], truths: Sequence | None = None,
                      tol_deg: float = 5.0) -> dict:
    """Biomechanical fact accuracy over matched (gt_text, pred_text) pairs.

    truths: optional, one per pair: a structured record (dict) or None to parse the gt text.
    Returns {"joint_acc", "direction_acc", "number_acc", "all_acc"} (each over the pairs where
    it applies; 0.0 when none) plus counts {"n_pairs", "n_scored", "n_joint", "n_direction",
    "n_number"}.
    """
    pairs = list(pairs)
    if truths is not None and len(truths) != len(pairs):
        raise ValueError(f"truths has {len(truths)} entries but there are {len(pairs)} pairs")
    hits = {"joint": 0, "direction": 0, "number": 0, "all": 0}
    counts = {"joint": 0, "direction": 0, "number": 0, "all": 0}
    for k, pair in enumerate(pairs):
        try:
            gt_text, pred_text = pair
        except (TypeError, ValueError):
            raise ValueError(f"pairs[{k}] must be a (gt_text, pred_text) pair") from None
        record = None if truths is None else truths[k]
        truth = parse_facts(gt_text) if record is None else facts_from_truth(record)
        if truth.empty:
            continue
        verdict = judge_facts(truth, parse_facts(pred_text), tol_deg)
        applicable = [v for v in verdict.values() if v is not None]  # non-empty truth -> >= 1
        for name, v in verdict.items():
            if v is not None:
                counts[name] += 1
                hits[name] += int(v)
        counts["all"] += 1
        hits["all"] += int(all(applicable))
    out = {f"{n}_acc": (hits[n] / counts[n] if counts[n] else 0.0) for n in hits}
    out.update(n_pairs=len(pairs), n_scored=counts["all"], n_joint=counts["joint"],
               n_direction=counts["direction"], n_number=counts["number"])
    return out

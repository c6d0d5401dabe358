"""Biomechanical fact accuracy (our addition to the paper's metrics).

A coaching sentence is read as a small set of facts: which joint it names (SKEL names such as
`knee_angle_r`, or plain English: knee, hip, ankle, elbow, shoulder, lower back/trunk/torso/spine,
neck, wrist, ...) and on which side, the direction of the error (too little / too much range,
asymmetry, instability, too fast / too slow) and the first angle written in degrees.

For each matched (ground truth, prediction) pair the truth is either a structured record from the
synthetic world, e.g. `{"dof": "knee_angle_r", "kind": "below_interval", "value_deg": 72.0}`, or,
for real data, the facts parsed from the reference text. The prediction is then checked on three
criteria, each only where the truth says something about it:
- joint: the prediction names the truth's joint (on its side, or on no side: "your knees");
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
# Truth kinds that state a measured pose and no error ("your right knee reached 92° of
# flexion"): joint and number are scored, direction is not.
POSE_KINDS = ("in_range",)
TRUTH_KINDS = (*KIND_TO_DIRECTION, *POSE_KINDS)

# Direction cues, (direction, regex) in PRIORITY order. The EARLIEST cue in the sentence decides;
# where two cues start at the same word the one listed first wins, so specific phrases come
# before the generic words they begin with ("too much movement" before "too much", "drift
# inward" before "drift"). Bounds are cues too: "keep it to at most 15°" means too much, "aim for
# at least 90°" too little. A sentence about a duration ("2.2 s") and no angle is a tempo
# sentence and reads TEMPO_CUES instead, where "at least 1.5 s" means too fast and "within 1.6 s"
# too slow. The synthetic coach's every template parses to its own direction (tested).
DIRECTION_CUES: tuple[tuple[str, str], ...] = (
    # instability
    ("instability", r"too much movement"), ("instability", r"hold (?:it|them|your \w+(?: \w+)?) "
     r"(?:still|in place)"), ("instability", r"lock in"), ("instability", r"instab\w*"),
    ("instability", r"unstable"), ("instability", r"stabili[sz]\w*"), ("instability", r"steady"),
    ("instability", r"wobbl\w*"), ("instability", r"shak\w*"), ("instability", r"sway\w*"),
    # too much: collapse / flare / arch / round ... and upper bounds
    ("too_much", r"(?:drift\w*|mov\w*|cav\w*|collaps\w*) in(?:ward)?"), ("too_much", r"knees out"),
    ("too_much", r"flar\w*"), ("too_much", r"too wide"), ("too_much", r"tuck"),
    ("too_much", r"arch\w*"), ("too_much", r"round\w*"), ("too_much", r"chest up"),
    ("too_much", r"lift your chest"), ("too_much", r"lean\w*"), ("too_much", r"ease off"),
    ("too_much", r"overdo\w*"), ("too_much", r"too much"), ("too_much", r"excessive\w*"),
    ("too_much", r"too far"), ("too_much", r"over-?(?:flex|extend|rotat|arch|bend|reach|stretch)\w*"),
    ("too_much", r"hyper-?extend\w*"), ("too_much", r"beyond"), ("too_much", r"exceed\w*"),
    ("too_much", r"past (?:the |your |its )?(?:safe )?(?:limit|range)"), ("too_much", r"aim for less"),
    ("too_much", r"less (?:flexion|extension|bend\w*|lean\w*|arch\w*|rotation)"), ("too_much", r"reduce"),
    ("too_much", r"closer to your body"), ("too_much", r"at most"), ("too_much", r"the limit is"),
    ("too_much", r"keep (?:it|them) (?:to|under|below)"), ("too_much", r"no more than"),
    # asymmetry
    ("asymmetry", r"asymmetr\w*"), ("asymmetry", r"symmetr\w*"), ("asymmetry", r"uneven\w*"),
    ("asymmetry", r"imbalance\w*"), ("asymmetry", r"unbalanced"), ("asymmetry", r"lopsided"),
    ("asymmetry", r"even it out"), ("asymmetry", r"balance the load"), ("asymmetry", r"both sides"),
    ("asymmetry", r"one side"), ("asymmetry", r"than (?:the|your) other side"),
    ("asymmetry", r"differ\w*"), ("asymmetry", r"difference"), ("asymmetry", r"apart"),
    # instability again, after the phrases above that contain these words
    ("instability", r"shift\w*"), ("instability", r"drift\w*"), ("instability", r"moved"),
    # too little
    ("too_little", r"insufficient\w*"), ("too_little", r"not (?:\w+ )?enough"),
    ("too_little", r"only (?:reached|got|went|bent|came|hit|made it)"), ("too_little", r"stopped short"),
    ("too_little", r"go further"), ("too_little", r"push the range"), ("too_little", r"not quite there"),
    ("too_little", r"aim for (?:at least|more)"), ("too_little", r"at least"),
    ("too_little", r"too (?:little|shallow)"), ("too_little", r"more (?:depth|range|flexion|extension|bend\w*)"),
    ("too_little", r"deeper"), ("too_little", r"incomplete"), ("too_little", r"partial"),
    ("too_little", r"short of"), ("too_little", r"limited"), ("too_little", r"under-?(?:flex|extend|rotat)\w*"),
    ("too_little", r"(?:bend|flex|extend|open|lift|raise|straighten|lower) (?:\w+ ){0,2}(?:more|further)"),
    # tempo phrases (also outside tempo sentences: "Slow down!")
    ("too_fast", r"too fast"), ("too_fast", r"too quick\w*"), ("too_fast", r"rush\w*"),
    ("too_fast", r"slow (?:down|it)"), ("too_fast", r"slower"), ("too_fast", r"more slowly"),
    ("too_fast", r"control the (?:descent|tempo|movement)"), ("too_fast", r"easy on the speed"),
    ("too_slow", r"too slow\w*"), ("too_slow", r"speed up"), ("too_slow", r"pick up the pace"),
    ("too_slow", r"faster"), ("too_slow", r"more quickly"), ("too_slow", r"quicker"),
)
TEMPO_CUES: tuple[tuple[str, str], ...] = tuple(c for c in DIRECTION_CUES if c[0] in ("too_fast", "too_slow")) + (
    ("too_slow", r"keep moving"), ("too_slow", r"(?:don'?t )?pause\w*"), ("too_slow", r"dragg?\w*"),
    ("too_slow", r"longer than"), ("too_fast", r"at least"), ("too_fast", r"or longer"),
    ("too_fast", r"only"), ("too_slow", r"at most"), ("too_slow", r"or less"), ("too_slow", r"under"),
    ("too_slow", r"within"),
)

_WORD = r"(?<![a-z_]){}(?![a-z_])"
_JOINT_RE = re.compile("|".join(
    f"(?P<{key}>{_WORD.format('(?:' + '|'.join(syns) + ')')})"
    for key, syns in JOINT_SYNONYMS.items()))
# SKEL DoF and joint names written verbatim (longest first, so knee_angle_r beats a prefix).
_SKEL_NAMES = sorted(set(skel.DOF_NAMES) | set(skel.JOINT_NAMES), key=len, reverse=True)
_SKEL_RE = re.compile(_WORD.format("(" + "|".join(map(re.escape, _SKEL_NAMES)) + ")"))


def _cue_re(cues) -> tuple[re.Pattern, tuple[str, ...]]:
    """One regex of the cues in order (group i = cue i) and each group's direction."""
    return (re.compile("|".join(f"(?P<c{i}>{_WORD.format('(?:' + rx + ')')})" for i, (_, rx) in enumerate(cues))),
            tuple(d for d, _ in cues))


_DIRECTION_RE, _TEMPO_RE = _cue_re(DIRECTION_CUES), _cue_re(TEMPO_CUES)
_DURATION_RE = re.compile(r"\d+(?:\.\d+)?\s*(?:s|secs?|seconds?)\b")
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
_BOTH_SIDES_RE = re.compile(r"\b(?:left and right|right and left|both|two)\b(?:[ -]+[a-z']+){0,1}[ -]*$")
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
    if _BOTH_SIDES_RE.search(text[max(0, start - 30):start]):
        return None                  # "left and right shoulders", "both knees": no one side
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
    angles = list(_ANGLE_RE.finditer(text))
    cue_re, directions = _TEMPO_RE if _DURATION_RE.search(text) and not angles else _DIRECTION_RE
    d = cue_re.search(text)
    measured = [a for a in angles if not _TARGET_BEFORE_RE.search(text[max(0, a.start() - 24):a.start()])
                and not _TARGET_AFTER_RE.search(text[a.end():a.end() + 24])]
    a = (measured or angles or [None])[0]
    return Facts(joints=joints, direction=None if d is None else directions[int(d.lastgroup[1:])],
                 value_deg=None if a is None else float(a.group(1)))


def facts_from_truth(truth: Mapping) -> Facts:
    """Facts of a structured truth record {"dof", "kind", "value_deg"} (dof/value may be None;
    an optional "dofs" list names every DoF of a bilateral error, both sides)."""
    if not isinstance(truth, Mapping):
        raise ValueError(f"truth must be a dict with dof/kind/value_deg, got {truth!r}")
    kind = truth.get("kind")
    if kind not in TRUTH_KINDS:
        raise ValueError(f"truth kind must be one of {sorted(TRUTH_KINDS)}, got {kind!r}")
    dofs = [d for d in [truth.get("dof"), *(truth.get("dofs") or ())] if d is not None]
    for dof in dofs:
        if dof not in skel.DOF_NAMES:
            raise ValueError(f"truth dof {dof!r} is not a SKEL DoF name")
    joints = tuple(dict.fromkeys(_skel_joint_key(skel.dof_joint(d)) for d in dofs))
    value = truth.get("value_deg")
    if value is not None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"truth value_deg must be a number or None, got {value!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"truth value_deg must be finite, got {value}")
    return Facts(joints=joints, direction=KIND_TO_DIRECTION.get(kind), value_deg=value)


def judge_facts(truth: Facts, pred: Facts, tol_deg: float = 5.0) -> dict:
    """Per-criterion verdicts: True/False, or None where the truth says nothing about it."""
    joint = None
    if truth.joints:
        # the prediction names one of the truth's joints, on its side or on no side ("your
        # knees", "the knee"); naming only the other side is wrong
        joint = any(k == tk and (ts is None or s is None or s == ts)
                    for tk, ts in truth.joints for k, s in pred.joints)
    direction = None if truth.direction is None else pred.direction == truth.direction
    number = None
    if truth.value_deg is not None:
        number = (pred.value_deg is not None
                  and abs(abs(pred.value_deg) - abs(truth.value_deg)) <= tol_deg + 1e-9)
    return {"joint": joint, "direction": direction, "number": number}


def reference_facts(gt_text: str, record: Mapping | None = None) -> Facts:
    """The facts a reference feedback states: its structured truth record when there is one
    (synthetic ground truth), else what its text says. Empty for a plain "That's 5!" or "Great
    job!"; a pose without an error ("your knee reached 92°") has joint and number, no direction."""
    return parse_facts(gt_text) if record is None else facts_from_truth(record)


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
        truth = reference_facts(gt_text, record)
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

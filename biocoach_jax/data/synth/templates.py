"""Paraphrase templates for the synthetic coach (wording only; facts come from feedback.py).

Every family has >= 6 paraphrases so the wording varies across repetitions and sessions.
Placeholders: {joint} "right knee" / "knees"; {motion} anatomical word ("flexion");
{v} measured magnitude in whole degrees; {target} "at least 90°" / "at most 15°";
{kf} "at the bottom"; {b} bound in whole degrees; {diff} left-right difference; {dur} / {lim}
seconds with one decimal; {n} repetition count; {joint_cap} = {joint} capitalised.
"""
from __future__ import annotations

FAMILIES: dict[str, tuple[str, ...]] = {
    "insufficient_range": (
        "Your {joint} only reached {v}° of {motion} {kf}; aim for {target}.",
        "Go further: {v}° of {joint} {motion} {kf}, you need {target}.",
        "That rep stopped short, {joint} {motion} was {v}° {kf}. Try for {target}.",
        "A bit more range please: your {joint} got to {v}° of {motion}, the goal is {target}.",
        "Only {v}° of {motion} at your {joint} {kf}. Work toward {target}.",
        "Not quite there: {joint} {motion} reached {v}°, it should be {target}.",
        "Push the range: your {joint} hit {v}° of {motion} {kf} - {target} is the target.",
    ),
    "excess_range": (
        "Your {joint} went to {v}° of {motion} {kf}; keep it to {target}.",
        "Too far: {v}° of {joint} {motion} {kf}, keep it to {target}.",
        "Control the range: your {joint} reached {v}° of {motion}, keep it to {target}.",
        "Ease off a little, {joint} {motion} hit {v}°; the limit is {target}.",
        "That was {v}° of {motion} at your {joint} {kf}. Keep it to {target}.",
        "Don't overdo it: {joint} {motion} {v}°, aim for {target}.",
    ),
    "trunk_flexion": (
        "Your lower back rounded to {v}° of flexion {kf}; keep it to {target}. Chest up!",
        "Chest up! Your trunk flexed {v}° {kf}, keep it to {target}.",
        "Keep your spine neutral: {v}° of lower back flexion {kf}, the limit is {target}.",
        "You're rounding your back, {v}° of flexion. Brace and keep it to {target}.",
        "Too much forward lean in your lower back: {v}°. Keep it to {target}.",
        "Lift your chest: lower back flexion reached {v}°, keep it to {target}.",
    ),
    "back_arch": (
        "Your lower back arched to {v}° of extension {kf}; keep it to {target}.",
        "Don't arch: {v}° of lower back extension, keep it to {target}. Brace your core.",
        "Tuck your ribs down, your back extended {v}° {kf}; the limit is {target}.",
        "Too much arch in your lower back, {v}°. Keep it to {target}.",
        "Squeeze your glutes instead of arching: {v}° of extension, aim for {target}.",
        "Keep your core tight, lower back extension hit {v}° {kf}. Keep it to {target}.",
    ),
    "knee_valgus": (
        "Your {joint} caved in: {v}° of hip adduction {kf}; keep it to {target}. Push your knees out!",
        "Knees out! Hip adduction reached {v}° {kf}, keep it to {target}.",
        "Watch your {joint}, they drift inward to {v}° of adduction. Keep it to {target}.",
        "Drive your knees over your toes - {v}° of hip adduction is too much, keep it to {target}.",
        "Your {joint} collapsed inward ({v}° of adduction {kf}); aim for {target}.",
        "Spread the floor with your feet: hip adduction was {v}°, keep it to {target}.",
    ),
    "elbow_flare": (
        "Your elbows flared to {v}° of shoulder abduction {kf}; keep them to {target}.",
        "Tuck your elbows in: {v}° of shoulder abduction, keep it to {target}.",
        "Elbows are flaring out, {v}° {kf}. Bring them to {target}.",
        "Keep your elbows closer to your body - {v}° of abduction, the limit is {target}.",
        "Too wide at the shoulders: {v}° of abduction {kf}. Aim for {target}.",
        "Pull your elbows back toward your ribs; shoulder abduction reached {v}°, keep it to {target}.",
    ),
    "asymmetry": (
        "Your left and right {joint} differ by {diff}° {kf}; keep them within {b}°.",
        "Even it out: there's a {diff}° difference between your left and right {joint}.",
        "You're favouring one side, {diff}° of difference at the {joint}. Stay within {b}°.",
        "Keep both sides level - your {joint} are {diff}° apart {kf}.",
        "Balance the load: left and right {joint} differ by {diff}°, the limit is {b}°.",
        "Watch the symmetry, {diff}° between your two {joint} {kf}. Keep it under {b}°.",
    ),
    "instability": (
        "Keep your {joint} steady: it moved {v}° during that rep, stay within {b}°.",
        "Your {joint} shifted {v}° of {motion}; hold it still, within {b}°.",
        "Stabilise your {joint} - it drifted {v}° that rep. The limit is {b}°.",
        "Too much movement at your {joint}: {v}° of {motion}. Keep it under {b}°.",
        "Lock in your {joint}, it moved {v}°. Try to stay within {b}°.",
        "Hold your {joint} in place; {v}° of {motion} is more than the {b}° allowed.",
    ),
    "tempo_fast": (
        "Slow down! That rep took {dur} s, take at least {lim} s.",
        "Too fast: {dur} seconds for that rep. Aim for {lim} s or more.",
        "Control the movement, that was only {dur} s; give it at least {lim} s.",
        "Don't rush, {dur} s per rep is too quick. Take {lim} s at least.",
        "Easy on the speed: {dur} s. Slow it to {lim} s or longer.",
        "That rep was rushed at {dur} s; keep each one above {lim} s.",
    ),
    "tempo_slow": (
        "Keep moving: that rep took {dur} s, aim for {lim} s or less.",
        "Pick up the pace a little, {dur} seconds is too slow; stay under {lim} s.",
        "Don't pause too long, that was {dur} s. Keep reps under {lim} s.",
        "A bit quicker: {dur} s for that rep, the goal is at most {lim} s.",
        "Keep a steady rhythm - {dur} s is longer than {lim} s.",
        "That rep dragged to {dur} s. Try to finish within {lim} s.",
    ),
    # counts and encouragement carry the repetition's measured pose (QEVD-bio rewrote every
    # line, not only the corrections, into anatomical language with the numbers behind it);
    # no template may read as an error (tested: they parse to no direction)
    "count": (
        "That's {n}! Your {joint} reached {v}° of {motion} {kf}.",
        "{n} done: {v}° of {joint} {motion} {kf}.",
        "Rep {n}, your {joint} got to {v}° of {motion}.",
        "And {n}! {joint_cap} {motion} {v}° {kf}.",
        "That makes {n}, with {v}° of {motion} at your {joint}.",
        "{n} in the bag, {joint} {motion} was {v}° {kf}.",
    ),
    "encourage": (
        "Great job: your {joint} reached {v}° of {motion} {kf}. Keep it up!",
        "Looking strong, {v}° of {joint} {motion} {kf}.",
        "Nice and controlled, your {joint} is getting to {v}° of {motion}.",
        "Keep going, {joint} {motion} of {v}° {kf} is on target.",
        "Good form: {v}° of {motion} at your {joint}. Stay with it!",
        "Excellent work, {v}° of {joint} {motion} {kf}.",
    ),
    # encouragement before the first clean repetition has nothing to quote yet
    "encourage_plain": (
        "Great job, keep it up!", "Looking strong!", "Nice and controlled.",
        "Keep going, you're doing great!", "Good form, stay with it!", "Stay focused, almost there!",
        "Nice rhythm, keep breathing.", "Excellent work!",
    ),
    "morph_reason": (
        " {reason_cap}, that is the right depth for you.",
        " That target is already adjusted {reason}.",
        " {reason_cap}, {b}° is deep enough.",
        " {b}° is plenty {reason}.",
        " We set {b}° {reason}.",
        " {reason_cap} you don't need to go deeper than that.",
    ),
}
# The colloquial wording of every line (QEVD-fit-coach, before the bio rewrite): the same
# moment, no joint angles. Stream-VLM as released was trained on such text; the synthetic world
# writes it beside the anatomical lines (feedbacks_long_range_colloquial.json, same times).
COLLOQUIAL: dict[str, tuple[str, ...]] = {
    "insufficient_range": ("Go a little deeper!", "Try to get more range!", "Bend a bit more!",
                           "A bit lower next time!", "Push for the full range!",
                           "Almost there, go further!"),
    "excess_range": ("Don't go too far!", "Control that range!", "Not so far, ease off!",
                     "Keep it a bit smaller!", "Easy, don't overdo it!", "Rein it in a little!"),
    "trunk_flexion": ("Chest up!", "Keep your back straight!", "Don't round your back!",
                      "Lift your chest!", "Straight back please!", "Keep that spine neutral!"),
    "back_arch": ("Don't arch your back!", "Tuck your ribs in!", "Brace your core!",
                  "Keep your back flat!", "Squeeze your glutes!", "No arching!"),
    "knee_valgus": ("Knees out!", "Push your knees out!", "Don't let your knees cave!",
                    "Knees over toes!", "Keep your knees wide!", "Watch your knees!"),
    "elbow_flare": ("Tuck your elbows!", "Elbows in!", "Keep your elbows close!",
                    "Don't flare your elbows!", "Elbows closer to your body!", "Watch those elbows!"),
    "asymmetry": ("Keep it even!", "Both sides the same!", "Balance it out!",
                  "Don't favour one side!", "Stay level!", "Even it out!"),
    "instability": ("Stay steady!", "Hold still!", "Keep it stable!", "Control it!",
                    "Less wobble!", "Lock it in!"),
    "tempo_fast": ("Slow down!", "Not so fast!", "Take your time!", "Control the movement!",
                   "Easy, slower!", "Don't rush it!"),
    "tempo_slow": ("Keep moving!", "A bit faster!", "Pick up the pace!", "Don't stop!",
                   "Keep the rhythm!", "Quicker now!"),
    "count": ("That's {n}!", "{n}!", "{n} done!", "That makes {n}.", "Rep {n}, nice.", "Good, {n}.",
              "And {n}!", "{n} in the bag!"),
    "encourage": FAMILIES["encourage_plain"],
}
FIRST, NEXT, END = "First up are {name}!", "Moving on to {name}!", "That's the end of the workout!"
# names as the transitions say them (QEVD style: plural, lower case)
SPOKEN_NAMES = {
    "bicep_curl": "bicep curls", "glute_bridge": "glute bridges", "high_knees": "high knees",
    "jumping_jack": "jumping jacks", "lateral_raise": "lateral raises", "lunge": "lunges",
    "push_up": "push-ups", "shoulder_press": "shoulder presses", "sit_to_stand": "sit to stands",
    "squat": "squats",
}
KEYFRAME_PHRASES = {"bottom": "at the bottom", "top": "at the top", "open": "in the open position",
                    "standing": "when standing"}
PLURAL_JOINTS = {"knee": "knees", "hip": "hips", "ankle": "ankles", "elbow": "elbows",
                 "shoulder": "shoulders", "shoulder blade": "shoulder blades", "wrist": "wrists",
                 "forearm": "forearms", "subtalar joint": "subtalar joints", "toes": "toes"}

"""The LM's pretraining text: number-shifted quoting documents (demo_corpus) and the loss mask
that leaves context segments out (lm_task.pack_rows)."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from biocoach_jax.demo_corpus import quoting_documents
from biocoach_jax.tokenizer import train_bpe_tokenizer
from biocoach_jax.training.lm_task import _as_batch, pack_rows

CORPUS = [
    "Squat, rep 2. At bottom: right knee flexion 99°, left knee flexion 98°. No violations.",
    "Only 72° of flexion at your right knee. Aim for 90°.", "Rep 3, nice.", "Keep your chest up!",
    "Height 1.78 m, Mass 73.2 kg, Chest 0.98 m, Waist 0.84 m, Hip 0.99 m.",
] * 8
NUM = re.compile(r"\d+")


def _pair(rng, name="") -> tuple[str, str]:
    knee, rep, aim = (int(v) for v in rng.integers(0, 130, 3))
    return (f" Squat{name}, rep {rep}. At bottom: right knee flexion {knee}°. No violations.",
            f"<answer> Only {knee}° at your right knee, aim for {aim}°.<answer/>")


def test_quoting_documents_shift_every_number_of_a_pair_together(rng):
    pairs = [_pair(rng, " " + "abcdefgh"[i]) for i in range(int(rng.integers(3, 9)))]
    stream = "prompt<vision><vision>" + "<vision>".join(f"<motion>{c}<motion/>{a}" for c, a in pairs)
    streams = [stream, "no context here<answer> Rep 1.<answer/>"]
    copies = int(rng.integers(1, 6))
    docs = quoting_documents(streams, copies, seed=int(rng.integers(1 << 30)), max_offset=25)
    assert len(docs) == copies * len(pairs)
    originals = {NUM.sub("#", f"<motion>{c}<motion/>{a}"): f"<motion>{c}<motion/>{a}" for c, a in pairs}
    for d in docs:
        original = originals[NUM.sub("#", d)]         # same words (named pairs), numbers changed
        diffs = {int(x) - int(y) for x, y in zip(NUM.findall(d), NUM.findall(original))}
        assert len(diffs) == 1                         # one offset for the whole pair
        assert min(int(x) for x in NUM.findall(d)) >= 0
        assert diffs.pop() <= 25
    counts = Counter(NUM.sub("#", d) for d in docs)
    assert set(counts) == set(originals) and set(counts.values()) == {copies}
    assert quoting_documents(streams, 0) == []


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_bpe_tokenizer(CORPUS, 340, tmp_path_factory.mktemp("tok"), seed=0)


@pytest.mark.parametrize("length", [7, 16, 33])
def test_context_segments_leave_the_loss_and_nothing_else_does(tok, rng, length):
    lines = []
    for _ in range(int(rng.integers(4, 9))):
        c, a = _pair(rng)
        lines.append(f"prompt<vision><motion>{c}<motion/>{a}<vision><morph> Height 1.80 m.<morph/>"
                     f"<answer> Rep 3, nice.<answer/>")
    rows = pack_rows(lines, tok, length, context_loss=False)
    full = pack_rows(lines, tok, length)
    np.testing.assert_array_equal(rows[:, 0], full[:, 0])
    assert full[:, 1].all()
    # oracle: walk the token stream, inside a context segment from its opening marker to its
    # closing one (both included)
    inside, expect = False, []
    opening = {tok.motion_id: tok.motion_end_id, tok.morph_id: tok.morph_end_id}
    closing = None
    for t in rows[:, 0].reshape(-1):
        if not inside and t in opening:
            inside, closing = True, opening[t]
            expect.append(0)
        elif inside:
            expect.append(0)
            inside = t != closing
        else:
            expect.append(1)
    np.testing.assert_array_equal(rows[:, 1].reshape(-1), expect)
    batch = _as_batch(rows)
    np.testing.assert_array_equal(batch["targets"], rows[:, 0, 1:])
    np.testing.assert_array_equal(batch["weights"], rows[:, 1, 1:].astype(np.float32))
    answer_targets = batch["targets"] == tok.answer_id
    assert batch["weights"][answer_targets].all() and not batch["weights"].all()

"""The demo's text corpora, built from the synthetic train split (no model involved).

* `tokenizer_lines`: every kind of text the coach will read or write - the feedback lines
  (transitions included, `split_texts`), the system prompt of each exercise, C_morph of each
  subject and C_motion at every feedback's step (the DoFs of the exercise's key joints and all
  DoFs, so the no-DoF-selection ablation's longer contexts are covered too).
* `lm_documents`: the documents the tiny LLaMA is pretrained on. Besides the plain feedback
  lines, each segment gives its coaching stream as text - the system prompt, then every
  feedback as `<answer> ... <answer/>` between the `<vision>` steps (`data.sequence`'s stream,
  so the very same texts and timing), once with the C_motion segments that precede the
  feedbacks (`<motion> ... <motion/>`) and once without. The LM never sees features: it learns
  the stream's grammar and base rates, the later stages learn when to speak. This is the tiny
  stand-in for a general LLM's ability to read evidence in its context and quote it; both the
  Stream-VLM and the BioCoach stages then start from the same frozen LM.
* `quoting_documents`: each (C_motion, feedback) pair of the streams again, several times, with
  every number of the pair moved by one random offset. A tiny LM otherwise learns the common
  values of each sentence instead of reading them from the context: copying only pays when
  the numbers cannot be guessed.
"""
from __future__ import annotations

import math
import random
import re

from biocoach_jax import context
from biocoach_jax.data.sequence import build_episode_tokens, segment_contexts, system_prompt


def _morph_text(measurements) -> str:
    known = {k for k, _, _ in context.MORPH_FIELDS}
    return context.render_morph({k: v for k, v in (measurements or {}).items() if k in known})


def split_texts(data_dir, split: str = "train") -> list[str]:
    """Every feedback line of a split's workouts, transitions between exercises included
    (those fall outside the single-exercise segments), in each wording the split has (the
    anatomical index, then the colloquial one where the synthetic world wrote it)."""
    from biocoach_jax.data.qevd import COLLOQUIAL_RECORDS_FILE, RECORDS_FILE
    from biocoach_jax.data.session import load_split, split_dir

    root = split_dir(data_dir, split)
    files = [f for f in (RECORDS_FILE, COLLOQUIAL_RECORDS_FILE) if (root / f).is_file()]
    return [text for f in files for s in load_split(data_dir, split, load_poses=False, records_file=f)
            for _, text, _ in s.feedbacks]


def tokenizer_lines(segments, cfg, feedback_texts=()) -> list[str]:
    """Distinct lines of every text kind of the split (order fixed: deterministic training).
    C_motion: at the step of every feedback (where training puts it), over the DoFs of the
    exercise's key joints and over all DoFs (the no-DoF-selection ablation's longer texts)."""
    step_hz = float(cfg.data.step_hz)
    variants = []
    for which in ("labels", "all"):
        c = cfg.copy_and_resolve_references()
        c.data.use_motion_context, c.data.context_dofs = True, which
        variants.append(c)
    lines: dict[str, None] = dict.fromkeys(feedback_texts)
    for seg in segments:
        for _, text in seg.feedbacks:
            lines[text] = None
        lines[system_prompt(seg.exercise)] = None
        lines[_morph_text(seg.measurements)] = None
        times = sorted({math.floor(t * step_hz + 1e-9) / step_hz for t, _ in seg.feedbacks})
        for c in variants:
            lines.update(dict.fromkeys(t for t in segment_contexts(seg, times, c) if t))
    return [ln for ln in lines if ln]


def _stream_text(seg, tok, cfg) -> str:
    """The segment's training token stream as text (BOS left out: the LM task adds it)."""
    duration = float(seg.end_s - seg.start_s)
    ep = build_episode_tokens(seg, int(duration * float(cfg.data.step_hz)) + 1, tok, cfg)
    return tok.decode([int(i) for i in ep.tokens[1:]]).strip()


_PAIR_RE = re.compile(r"<motion>(.*?)<motion/>(<answer>.*?<answer/>)")
_NUMBER_RE = re.compile(r"\d+")


def quoting_documents(streams, copies: int, seed: int = 0, max_offset: int = 40) -> list[str]:
    """`copies` documents per (C_motion, answer) pair found in `streams`, each with all its
    integers moved by one offset drawn from [-smallest, max_offset] (never negative), so the
    answer's numbers keep their relation to the context's. Order shuffled by `seed`."""
    rng = random.Random(seed)
    docs = []
    for stream in streams:
        for m in _PAIR_RE.finditer(stream):
            pair = f"<motion>{m.group(1)}<motion/>{m.group(2)}"
            values = [int(v) for v in _NUMBER_RE.findall(pair)]
            for _ in range(copies):
                shift = rng.randint(-min(values, default=0), max_offset)
                docs.append(_NUMBER_RE.sub(lambda v: str(int(v.group()) + shift), pair))
    rng.shuffle(docs)
    return docs


def lm_documents(segments, tok, cfg, feedback_texts=(), quote_copies: int = 0) -> list[str]:
    """Pretraining documents (one per line): feedback lines (`feedback_texts`, e.g.
    `split_texts`) + each segment's stream with and without C_motion + `quote_copies`
    number-shifted copies of each (C_motion, feedback) pair (`quoting_documents`)."""
    with_ctx, without = cfg.copy_and_resolve_references(), cfg.copy_and_resolve_references()
    with_ctx.data.use_motion_context, with_ctx.data.context_dofs = True, "labels"
    without.data.use_motion_context = False
    docs, streams = list(feedback_texts), []
    for seg in segments:
        if seg.feedbacks:
            streams.append(_stream_text(seg, tok, with_ctx))
            docs += [streams[-1], _stream_text(seg, tok, without)]
    docs = [d for d in docs + quoting_documents(streams, quote_copies, seed=int(cfg.seed)) if d]
    random.Random(int(cfg.seed)).shuffle(docs)   # held-out eval rows (the last) sample every kind
    return docs

"""Stream-VLM's streaming rules (REFERENCE §2), host side: token grammar, speaking time, timing.

- Grammar: outside a feedback, any top token but `<vision>`/`<answer>` becomes `<vision>`;
  inside, a top `<vision>`/`<answer>`, or a feedback already `max_len` tokens long, becomes
  `<answer/>`.
- Speaking time: 12 tokens per second; after a feedback of n tokens the coach cannot watch for
  floor(n / 12 * 4) visual steps.
- Timing: Stream-VLM reads feedback times off the token sequence afterwards (REFERENCE §2);
  a live coach knows the media time of the step it decides at and stamps that
  (`llm_coach` explains why the formula is not used).
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple

INFERENCE_SPEED = 12.0    # tokens per second (Stream-VLM's constant)
STEPS_PER_S = 4.0         # one <vision> per 0.25 s
MAX_FEEDBACK_TOKENS = 128


class Feedback(NamedTuple):
    time_s: float
    text: str


class Ids(NamedTuple):
    vision: int
    answer: int
    answer_end: int


def next_token(top: int, inside: bool, length: int, ids: Ids,
               max_len: int = MAX_FEEDBACK_TOKENS) -> int:
    """The token actually emitted for the model's top choice (the grammar above)."""
    if not inside:
        return top if top in (ids.vision, ids.answer) else ids.vision
    if top in (ids.vision, ids.answer) or length >= max_len:
        return ids.answer_end
    return top


def skipped_steps(n_tokens: int) -> int:
    """Visual steps skipped while a feedback of `n_tokens` is being spoken."""
    return int(math.floor(n_tokens / INFERENCE_SPEED * STEPS_PER_S))


_WORDISH = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def estimate_tokens(text: str) -> int:
    """Spoken length without a tokenizer: words, numbers and punctuation marks, long words
    counted as two (close to LLaMA's BPE on short English coaching sentences)."""
    return sum(2 if len(w) > 7 else 1 for w in _WORDISH.findall(text))


class Speaker:
    """Speaking time for coaches that decide outside the LLM (rule-based): one feedback at a
    time, each busy for n / 12 s. A message that cannot be said yet waits (the newest waiting
    message wins, corrections before rep counts) and is dropped after `max_delay_s`."""

    def __init__(self, count_tokens=estimate_tokens, max_delay_s: float = 2.0):
        self.count_tokens = count_tokens
        self.max_delay_s = max_delay_s
        self.busy_until = -math.inf
        self._pending: tuple[float, int, str] | None = None   # (time queued, priority, text)

    def offer(self, t: float, text: str, priority: int) -> None:
        if self._pending is None or priority >= self._pending[1]:
            self._pending = (t, priority, text)

    def speak(self, t: float) -> Feedback | None:
        """The feedback said at time t, if any."""
        if self._pending is None or t < self.busy_until - 1e-9:
            return None
        queued, _, text = self._pending
        self._pending = None
        if t - queued > self.max_delay_s:
            return None
        self.busy_until = t + self.count_tokens(text) / INFERENCE_SPEED
        return Feedback(round(t, 6), text)

"""The LLM coach: frames -> causal CNN -> features every 4 frames -> KV-cached BioCoach model
under Stream-VLM's streaming rules, with C_motion from the causal pose window.

The token stream is the one `data.sequence` trains on, built on the fly:

    <s> SYSTEM PROMPT <vision>(step 0, all-zero features) <vision>(step 1) ...
    ... <vision>(step k) [<motion> C_motion(k / 4 s) <motion/>] <answer> feedback <answer/> ...

After each `<vision>` the model's top token decides (`state_machine.next_token`): `<vision>`
waits for the next step; `<answer>` opens a feedback, and so does `<motion>` (training puts a
changed C_motion between `<vision>` and `<answer>`), generated greedily token by token until
`<answer/>` (or 128 tokens). C_motion (computed on the DoFs chosen once by the DoF selector
from the first tau of features) is inserted before the feedback when it differs from the last
one sent, exactly where training puts it; with `motion_policy="on_change"` (a model trained
with `data.motion_placement="on_change"`) it is inserted as soon as it changes and the model
decides after it. While a feedback of n tokens is spoken the next floor(n / 3) steps are not
fed. A feedback is stamped with the media time of the step after which it was decided
(k / 4 s), where a live coach starts speaking it. (Stream-VLM's offline formula of REFERENCE
§2, sum of (visions - 1) / 4 + previous length / 12, reads the same time for the first feedback
but, on a stream with speaking skips, one step minus frac(n / 3) steps earlier for each later
one: up to 1.75 s early after a dozen feedbacks in the tests' streams, past the T-F-Score
tolerance.)
The k-th `<vision>` fed attends to row k of the feature buffer, as in training.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax import context, skel
from biocoach_jax.coaching.state_machine import Feedback, Ids, next_token, skipped_steps
from biocoach_jax.coaching.stream import CausalPoseBuffer, Event
from biocoach_jax.models.llama import grow_cache

TAU_STEPS = 12


_CHUNK = 128          # most tokens fed to the model in one call (longer runs are split)
_FIRST_CACHE = 1024   # KV-cache slots a stream starts with (a 30 s segment needs ~1000)


@functools.lru_cache(maxsize=16)
def _feed_fn(graphdef):
    """The jitted feed of one model structure. The graphdef is closed over (hashed once per
    stream here, not on every call as a static argument would be)."""

    def feed(state, cache, tokens, n, is_vision, feature, morph, morph_mask):
        # tokens (T,): the first n are real, the rest padding (a bucketed length: few compiles).
        # A <vision> is always fed alone (n = 1) with its step's feature (N, C): the block reads
        # only its own step, and the fusion is per feature token, so one step is all it needs.
        model = nnx.merge(graphdef, state)
        t = tokens.shape[0]
        real = jnp.arange(t) < n
        batch = {"tokens": tokens[None], "attention_mask": real[None],
                 "vision_mask": (real & is_vision)[None], "vision_step": jnp.zeros((1, t), jnp.int32),
                 "features": feature[None, None], "morph_tokens": morph, "morph_mask": morph_mask}
        out = model(batch, cache=cache)
        # the padding slots were written as invalid keys; the next call overwrites them
        return out.logits[0, n - 1], out.cache._replace(index=cache.index + n)

    return jax.jit(feed, donate_argnums=(1,))


def _bucket(n: int) -> int:
    """Padded length of a run of n tokens: two shapes only (each costs a compile; a run's
    padding costs little: it is fed in one call)."""
    return 1 if n == 1 else _CHUNK


class ModelStream:
    """KV-cached calls of a BioCoachModel: one token at a time for `<vision>` steps and generated
    tokens, whole runs (prompt, C_motion) in one call each; one compile per bucketed run length."""

    def __init__(self, model, *, max_len: int, max_steps: int, spatial: int,
                 morph_ids=None):
        from biocoach_jax.models.biocoach import init_stream_cache

        graphdef, self.state = nnx.split(model)
        self._feed = _feed_fn(graphdef)
        # A step reads every slot of the cache, so it starts small and doubles when full (one
        # compile per size) up to the hard limit max_len.
        self.cache = init_stream_cache(model, 1, min(_FIRST_CACHE, max_len))
        self.max_len, self.used = max_len, 0
        # host copy of the steps seen so far: the DoF selector reads them (select_dofs)
        self.features = np.zeros((1, max_steps, spatial, model.cfg.d_vision), np.float32)
        self._zero = jnp.zeros((spatial, model.cfg.d_vision), jnp.float32)
        ids = np.asarray(morph_ids if morph_ids is not None and len(morph_ids) else [0], np.int32)
        self.morph = jnp.asarray(ids[None])
        self.morph_mask = jnp.asarray([[morph_ids is not None and len(morph_ids) > 0] * len(ids)])
        self.rows = 0                      # <vision> tokens fed so far

    def feed(self, tokens, feature: np.ndarray | None = None) -> np.ndarray:
        """Feed one token, or a run of tokens, in order (a `<vision>` alone, with its step's
        `feature` (N, C)); the next-token logits after the last one."""
        tokens = [int(tokens)] if np.ndim(tokens) == 0 else [int(t) for t in tokens]
        if not tokens:
            raise ValueError("ModelStream.feed: no tokens")
        if feature is not None and len(tokens) != 1:
            raise ValueError("ModelStream.feed: a <vision> token with its feature is fed alone")
        if self.used + len(tokens) > self.max_len:
            raise RuntimeError(f"KV cache full ({self.max_len} tokens): raise the coach's max_len")
        feat = self._zero
        if feature is not None:
            if self.rows >= self.features.shape[1]:
                raise RuntimeError(f"feature buffer full ({self.features.shape[1]} steps)")
            self.features[0, self.rows] = feature
            self.rows += 1
            feat = jnp.asarray(feature, jnp.float32)
        for a in range(0, len(tokens), _CHUNK):
            run = tokens[a:a + _CHUNK]
            # padding must fit the hard limit too (then the run takes its own, exact shape)
            size = min(_bucket(len(run)), self.max_len - self.used)
            slots = self.cache.valid.shape[1]
            if self.used + size > slots:
                grown = slots
                while self.used + size > grown:
                    grown *= 2
                self.cache = grow_cache(self.cache, min(grown, self.max_len))
            padded = np.zeros(size, np.int32)
            padded[:len(run)] = run
            logits, self.cache = self._feed(self.state, self.cache, jnp.asarray(padded),
                                            jnp.int32(len(run)), jnp.asarray(feature is not None),
                                            feat, self.morph, self.morph_mask)
            self.used += len(run)
        return np.asarray(logits)


class LLMCoach:
    """Streaming BioCoach. `features_fn(frame_image) -> feature (N, C) | None` turns frames
    into features (e.g. `cnn_features`); or push ready features with `push_feature(k, f)`."""
    step_s = 0.25

    def __init__(self, model, tokenizer, exercise_name: str, *, exercise=None, features_fn=None,
                 measurements=None, present=None, window_s: float = 3.0, fps: float = 16.0,
                 max_len: int = 4096, max_steps: int = 1024, spatial: int = 35,
                 motion_policy: str = "before_answer", use_motion_context: bool = True):
        if motion_policy not in ("before_answer", "on_change"):
            raise ValueError(f"motion_policy must be 'before_answer' or 'on_change', got {motion_policy!r}")
        from biocoach_jax.data.sequence import system_prompt

        self.model, self.tok, self.exercise = model, tokenizer, exercise
        self.ids = Ids(tokenizer.vision_id, tokenizer.answer_id, tokenizer.answer_end_id)
        self.features_fn, self.motion_policy = features_fn, motion_policy
        self.use_motion = use_motion_context and exercise is not None
        self.window_s, self.fps = window_s, fps
        self.present = np.ones(skel.NUM_DOFS, bool) if present is None else np.asarray(present, bool)
        morph = None
        if measurements and getattr(model.cfg, "use_morphology", False):
            known = {k for k, _, _ in context.MORPH_FIELDS}
            morph = tokenizer.encode(context.render_morph(
                {k: v for k, v in measurements.items() if k in known}), bos=False)
        self.stream = ModelStream(model, max_len=max_len, max_steps=max_steps, spatial=spatial,
                                  morph_ids=morph)
        self.prompt = [tokenizer.bos_id] + tokenizer.encode(system_prompt(exercise_name), bos=False)
        self.poses = CausalPoseBuffer(fps)
        self.step_features: dict[int, np.ndarray] = {}   # step k -> (N, C)
        self.zero = np.zeros((spatial, model.cfg.d_vision), np.float32)
        self.dof_mask: np.ndarray | None = None
        self.last_context: str | None = None
        self.skip_until = 0
        self.logits: np.ndarray | None = None
        self._frames = 0

    # -- inputs ---------------------------------------------------------------------------------
    def push(self, event: Event) -> None:
        if event.kind == "pose":
            self.poses.push(event.time_s, event.value)
        elif event.kind == "feature":      # cached CNN output of step `index`
            self.push_feature(event.index, event.value)
        elif self.features_fn is not None:
            f = self.features_fn(event.value)
            self._frames += 1
            if f is not None:   # CNN step j completes on frame 4j + 3 = feature step j + 1
                self.push_feature(self._frames // 4, f)

    def push_feature(self, step: int, feature) -> None:
        self.step_features[int(step)] = np.asarray(feature, np.float32).reshape(self.zero.shape)

    # -- the stream -----------------------------------------------------------------------------
    def step(self, t: float) -> list[Feedback]:
        k = int(round(t / self.step_s))
        self.poses.fill_until(t)
        if k == 0:
            self.stream.feed(self.prompt)
        elif k < self.skip_until:
            return []                      # speaking: this step is not watched
        feature = self.zero if k == 0 else self.step_features.pop(k, self.zero)
        for old in [s for s in self.step_features if s < k]:   # skipped while speaking
            del self.step_features[old]
        self.logits = self.stream.feed(self.ids.vision, feature)
        self._select_dofs(k)
        if self.motion_policy == "on_change":
            self._send_context(t)
        top = int(np.argmax(self.logits))
        # before_answer training puts a changed C_motion segment between <vision> and <answer>,
        # so a model that wants to speak predicts <motion> there: that decides to answer as
        # well (on_change contexts are the coach's input, never the model's decision)
        speak = (self.use_motion and self.motion_policy == "before_answer"
                 and top == self.tok.motion_id)
        if not speak and next_token(top, False, 0, self.ids) != self.ids.answer:
            return []
        if self.motion_policy == "before_answer":
            self._send_context(t)
        text, n = self._generate()
        self.skip_until = k + 1 + skipped_steps(n)
        return [Feedback(round(k * self.step_s, 6), text)] if text else []   # nothing said

    def _select_dofs(self, k: int) -> None:
        if self.dof_mask is not None or not self.use_motion:
            return
        # the selector needs its first causal window (then the mask is fixed for the session);
        # without one, select_dofs gives every DoF at once, as the ablation trained it
        # (data.context_dofs = "all")
        if self.model.cfg.use_dof_selection and self.stream.rows < TAU_STEPS:
            return
        from biocoach_jax.models.biocoach import select_dofs

        mask = np.zeros((1, self.stream.features.shape[1]), bool)
        mask[0, :self.stream.rows] = True
        self.dof_mask = np.asarray(select_dofs(self.model, self.stream.features, mask))[0]

    def _send_context(self, t: float) -> None:
        if not self.use_motion or self.dof_mask is None or self.poses.count == 0:
            return
        from biocoach_jax.data.motion_context import motion_contexts

        text = motion_contexts(self.poses.poses, self.present, self.exercise, [t],
                               window_s=self.window_s, fps=self.fps, dof_mask=self.dof_mask)[0]
        if text == self.last_context:
            return
        self.last_context = text
        self.logits = self.stream.feed([self.tok.motion_id] + self.tok.encode(text, bos=False)
                                       + [self.tok.motion_end_id])

    def _generate(self) -> tuple[str, int]:
        """Feed <answer>, then greedy tokens under the grammar until <answer/>."""
        logits = self.stream.feed(self.ids.answer)
        out: list[int] = []
        while True:
            tok = next_token(int(np.argmax(logits)), True, len(out), self.ids)
            logits = self.stream.feed(tok)
            if tok == self.ids.answer_end:
                break
            out.append(tok)
        self.logits = logits
        return self.tok.decode(out, skip_special=True).strip(), len(out)


def cnn_features(vision_model, size_hw: tuple[int, int] | None = None):
    """`frame (H, W, 3) uint8 -> (N, C) feature | None`: the causal CNN run frame by frame."""
    from biocoach_jax.models.vision import feature_tokens, jit_stream_step

    step = jit_stream_step(vision_model)
    state = [vision_model.init_stream_state(1)]

    def fn(image):
        x = jnp.asarray(np.asarray(image, np.float32)[None] / 255.0)
        state[0], (feat, valid) = step(state[0], x)
        return np.asarray(feature_tokens(feat)[0]) if bool(valid) else None

    return fn


"""LLM judge for LLM-Acc (Stream-VLM's protocol) and LLM-Bio-Acc (BioCoach; prompt not public).

The judge sees one matched (ground truth, prediction) pair and answers a Python-dict string
`{'score': n}`, n an integer 1-5; answers that cannot be parsed, or whose score is not an integer
in 1..5, are dropped and counted; the result is the mean of the kept scores (0.0 when nothing was
kept, as Stream-VLM's sum / (n + 1e-12) gives). Sampling: temperature 0.6, top-p 0.9,
64 new tokens (Stream-VLM used LLaMA-3-70B-Instruct).

Backends are callables `backend(system: str, user: str) -> str`:
- `HTTPJudge`: any OpenAI-compatible `/v1/chat/completions` server (URL, key and model name from
  BIOCOACH_JUDGE_URL / BIOCOACH_JUDGE_KEY / BIOCOACH_JUDGE_MODEL or arguments), urllib only;
- `LocalJudge`: wraps any `generate(prompt: str) -> str` (e.g. our own LLaMA, later, via
  `biocoach_jax.models`); nothing model-related is imported here.
A bare `generate(prompt) -> str` callable passed to `judge_scores` is wrapped in LocalJudge.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from typing import Callable, Sequence

# --- Prompts -------------------------------------------------------------------------------
# LLM-Acc: our wording of Stream-VLM's judge criteria (FitCoach's scripts/get_llm_accuracy.py
# asks for factual accuracy against the ground truth, accepts paraphrases and repetition counts
# in digits or words, and wants a 1-5 integer as {'score': n}). Their prose is not copied, so
# absolute LLM-Acc values may drift slightly from theirs; compare systems under this one prompt.
ACC_SYSTEM = (
    "You grade feedback that a virtual fitness coach gave to a person during a workout. You "
    "always answer with a Python dictionary string.\n"
    "Decide how accurate the predicted feedback is compared with the ground-truth feedback:\n"
    "-It should state the same facts, be relevant to the same moment and agree with the ground "
    "truth.\n"
    "-Paraphrases and synonyms count as matches.\n"
    "-Repetition counts may be written in digits or in words."
)
ACC_USER = (
    "Ground-truth feedback: {gt}\n"
    "Predicted feedback: {pred}\n\n"
    "Answer only with a Python dictionary string whose key 'score' holds an INTEGER from 1 to 5, "
    "where 5 means fully accurate, for example {{'score': 3}}. DO NOT PROVIDE ANY OTHER OUTPUT "
    "TEXT OR EXPLANATION."
)

# LLM-Bio-Acc: our own biomechanics prompt (BioCoach's is not public). Same answer format.
BIO_SYSTEM = (
    "You are an expert in human biomechanics and exercise science who grades corrective "
    "feedback written by a virtual fitness coach. You always answer with a Python dictionary "
    "string.\n"
    "Compare the predicted feedback with the ground-truth feedback for anatomical and "
    "biomechanical correctness only, judging three things:\n"
    "-Joint: does the prediction address the same joint or body segment, on the same side "
    "(left/right) when the ground truth names one?\n"
    "-Direction: does it describe the same kind of error (too little or too much range of "
    "motion, left-right asymmetry, instability, moving too fast or too slow)?\n"
    "-Magnitude: when angles or amounts are given, are they close (within about 5 degrees)?\n"
    "Paraphrases and synonyms (e.g. 'lower back' for 'lumbar spine') are correct. Ignore tone, "
    "encouragement and wording. Score 5 when joint, side, direction and magnitude all agree; "
    "4 when only the magnitude is off or missing; 3 when the joint is right but the direction is "
    "wrong or vague; 2 when only the general body region is right; 1 when it is unrelated or "
    "anatomically wrong."
)
BIO_USER = (
    "Ground-truth feedback: {gt}\n"
    "Predicted feedback: {pred}\n\n"
    "Answer only with a Python dictionary string whose key 'score' holds an INTEGER from 1 to 5, "
    "for example {{'score': 4}}. DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION."
)
PROMPTS = {"acc": (ACC_SYSTEM, ACC_USER), "bio": (BIO_SYSTEM, BIO_USER)}

SAMPLING = {"temperature": 0.6, "top_p": 0.9, "max_tokens": 64}


class JudgeError(RuntimeError):
    """The judge backend could not be reached or answered with an unusable HTTP reply."""


# --- Parsing -------------------------------------------------------------------------------
_BRACES = re.compile(r"\{[^{}]*\}")
_KEY_VALUE = re.compile(r"""['"]?\bscore\b['"]?\s*[:=]\s*['"]?\s*(-?\d+(?:\.\d+)?)""", re.I)
_BARE_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.?\s*$")


def extract_score(answer: str) -> float | None:
    """The number the judge gave as its score, or None when absent or ambiguous.

    Accepts `{'score': 4}`, `{"score": 4}`, `score: 4`, `Score = 4`, or a bare `4`; when the
    answer holds several different scores it is ambiguous and None is returned.
    """
    if not isinstance(answer, str):
        return None
    found: list[float] = []
    for block in _BRACES.findall(answer):
        for loader in (ast.literal_eval, json.loads):
            try:
                d = loader(block)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(d, dict):
                for k, v in d.items():
                    if str(k).strip().lower() == "score" and _is_number(v):
                        found.append(float(v))
            break
    if not found:
        found = [float(m) for m in _KEY_VALUE.findall(answer)]
    if not found:
        m = _BARE_NUMBER.match(answer)
        found = [float(m.group(1))] if m else []
    distinct = set(found)
    return distinct.pop() if len(distinct) == 1 else None


def _is_number(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, str) and re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", v) is not None


def parse_score(answer: str) -> int | None:
    """The judge's score as an int in 1..5, or None (unparsable, not integral or out of range)."""
    x = extract_score(answer)
    if x is None or not math.isfinite(x) or x != int(x) or not 1 <= x <= 5:
        return None
    return int(x)


# --- Backends ------------------------------------------------------------------------------
class LocalJudge:
    """Judge backend around `generate(prompt) -> str`; system and user text are joined."""

    def __init__(self, generate: Callable[[str], str]):
        if not callable(generate):
            raise ValueError(f"generate must be callable, got {type(generate).__name__}")
        self.generate = generate

    def __call__(self, system: str, user: str) -> str:
        return self.generate(f"{system}\n\n{user}")


class HTTPJudge:
    """OpenAI-compatible chat-completions client (urllib only).

    url: the server root (`http://host:port`), its `/v1`, or the full
    `/v1/chat/completions` address; default $BIOCOACH_JUDGE_URL. key: bearer token, default
    $BIOCOACH_JUDGE_KEY (optional). model: default $BIOCOACH_JUDGE_MODEL or "judge".
    """

    def __init__(self, url: str | None = None, key: str | None = None, model: str | None = None,
                 timeout_s: float = 120.0, retries: int = 3):
        url = url if url is not None else os.environ.get("BIOCOACH_JUDGE_URL")
        if not url:
            raise JudgeError("no judge URL: pass url= or set BIOCOACH_JUDGE_URL "
                             "(an OpenAI-compatible server, e.g. http://127.0.0.1:8000)")
        if not url.startswith(("http://", "https://")):
            raise JudgeError(f"judge URL must start with http:// or https://, got {url!r}")
        url = url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url = url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")
        self.url = url
        self.key = key if key is not None else os.environ.get("BIOCOACH_JUDGE_KEY")
        self.model = model or os.environ.get("BIOCOACH_JUDGE_MODEL") or "judge"
        self.timeout_s = timeout_s
        self.retries = max(1, int(retries))

    def request_body(self, system: str, user: str) -> dict:
        return {"model": self.model,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": user}],
                **SAMPLING}

    def __call__(self, system: str, user: str) -> str:
        data = json.dumps(self.request_body(system, user)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last = None
        for attempt in range(self.retries):
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    reply = json.loads(resp.read().decode("utf-8"))
                return str(reply["choices"][0]["message"]["content"] or "")
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code} {e.reason}"
                if e.code < 500 and e.code != 429:  # a client error will not heal by retrying
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise JudgeError(f"{self.url}: reply is not a chat completion ({e!r})") from None
            if attempt + 1 < self.retries:
                time.sleep(0.5 * 2 ** attempt)
        raise JudgeError(f"{self.url}: judge request failed after {attempt + 1} attempt(s): {last}")


# --- Metric --------------------------------------------------------------------------------
def judge_scores(pairs: Sequence[tuple[str, str]], backend, kind: str = "acc") -> dict:
    """LLM-Acc (kind="acc") or LLM-Bio-Acc (kind="bio") over matched (gt, pred) pairs.

    backend: HTTPJudge, LocalJudge, any `f(system, user) -> str`, or a plain
    `generate(prompt) -> str` (wrapped in LocalJudge; told apart by its parameter count).
    Returns {"mean", "n_scored", "n_unparsable"}; n_unparsable counts every dropped answer,
    of which "n_out_of_range" had a number outside 1..5 or not an integer.
    """
    if kind not in PROMPTS:
        raise ValueError(f"kind must be 'acc' or 'bio', got {kind!r}")
    backend = _as_backend(backend)
    system, user_template = PROMPTS[kind]
    scores: list[int] = []
    dropped = out_of_range = 0
    for k, pair in enumerate(pairs):
        try:
            gt, pred = pair
        except (TypeError, ValueError):
            raise ValueError(f"pairs[{k}] must be a (gt_text, pred_text) pair") from None
        answer = backend(system, user_template.format(gt=gt, pred=pred))
        score = parse_score(answer)
        if score is None:
            dropped += 1
            out_of_range += int(extract_score(answer) is not None)
        else:
            scores.append(score)
    mean = sum(scores) / len(scores) if scores else 0.0  # Stream-VLM: sum / (n + 1e-12)
    return {"mean": float(mean), "n_scored": len(scores),
            "n_unparsable": dropped, "n_out_of_range": out_of_range}


def _as_backend(backend):
    if isinstance(backend, (HTTPJudge, LocalJudge)):
        return backend
    if not callable(backend):
        raise ValueError(f"backend must be callable, got {type(backend).__name__}")
    import inspect

    try:
        n_params = len(inspect.signature(backend).parameters)
    except (TypeError, ValueError):
        n_params = 2
    return LocalJudge(backend) if n_params == 1 else backend

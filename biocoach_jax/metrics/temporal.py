"""Temporal F-score (T-F-Score) of Stream-VLM / BioCoach: were feedbacks given at the right time?

Semantics follow Stream-VLM's public evaluator (REFERENCE.md §2 "Metrics"):
- A ground-truth feedback at time x is matched greedily, in order, to the ONE prediction nearest
  to x (argmin of squared distance; ties -> the first index, as numpy's argmin). It is a match only
  if |dt| < tolerance / 2, that prediction's index is greater than the last matched index (order
  preserving), it is not used yet, and its text is non-empty. If the nearest prediction fails any
  condition, the ground truth stays unmatched: there is no fallback to the second nearest.
- Recall runs ground truth -> predictions; precision runs the same routine with the roles swapped
  (predictions are the queries, and then the ground-truth texts must be non-empty).
- Counts are pooled over the whole dataset (micro average): P = sum matched_pred / sum n_pred,
  R = sum matched_gt / sum n_gt, F = 2PR / (P + R + 1e-12). Stream-VLM adds 1e-12 to the P and R
  denominators only to avoid dividing by zero; we divide exactly and return 0.0 for an empty
  side (the same numbers up to ~1e-12 relative, and exact fractions such as 0.5 stay exact).

Empty predicted texts are dropped before matching and are not counted, as Stream-VLM's feedback
extraction never emits them. `matched` reports indices into the caller's ORIGINAL lists, so
`pred[e][j]` for a reported j is the predicted feedback, whatever was dropped before it.
Ground-truth entries are kept as given (an empty ground-truth text can still be a query, but can
never be matched in the precision direction).

The matching is a short sequential greedy loop over tens of items per episode, so it stays plain
numpy on the host: there is nothing here worth compiling.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

EPS = 1e-12

Feedback = tuple[float, str]


def _greedy_match(query_t: np.ndarray, target_t: np.ndarray, target_text: Sequence[str],
                  tolerance: float) -> list[tuple[int, int]]:
    """Stream-VLM's greedy order-preserving matching; returns (query_idx, target_idx) pairs."""
    pairs: list[tuple[int, int]] = []
    if len(target_t) == 0:
        return pairs
    used: set[int] = set()
    last = -1
    for i, x in enumerate(query_t):
        j = int(np.argmin((target_t - x) ** 2))
        if (abs(x - target_t[j]) < tolerance / 2.0 and j > last and j not in used
                and target_text[j] != ""):
            pairs.append((i, j))
            used.add(j)
            last = j
    return pairs


def _episode_arrays(episode, what: str, e: int) -> tuple[np.ndarray, list[str]]:
    """Validate one episode's [(time_s, text), ...] and split it into times and texts."""
    if isinstance(episode, (str, bytes, dict)) or not hasattr(episode, "__len__"):
        raise ValueError(f"{what}[{e}] must be a list of (time_s, text) pairs, "
                         f"got {type(episode).__name__}")
    times, texts = [], []
    for k, item in enumerate(episode):
        try:
            if isinstance(item, str):
                raise TypeError
            t, text = item
        except (TypeError, ValueError):
            raise ValueError(
                f"{what}[{e}][{k}] must be a (time_s, text) pair, got {item!r}") from None
        if not isinstance(text, str):
            raise ValueError(f"{what}[{e}][{k}]: text must be a str, got {type(text).__name__}")
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"{what}[{e}][{k}]: time must be a number, got {t!r}") from None
        if not math.isfinite(t):
            raise ValueError(f"{what}[{e}][{k}]: time must be finite, got {t}")
        times.append(t)
        texts.append(text)
    return np.asarray(times, dtype=np.float64), texts


def temporal_f_score(gt: Sequence[Sequence[Feedback]], pred: Sequence[Sequence[Feedback]],
                     tolerance: float = 3.0) -> dict:
    """T-F-Score over a dataset.

    gt, pred: one list per episode of (time_s, text) feedbacks, times relative to the episode.
    tolerance: matching window in seconds; a match needs |dt| < tolerance / 2.
    Returns {"precision", "recall", "f1", "matched", "n_gt", "n_pred", "n_matched_gt",
    "n_matched_pred"}; "matched" lists the recall-direction pairs (episode, gt_index, pred_index)
    with indices into the original lists.
    """
    if len(gt) != len(pred):
        raise ValueError(f"gt has {len(gt)} episodes but pred has {len(pred)}")
    try:
        tolerance = float(tolerance)
    except (TypeError, ValueError):
        raise ValueError(f"tolerance must be a number of seconds, got {tolerance!r}") from None
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number of seconds, got {tolerance!r}")
    n_gt = n_pred = hit_gt = hit_pred = 0
    matched: list[tuple[int, int, int]] = []
    for e, (g_ep, p_ep) in enumerate(zip(gt, pred)):
        g_t, g_text = _episode_arrays(g_ep, "gt", e)
        p_t_all, p_text_all = _episode_arrays(p_ep, "pred", e)
        keep = [j for j, text in enumerate(p_text_all) if text != ""]
        p_t, p_text = p_t_all[keep], [p_text_all[j] for j in keep]

        recall_pairs = _greedy_match(g_t, p_t, p_text, tolerance)
        precision_pairs = _greedy_match(p_t, g_t, g_text, tolerance)
        matched.extend((e, i, keep[j]) for i, j in recall_pairs)
        n_gt += len(g_t)
        n_pred += len(p_t)
        hit_gt += len(recall_pairs)
        hit_pred += len(precision_pairs)

    precision = hit_pred / n_pred if n_pred else 0.0
    recall = hit_gt / n_gt if n_gt else 0.0
    f1 = 2.0 * precision * recall / (precision + recall + EPS)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "matched": matched, "n_gt": n_gt, "n_pred": n_pred,
            "n_matched_gt": hit_gt, "n_matched_pred": hit_pred}

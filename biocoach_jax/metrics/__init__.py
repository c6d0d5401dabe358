"""The paper's metrics: T-F-Score, METEOR, ROUGE-L, BERTScore, LLM judge, plus bio-fact accuracy.

`evaluate_episodes` computes one table row: T-F-Score first, then every text metric on the
temporally matched (ground truth, prediction) pairs of the whole dataset, as Stream-VLM does.
Heavy dependencies (nltk, rouge-score, bert-score/torch) are imported only when a metric runs.
"""
from __future__ import annotations

from typing import Sequence

from biocoach_jax.metrics.biofacts import bio_fact_accuracy, parse_facts, reference_facts
from biocoach_jax.metrics.judge import HTTPJudge, LocalJudge, judge_scores, parse_score
from biocoach_jax.metrics.temporal import temporal_f_score
from biocoach_jax.metrics.text import WordNetMissingError, meteor, rouge_l, text_scores

__all__ = [
    "temporal_f_score", "text_scores", "bio_fact_accuracy", "judge_scores", "evaluate_episodes",
    "meteor", "rouge_l", "parse_facts", "parse_score", "HTTPJudge", "LocalJudge",
    "WordNetMissingError",
]


def evaluate_episodes(gt: Sequence, pred: Sequence, tolerance: float = 3.0,
                      truths: Sequence | None = None, bertscore: bool = True,
                      judge=None) -> dict:
    """One flat dict of metrics for a dataset of episodes.

    gt, pred: per episode, lists of (time_s, text) (see `temporal_f_score`).
    truths: optional, per episode, one structured truth record (or None) per gt feedback; used
      by the bio-fact accuracy instead of parsing the gt text.
    bertscore: False skips BERTScore (it loads a torch model).
    judge: optional judge backend (see `judge_scores`); adds LLM-Acc and LLM-Bio-Acc.
    """
    t = temporal_f_score(gt, pred, tolerance=tolerance)
    pairs = [(gt[e][i][1], pred[e][j][1]) for e, i, j in t["matched"]]
    row = {"t_precision": t["precision"], "t_recall": t["recall"], "t_f_score": t["f1"],
           "n_gt": t["n_gt"], "n_pred": t["n_pred"], "n_matched": len(pairs)}
    row.update(text_scores(pairs, bertscore=bertscore))

    matched_truths = None
    if truths is not None:
        if len(truths) != len(gt):
            raise ValueError(f"truths has {len(truths)} episodes but gt has {len(gt)}")
        for e, (tr, g) in enumerate(zip(truths, gt)):
            if len(tr) != len(g):
                raise ValueError(f"truths[{e}] has {len(tr)} records but gt[{e}] has {len(g)}")
        matched_truths = [truths[e][i] for e, i, _ in t["matched"]]
    bio = bio_fact_accuracy(pairs, matched_truths)
    row.update({f"bio_{k}": v for k, v in bio.items() if k != "n_pairs"})
    # METEOR over the corrective pairs alone (the reference states an error: its facts have a
    # direction): rep counts and encouragement, most of a stream, hide what the kinematic
    # evidence changes about corrections
    records = matched_truths or [None] * len(pairs)
    corrective = [p for p, r in zip(pairs, records)
                  if reference_facts(p[0], r).direction is not None]
    row["meteor_corrective"] = sum(meteor(g, h) for g, h in corrective) / max(len(corrective), 1)
    row["n_corrective"] = len(corrective)

    if judge is not None:
        for kind, name in (("acc", "llm_acc"), ("bio", "llm_bio_acc")):
            r = judge_scores(pairs, judge, kind=kind)
            row.update({name: r["mean"], f"{name}_n_scored": r["n_scored"],
                        f"{name}_n_unparsable": r["n_unparsable"]})
    return row

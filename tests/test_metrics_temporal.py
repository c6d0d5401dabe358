"""T-F-Score: hand-worked cases of Stream-VLM's greedy order-preserving matching; properties."""
import pytest

from biocoach_jax.metrics import temporal_f_score


def ep(*times, text="fb"):
    """An episode of feedbacks at the given times, all with the same non-empty text."""
    return [(float(t), text) for t in times]


def test_hand_worked_basic():
    # gt 1, 5, 10; pred 1.2, 5.0, 20. Recall: 1->1.2, 5->5.0, 10->nearest 5.0 (|5| > 1.5): 2/3.
    # Precision: 1.2->1, 5.0->5, 20->nearest 10 (|10|): 2/3.
    r = temporal_f_score([ep(1, 5, 10)], [ep(1.2, 5.0, 20)])
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["matched"] == [(0, 0, 0), (0, 1, 1)]


def test_order_preservation():
    # pred index 0 at 1.9, index 1 at 1.0. gt 1.0 takes pred 1; gt 2.0's nearest is pred 0, whose
    # index is not after the last match -> unmatched, although it is 0.1 s away.
    r = temporal_f_score([ep(1.0, 2.0)], [ep(1.9, 1.0)])
    assert r["matched"] == [(0, 0, 1)]
    assert r["recall"] == pytest.approx(0.5)
    # precision: pred 1.9 takes gt 1 (2.0); pred 1.0's nearest gt 0 comes before it -> 1/2.
    assert r["precision"] == pytest.approx(0.5)


def test_no_fallback_to_second_nearest():
    # gt 0.4's nearest prediction (0.2) is already used by gt 0.0; the prediction at 1.2 is
    # within 1.5 s but is not considered.
    r = temporal_f_score([ep(0.0, 0.4)], [ep(0.2, 1.2)])
    assert r["matched"] == [(0, 0, 0)]
    assert r["recall"] == pytest.approx(0.5)


def test_tie_takes_first_index():
    # gt 1.0 is equidistant from pred 0 (0.5) and pred 1 (1.5): argmin picks pred 0, which gt 0.4
    # already used, so gt 1.0 stays unmatched (picking pred 1 would have matched).
    r = temporal_f_score([ep(0.4, 1.0)], [ep(0.5, 1.5)])
    assert r["matched"] == [(0, 0, 0)]
    assert r["n_matched_gt"] == 1


@pytest.mark.parametrize("dt,hit", [(1.49, True), (1.5, False), (-1.49, True), (-1.5, False),
                                    (0.0, True), (1.4999, True), (1.5001, False)])
def test_boundary_is_strict_half_tolerance(dt, hit):
    r = temporal_f_score([ep(10.0)], [ep(10.0 + dt)])
    assert r["n_matched_gt"] == int(hit) and r["n_matched_pred"] == int(hit)
    assert r["f1"] == pytest.approx(float(hit), abs=1e-9)


def test_tolerance_argument():
    assert temporal_f_score([ep(3.0)], [ep(3.99)], tolerance=2.0)["recall"] == 1.0
    assert temporal_f_score([ep(3.0)], [ep(4.0)], tolerance=2.0)["recall"] == 0.0
    assert temporal_f_score([ep(3.0)], [ep(5.9)], tolerance=6.0)["recall"] == 1.0


def test_empty_predicted_texts_are_dropped_and_indices_stay_original():
    # The empty prediction at exactly 1.0 is dropped before matching, so the nearest remaining
    # prediction (original index 2) matches; the empty one is not counted in n_pred.
    gt = [[(1.0, "knees out")]]
    pred = [[(0.0, "far away"), (1.0, ""), (1.3, "push your knees out")]]
    r = temporal_f_score(gt, pred)
    assert r["matched"] == [(0, 0, 2)]
    assert r["n_pred"] == 2
    assert r["recall"] == 1.0 and r["precision"] == pytest.approx(0.5)
    assert pred[0][r["matched"][0][2]][1] == "push your knees out"


def test_empty_ground_truth_text_cannot_be_matched_by_a_prediction():
    # Precision direction: pred 1.0's nearest gt has empty text -> no match (no fallback);
    # recall direction: the empty gt is still a query and matches the prediction.
    r = temporal_f_score([[(1.0, ""), (5.0, "x")]], [[(1.0, "p")]])
    assert r["recall"] == pytest.approx(0.5)
    assert r["precision"] == 0.0


def test_pooling_is_micro_over_episodes():
    # Episode 0: 4 gt, 1 pred, 1 match. Episode 1: 1 gt, 4 preds, 1 match.
    gt = [ep(0, 10, 20, 30), ep(0)]
    pred = [ep(10.5), ep(0.2, 10, 20, 30)]
    r = temporal_f_score(gt, pred)
    assert r["recall"] == pytest.approx(2 / 5)      # macro would be (1/4 + 1) / 2
    assert r["precision"] == pytest.approx(2 / 5)
    p = r["precision"]
    assert r["f1"] == pytest.approx(2 * p * p / (2 * p + 1e-12))
    assert r["matched"] == [(0, 1, 0), (1, 0, 0)]


def test_empty_episodes_and_dataset():
    zero = temporal_f_score([[]], [[]])
    assert (zero["precision"], zero["recall"], zero["f1"], zero["matched"]) == (0.0, 0.0, 0.0, [])
    assert temporal_f_score([], [])["f1"] == 0.0
    r = temporal_f_score([ep(1.0), []], [[], ep(2.0)])
    assert r["n_gt"] == 1 and r["n_pred"] == 1 and r["f1"] == 0.0
    only_empty_texts = temporal_f_score([ep(1.0)], [[(1.0, "")]])
    assert only_empty_texts["n_pred"] == 0 and only_empty_texts["recall"] == 0.0


def test_random_properties(rng):
    """Swapping roles swaps P and R; adding empty predictions or shifting time changes nothing."""
    n_ep = int(rng.integers(1, 6))
    gt = [ep(*sorted(rng.uniform(0, 30, rng.integers(0, 9)))) for _ in range(n_ep)]
    pred = [ep(*sorted(rng.uniform(0, 30, rng.integers(0, 9)))) for _ in range(n_ep)]
    r = temporal_f_score(gt, pred)
    s = temporal_f_score(pred, gt)
    assert r["precision"] == pytest.approx(s["recall"])
    assert r["recall"] == pytest.approx(s["precision"])
    for e, i, j in r["matched"]:
        assert abs(gt[e][i][0] - pred[e][j][0]) < 1.5
    # matched pred indices strictly increase within an episode (order preserving)
    for e in range(n_ep):
        js = [j for ee, _, j in r["matched"] if ee == e]
        assert js == sorted(set(js))

    shift = float(rng.uniform(-100, 100))
    moved = temporal_f_score([[(t + shift, x) for t, x in g] for g in gt],
                             [[(t + shift, x) for t, x in p] for p in pred])
    assert moved["matched"] == r["matched"]

    # Insert empty-text predictions at random positions; remap expected indices.
    padded, remap = [], []
    for p in pred:
        q, idx = [], []
        for item in p:
            while rng.random() < 0.4:
                q.append((float(rng.uniform(0, 30)), ""))
            idx.append(len(q))
            q.append(item)
        padded.append(q)
        remap.append(idx)
    r2 = temporal_f_score(gt, padded)
    assert r2["matched"] == [(e, i, remap[e][j]) for e, i, j in r["matched"]]
    assert (r2["precision"], r2["recall"]) == (r["precision"], r["recall"])


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="episodes"):
        temporal_f_score([ep(1)], [])
    with pytest.raises(ValueError, match=r"pred\[0\]\[0\].*finite"):
        temporal_f_score([ep(1)], [[(float("nan"), "x")]])
    with pytest.raises(ValueError, match=r"gt\[0\]\[1\]"):
        temporal_f_score([[(1.0, "a"), "oops"]], [[]])
    with pytest.raises(ValueError, match="text must be a str"):
        temporal_f_score([[(1.0, None)]], [[]])
    with pytest.raises(ValueError, match="tolerance"):
        temporal_f_score([ep(1)], [ep(1)], tolerance=0)

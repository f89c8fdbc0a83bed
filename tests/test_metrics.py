"""maskdet.metrics: small cases checked by hand, agreement with scikit-learn, and the one-class edge case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from maskdet.metrics import compute_metrics, curves

# label 1 = with_mask (positive). Predictions at 0.5: [1, 1, 0, 0, 1] -> tp 2, fn 1, fp 1, tn 1.
Y = [1, 1, 1, 0, 0]
S = [0.9, 0.6, 0.4, 0.3, 0.7]


def test_hand_checked_case() -> None:
    m = compute_metrics(Y, S)
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion"] == [[1, 1], [1, 2]]
    assert (m["false_positives"], m["false_negatives"]) == (1, 1)
    assert m["per_class"]["with_mask"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["per_class"]["without_mask"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    # 6 (positive, negative) pairs; the positive scores higher in 4 of them.
    assert m["roc_auc"] == pytest.approx(4 / 6)
    # Ranked: .9(+) .7(-) .6(+) .4(+) .3(-): precision at each positive 1, 2/3, 3/4.
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_threshold_is_inclusive_and_ties_count_half_in_auc() -> None:
    m = compute_metrics([1, 0], [0.5, 0.5])
    assert m["confusion"] == [[0, 1], [0, 1]]  # 0.5 counts as with_mask
    assert m["roc_auc"] == pytest.approx(0.5)


def test_perfect_and_inverted_rankings() -> None:
    perfect = compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert perfect["accuracy"] == perfect["roc_auc"] == perfect["average_precision"] == 1.0
    assert perfect["false_positives"] == perfect["false_negatives"] == 0
    inverted = compute_metrics([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])
    assert inverted["accuracy"] == 0.0 and inverted["roc_auc"] == 0.0
    assert inverted["confusion"] == [[0, 2], [2, 0]]


def test_one_class_has_no_auc_ap_or_curves() -> None:
    m = compute_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion"] == [[0, 0], [1, 2]]
    assert m["per_class"]["without_mask"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert curves([1, 1, 1], [0.9, 0.2, 0.7]) is None


def test_empty_and_mismatched_inputs() -> None:
    empty = compute_metrics([], [])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["confusion"] == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="same length"):
        compute_metrics([0, 1], [0.5])


def test_curves_end_points() -> None:
    points = curves(Y, S)
    assert points["roc"]["fpr"][0] == 0.0 and points["roc"]["fpr"][-1] == 1.0
    assert points["roc"]["tpr"][-1] == 1.0
    assert points["pr"]["recall"][0] == 1.0 and points["pr"]["recall"][-1] == 0.0
    assert np.trapezoid(points["roc"]["tpr"], points["roc"]["fpr"]) == pytest.approx(compute_metrics(Y, S)["roc_auc"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 2))), min_size=2, max_size=60
    ).filter(lambda pairs: len({label for label, _ in pairs}) == 2)
)
def test_agrees_with_sklearn(pairs: list[tuple[int, float]]) -> None:
    y = np.array([label for label, _ in pairs])
    scores = np.array([score for _, score in pairs])
    pred = (scores >= 0.5).astype(int)
    m = compute_metrics(y, scores)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, scores))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, scores))
    assert m["confusion"] == confusion_matrix(y, pred, labels=[0, 1]).tolist()
    for label, name in ((1, "with_mask"), (0, "without_mask")):
        kwargs = {"pos_label": label, "zero_division": 0}
        assert m["per_class"][name]["precision"] == pytest.approx(precision_score(y, pred, **kwargs))
        assert m["per_class"][name]["recall"] == pytest.approx(recall_score(y, pred, **kwargs))
        assert m["per_class"][name]["f1"] == pytest.approx(f1_score(y, pred, **kwargs))
        assert m["per_class"][name]["support"] == int((y == label).sum())
    assert m["false_positives"] + m["false_negatives"] == int((pred != y).sum())

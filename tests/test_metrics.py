"""maskdet.evaluation.metrics: small cases checked by hand (at 0.5 and at other thresholds, calibration), agreement with
scikit-learn, and the one-class edge case."""

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
    roc_curve,
)

from maskdet.evaluation.metrics import calibration, compute_metrics, curves, operating_point
from maskdet.zoo.decision import predicted_labels, validate_threshold

# label 1 = with_mask (positive). Predictions at 0.5: [1, 1, 0, 0, 1] -> tp 2, fn 1, fp 1, tn 1.
Y = [1, 1, 1, 0, 0]
S = [0.9, 0.6, 0.4, 0.3, 0.7]


def test_hand_checked_case() -> None:
    m = compute_metrics(Y, S)
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion"] == [[1, 1], [1, 2]]
    assert (m["false_positives"], m["false_negatives"]) == (1, 1)
    assert m["per_class"]["with_mask"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3,
                                                         "roc_auc": 4 / 6, "average_precision": (1 + 2 / 3 + 3 / 4) / 3})
    assert {k: m["per_class"]["without_mask"][k] for k in ("precision", "recall", "f1", "support")} == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
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
    assert m["per_class"]["without_mask"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                              "roc_auc": None, "average_precision": None}
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


@pytest.mark.parametrize(
    ("threshold", "confusion", "precision", "recall"),
    [
        # Y = [1, 1, 1, 0, 0], S = [.9, .6, .4, .3, .7]
        (0.65, [[1, 1], [2, 1]], 1 / 2, 1 / 3),  # predicted [1, 0, 0, 0, 1]
        (0.3, [[0, 2], [0, 3]], 3 / 5, 1.0),  # 0.3 itself counts as with_mask: everything is
        (0.4, [[1, 1], [0, 3]], 3 / 4, 1.0),  # predicted [1, 1, 1, 0, 1]
        (0.95, [[2, 0], [3, 0]], 0.0, 0.0),  # nothing called with_mask: precision 0/0 reported as 0
    ],
)
def test_metrics_at_other_thresholds_by_hand(threshold: float, confusion: list, precision: float,
                                             recall: float) -> None:
    m = compute_metrics(Y, S, threshold)
    assert m["threshold"] == threshold
    assert m["confusion"] == confusion
    (tn, fp), (fn, tp) = confusion
    assert (m["false_positives"], m["false_negatives"]) == (fp, fn)
    assert m["accuracy"] == pytest.approx((tn + tp) / 5)
    assert m["per_class"]["with_mask"]["precision"] == pytest.approx(precision)
    assert m["per_class"]["with_mask"]["recall"] == pytest.approx(recall)
    assert m["roc_auc"] == pytest.approx(4 / 6)  # ranking metrics do not depend on the threshold
    point = operating_point(m)
    assert point["tpr"] == point["recall"] == pytest.approx(recall)
    assert point["fpr"] == pytest.approx(fp / 2)
    assert point["precision"] == (None if tp + fp == 0 else pytest.approx(precision))  # 0/0 is no point on PR


def test_decision_rule_is_inclusive_and_thresholds_are_checked() -> None:
    assert predicted_labels([0.2, 0.5, 0.7], 0.5).tolist() == [0, 1, 1]
    assert predicted_labels([0.2, 0.5, 0.7], 0.7).tolist() == [0, 0, 1]
    assert validate_threshold(0.25) == 0.25 and validate_threshold(np.float32(0.5)) == 0.5
    for bad in (0, 1, 0.0, 1.0, -0.1, 2, float("nan"), float("inf"), "0.5", None, True):
        with pytest.raises(ValueError, match="threshold"):
            validate_threshold(bad)


def test_operating_points_lie_on_the_roc_curve() -> None:
    fpr, tpr, thresholds = roc_curve(Y, S)
    on_curve = set(zip(fpr.round(12), tpr.round(12), strict=True))
    for threshold in thresholds[1:]:  # the first is +inf (nothing positive)
        point = operating_point(compute_metrics(Y, S, float(threshold)))
        assert (round(point["fpr"], 12), round(point["tpr"], 12)) in on_curve, threshold


# Worked example, 10 equal-width bins of p(with_mask):
#   (0.1, 0.2]: 0.12 (-), 0.18 (+)           mean p 0.15, fraction with_mask 1/2, gap 0.35,  2 of 6 images
#   (0.7, 0.8]: 0.72 (+), 0.76 (+), 0.74 (-) mean p 0.74, fraction 2/3,           gap 0.0733, 3 of 6
#   (0.9, 1.0]: 0.95 (+)                     mean p 0.95, fraction 1,             gap 0.05,   1 of 6
#   ECE = (2 * 0.35 + 3 * (0.74 - 2/3) + 1 * 0.05) / 6 = 0.97 / 6
#   Brier = (0.12² + 0.82² + 0.28² + 0.24² + 0.74² + 0.05²) / 6 = 1.3729 / 6
CAL_Y = [0, 1, 1, 1, 0, 1]
CAL_S = [0.12, 0.18, 0.72, 0.76, 0.74, 0.95]


def test_expected_calibration_error_worked_example() -> None:
    result = calibration(CAL_Y, CAL_S)
    assert result["count"] == [2, 3, 1]
    assert result["mean_predicted"] == pytest.approx([0.15, 0.74, 0.95])
    assert result["fraction_positive"] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert result["expected_calibration_error"] == pytest.approx(0.97 / 6)
    assert result["brier_score"] == pytest.approx(1.3729 / 6)


def test_calibration_extremes() -> None:
    perfect = calibration([0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0])
    assert perfect["expected_calibration_error"] == 0.0 and perfect["brier_score"] == 0.0
    worst = calibration([1, 1, 0, 0], [0.0, 0.0, 1.0, 1.0])
    assert worst["expected_calibration_error"] == 1.0 and worst["brier_score"] == 1.0
    one_class = calibration([1, 1, 1], [0.9, 0.9, 0.6])  # every face masked: bins still defined
    assert one_class["count"] == [1, 2]
    assert one_class["expected_calibration_error"] == pytest.approx((1 * 0.4 + 2 * 0.1) / 3)
    assert calibration([], []) is None
    with pytest.raises(ValueError, match="same length"):
        calibration([0, 1], [0.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 1))),
                min_size=1, max_size=60))
def test_calibration_bins_agree_with_a_direct_count(pairs: list[tuple[int, float]]) -> None:
    """Counts per bin (scores on bin edges included) re-derive calibration_curve's means and the ECE."""
    y = np.array([label for label, _ in pairs])
    scores = np.array([score for _, score in pairs])
    result = calibration(y, scores)
    assert sum(result["count"]) == len(y) and len(result["count"]) == len(result["mean_predicted"])
    # Bin i holds (i/10, (i+1)/10], the first also 0: rebuild each non-empty bin's members directly.
    bins = [b for b in range(10) if ((scores > b / 10) & (scores <= (b + 1) / 10) | ((b == 0) & (scores == 0))).any()]
    members = [((scores > b / 10) & (scores <= (b + 1) / 10)) | ((b == 0) & (scores == 0)) for b in bins]
    assert result["count"] == [int(m.sum()) for m in members]
    gaps = [abs(y[m].mean() - scores[m].mean()) * m.sum() / len(y) for m in members]
    assert result["expected_calibration_error"] == pytest.approx(sum(gaps))


# --- three classes -----------------------------------------------------------------------------------
# Rows: p(without_mask), p(with_mask), p(incorrect_mask); labels 0 bare, 1 masked, 2 incorrect.
P3 = np.array([
    [0.7, 0.2, 0.1],   # bare, right
    [0.2, 0.5, 0.3],   # bare called masked at 0.5; at 0.6 the more probable other class: incorrect
    [0.1, 0.8, 0.1],   # masked, right
    [0.1, 0.3, 0.6],   # masked called incorrect
    [0.2, 0.1, 0.7],   # incorrect, right
    [0.6, 0.1, 0.3],   # incorrect called bare
])
Y3 = np.array([0, 0, 1, 1, 2, 2])


def test_decision_rule_masked_only_above_the_threshold_else_the_likelier_other_class() -> None:
    assert predicted_labels(P3).tolist() == [0, 1, 1, 2, 2, 0]
    assert predicted_labels(P3, 0.6).tolist() == [0, 2, 1, 2, 2, 0]
    # A face whose argmax is with_mask is still not masked below the threshold.
    assert predicted_labels(np.array([[0.25, 0.45, 0.30]])).tolist() == [2]
    # Two-class models: exactly p(with_mask) >= threshold, as rows or as the p(with_mask) column.
    two = np.array([[0.5, 0.5], [0.51, 0.49], [0.1, 0.9]])
    assert predicted_labels(two).tolist() == predicted_labels(two[:, 1]).tolist() == [1, 0, 1]


def test_three_class_confusion_per_class_and_macro() -> None:
    m = compute_metrics(Y3, P3)
    assert m["classes"] == ["without_mask", "with_mask", "incorrect_mask"]
    assert m["confusion"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert (m["false_positives"], m["false_negatives"]) == (1, 1)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["per_class"]["incorrect_mask"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["incorrect_mask"]["precision"] == pytest.approx(1 / 2)
    for i, name in enumerate(m["classes"]):
        assert m["per_class"][name]["roc_auc"] == pytest.approx(roc_auc_score(Y3 == i, P3[:, i]))
    assert m["macro"]["recall"] == pytest.approx(np.mean([m["per_class"][c]["recall"] for c in m["classes"]]))
    assert m["macro"]["roc_auc"] == pytest.approx(np.mean([roc_auc_score(Y3 == i, P3[:, i]) for i in range(3)]))
    assert m["outside_classes"] == {}
    per_class = curves(Y3, P3)["per_class"]
    assert set(per_class) == set(m["classes"]) and per_class["incorrect_mask"]["roc"]["tpr"][-1] == 1.0


def test_two_class_model_on_three_class_data_reports_the_third_class_apart() -> None:
    labels = np.array([0, 1, 2, 2, 2])
    p_masked = np.array([0.2, 0.9, 0.8, 0.3, 0.1])
    m = compute_metrics(labels, p_masked)
    assert m["n"] == 2 and m["accuracy"] == 1.0  # neither errors nor right: apart
    assert m["confusion"] == [[1, 0], [0, 1]] and m["false_positives"] == 0
    assert m["outside_classes"] == {"incorrect_mask": {"faces": 3, "called": {"without_mask": 2, "with_mask": 1}}}
    assert m["classes"] == ["without_mask", "with_mask"]

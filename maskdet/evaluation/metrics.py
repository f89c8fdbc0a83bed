"""Classification metrics, one implementation for the CLI, the Compare page and the tests.

Labels follow :data:`maskdet.settings.CLASSES`: 0 = ``without_mask``, 1 = ``with_mask``
(the positive class). Scores are the predicted probability of ``with_mask``.

:func:`compute_metrics` counts errors with the one decision rule
(:func:`maskdet.zoo.decision.predicted_labels`), the rule the pipeline labels faces with, so what the
pages show and what the metrics say never disagree. :func:`calibration` measures how far the scores are from frequencies
(reliability diagram, expected calibration error, Brier score).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from maskdet.evaluation.calibration import expected_calibration_error
from maskdet.settings import CLASSES
from maskdet.zoo.decision import THRESHOLD, predicted_labels

CALIBRATION_BINS = 10


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Accuracy, per-class precision/recall/F1, confusion, ROC AUC, AP of ``with_mask`` scores and
    the expected calibration error (``ece``) of the predicted class's confidence.

    ROC AUC and AP are ``None`` when only one class is present (they are undefined).
    ``confusion`` is ``[[tn, fp], [fn, tp]]`` with ``with_mask`` positive.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.ndim != 1:
        raise ValueError("y_true and scores must be 1-D arrays of the same length")
    n = len(y_true)
    y_pred = predicted_labels(scores, threshold)
    both_classes = len(np.unique(y_true)) == 2
    if n:
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=[0, 1], zero_division=0
        )
        (tn, fp), (fn, tp) = confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()
    else:  # e.g. a folder whose every image is unreadable: scikit-learn refuses empty input
        precision = recall = f1 = support = np.zeros(len(CLASSES))
        tn = fp = fn = tp = 0
    return {
        "n": n,
        "accuracy": float((y_pred == y_true).mean()) if n else None,
        "roc_auc": _finite_or_none(roc_auc_score(y_true, scores)) if both_classes else None,
        "average_precision": _finite_or_none(average_precision_score(y_true, scores)) if both_classes else None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(CLASSES)
        },
        "confusion": [[int(tn), int(fp)], [int(fn), int(tp)]],
        "false_positives": int(fp),
        "false_negatives": int(fn),
        "ece": expected_calibration_error(y_true, scores),
        "threshold": threshold,
    }


def curves(y_true: np.ndarray, scores: np.ndarray) -> dict | None:
    """ROC and precision-recall curves (lists, JSON-ready), or None with a single class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(np.unique(y_true)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = precision_recall_curve(y_true, scores)
    return {
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "pr": {"precision": precision.tolist(), "recall": recall.tolist()},
    }


def operating_point(metrics: dict) -> dict[str, float | None]:
    """Where :func:`compute_metrics` output sits on the ROC and PR curves (None where a rate is 0/0)."""
    (tn, fp), (fn, tp) = metrics["confusion"]

    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return {"fpr": ratio(fp, fp + tn), "tpr": ratio(tp, tp + fn), "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn)}


def calibration(y_true: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> dict | None:
    """Reliability of the ``with_mask`` scores: diagram points, expected calibration error, Brier score.

    ``bins`` equal-width bins of p(with_mask) (scikit-learn's ``calibration_curve``, uniform strategy);
    ``mean_predicted[i]`` / ``fraction_positive[i]`` / ``count[i]`` describe each non-empty bin. The ECE
    is the count-weighted mean gap ``sum(count / n * |fraction_positive - mean_predicted|)``; the Brier
    score is the mean squared error of the scores against the labels. None without any image.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.ndim != 1:
        raise ValueError("y_true and scores must be 1-D arrays of the same length")
    if not len(y_true):
        return None
    fraction_positive, mean_predicted = calibration_curve(
        y_true, scores, n_bins=bins, strategy="uniform", pos_label=1
    )
    # The same bin of each score as calibration_curve uses, for the counts it does not return.
    bin_of = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], scores)
    counts = np.bincount(bin_of, minlength=bins)
    counts = counts[counts > 0]
    ece = float(np.sum(counts / len(y_true) * np.abs(fraction_positive - mean_predicted)))
    return {
        "bins": bins,
        "mean_predicted": mean_predicted.tolist(),
        "fraction_positive": fraction_positive.tolist(),
        "count": counts.astype(int).tolist(),
        "expected_calibration_error": ece,
        "brier_score": float(brier_score_loss(y_true, scores, pos_label=1)),
    }

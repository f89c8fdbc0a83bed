"""Classification metrics, one implementation for the CLI, the Compare page and the tests.

Labels follow :data:`maskdet.settings.KNOWN_CLASSES`: 0 = ``without_mask``, 1 = ``with_mask`` (the positive
class), 2 = ``incorrect_mask``. Scores are a model's class probabilities (N, C), or a two-class model's
p(with_mask) (N,). Faces of a class the model does not know (``incorrect_mask`` for a two-class model) are
reported apart (``outside_classes``: how many and what the model called them), never counted as errors
nor as right.

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
from maskdet.settings import KNOWN_CLASSES
from maskdet.zoo.decision import THRESHOLD, WITH_MASK, as_probabilities, predicted_labels

CALIBRATION_BINS = 10


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _inputs(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 1 or len(scores) != len(y_true) or scores.ndim not in (1, 2):
        raise ValueError("y_true must be 1-D and scores 1-D or 2-D, of the same length")
    return y_true, as_probabilities(scores)


def _one_vs_rest(y_true: np.ndarray, probabilities: np.ndarray, label: int) -> tuple[float | None, float | None]:
    """(ROC AUC, AP) of class ``label`` against the rest; None when the class or the rest is absent."""
    positive = y_true == label
    if positive.all() or not positive.any():
        return None, None
    scores = probabilities[:, label]
    return _finite_or_none(roc_auc_score(positive, scores)), _finite_or_none(average_precision_score(positive, scores))


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Accuracy, per-class precision/recall/F1 and one-vs-rest ROC AUC / AP, their macro averages, the C x C
    confusion, ROC AUC and AP of ``with_mask`` and the expected calibration error (``ece``).

    ROC AUC and AP are ``None`` where a class or its rest is absent (undefined). ``confusion[i][j]`` counts
    class ``i`` called ``j`` (two classes: ``[[tn, fp], [fn, tp]]`` with ``with_mask`` positive).
    ``false_positives`` are not-masked faces called ``with_mask`` (the costly error), ``false_negatives``
    masked faces called anything else. Faces of classes beyond the model's are in ``outside_classes`` only.
    """
    y_true, probabilities = _inputs(y_true, scores)
    classes = KNOWN_CLASSES[: probabilities.shape[1]]
    outside = y_true >= len(classes)
    outside_pred = predicted_labels(probabilities[outside], threshold) if outside.any() else np.zeros(0, np.int64)
    outside_classes = {
        KNOWN_CLASSES[label]: {
            "faces": int(np.sum(y_true[outside] == label)),
            "called": {name: int(np.sum(outside_pred[y_true[outside] == label] == i)) for i, name in enumerate(classes)},
        }
        for label in sorted(set(y_true[outside].tolist()))
    }
    y_true, probabilities = y_true[~outside], probabilities[~outside]
    n = len(y_true)
    y_pred = predicted_labels(probabilities, threshold)
    labels = list(range(len(classes)))
    if n:
        precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        confusion = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    else:  # e.g. a folder whose every image is unreadable: scikit-learn refuses empty input
        precision = recall = f1 = support = np.zeros(len(classes))
        confusion = [[0] * len(classes) for _ in classes]
    ranking = {label: _one_vs_rest(y_true, probabilities, label) for label in labels}
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i]), "roc_auc": ranking[i][0], "average_precision": ranking[i][1]}
        for i, name in enumerate(classes)
    }
    present = [name for name in classes if per_class[name]["support"]]
    return {
        "n": n,
        "classes": list(classes),
        "accuracy": float((y_pred == y_true).mean()) if n else None,
        "roc_auc": ranking[WITH_MASK][0],
        "average_precision": ranking[WITH_MASK][1],
        "per_class": per_class,
        "macro": {key: _mean(per_class[name][key] for name in present)
                  for key in ("precision", "recall", "f1", "roc_auc", "average_precision")},
        "confusion": confusion,
        "false_positives": int(np.sum((y_true != WITH_MASK) & (y_pred == WITH_MASK))),
        "false_negatives": int(np.sum((y_true == WITH_MASK) & (y_pred != WITH_MASK))),
        "ece": expected_calibration_error(y_true, probabilities),
        "threshold": threshold,
        "outside_classes": outside_classes,
    }


def _curves_of(positive: np.ndarray, scores: np.ndarray) -> dict:
    fpr, tpr, _ = roc_curve(positive, scores)
    precision, recall, _ = precision_recall_curve(positive, scores)
    return {"roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
            "pr": {"precision": precision.tolist(), "recall": recall.tolist()}}


def curves(y_true: np.ndarray, scores: np.ndarray) -> dict | None:
    """ROC and precision-recall curves of ``with_mask`` (``roc``, ``pr``; lists, JSON-ready) and, in
    ``per_class``, one-vs-rest curves of every class the model knows that is present with its rest;
    None with a single class. Faces of classes beyond the model's are left out."""
    y_true, probabilities = _inputs(y_true, scores)
    known = y_true < probabilities.shape[1]
    y_true, probabilities = y_true[known], probabilities[known]
    if len(np.unique(y_true)) < 2:
        return None
    per_class = {
        name: _curves_of(y_true == i, probabilities[:, i])
        for i, name in enumerate(KNOWN_CLASSES[: probabilities.shape[1]])
        if 0 < np.sum(y_true == i) < len(y_true)
    }
    with_mask = per_class.get(KNOWN_CLASSES[WITH_MASK]) or _curves_of(y_true == WITH_MASK, probabilities[:, WITH_MASK])
    return {**with_mask, "per_class": per_class}


def operating_point(metrics: dict) -> dict[str, float | None]:
    """Where :func:`compute_metrics` output sits on the ``with_mask`` ROC and PR curves (None where a rate is 0/0)."""
    confusion = np.asarray(metrics["confusion"])
    tp = int(confusion[WITH_MASK, WITH_MASK])
    fp, fn = metrics["false_positives"], metrics["false_negatives"]
    tn = int(confusion.sum()) - tp - fp - fn

    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return {"fpr": ratio(fp, fp + tn), "tpr": ratio(tp, tp + fn), "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn)}


def calibration(y_true: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> dict | None:
    """Reliability of the ``with_mask`` scores (one vs rest): diagram points, expected calibration error, Brier score.

    ``bins`` equal-width bins of p(with_mask) (scikit-learn's ``calibration_curve``, uniform strategy);
    ``mean_predicted[i]`` / ``fraction_positive[i]`` / ``count[i]`` describe each non-empty bin. The ECE
    is the count-weighted mean gap ``sum(count / n * |fraction_positive - mean_predicted|)``; the Brier
    score is the mean squared error of the scores against the labels. None without any image.
    """
    y_true, probabilities = _inputs(y_true, scores)
    if not len(y_true):
        return None
    y_true, scores = (y_true == WITH_MASK).astype(np.int64), probabilities[:, WITH_MASK]
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

"""Classification metrics, one implementation for the CLI, the Compare page and the tests.

Labels follow :data:`maskdet.settings.CLASSES`: 0 = ``without_mask``, 1 = ``with_mask``
(the positive class). Scores are the predicted probability of ``with_mask``.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from maskdet.settings import CLASSES

THRESHOLD = 0.5


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Accuracy, per-class precision/recall/F1, confusion, ROC AUC and AP of ``with_mask`` scores.

    ROC AUC and AP are ``None`` when only one class is present (they are undefined).
    ``confusion`` is ``[[tn, fp], [fn, tp]]`` with ``with_mask`` positive.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.ndim != 1:
        raise ValueError("y_true and scores must be 1-D arrays of the same length")
    n = int(len(y_true))
    y_pred = (scores >= threshold).astype(np.int64)
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

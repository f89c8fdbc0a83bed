"""Side-by-side comparison of trained models: the tables the Compare page shows and exports.

Everything the Compare page shows comes from :mod:`maskdet.evaluation` (so it can be tested without
Streamlit); this module builds its tables:

- :func:`comparison_table` / :func:`best_mask` build the table of :class:`~maskdet.evaluation.summary.ModelSummary`
  rows and mark the best value of each column (higher is better for quality, lower for cost and errors);
- :func:`unseen_table` puts held-out test numbers next to unseen-data numbers
  (:mod:`maskdet.evaluation.unseen`);
- :func:`overlap_summary` counts each model's shared and own errors (:mod:`maskdet.evaluation.errors`);
- :func:`table_csv` / :func:`metrics_json` export what the page shows.

The neighbouring modules: :mod:`~maskdet.evaluation.summary` (the record read from a model's card),
:mod:`~maskdet.evaluation.latency` (CPU time per face), :mod:`~maskdet.evaluation.unseen` (cached
evaluations on other folders), :mod:`~maskdet.evaluation.errors` (the error gallery's lists). All metrics
come from :mod:`maskdet.evaluation.metrics`, the one implementation the CLI, the training loop and the
tests share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from maskdet.evaluation.errors import OWN, SHARED, WRONG, error_sharing
from maskdet.evaluation.metrics import calibration
from maskdet.evaluation.summary import ModelSummary
from maskdet.evaluation.unseen import DataEvaluation
from maskdet.settings import CLASSES, KNOWN_CLASSES, POSITIVE_CLASS

Direction = Literal["max", "min"]

# Table columns, in display order. Per-class columns are generated from CLASSES.
COL_MODEL = "model"
COL_ARCH = "arch"
COL_ACCURACY = "accuracy"
COL_AUC = "ROC AUC"
COL_AP = "avg precision"
COL_FP = "false positives"
COL_FN = "false negatives"
COL_ECE = "ECE"
COL_BRIER = "Brier score"
COL_THRESHOLD = "operating threshold"
COL_N = "test images"
COL_PARAMS = "parameters"
COL_SIZE = "checkpoint MB"
COL_TRAIN_S = "training s"
COL_LATENCY = "CPU ms / face"
COL_OUTSIDE = "unseen faces of a class the model lacks"
COL_OUTSIDE_MASKED = "of those, called with_mask"


def class_column(metric: str, class_name: str) -> str:
    """Column name of a per-class metric, e.g. ``F1 with_mask``."""
    return f"{metric} {class_name}"


PER_CLASS_METRICS = ("precision", "recall", "F1")
BEST_DIRECTION: dict[str, Direction] = {
    COL_ACCURACY: "max",
    COL_AUC: "max",
    COL_AP: "max",
    **{class_column(m, c): "max" for c in KNOWN_CLASSES for m in PER_CLASS_METRICS},
    COL_FP: "min",
    COL_FN: "min",
    COL_ECE: "min",
    COL_BRIER: "min",
    COL_PARAMS: "min",
    COL_SIZE: "min",
    COL_TRAIN_S: "min",
    COL_LATENCY: "min",
}
"""Which way is better for each column that has a best value (``test images``, thresholds and names have none)."""
TABLE_COLUMNS = [COL_MODEL, COL_ARCH, COL_ACCURACY, COL_AUC, COL_AP,
                 *[class_column(m, c) for c in reversed(CLASSES) for m in PER_CLASS_METRICS],
                 COL_FP, COL_FN, COL_ECE, COL_BRIER, COL_THRESHOLD, COL_N, COL_PARAMS, COL_SIZE, COL_TRAIN_S,
                 COL_LATENCY]
"""The columns of a comparison of two-class models; :func:`table_columns` adds the third class's."""


def table_columns(summaries: Sequence[ModelSummary]) -> list[str]:
    """:data:`TABLE_COLUMNS`, plus the ``incorrect_mask`` columns after the others per class when a model knows it."""
    extra = [class_column(m, c) for c in KNOWN_CLASSES[2:] for m in PER_CLASS_METRICS
             if any(c in s.classes for s in summaries)]
    cut = TABLE_COLUMNS.index(COL_FP)
    return [*TABLE_COLUMNS[:cut], *extra, *TABLE_COLUMNS[cut:]]


def _metric(metrics: dict | None, key: str) -> float | None:
    return None if metrics is None else metrics.get(key)


def comparison_table(summaries: Sequence[ModelSummary]) -> pd.DataFrame:
    """One row per model, columns :func:`table_columns`; unknown values are NaN (a two-class model has no
    ``incorrect_mask`` figures)."""
    rows = []
    for s in summaries:
        test = s.test
        reliability = calibration(s.labels, s.scores)
        per_class = (test or {}).get("per_class", {})
        row: dict[str, object] = {
            COL_MODEL: s.name,
            COL_ARCH: s.arch,
            COL_ACCURACY: _metric(test, "accuracy"),
            COL_AUC: _metric(test, "roc_auc"),
            COL_AP: _metric(test, "average_precision"),
            COL_FP: _metric(test, "false_positives"),
            COL_FN: _metric(test, "false_negatives"),
            COL_ECE: _metric(reliability, "expected_calibration_error"),
            COL_BRIER: _metric(reliability, "brier_score"),
            COL_THRESHOLD: s.operating_threshold,
            COL_N: _metric(test, "n"),
            COL_PARAMS: s.params,
            COL_SIZE: None if s.weights_bytes is None else s.weights_bytes / 1e6,
            COL_TRAIN_S: s.training_seconds,
            COL_LATENCY: s.latency_ms,
        }
        for class_name in KNOWN_CLASSES:
            values = per_class.get(class_name, {})
            for metric in PER_CLASS_METRICS:
                row[class_column(metric, class_name)] = values.get(metric.lower())
        rows.append(row)
    columns = table_columns(summaries)
    frame = pd.DataFrame(rows, columns=columns)
    numeric = [c for c in columns if c not in (COL_MODEL, COL_ARCH)]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    return frame


def best_mask(frame: pd.DataFrame, directions: Mapping[str, Direction] = BEST_DIRECTION) -> pd.DataFrame:
    """Boolean frame shaped like ``frame``: True where a cell holds its column's best value (ties all win).

    Only columns in ``directions`` take part, and only when at least two models have a value:
    a lone number is not "best" of anything.
    """
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column, direction in directions.items():
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().sum() < 2:
            continue
        best = values.max() if direction == "max" else values.min()
        mask[column] = np.isclose(values.to_numpy(dtype=float), best, rtol=1e-12, atol=0.0)
    return mask


def unseen_table(summaries: Sequence[ModelSummary], evaluations: Mapping[str, DataEvaluation]) -> pd.DataFrame:
    """Held-out test numbers next to unseen-data numbers, one row per evaluated model (keyed by name)."""
    rows = []
    for s in summaries:
        evaluation = evaluations.get(s.name)
        if evaluation is None:
            continue
        row: dict[str, object] = {COL_MODEL: s.name, "unseen images": evaluation.metrics["n"]}
        for label, key in (("accuracy", "accuracy"), ("ROC AUC", "roc_auc"), ("avg precision", "average_precision")):
            test_value, unseen_value = _metric(s.test, key), evaluation.metrics.get(key)
            row[f"test {label}"] = test_value
            row[f"unseen {label}"] = unseen_value
            row[f"Δ {label}"] = None if test_value is None or unseen_value is None else unseen_value - test_value
        row[f"unseen {COL_FP}"] = evaluation.metrics["false_positives"]
        row[f"unseen {COL_FN}"] = evaluation.metrics["false_negatives"]
        outside = evaluation.metrics.get("outside_classes") or {}
        # A class the model does not know (incorrect_mask for a two-class model): its faces are neither
        # errors nor right; how many there were and how many the model called with_mask, apart.
        row[COL_OUTSIDE] = sum(v["faces"] for v in outside.values())
        row[COL_OUTSIDE_MASKED] = sum(v["called"].get(POSITIVE_CLASS, 0) for v in outside.values())
        reliability = calibration(evaluation.labels, evaluation.scores)
        row[f"unseen {COL_ECE}"] = _metric(reliability, "expected_calibration_error")
        row[f"unseen {COL_BRIER}"] = _metric(reliability, "brier_score")
        rows.append(row)
    return pd.DataFrame(rows)


def overlap_summary(overlap: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Per model: its errors (FP, FN) and how many of them are shared with another model or its own."""
    rows = []
    for name in models:
        kinds = overlap.loc[overlap[name].isin(WRONG), name]
        sharing = error_sharing(overlap, name)
        rows.append({COL_MODEL: name, "errors": len(kinds), "FP": int((kinds == "FP").sum()),
                     "FN": int((kinds == "FN").sum()), SHARED: int((sharing == SHARED).sum()),
                     OWN: int((sharing == OWN).sum())})
    return pd.DataFrame(rows, columns=[COL_MODEL, "errors", "FP", "FN", SHARED, OWN])


def table_csv(frame: pd.DataFrame) -> str:
    """The comparison table as CSV text (full precision, no index)."""
    return frame.to_csv(index=False)


def metrics_json(summaries: Sequence[ModelSummary], unseen: Sequence[DataEvaluation] = ()) -> str:
    """Every model's full held-out metrics, cost figures and unseen-data metrics as a JSON document."""
    by_sha: dict[str, list[dict]] = {}
    for evaluation in unseen:
        by_sha.setdefault(evaluation.weights_sha256, []).append(
            {"data": evaluation.data, "fingerprint": evaluation.fingerprint, "unreadable": evaluation.unreadable,
             "metrics": evaluation.metrics}
        )
    models = [
        {
            "name": s.name, "arch": s.arch, "classes": list(s.classes), "path": str(s.path), "created": s.created,
            "weights_sha256": s.weights_sha256, "input_size": s.input_size, "params": s.params,
            "checkpoint_bytes": s.weights_bytes, "training_seconds": s.training_seconds,
            "cpu_latency_ms_per_face": s.latency_ms,
            "training_data": {"path": s.training_data, "fingerprint": s.training_fingerprint},
            "operating_threshold": s.operating_threshold, "operating_threshold_chosen_on": s.threshold_chosen_on,
            "test": s.test, "test_calibration": calibration(s.labels, s.scores), "history": s.history,
            "unseen": by_sha.get(s.weights_sha256, []),
        }
        for s in summaries
    ]
    return json.dumps({"positive_class": POSITIVE_CLASS, "models": models}, indent=2)

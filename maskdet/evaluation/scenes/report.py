"""Scene evaluations laid out for people: a side-by-side table and crops of the errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from maskdet.inference.detector import crop_box
from maskdet.data.images import open_image
from maskdet.settings import KNOWN_CLASSES

COL_PIPELINE = "pipeline"
METRIC_COLUMNS = {
    "detection_recall": "recall",
    "detection_precision": "precision",
    "false_positives": "false positives",
    "accuracy_on_detected": "accuracy on detected",
    "end_to_end_accuracy": "end to end",
    "map50": "mAP50",
}
PER_CLASS_COLUMNS = {"ap50": "AP50", "recall": "recall"}
ERROR_MARGIN = 0.2  # context around an error's box in its crop, as for the classifier's crops


def per_class_column(metric: str, class_name: str) -> str:
    return f"{class_name} {PER_CLASS_COLUMNS[metric]}"


def scene_table(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per pipeline (label -> ``evaluate-scenes`` object): the headline metrics, then per class."""
    rows = []
    for label, metrics in results.items():
        row: dict[str, Any] = {COL_PIPELINE: label, **{title: metrics[key] for key, title in METRIC_COLUMNS.items()}}
        for class_name in KNOWN_CLASSES:
            for metric in PER_CLASS_COLUMNS:
                row[per_class_column(metric, class_name)] = (metrics["per_class"].get(class_name) or {}).get(metric)
        row["faces"], row["photos"], row["seconds"] = metrics["faces"], metrics["images"], metrics["seconds"]
        rows.append(row)
    return pd.DataFrame(rows)


def error_caption(error: Mapping[str, Any]) -> str:
    """A short line saying what went wrong, e.g. ``without_mask called with_mask (93%)``."""
    kind = error["kind"]
    if kind == "missed":
        return f"missed {error['true_label']} (best IoU {error['iou']:.2f})"
    called = f"called {error['predicted_label']} ({error['confidence']:.0%}, face score {error['face_score']:.2f})"
    if kind == "false_positive":
        return f"not a face, {called}"
    return f"{error['true_label']} {called}"


def error_crop(root: str | Path, error: Mapping[str, Any]) -> Image.Image:
    """The region of an error record (its box with some context) cut from its photo.

    Raises :class:`maskdet.data.images.ImageDecodeError` when the photo can no longer be read.
    """
    image, _info = open_image(Path(root) / error["image"])
    return image.crop(crop_box([round(v) for v in error["box"]], image.size, ERROR_MARGIN))

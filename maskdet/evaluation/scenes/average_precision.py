"""Per-class average precision at one IoU threshold, computed by pycocotools' ``COCOeval``.

Boxes are (x0, y0, x1, y1) in pixels; each detection carries the class the product gave it and
a score. pycocotools prints its progress on stdout; that is captured, so ``--json`` output and
logs stay clean.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskdet.settings import CLASSES


@dataclass(frozen=True)
class ImageBoxes:
    """Ground truth and detections of one image for AP: boxes (x0, y0, x1, y1), class names, scores."""

    truth_boxes: Sequence[Sequence[float]]
    truth_labels: Sequence[str]
    detected_boxes: Sequence[Sequence[float]]
    detected_labels: Sequence[str]
    detected_scores: Sequence[float]


def _xywh(box: Sequence[float]) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def average_precision(images: Sequence[ImageBoxes], iou: float = 0.5,
                      classes: Sequence[str] = CLASSES) -> dict[str, float | None]:
    """AP per class (COCO 101-point interpolation) at IoU ``iou``; None for a class with no ground-truth box."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    category = {name: index + 1 for index, name in enumerate(classes)}
    truth, detections = [], []
    for image_id, image in enumerate(images, start=1):
        for box, label in zip(image.truth_boxes, image.truth_labels, strict=True):
            xywh = _xywh(box)
            truth.append({"id": len(truth) + 1, "image_id": image_id, "category_id": category[label], "bbox": xywh,
                          "area": xywh[2] * xywh[3], "iscrowd": 0})
        for box, label, score in zip(image.detected_boxes, image.detected_labels, image.detected_scores, strict=True):
            detections.append({"image_id": image_id, "category_id": category[label], "bbox": _xywh(box),
                               "score": float(score)})
    present = {row["category_id"] for row in truth}
    if not detections:  # pycocotools cannot load an empty result list; nothing found is AP 0
        return {name: (0.0 if category[name] in present else None) for name in classes}
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = {"images": [{"id": i} for i in range(1, len(images) + 1)], "annotations": truth,
                          "categories": [{"id": i, "name": n} for n, i in category.items()]}
        ground.createIndex()
        evaluator = COCOeval(ground, ground.loadRes(detections), iouType="bbox")
        evaluator.params.iouThrs = np.array([iou])
        evaluator.params.areaRng = [[0, float("inf")]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.params.maxDets = [max(len(detections), 1)]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, 0]  # recall thresholds x categories
    result: dict[str, float | None] = {}
    for name in classes:
        column = precision[:, evaluator.params.catIds.index(category[name])]
        result[name] = None if (column < 0).all() else float(column[column > -1].mean())
    return result

"""Run the product's detect -> crop -> classify pipeline over boxed photos and score it.

A face is *found* when a detection overlaps it with IoU >= ``iou`` (each detection finds at most
one face, best detector score first, see :func:`maskdet.evaluation.scenes.matching.match_detections`), and
*labelled right* when the classifier's label for that detection is the face's class. Metrics:

- ``detection_recall`` = found / faces; ``detection_precision`` = found / (found + false positives);
- ``accuracy_on_detected`` = labelled right / found; ``end_to_end_accuracy`` = labelled right / faces;
- ``map50`` = the mean over classes of pycocotools' AP at IoU ``iou``. As detectors are scored (YOLOv5's and
  Ultralytics' validation keep every class above a 0.001 confidence per box), each detected face is one
  detection *per class*, scored detector score x that class's probability: AP measures how well each class's
  faces are ranked, whatever the operating threshold (the labelling figures use the decision rule);
  ``per_class`` gives ``ap50``, ``recall``, ``faces`` (and accuracy on the detected faces of that class);
- ``errors``: one record per missed face, false positive and mislabelled face.

Faces of a class the model does not know (``incorrect_mask`` for a two-class model) count for the detector
(``detection_recall``) but never as labelled right or wrong: labelling figures and AP leave them out,
``faces_outside_model_classes`` counts them and their ``per_class`` entry says what the model ``called`` them.

Faces of a class neither known nor mapped are ignored (counted in ``ignored_faces``); photos that
cannot be decoded and annotation files that cannot be read are listed in ``problems``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskdet.data.images import ImageDecodeError, open_image
from maskdet.inference.faces import FacePrediction
from maskdet.inference.pipeline import FacePipeline
from maskdet.data.annotations import SceneImage, SceneSet, load_scene_set
from maskdet.evaluation.scenes.average_precision import ImageBoxes, average_precision
from maskdet.evaluation.scenes.matching import Matching, match_detections
from maskdet.settings import CLASSES, KNOWN_CLASSES

logger = logging.getLogger(__name__)

DEFAULT_IOU = 0.5
MISSED, FALSE_POSITIVE, MISLABELLED = "missed", "false_positive", "mislabelled"

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ImageOutcome:
    """What the pipeline did on one photo, and how its detections matched the annotated faces."""

    image: SceneImage
    predictions: tuple[FacePrediction, ...]
    matching: Matching
    model_classes: tuple[str, ...] = CLASSES  # what the classifier can say

    @property
    def known_faces(self) -> list:
        return [face for face in self.image.faces if face.label is not None]


def _box(values) -> list[float]:
    return [round(float(v), 1) for v in values]


def _errors(outcome: ImageOutcome) -> list[dict]:
    faces, predictions, matching = outcome.known_faces, outcome.predictions, outcome.matching
    relpath = outcome.image.relpath
    records = []
    detection_of = {f: d for d, f in enumerate(matching.face_of) if f is not None}
    for index, face in enumerate(faces):
        d = detection_of.get(index)
        if d is None:
            records.append({"kind": MISSED, "image": relpath, "box": _box(face.box), "true_label": face.label,
                            "predicted_label": None, "confidence": None, "face_score": None,
                            "iou": round(matching.best_iou[index], 3)})
        elif predictions[d].label != face.label and face.label in outcome.model_classes:
            p = predictions[d]
            records.append({"kind": MISLABELLED, "image": relpath, "box": _box(face.box), "true_label": face.label,
                            "predicted_label": p.label, "confidence": round(p.confidence, 4),
                            "face_score": round(p.face_score, 4), "detection_box": _box(p.box)})
    for d in matching.false_positives:
        p = predictions[d]
        records.append({"kind": FALSE_POSITIVE, "image": relpath, "box": _box(p.box), "true_label": None,
                        "predicted_label": p.label, "confidence": round(p.confidence, 4),
                        "face_score": round(p.face_score, 4), "iou": None})
    return records


def _probabilities(face: FacePrediction) -> dict[str, float]:
    """The face's class probabilities; a record without them (built by hand) has only its label's."""
    return face.probabilities or {face.label: face.confidence}


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarize_outcomes(outcomes: list[ImageOutcome], iou: float = DEFAULT_IOU) -> dict[str, Any]:
    """The metrics of ``outcomes`` (see the module docstring); pure: no model runs here."""
    faces = found = right = labelled = false_positives = ignored_faces = ignored_detections = 0
    model_classes = outcomes[0].model_classes if outcomes else CLASSES
    per_class = {name: {"faces": 0, "found": 0, "right": 0, "called": dict.fromkeys(model_classes, 0)}
                 for name in KNOWN_CLASSES}
    errors: list[dict] = []
    boxes: list[ImageBoxes] = []
    for outcome in outcomes:
        known = outcome.known_faces
        matching, predictions = outcome.matching, outcome.predictions
        ignored_faces += len(outcome.image.faces) - len(known)
        ignored_detections += sum(matching.ignored)
        false_positives += len(matching.false_positives)
        for face in known:
            per_class[face.label]["faces"] += 1
        faces += len(known)
        labelled += sum(1 for face in known if face.label in model_classes)
        outside = set()  # detections on faces of a class the model lacks: left out of AP
        for d, f in enumerate(matching.face_of):
            if f is None:
                continue
            counts = per_class[known[f].label]
            counts["found"] += 1
            counts["called"][predictions[d].label] += 1
            found += 1
            if known[f].label not in model_classes:
                outside.add(d)
            elif predictions[d].label == known[f].label:
                counts["right"] += 1
                right += 1
        errors.extend(_errors(outcome))
        kept = [predictions[d] for d, skip in enumerate(matching.ignored) if not skip and d not in outside]
        scored = [face for face in known if face.label in model_classes]
        per_class_scores = [(face.box, name, face.face_score * _probabilities(face).get(name, 0.0))
                            for face in kept for name in model_classes]
        boxes.append(ImageBoxes(
            truth_boxes=[face.box for face in scored], truth_labels=[face.label for face in scored],
            detected_boxes=[box for box, _, _ in per_class_scores],
            detected_labels=[name for _, name, _ in per_class_scores],
            detected_scores=[score for _, _, score in per_class_scores],
        ))
    ap = average_precision(boxes, iou=iou, classes=model_classes)
    present = [value for value in ap.values() if value is not None]
    found_labelled = sum(per_class[name]["found"] for name in model_classes)
    return {
        "images": len(outcomes),
        "faces": faces,
        "detection_recall": _ratio(found, faces),
        "detection_precision": _ratio(found, found + false_positives),
        "false_positives": false_positives,
        "accuracy_on_detected": _ratio(right, found_labelled),
        "end_to_end_accuracy": _ratio(right, labelled),
        "model_classes": list(model_classes),
        "faces_outside_model_classes": faces - labelled,
        "map50": float(np.mean(present)) if present else None,
        "per_class": {
            name: {"ap50": ap.get(name), "recall": _ratio(c["found"], c["faces"]), "faces": c["faces"],
                   "accuracy_on_detected": _ratio(c["right"], c["found"]) if name in model_classes else None,
                   "right": c["right"] if name in model_classes else None, "called": c["called"]}
            for name, c in per_class.items() if name in model_classes or c["faces"]
        },
        "ignored_faces": ignored_faces,
        "ignored_detections": ignored_detections,
        "errors": errors,
    }


def evaluate_image(pipeline: FacePipeline, image: np.ndarray, scene: SceneImage, iou: float = DEFAULT_IOU) -> ImageOutcome:
    """Run ``pipeline`` on one decoded photo and match its detections to ``scene``'s faces."""
    predictions = tuple(pipeline.predict(image))
    known = [face.box for face in scene.faces if face.label is not None]
    unknown = [face.box for face in scene.faces if face.label is None]
    matching = match_detections([p.box for p in predictions], [p.face_score for p in predictions], known,
                                iou=iou, ignored_faces=unknown)
    return ImageOutcome(image=scene, predictions=predictions, matching=matching,
                        model_classes=pipeline.classifier.classes)


def describe_detector(detector: object) -> dict[str, Any]:
    """The detector's registry name and settings, for reports and cache keys."""
    settings = getattr(detector, "settings", None)
    return {"name": getattr(detector, "name", type(detector).__name__), **(settings() if callable(settings) else {})}


@dataclass
class SceneEvaluation:
    """A pipeline scored on a boxed-photo set: the ``evaluate-scenes --json`` object plus the raw outcomes."""

    data: Path
    fingerprint: str
    metrics: dict[str, Any]
    outcomes: list[ImageOutcome] = field(repr=False, default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.metrics)


def evaluate_scenes(
    pipeline: FacePipeline,
    data: str | Path | SceneSet,
    iou: float = DEFAULT_IOU,
    class_map: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> SceneEvaluation:
    """Score ``pipeline`` on every usable photo of the boxed-photo folder ``data``.

    ``progress(done, total)`` is called after each photo. Raises
    :class:`maskdet.data.annotations.SceneSetError` for a folder that is no boxed-photo set or holds
    no usable annotated photo.
    """
    start = time.perf_counter()
    scenes = data if isinstance(data, SceneSet) else load_scene_set(data, class_map=class_map)
    problems = [{"path": relpath, "reason": reason} for relpath, reason in scenes.problems]
    outcomes = []
    for done, scene in enumerate(scenes.images, start=1):
        try:
            image, _info = open_image(scenes.root / scene.relpath)
        except ImageDecodeError as exc:
            problems.append({"path": scene.relpath, "reason": f"unreadable image: {exc.reason}"})
        else:
            outcomes.append(evaluate_image(pipeline, np.asarray(image), scene, iou=iou))
        if progress:
            progress(done, len(scenes.images))
    metrics = summarize_outcomes(outcomes, iou=iou)
    errors = metrics.pop("errors")
    metrics |= {
        "iou": iou,
        "model": pipeline.classifier.name,
        "detector": describe_detector(pipeline.detector),
        "data": str(scenes.root),
        "format": scenes.format,
        "unknown_classes": dict(scenes.unknown_classes),
        "mapped_classes": dict(scenes.mapped_classes),
        "problems": problems,
        "seconds": round(time.perf_counter() - start, 3),
        "errors": errors,
    }
    logger.info("scene evaluation of %s on %s: recall %s, %d false positives", pipeline.classifier.name,
                scenes.root, metrics["detection_recall"], metrics["false_positives"])
    return SceneEvaluation(data=scenes.root, fingerprint=scenes.fingerprint, metrics=metrics, outcomes=outcomes)

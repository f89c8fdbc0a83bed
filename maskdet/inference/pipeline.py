"""The detect -> crop -> classify pipeline, and the records it produces for image files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from maskdet.inference.predictor import Predictor, load_classifier
from maskdet.data.images import open_image
from maskdet.inference.faces import FacePrediction
from maskdet.zoo.decision import THRESHOLD, predicted_labels
from maskdet.settings import CLASSES

logger = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.2  # context around each detected face, per side, as a fraction of its size


def label_probabilities(probabilities: np.ndarray, threshold: float = THRESHOLD,
                        classes: tuple[str, ...] = CLASSES) -> list[tuple[str, float]]:
    """(label, confidence) per row of class probabilities (columns: ``classes``), at the operating
    ``threshold`` on p(with_mask).

    The label follows :func:`maskdet.zoo.decision.predicted_labels` (the rule the metrics count with); the
    confidence is the probability of that label, so below 0.5 when the threshold overrules the argmax.
    """
    probabilities = np.asarray(probabilities).reshape(-1, len(classes))
    labels = predicted_labels(probabilities, threshold)
    return [(classes[int(label)], float(row[int(label)])) for row, label in zip(probabilities, labels, strict=True)]


def face_predictions(faces: list, probabilities: np.ndarray, threshold: float,
                     classes: tuple[str, ...]) -> list[FacePrediction]:
    """The face records of detected ``faces`` (with ``box`` and ``score``) and their class probabilities."""
    labels = label_probabilities(probabilities, threshold, classes)
    return [
        FacePrediction(box=tuple(int(v) for v in face.box), label=label, confidence=confidence,
                       face_score=float(face.score),
                       probabilities={name: float(p) for name, p in zip(classes, row, strict=True)})
        for face, (label, confidence), row in zip(faces, labels, probabilities, strict=True)
    ]


class FacePipeline:
    """Detect faces, crop each with a margin, classify all crops of an image in one batch.

    Faces are labelled at the classifier's operating threshold (its model card's, default 0.5).
    ``frame_detector`` builds the detector for video frames when it differs from the photos' one
    (see :meth:`for_frames`).
    """

    def __init__(self, classifier: Predictor, detector, margin: float = DEFAULT_MARGIN,
                 frame_detector: Callable[[], object] | None = None) -> None:
        self.classifier = classifier
        self.detector = detector
        self.margin = margin
        self._frame_detector = frame_detector

    @cached_property
    def frame_pipeline(self) -> FacePipeline:
        """The pipeline for video frames: the same classifier behind the frame detector (built on first use,
        ~0.5 s), or this pipeline when photos and frames share a detector. A clip's frames never pay the photo
        setting's 1120 px pass (~5-7x a frame's detection)."""
        if self._frame_detector is None:
            return self
        return FacePipeline(self.classifier, self._frame_detector(), margin=self.margin)

    def predict(self, image: Image.Image | np.ndarray) -> list[FacePrediction]:
        return self.predict_many([image])[0]

    def predict_many(self, images: list[Image.Image | np.ndarray]) -> list[list[FacePrediction]]:
        """The faces of each image; the crops of all images are classified in one batch (throughput)."""
        from maskdet.inference.detector import crop_faces

        arrays = [np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image for image in images]
        faces_per_image = [self.detector.detect(array) for array in arrays]
        crops = [crop for array, faces in zip(arrays, faces_per_image, strict=True) if faces
                 for crop in crop_faces(array, faces, margin=self.margin)]
        if not crops:
            return [[] for _ in arrays]
        probabilities = self.classifier.predict_proba(crops)
        results: list[list[FacePrediction]] = []
        index = 0
        for faces in faces_per_image:
            results.append(face_predictions(faces, probabilities[index : index + len(faces)],
                                            self.classifier.threshold, self.classifier.classes))
            index += len(faces)
        return results


def build_pipeline(
    model: str | None = None, whole_image: bool = False, detector: str = "centerface", margin: float = DEFAULT_MARGIN,
    detector_options: dict | None = None, backend: str | None = None,
) -> FacePipeline:
    """The classifier ``model`` (None = the default model) behind a face detector.

    ``whole_image`` skips detection and classifies each full image as one face (for inputs
    that already are face crops); ``detector_options`` go to the detector (e.g. ``threads``); ``backend`` is the
    classifier's (:class:`maskdet.inference.predictor.Predictor`; ``"auto"`` for long-lived callers). Raises :class:`maskdet.zoo.folders.CheckpointError` and
    :class:`maskdet.zoo.assets.AssetUnavailableError` when the model or detector cannot be loaded.
    """
    from maskdet.inference.detector import DETECTORS, get_detector

    classifier = load_classifier(model, backend=backend)
    if whole_image:
        return FacePipeline(classifier, get_detector("whole-image"), margin=margin)
    face_detector = get_detector(detector, **(detector_options or {}))
    frames = DETECTORS[detector].frames

    def frame_detector() -> object:
        return get_detector(frames, **(detector_options or {}))

    return FacePipeline(classifier, face_detector, margin=margin, frame_detector=frame_detector if frames else None)


def predict_file(pipeline: FacePipeline, path: str | Path) -> dict:
    """The ``predict --json`` record of one image file.

    ``{"path", "width", "height", "faces": [FacePrediction.to_json(), ...]}`` with boxes in pixels
    of the upright image (after EXIF orientation). Raises :class:`maskdet.data.images.ImageDecodeError`
    for a file that is not a usable image.
    """
    image, _info = open_image(path)
    return image_record(path, image, pipeline.predict(image))


def image_record(path: str | Path, image: Image.Image, faces: list[FacePrediction]) -> dict:
    """``{"path", "width", "height", "faces"}``: the record ``predict --json`` prints for one image."""
    return {"path": str(path), "width": image.width, "height": image.height, "faces": [f.to_json() for f in faces]}


def error_record(path: str | Path, reason: str) -> dict:
    """``{"path", "error"}``: the record of a file that could not be scored, and why."""
    return {"path": str(path), "error": reason}
